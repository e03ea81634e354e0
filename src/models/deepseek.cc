// DeepSeek-V2 / V2-Lite (model_type "deepseek_v2") and DeepSeek-V3 / R1 (model_type "deepseek_v3").
// Attention is MLA: q either q_proj or q_a_proj -> RMSNorm -> q_b_proj; a compressed KV latent
// (kv_a_proj_with_mqa -> RMSNorm over kv_lora_rank) expanded by kv_b_proj into per-head
// [k_nope | v]; one k_pe shared by all heads; interleaved-pair RoPE (YaRN common) on the rope
// dims; softmax scale (nope+rope)^-0.5 · m² with m the YaRN mscale_all_dim term.
// Layers < first_k_dense_replace (or L % moe_layer_freq != 0) are dense SwiGLU; MoE layers add
// n_shared_experts merged into one unweighted MLP. Routers (moe-architectures.md §2.7):
//   V2 greedy:                softmax -> top-k -> × routed_scaling_factor (or, if
//                             norm_topk_prob, / (sum + 1e-20) and no scaling: remote code)
//   V2 group_limited_greedy:  softmax, keep topk_group groups by max -> top-k -> × scale
//   V3 noaux_tc:              sigmoid, + e_score_correction_bias for selection only, groups by
//                             top-2 sum -> top-k of biased scores -> unbiased weights,
//                             / (sum + 1e-20) if norm_topk_prob -> × scale
// Tensors (per layer L, prefix model.layers.L.):
//   self_attn.q_proj.weight [nh*dq, H] | self_attn.q_a_proj.weight [q_lora, H],
//     q_a_layernorm.weight [q_lora], q_b_proj.weight [nh*dq, q_lora]      (dq = nope + rope)
//   self_attn.kv_a_proj_with_mqa.weight [kv_lora + rope, H]; kv_a_layernorm.weight [kv_lora]
//   self_attn.kv_b_proj.weight [nh*(nope + v), kv_lora]; self_attn.o_proj.weight [H, nh*v]
//   mlp.gate.weight [E, H]; mlp.gate.e_score_correction_bias [E] (V3)
//   mlp.experts.e.{gate,up,down}_proj.weight; mlp.shared_experts.{gate,up,down}_proj.weight
//   dense: mlp.{gate,up,down}_proj.weight [I_dense, H] ...
// Layers >= num_hidden_layers (V3's MTP head) are ignored.
#include <cmath>

#include "models/family_common.h"

namespace moxie {
namespace {

struct DeepSeekConfig {
  int64_t n_expert = 0, k = 0, n_ff = 0, n_ff_dense = 0, n_shared = 0;
  int64_t first_dense = 0, moe_freq = 1;
  int64_t q_lora = 0, kv_lora = 0, nope = 0, rope = 0, v = 0;
  int64_t n_group = 1, topk_group = 1;
  std::string topk_method, scoring;
  bool norm_topk = false, rope_interleave = true;
  double scale = 1.0;
};

Status ParseDeepSeek(const ConfigReader& cfg, bool v3, DeepSeekConfig* d) {
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("n_routed_experts", 0, &d->n_expert));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("num_experts_per_tok", 0, &d->k));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("moe_intermediate_size", 0, &d->n_ff));
  MOXIE_RETURN_IF_ERROR(cfg.Int("intermediate_size", &d->n_ff_dense));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("n_shared_experts", 0, &d->n_shared));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("first_k_dense_replace", 0, &d->first_dense));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("moe_layer_freq", 1, &d->moe_freq));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("q_lora_rank", 0, &d->q_lora));
  MOXIE_RETURN_IF_ERROR(cfg.Int("kv_lora_rank", &d->kv_lora));
  MOXIE_RETURN_IF_ERROR(cfg.Int("qk_nope_head_dim", &d->nope));
  MOXIE_RETURN_IF_ERROR(cfg.Int("qk_rope_head_dim", &d->rope));
  MOXIE_RETURN_IF_ERROR(cfg.Int("v_head_dim", &d->v));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("n_group", 1, &d->n_group));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("topk_group", 1, &d->topk_group));
  MOXIE_RETURN_IF_ERROR(cfg.StringOr("topk_method", v3 ? "noaux_tc" : "greedy", &d->topk_method));
  MOXIE_RETURN_IF_ERROR(cfg.StringOr("scoring_func", v3 ? "sigmoid" : "softmax", &d->scoring));
  MOXIE_RETURN_IF_ERROR(cfg.BoolOr("norm_topk_prob", false, &d->norm_topk));
  MOXIE_RETURN_IF_ERROR(cfg.BoolOr("rope_interleave", true, &d->rope_interleave));
  MOXIE_RETURN_IF_ERROR(cfg.FloatOr("routed_scaling_factor", 1.0, &d->scale));
  bool attn_bias = false;
  MOXIE_RETURN_IF_ERROR(cfg.BoolOr("attention_bias", false, &attn_bias));
  if (attn_bias) return Unsupported(cfg.path() + ": attention_bias = true is not supported for MLA");
  auto dim = [&](const char* key, int64_t val, bool allow_zero) -> Status {
    if (val < (allow_zero ? 0 : 1) || val > (1 << 16)) {
      return cfg.FieldError(key, "out of range: " + std::to_string(val));
    }
    return Status::Ok();
  };
  MOXIE_RETURN_IF_ERROR(dim("q_lora_rank", d->q_lora, true));
  MOXIE_RETURN_IF_ERROR(dim("kv_lora_rank", d->kv_lora, false));
  MOXIE_RETURN_IF_ERROR(dim("qk_nope_head_dim", d->nope, true));
  MOXIE_RETURN_IF_ERROR(dim("qk_rope_head_dim", d->rope, false));
  MOXIE_RETURN_IF_ERROR(dim("v_head_dim", d->v, false));
  MOXIE_RETURN_IF_ERROR(dim("n_shared_experts", d->n_shared, true));
  if (d->moe_freq < 1) return cfg.FieldError("moe_layer_freq", "must be >= 1");
  if (d->n_expert > 0 && d->n_ff <= 0) {
    return cfg.FieldError("moe_intermediate_size", "must be > 0 when n_routed_experts is set");
  }
  return Status::Ok();
}

