// Writes a model (a Hugging Face checkpoint, or a GGUF seen through gguf_model.h) as a GGUF file
// llama.cpp loads: standard architecture names and metadata keys, `blk.N.*` tensor names, routed
// experts stacked into ffn_{gate,up,down}_exps, Mixtral's Q/K rows permuted for arch `llama`,
// DeepSeek's kv_b_proj split into attn_k_b / attn_v_b. Weights are converted or quantised row by
// row on the way (threads from the context), so memory stays at a few rows per thread plus one
// output chunk.
//
// Per-expert types: when the experts of one layer get different types, that layer's experts are
// written as per-expert tensors "blk.N.ffn_{gate,up,down}.E.weight" and the layer is listed in
// the Moxie metadata key `moxie.per_expert_layers` (array of i32). llama.cpp cannot load such a
// file; Moxie reads both layouts.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "formats/config_json.h"
#include "formats/gguf.h"
#include "formats/weight_source.h"

namespace moxie {

class GgufWriter;

// What a tensor is, for type rules and the summary.
enum class TensorClass { kEmbed, kOutput, kAttn, kRouter, kExperts, kShared, kDense, kNorm };
const char* TensorClassName(TensorClass c);  // "embed", "output", "attn", "router", ...
bool ParseTensorClass(const std::string& s, TensorClass* out);

// Output weight types by name ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k",
// "mxfp4"; case-insensitive) -> ggml type id.
bool ParseWeightType(const std::string& s, uint32_t* ggml_type);
std::string WeightTypeList();  // "f32, f16, ..." for messages

// Mixed-type recipes after llama.cpp's "_M" K-quant files (its llama_tensor_get_type rules for
// the MoE architectures Moxie writes), on a base type (Q4_K / Q5_K) for everything else:
//   output.weight                Q6_K
//   blk.N.attn_v.weight          Q8_0 in 8-expert models, else Q6_K when MoreBits(N), else base
//   blk.N.attn_k.weight          Q8_0 in 8-expert models
//   blk.N.attn_output.weight     Q5_K in 8-expert models (Q4_K_M)
//   blk.N.ffn_down*.weight       Q6_K when MoreBits(N) (dense, shared and expert FFNs)
// where MoreBits(i) = i < L/8 || i >= 7L/8 || (i - L/8) % 3 == 2 for L layers. Row lengths that a
// type's blocks do not divide fall back as always; --keep classes override the recipe.
enum class TypeRecipe { kNone, kQ4_K_M, kQ5_K_M };
// A --type value: a weight type (as ParseWeightType), or a recipe name ("q4_k_m", "q5_k_m"), which
// also sets *ggml_type to its base type.
bool ParseWeightTypeOrRecipe(const std::string& s, uint32_t* ggml_type, TypeRecipe* recipe);
std::string WeightTypeOrRecipeList();  // WeightTypeList() plus the recipes

// Per-expert types: [layer][expert] -> ggml type id; an empty inner vector = the default.
struct ExpertTypePlan {
  std::vector<std::vector<uint32_t>> types;
};
// Reads a plan file:
//   {"default": "q4_k",                    optional: experts not listed (else --type)
//    "layers": {"0": "q8_0",                every expert of layer 0
//               "3": {"default": "q4_k", "experts": {"5": "q8_0"}},
//               "4": ["q4_k", "q8_0", ...]}} one entry per expert
// Errors name the file and the offending key (unknown keys, layer/expert out of range, bad type).
Result<ExpertTypePlan> LoadExpertTypePlan(const std::string& path, int n_layer, int n_expert,
                                          uint32_t default_type);

struct ExportOptions {
  uint32_t type = 0;                         // ggml id for 2-D weights (F32 = 0)
  TypeRecipe recipe = TypeRecipe::kNone;     // a mixed-type recipe on `type` (its base type)
  std::map<TensorClass, uint32_t> keep;      // per-class overrides (router defaults to F32)
  const ExpertTypePlan* expert_plan = nullptr;
  bool overwrite = false;
  std::string name;                          // general.name
  // Writes the tokenizer metadata instead of reading `tokenizer_from` (synthetic models).
  std::function<Status(GgufWriter*)> write_tokenizer;
  // Called after every written chunk: bytes written so far, total, current tensor.
  std::function<void(uint64_t, uint64_t, const std::string&)> progress;
};

struct ExportedTensor {
  std::string name;
  TensorClass cls;
  uint32_t type;
  int64_t params;
  uint64_t bytes;
  bool fell_back;  // requested type impossible for the row length; a fallback was used
};

struct ExportReport {
  std::vector<ExportedTensor> tensors;
  std::vector<std::string> skipped;  // source tensors not written (e.g. DeepSeek MTP layers)
  uint64_t file_bytes = 0;
  std::string arch;
};

// `tokenizer_from`: a model folder (tokenizer.json) or a GGUF file whose tokenizer.* keys are
// copied. An existing `out` is refused unless opts.overwrite.
Result<ExportReport> ExportGguf(const ConfigReader& cfg, const WeightSource& src,
                                const std::string& tokenizer_from, const std::string& out,
                                const ExportOptions& opts, const ExecContext& ctx);

}  // namespace moxie
