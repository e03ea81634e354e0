// DecoderModel: the pre-norm decoder skeleton every supported family shares
//   x = embed(tokens); per layer: x += Attn(RMSNorm(x)); x += FFN(RMSNorm(x)); logits = head(norm(x))
// Family files (mixtral.cc, qwen2_moe.cc, ...) parse their config, fetch their tensors and
// assemble one of these from blocks; the forward pass lives here once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/config_json.h"
#include "formats/weight_source.h"
#include "models/blocks/attention.h"
#include "models/blocks/rope.h"
#include "models/loader.h"
#include "models/model.h"
#include "moe/expert_store.h"
#include "moe/moe_layer.h"

namespace moxie {

struct DecoderLayer {
  std::vector<float> attn_norm;  // [H]
  std::vector<float> ffn_norm;   // [H]
  std::unique_ptr<AttentionBlock> attn;
  std::unique_ptr<MoeLayer> moe;  // MoE layer, or
  ExpertWeights dense;            // dense SwiGLU MLP when moe == nullptr
};

// Fields every family reads the same way.
struct CommonConfig {
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_vocab = 0;
  int64_t max_position = 0;
  double norm_eps = 1e-6;
  bool tie_embeddings = false;
  int64_t bos = -1, eos = -1;
};
// head_dim_default: value when config has no head_dim (usually n_embd / n_head).
Status ParseCommonConfig(const ConfigReader& cfg, CommonConfig* out);

class DecoderModel : public Model {
 public:
  DecoderModel(std::unique_ptr<WeightSource> source, const CommonConfig& common);

  // Assembly (by family loaders) -------------------------------------------------------------
  // Loads embed_tokens, final norm and lm_head (or ties it) under the HF names.
  Status LoadEmbeddingsAndHead(TensorLoader& loader);
  // Finishes assembly: fills info's counts from the loader and checks invariants.
  Status Finalize(const TensorLoader& loader);

  ModelInfo info_;
  CommonConfig common_;
  std::unique_ptr<WeightSource> source_;  // keeps the mappings alive
  OwnedWeights owned_;                    // weights the loader re-laid out
  std::unique_ptr<Rope> rope_;            // shared by the attention blocks
  std::unique_ptr<ResidentExpertStore> experts_;
  TensorView embed_;                      // [V, H]
  TensorView lm_head_;                    // [V, H]
  std::vector<float> final_norm_;         // [H]
  std::vector<DecoderLayer> layers_;

  // Model -----------------------------------------------------------------------------------
  const ModelInfo& info() const override { return info_; }
  std::vector<KvLayerSpec> KvSpec() const override;
  size_t ScratchFloats(int max_tok, int max_ctx, int n_threads) const override;
  Status Forward(const ExecContext& ctx, const Batch& batch, KvCache& kv, Arena& arena,
                 float* logits, const ForwardOptions& opts) override;

 private:
  Status CheckBatch(const Batch& batch, const KvCache& kv, const Arena& arena, int n_threads) const;
};

}  // namespace moxie