Result<RouterConfig> MakeRouterConfig(const ConfigReader& cfg, const DeepSeekConfig& d, bool v3) {
  RouterConfig rc;
  MOXIE_RETURN_IF_ERROR(rc.SetCounts(d.n_expert, d.k, cfg.path()));
  if (d.scoring == "softmax") {
    rc.scoring = RouterScoring::kSoftmax;
  } else if (d.scoring == "sigmoid") {
    rc.scoring = RouterScoring::kSigmoid;
  } else {
    return cfg.FieldError("scoring_func", "'" + d.scoring + "' is not supported (softmax, sigmoid)");
  }
  if (d.topk_method == "greedy") {
    rc.n_group = 1;
  } else if (d.topk_method == "group_limited_greedy") {
    rc.n_group = static_cast<int>(d.n_group);
    rc.topk_group = static_cast<int>(d.topk_group);
    rc.group_score = GroupScore::kMax;
  } else if (d.topk_method == "noaux_tc") {
    rc.n_group = static_cast<int>(d.n_group);
    rc.topk_group = static_cast<int>(d.topk_group);
    rc.group_score = GroupScore::kTop2Sum;
  } else {
    return cfg.FieldError("topk_method", "'" + d.topk_method +
                                             "' is not supported (greedy, group_limited_greedy, "
                                             "noaux_tc)");
  }
  rc.masked_group_fill = 0.0f;  // as Hugging Face
  rc.normalize = d.norm_topk && d.k > 1;
  rc.norm_eps = 1e-20f;
  // V3 normalises, then scales. V2's remote code scales only when it does not normalise
  // (if/else); released V2 configs never normalise, so both readings agree on them.
  rc.scale = static_cast<float>(d.scale);
  if (!v3 && rc.normalize) rc.scale = 1.0f;
  MOXIE_RETURN_IF_ERROR(rc.Validate(cfg.path()));
  return rc;
}

