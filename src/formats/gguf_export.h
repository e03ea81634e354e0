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
