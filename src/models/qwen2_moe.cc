// Qwen2-MoE (model_type "qwen2_moe"; Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B): q/k/v bias, NeoX RoPE,
// softmax -> top-k (renormalised only if norm_topk_prob), plus one shared expert scaled by
// sigmoid(shared_expert_gate · x). Layer L is MoE iff L ∉ mlp_only_layers and
// (L + 1) % decoder_sparse_step == 0; otherwise a dense SwiGLU of width intermediate_size.
// Tensors (per layer L):
//   model.layers.L.self_attn.{q,k,v}_proj.{weight,bias}, o_proj.weight
//   model.layers.L.mlp.gate.weight [E, H]; mlp.experts.e.{gate,up,down}_proj.weight [I,H] [I,H] [H,I]
//   model.layers.L.mlp.shared_expert.{gate,up,down}_proj.weight [Is,H] [Is,H] [H,Is]
//   model.layers.L.mlp.shared_expert_gate.weight [1, H]
//   dense layers: model.layers.L.mlp.{gate,up,down}_proj.weight
#include <algorithm>

#include "models/family_common.h"

namespace moxie {

Result<std::unique_ptr<Model>> LoadQwen2Moe(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts) {
  CommonConfig c;
  MOXIE_RETURN_IF_ERROR(ParseCommonConfig(cfg, &c));
  int64_t n_expert = 0, k = 0, n_ff = 0, n_ff_shared = 0, n_ff_dense = 0, step = 1;
  bool norm_topk = false, qkv_bias = true, sliding = false;
  std::vector<int64_t> mlp_only;
  MOXIE_RETURN_IF_ERROR(cfg.Int("num_experts", &n_expert));
  MOXIE_RETURN_IF_ERROR(cfg.Int("num_experts_per_tok", &k));
  MOXIE_RETURN_IF_ERROR(cfg.Int("moe_intermediate_size", &n_ff));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("shared_expert_intermediate_size", 0, &n_ff_shared));
  MOXIE_RETURN_IF_ERROR(cfg.Int("intermediate_size", &n_ff_dense));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("decoder_sparse_step", 1, &step));
  MOXIE_RETURN_IF_ERROR(cfg.IntListOr("mlp_only_layers", &mlp_only));
  MOXIE_RETURN_IF_ERROR(cfg.BoolOr("norm_topk_prob", false, &norm_topk));
  MOXIE_RETURN_IF_ERROR(cfg.BoolOr("qkv_bias", true, &qkv_bias));
  MOXIE_RETURN_IF_ERROR(cfg.BoolOr("use_sliding_window", false, &sliding));
  if (sliding) return Unsupported(cfg.path() + ": use_sliding_window = true is not supported");
  if (step < 1) return cfg.FieldError("decoder_sparse_step", "must be >= 1");
  RouterConfig rc;
  MOXIE_RETURN_IF_ERROR(rc.SetCounts(n_expert, k, cfg.path()));
  rc.normalize = norm_topk;
  MOXIE_RETURN_IF_ERROR(rc.Validate(cfg.path()));

  auto m = std::make_unique<DecoderModel>(std::move(src), c);
  m->info_.family = "qwen2_moe";
  m->info_.model_type = "qwen2_moe";
  MOXIE_ASSIGN_OR_RETURN(Rope rope, Rope::FromConfig(cfg, static_cast<int>(c.head_dim), RopeLayout::kNeox));
  m->rope_ = std::make_unique<Rope>(rope);
  TensorLoader loader(*m->source_, cfg.path(), opts, &m->owned_);
  MOXIE_RETURN_IF_ERROR(m->LoadEmbeddingsAndHead(loader));
  GqaConfig gc;
  gc.n_embd = static_cast<int>(c.n_embd);
  gc.n_head = static_cast<int>(c.n_head);
  gc.n_kv_head = static_cast<int>(c.n_head_kv);
  gc.head_dim = static_cast<int>(c.head_dim);
  for (int l = 0; l < c.n_layer; ++l) {
    DecoderLayer& L = m->layers_[static_cast<size_t>(l)];
    MOXIE_RETURN_IF_ERROR(LoadLayerNorms(loader, l, c.n_embd, &L));
    GqaTensorOptions ao;
    ao.qkv_bias = qkv_bias;
    MOXIE_ASSIGN_OR_RETURN(GqaWeights aw, LoadGqaWeights(loader, l, c, ao));
    L.attn = MakeGqaAttention(gc, std::move(aw), m->rope_.get());
    const std::string p = LayerPrefix(l) + "mlp.";
    const bool is_moe = std::find(mlp_only.begin(), mlp_only.end(), l) == mlp_only.end() &&
                        (l + 1) % step == 0;
    if (!is_moe) {
      MOXIE_ASSIGN_OR_RETURN(L.dense, LoadSwiGlu(loader, p, n_ff_dense, c.n_embd));
      continue;
    }
    MoeTensorOptions mo;
    mo.router_name = p + "gate.weight";
    mo.experts_prefix = p + "experts";
    mo.n_ff = n_ff;
    if (n_ff_shared > 0) {
      mo.shared = std::make_unique<SharedExpert>();
      MOXIE_ASSIGN_OR_RETURN(mo.shared->ffn,
                             LoadSwiGlu(loader, p + "shared_expert.", n_ff_shared, c.n_embd));
      MOXIE_ASSIGN_OR_RETURN(mo.shared->gate,
                             loader.Matmul(p + "shared_expert_gate.weight", {1, c.n_embd}, 0, true));
    }
    MOXIE_RETURN_IF_ERROR(AddMoeLayer(*m, loader, l, rc, std::move(mo)));
  }
  m->info_.attention = "GQA, q/k/v bias";
  m->info_.n_expert = rc.n_expert;
  m->info_.n_expert_used = rc.k;
  m->info_.n_expert_shared = n_ff_shared > 0 ? 1 : 0;
  m->info_.shared_expert_gated = n_ff_shared > 0;
  m->info_.n_ff_expert = static_cast<int>(n_ff);
  m->info_.n_ff_dense = static_cast<int>(n_ff_dense);
  m->info_.router = rc.Describe();
  m->info_.rope = m->rope_->Describe();
  MOXIE_RETURN_IF_ERROR(m->Finalize(loader));
  return std::unique_ptr<Model>(std::move(m));
}

}  // namespace moxie