Result<std::unique_ptr<Model>> LoadDeepSeek(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, bool v3, const LoadOptions& opts) {
  CommonConfig c;
  MOXIE_RETURN_IF_ERROR(ParseCommonConfig(cfg, &c));
  DeepSeekConfig d;
  MOXIE_RETURN_IF_ERROR(ParseDeepSeek(cfg, v3, &d));
  RouterConfig rc;
  if (d.n_expert > 0) {
    MOXIE_ASSIGN_OR_RETURN(rc, MakeRouterConfig(cfg, d, v3));
  }

  auto m = std::make_unique<DecoderModel>(std::move(src), c);
  m->info_.family = v3 ? "deepseek_v3" : "deepseek_v2";
  m->info_.model_type = m->info_.family;
  MOXIE_ASSIGN_OR_RETURN(Rope rope, Rope::FromConfig(cfg, static_cast<int>(d.rope),
                                                     d.rope_interleave ? RopeLayout::kInterleaved
                                                                       : RopeLayout::kNeox));
  m->rope_ = std::make_unique<Rope>(rope);
  TensorLoader loader(*m->source_, cfg.path(), opts, &m->owned_);
  MOXIE_RETURN_IF_ERROR(m->LoadEmbeddingsAndHead(loader));

  MlaConfig mc;
  mc.n_embd = static_cast<int>(c.n_embd);
  mc.n_head = static_cast<int>(c.n_head);
  mc.q_lora_rank = static_cast<int>(d.q_lora);
  mc.kv_lora_rank = static_cast<int>(d.kv_lora);
  mc.qk_nope_dim = static_cast<int>(d.nope);
  mc.qk_rope_dim = static_cast<int>(d.rope);
  mc.v_dim = static_cast<int>(d.v);
  const float m_all = m->rope_->type == "yarn" ? m->rope_->yarn_mscale_all_dim : 1.0f;
  mc.scale = 1.0f / std::sqrt(static_cast<float>(d.nope + d.rope)) * m_all * m_all;
  const int64_t H = c.n_embd, nh = c.n_head, dq = d.nope + d.rope;
  for (int l = 0; l < c.n_layer; ++l) {
    DecoderLayer& L = m->layers_[static_cast<size_t>(l)];
    MOXIE_RETURN_IF_ERROR(LoadLayerNorms(loader, l, H, &L));
    const std::string a = LayerPrefix(l) + "self_attn.";
    MlaWeights w;
    if (d.q_lora > 0) {
      MOXIE_ASSIGN_OR_RETURN(w.wq_a, loader.Matmul(a + "q_a_proj.weight", {d.q_lora, H}));
      MOXIE_ASSIGN_OR_RETURN(w.q_a_norm, loader.F32(a + "q_a_layernorm.weight", {d.q_lora}));
      MOXIE_ASSIGN_OR_RETURN(w.wq_b, loader.Matmul(a + "q_b_proj.weight", {nh * dq, d.q_lora}));
    } else {
      MOXIE_ASSIGN_OR_RETURN(w.wq, loader.Matmul(a + "q_proj.weight", {nh * dq, H}));
    }
    MOXIE_ASSIGN_OR_RETURN(w.wkv_a,
                           loader.Matmul(a + "kv_a_proj_with_mqa.weight", {d.kv_lora + d.rope, H}));
    MOXIE_ASSIGN_OR_RETURN(w.kv_a_norm, loader.F32(a + "kv_a_layernorm.weight", {d.kv_lora}));
    MOXIE_ASSIGN_OR_RETURN(w.kv_b, loader.F32(a + "kv_b_proj.weight", {nh * (d.nope + d.v), d.kv_lora}));
    MOXIE_ASSIGN_OR_RETURN(w.wo, loader.Matmul(a + "o_proj.weight", {H, nh * d.v}));
    L.attn = MakeMlaAttention(mc, std::move(w), m->rope_.get());

    const std::string p = LayerPrefix(l) + "mlp.";
    const bool is_moe = d.n_expert > 0 && l >= d.first_dense && l % d.moe_freq == 0;
    if (!is_moe) {
      MOXIE_ASSIGN_OR_RETURN(L.dense, LoadSwiGlu(loader, p, d.n_ff_dense, H));
      continue;
    }
    MoeTensorOptions mo;
    mo.router_name = p + "gate.weight";
    mo.experts_prefix = p + "experts";
    mo.n_ff = d.n_ff;
    if (rc.scoring == RouterScoring::kSigmoid || loader.Has(p + "gate.e_score_correction_bias")) {
      if (d.topk_method == "noaux_tc") {
        MOXIE_ASSIGN_OR_RETURN(mo.selection_bias,
                               loader.F32(p + "gate.e_score_correction_bias", {d.n_expert}));
      }
    }
    if (d.n_shared > 0) {
      mo.shared = std::make_unique<SharedExpert>();
      MOXIE_ASSIGN_OR_RETURN(mo.shared->ffn,
                             LoadSwiGlu(loader, p + "shared_experts.", d.n_ff * d.n_shared, H));
    }
    MOXIE_RETURN_IF_ERROR(AddMoeLayer(*m, loader, l, rc, std::move(mo)));
  }
  m->info_.attention = "MLA (q_lora " + (d.q_lora > 0 ? std::to_string(d.q_lora) : "none") +
                       ", kv_lora " + std::to_string(d.kv_lora) + ", nope/rope/v " +
                       std::to_string(d.nope) + "/" + std::to_string(d.rope) + "/" +
                       std::to_string(d.v) + ")";
  m->info_.head_dim = static_cast<int>(dq);
  m->info_.n_head_kv = static_cast<int>(nh);
  m->info_.n_expert = rc.n_expert;
  m->info_.n_expert_used = rc.k;
  m->info_.n_expert_shared = static_cast<int>(d.n_shared);
  m->info_.n_ff_expert = static_cast<int>(d.n_ff);
  m->info_.n_ff_dense = static_cast<int>(d.n_ff_dense);
  m->info_.router = d.n_expert > 0 ? rc.Describe() + " (" + d.topk_method + ")" : "none";
  m->info_.rope = m->rope_->Describe();
  MOXIE_RETURN_IF_ERROR(m->Finalize(loader));
  return std::unique_ptr<Model>(std::move(m));
}

}  // namespace

Result<std::unique_ptr<Model>> LoadDeepSeekV2(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts) {
  return LoadDeepSeek(cfg, std::move(src), false, opts);
}
Result<std::unique_ptr<Model>> LoadDeepSeekV3(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts) {
  return LoadDeepSeek(cfg, std::move(src), true, opts);
}

}  // namespace moxie
