#include "models/family_common.h"

namespace moxie {

std::string LayerPrefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

Status LoadLayerNorms(TensorLoader& loader, int layer, int64_t n_embd, DecoderLayer* out) {
  const std::string p = LayerPrefix(layer);
  MOXIE_ASSIGN_OR_RETURN(out->attn_norm, loader.F32(p + "input_layernorm.weight", {n_embd}));
  MOXIE_ASSIGN_OR_RETURN(out->ffn_norm, loader.F32(p + "post_attention_layernorm.weight", {n_embd}));
  return Status::Ok();
}

Result<GqaWeights> LoadGqaWeights(TensorLoader& loader, int layer, const CommonConfig& c,
                                  const GqaTensorOptions& opt) {
  const std::string p = LayerPrefix(layer) + "self_attn.";
  const int64_t H = c.n_embd, qw = c.n_head * c.head_dim, kw = c.n_head_kv * c.head_dim;
  if (c.head_dim <= 0) {
    return InvalidFormat("config.json: num_attention_heads does not divide hidden_size and there is "
                         "no head_dim field");
  }
  GqaWeights w;
  MOXIE_ASSIGN_OR_RETURN(w.wq, loader.Matmul(p + "q_proj.weight", {qw, H}));
  MOXIE_ASSIGN_OR_RETURN(w.wk, loader.Matmul(p + "k_proj.weight", {kw, H}));
  MOXIE_ASSIGN_OR_RETURN(w.wv, loader.Matmul(p + "v_proj.weight", {kw, H}));
  MOXIE_ASSIGN_OR_RETURN(w.wo, loader.Matmul(p + "o_proj.weight", {H, qw}));
  if (opt.qkv_bias) {
    MOXIE_ASSIGN_OR_RETURN(w.bq, loader.F32(p + "q_proj.bias", {qw}));
    MOXIE_ASSIGN_OR_RETURN(w.bk, loader.F32(p + "k_proj.bias", {kw}));
    MOXIE_ASSIGN_OR_RETURN(w.bv, loader.F32(p + "v_proj.bias", {kw}));
  }
  if (opt.o_bias) {
    MOXIE_ASSIGN_OR_RETURN(w.bo, loader.F32(p + "o_proj.bias", {H}));
  }
  if (opt.qk_norm == QkNorm::kPerHead) {
    MOXIE_ASSIGN_OR_RETURN(w.q_norm, loader.F32(p + "q_norm.weight", {c.head_dim}));
    MOXIE_ASSIGN_OR_RETURN(w.k_norm, loader.F32(p + "k_norm.weight", {c.head_dim}));
  } else if (opt.qk_norm == QkNorm::kFull) {
    MOXIE_ASSIGN_OR_RETURN(w.q_norm, loader.F32(p + "q_norm.weight", {qw}));
    MOXIE_ASSIGN_OR_RETURN(w.k_norm, loader.F32(p + "k_norm.weight", {kw}));
  }
  return w;
}

Result<ExpertWeights> LoadSwiGlu(TensorLoader& loader, const std::string& prefix, int64_t n_ff,
                                 int64_t n_embd) {
  ExpertWeights w;
  MOXIE_ASSIGN_OR_RETURN(w.gate, loader.Matmul(prefix + "gate_proj.weight", {n_ff, n_embd}));
  MOXIE_ASSIGN_OR_RETURN(w.up, loader.Matmul(prefix + "up_proj.weight", {n_ff, n_embd}));
  MOXIE_ASSIGN_OR_RETURN(w.down, loader.Matmul(prefix + "down_proj.weight", {n_embd, n_ff}));
  return w;
}

Status AddMoeLayer(DecoderModel& m, TensorLoader& loader, int layer, const RouterConfig& rc,
                   MoeTensorOptions opt) {
  const int64_t H = m.common_.n_embd;
  // Copied onto huge pages at load, as stored (so the same bits): read in place from the file's
  // 4 KiB page-cache pages, model A Q8_0's F32 router took 155-190 us per layer in decode against
  // ~45 us from the copy (the page walks after the experts swept the TLB; OwnedWeights::Alloc).
  MOXIE_ASSIGN_OR_RETURN(TensorView router_w, loader.Matmul(opt.router_name, {rc.n_expert, H}, 0, true));
  MOXIE_ASSIGN_OR_RETURN(auto experts, loader.Experts(opt.experts_prefix, rc.n_expert, opt.n_ff, H,
                                                      opt.expert_names));
  m.experts_->SetLayer(layer, std::move(experts));
  m.layers_[static_cast<size_t>(layer)].moe = std::make_unique<MoeLayer>(
      layer, H, router_w, Router(rc, std::move(opt.selection_bias)), m.experts_.get(),
      std::move(opt.shared));
  return Status::Ok();
}

Status CheckNoQuantization(const ConfigReader& cfg) {
  if (!cfg.Has("quantization_config")) return Status::Ok();
  std::string method = "?";
  (void)cfg.Child("quantization_config").StringOr("quant_method", "?", &method);
  return Unsupported(cfg.path() + ": quantized checkpoints (quantization_config.quant_method = '" +
                     method + "') are not supported; use an F32/F16/BF16 checkpoint");
}

}  // namespace moxie
