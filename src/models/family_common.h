// Loading helpers shared by the family files: the Hugging Face tensor names that several families
// use identically (attention projections, norms, SwiGLU MLPs, MoE layers).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/hf_checkpoint.h"
#include "models/decoder.h"

namespace moxie {

using FamilyLoader = Result<std::unique_ptr<Model>> (*)(const ConfigReader& cfg,
                                                      std::unique_ptr<WeightSource> src,
                                                      const LoadOptions& opts);

// "model.layers.{l}."
std::string LayerPrefix(int layer);

// input_layernorm / post_attention_layernorm of one layer.
Status LoadLayerNorms(TensorLoader& loader, int layer, int64_t n_embd, DecoderLayer* out);

struct GqaTensorOptions {
  bool qkv_bias = false;
  bool o_bias = false;
  QkNorm qk_norm = QkNorm::kNone;
};
// self_attn.{q,k,v,o}_proj (+ biases, + q_norm/k_norm) of one layer.
Result<GqaWeights> LoadGqaWeights(TensorLoader& loader, int layer, const CommonConfig& c,
                                  const GqaTensorOptions& opt);

// A SwiGLU MLP "<prefix>{gate,up,down}_proj.weight" of width n_ff.
Result<ExpertWeights> LoadSwiGlu(TensorLoader& loader, const std::string& prefix, int64_t n_ff,
                                 int64_t n_embd);

// Builds the MoE layer `layer` of `m`: router "<router_name>" [E, H], experts under
// `experts_prefix` (per-expert or fused), optional shared expert.
struct MoeTensorOptions {
  std::string router_name;
  std::string experts_prefix;
  TensorLoader::ExpertNames expert_names;
  int64_t n_ff = 0;
  std::vector<float> selection_bias;  // [E] or empty
  std::unique_ptr<SharedExpert> shared;
};
Status AddMoeLayer(DecoderModel& m, TensorLoader& loader, int layer, const RouterConfig& rc,
                   MoeTensorOptions opt);

// Refuses checkpoints whose config declares a quantization we cannot read.
Status CheckNoQuantization(const ConfigReader& cfg);

}  // namespace moxie
