// Mixtral (model_type "mixtral"): Llama attention (GQA, NeoX RoPE, optional sliding window on
// every layer), every layer MoE, softmax -> top-k -> always renormalised, no shared expert.
// Tensors (Hub layout, per layer L):
//   model.layers.L.self_attn.{q,k,v,o}_proj.weight     [nh*hd, H] [nkv*hd, H] x2 [H, nh*hd]
//   model.layers.L.block_sparse_moe.gate.weight        [E, H]
//   model.layers.L.block_sparse_moe.experts.e.w{1,3,2}.weight  gate [I, H], up [I, H], down [H, I]
// transformers v5 layout: model.layers.L.mlp.gate.weight, mlp.experts.{gate_up_proj,down_proj}.
#include "models/family_common.h"

namespace moxie {

Result<std::unique_ptr<Model>> LoadMixtral(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts) {
  CommonConfig c;
  MOXIE_RETURN_IF_ERROR(ParseCommonConfig(cfg, &c));
  int64_t n_expert = 0, k = 0, n_ff = 0, window = 0;
  MOXIE_RETURN_IF_ERROR(cfg.Int("num_local_experts", &n_expert));
  MOXIE_RETURN_IF_ERROR(cfg.Int("num_experts_per_tok", &k));
  MOXIE_RETURN_IF_ERROR(cfg.Int("intermediate_size", &n_ff));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("sliding_window", 0, &window));
  RouterConfig rc;
  MOXIE_RETURN_IF_ERROR(rc.SetCounts(n_expert, k, cfg.path()));
  rc.scoring = RouterScoring::kSoftmax;
  rc.normalize = true;
  MOXIE_RETURN_IF_ERROR(rc.Validate(cfg.path()));

  auto m = std::make_unique<DecoderModel>(std::move(src), c);
  m->info_.family = "mixtral";
  m->info_.model_type = "mixtral";
  MOXIE_ASSIGN_OR_RETURN(Rope rope, Rope::FromConfig(cfg, static_cast<int>(c.head_dim), RopeLayout::kNeox));
  m->rope_ = std::make_unique<Rope>(rope);
  TensorLoader loader(*m->source_, cfg.path(), opts, &m->owned_);
  MOXIE_RETURN_IF_ERROR(m->LoadEmbeddingsAndHead(loader));
  GqaConfig gc;
  gc.n_embd = static_cast<int>(c.n_embd);
  gc.n_head = static_cast<int>(c.n_head);
  gc.n_kv_head = static_cast<int>(c.n_head_kv);
  gc.head_dim = static_cast<int>(c.head_dim);
  gc.sliding_window = static_cast<int>(window);
  for (int l = 0; l < c.n_layer; ++l) {
    DecoderLayer& L = m->layers_[static_cast<size_t>(l)];
    MOXIE_RETURN_IF_ERROR(LoadLayerNorms(loader, l, c.n_embd, &L));
    MOXIE_ASSIGN_OR_RETURN(GqaWeights aw, LoadGqaWeights(loader, l, c, {}));
    L.attn = MakeGqaAttention(gc, std::move(aw), m->rope_.get());
    const std::string p = LayerPrefix(l);
    MoeTensorOptions mo;
    if (loader.Has(p + "mlp.gate.weight")) {  // transformers v5 names
      mo.router_name = p + "mlp.gate.weight";
      mo.experts_prefix = p + "mlp.experts";
    } else {
      mo.router_name = p + "block_sparse_moe.gate.weight";
      mo.experts_prefix = p + "block_sparse_moe.experts";
      mo.expert_names = {"w1", "w3", "w2"};
    }
    mo.n_ff = n_ff;
    MOXIE_RETURN_IF_ERROR(AddMoeLayer(*m, loader, l, rc, std::move(mo)));
  }
  m->info_.attention = "GQA" + std::string(window > 0 ? ", sliding window " + std::to_string(window) : "");
  m->info_.n_expert = rc.n_expert;
  m->info_.n_expert_used = rc.k;
  m->info_.n_ff_expert = static_cast<int>(n_ff);
  m->info_.router = rc.Describe();
  m->info_.rope = m->rope_->Describe();
  MOXIE_RETURN_IF_ERROR(m->Finalize(loader));
  return std::unique_ptr<Model>(std::move(m));
}

}  // namespace moxie
