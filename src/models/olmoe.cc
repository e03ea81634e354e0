// OLMoE (model_type "olmoe"; allenai/OLMoE-1B-7B): q/k RMSNorm over the whole projection width
// (q_norm [nh*hd], k_norm [nkv*hd]), optional clip_qkv after the norms, NeoX RoPE, every layer
// MoE, softmax -> top-k (renormalised only if norm_topk_prob), no shared expert.
// Tensors (per layer L):
//   model.layers.L.self_attn.{q,k,v,o}_proj.weight (+ .bias if attention_bias)
//   model.layers.L.self_attn.q_norm.weight [nh*hd], k_norm.weight [nkv*hd]
//   model.layers.L.mlp.gate.weight [E, H]; mlp.experts.e.{gate,up,down}_proj.weight
#include "models/family_common.h"

namespace moxie {

Result<std::unique_ptr<Model>> LoadOlmoe(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts) {
  CommonConfig c;
  MOXIE_RETURN_IF_ERROR(ParseCommonConfig(cfg, &c));
  int64_t n_expert = 0, k = 0, n_ff = 0;
  bool norm_topk = false, attn_bias = false;
  double clip = 0;
  MOXIE_RETURN_IF_ERROR(cfg.Int("num_experts", &n_expert));
  MOXIE_RETURN_IF_ERROR(cfg.Int("num_experts_per_tok", &k));
  MOXIE_RETURN_IF_ERROR(cfg.Int("intermediate_size", &n_ff));
  MOXIE_RETURN_IF_ERROR(cfg.BoolOr("norm_topk_prob", false, &norm_topk));
  MOXIE_RETURN_IF_ERROR(cfg.BoolOr("attention_bias", false, &attn_bias));
  MOXIE_RETURN_IF_ERROR(cfg.FloatOr("clip_qkv", 0.0, &clip));
  if (clip < 0) return cfg.FieldError("clip_qkv", "must be positive");
  RouterConfig rc;
  MOXIE_RETURN_IF_ERROR(rc.SetCounts(n_expert, k, cfg.path()));
  rc.normalize = norm_topk;
  MOXIE_RETURN_IF_ERROR(rc.Validate(cfg.path()));

  auto m = std::make_unique<DecoderModel>(std::move(src), c);
  m->info_.family = "olmoe";
  m->info_.model_type = "olmoe";
  MOXIE_ASSIGN_OR_RETURN(Rope rope, Rope::FromConfig(cfg, static_cast<int>(c.head_dim), RopeLayout::kNeox));
  m->rope_ = std::make_unique<Rope>(rope);
  TensorLoader loader(*m->source_, cfg.path(), opts, &m->owned_);
  MOXIE_RETURN_IF_ERROR(m->LoadEmbeddingsAndHead(loader));
  GqaConfig gc;
  gc.n_embd = static_cast<int>(c.n_embd);
  gc.n_head = static_cast<int>(c.n_head);
  gc.n_kv_head = static_cast<int>(c.n_head_kv);
  gc.head_dim = static_cast<int>(c.head_dim);
  gc.qk_norm = QkNorm::kFull;
  gc.norm_eps = static_cast<float>(c.norm_eps);
  gc.clip_qkv = static_cast<float>(clip);
  for (int l = 0; l < c.n_layer; ++l) {
    DecoderLayer& L = m->layers_[static_cast<size_t>(l)];
    MOXIE_RETURN_IF_ERROR(LoadLayerNorms(loader, l, c.n_embd, &L));
    GqaTensorOptions ao;
    ao.qkv_bias = attn_bias;
    ao.o_bias = attn_bias;
    ao.qk_norm = QkNorm::kFull;
    MOXIE_ASSIGN_OR_RETURN(GqaWeights aw, LoadGqaWeights(loader, l, c, ao));
    L.attn = MakeGqaAttention(gc, std::move(aw), m->rope_.get());
    const std::string p = LayerPrefix(l) + "mlp.";
    MoeTensorOptions mo;
    mo.router_name = p + "gate.weight";
    mo.experts_prefix = p + "experts";
    mo.n_ff = n_ff;
    MOXIE_RETURN_IF_ERROR(AddMoeLayer(*m, loader, l, rc, std::move(mo)));
  }
  m->info_.attention = "GQA, full-width q/k RMSNorm" +
                       std::string(clip > 0 ? ", clip_qkv " + std::to_string(clip) : "");
  m->info_.n_expert = rc.n_expert;
  m->info_.n_expert_used = rc.k;
  m->info_.n_ff_expert = static_cast<int>(n_ff);
  m->info_.router = rc.Describe();
  m->info_.rope = m->rope_->Describe();
  MOXIE_RETURN_IF_ERROR(m->Finalize(loader));
  return std::unique_ptr<Model>(std::move(m));
}

}  // namespace moxie
