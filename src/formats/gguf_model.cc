#include "formats/gguf_model.h"

#include <cstring>
#include <map>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernel_table.h"

namespace moxie {
namespace {

using Json = nlohmann::json;

class GgufWeights : public WeightSource {
 public:
  explicit GgufWeights(std::unique_ptr<GgufFile> f) : f_(std::move(f)) {}
  const WeightRef* Find(const std::string& name) const override {
    auto it = map_.find(name);
    return it == map_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> Names() const override {
    std::vector<std::string> v;
    for (const auto& [n, r] : map_) v.push_back(n);
    return v;
  }
  std::string Describe() const override { return f_->path(); }
  void Release(const WeightRef& ref) const override {
    f_->mapping().Release(ref.view.data, ref.view.nbytes());
  }
  bool CanRelease() const override { return true; }

  const GgufFile& file() const { return *f_; }
  void Add(const std::string& name, const GgufTensorInfo& t, DType dt, bool supported) {
    WeightRef r;
    r.name = name;
    r.view.data = t.data;
    r.view.dtype = dt;
    for (auto it = t.ne.rbegin(); it != t.ne.rend(); ++it) r.view.shape.dims.push_back(*it);
    const GgmlTypeInfo* gi = GgmlType(t.type);
    r.dtype_name = gi ? gi->name : "?";
    r.dtype_supported = supported;
    r.file = f_->path() + " (tensor '" + t.name + "')";
    map_[name] = std::move(r);
  }
  // Replaces a tensor's data by an owned copy (re-ordered rows, reassembled tensors).
  void Own(const std::string& name, std::vector<uint8_t> bytes, DType dt, Shape shape) {
    owned_.push_back(std::move(bytes));
    WeightRef& r = map_[name];
    r.name = name;
    r.view = TensorView{owned_.back().data(), dt, std::move(shape)};
    r.dtype_name = DTypeName(dt);
    r.dtype_supported = true;
    if (r.file.empty()) r.file = f_->path();
  }
  void Erase(const std::string& name) { map_.erase(name); }
  WeightRef* Mutable(const std::string& name) {
    auto it = map_.find(name);
    return it == map_.end() ? nullptr : &it->second;
  }

 private:
  std::unique_ptr<GgufFile> f_;
  std::map<std::string, WeightRef> map_;
  std::vector<std::vector<uint8_t>> owned_;
};

// GGUF per-layer tensor suffix -> Hugging Face name under "model.layers.N." (arch-independent
// part; shared experts depend on the family and are handled by the caller).
const std::map<std::string, std::string>& LayerNames() {
  static const std::map<std::string, std::string> m = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_output.bias", "self_attn.o_proj.bias"},
      {"attn_q_norm.weight", "self_attn.q_norm.weight"},
      {"attn_k_norm.weight", "self_attn.k_norm.weight"},
      {"attn_q_a.weight", "self_attn.q_a_proj.weight"},
      {"attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"},
      {"attn_q_b.weight", "self_attn.q_b_proj.weight"},
      {"attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"},
      {"attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"},
      {"attn_kv_b.weight", "self_attn.kv_b_proj.weight"},
      {"ffn_gate_inp.weight", "mlp.gate.weight"},
      {"exp_probs_b.bias", "mlp.gate.e_score_correction_bias"},
      {"ffn_gate_exps.weight", "mlp.experts.gate_proj"},
      {"ffn_up_exps.weight", "mlp.experts.up_proj"},
      {"ffn_down_exps.weight", "mlp.experts.down_proj"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  return m;
}

struct Meta {
  const GgufFile& f;
  std::string arch;
  std::string K(const std::string& k) const { return arch + "." + k; }
  bool Has(const std::string& k) const { return f.Find(K(k)) != nullptr; }
  int64_t Int(const std::string& k, int64_t def) const { return f.GetIntOr(K(k), def); }
  double Float(const std::string& k, double def) const {
    const GgufValue* v = f.Find(K(k));
    return v ? v->as_float() : def;
  }
  bool Bool(const std::string& k, bool def) const { return f.GetBoolOr(K(k), def); }
  Result<int64_t> Req(const std::string& k) const { return f.GetInt(K(k)); }
  // A per-layer array key must be uniform to be expressed in one config field.
  Result<int64_t> Uniform(const std::string& k, int64_t def) const {
    const GgufValue* v = f.Find(K(k));
    if (v == nullptr) return def;
    if (v->is_int()) return v->as_int();
    if (v->is_array() && !v->as_array().items.empty()) {
      const int64_t x = v->as_array().items[0].as_int();
      for (const auto& e : v->as_array().items) {
        if (e.as_int() != x) return Unsupported(f.path() + ": per-layer '" + K(k) + "' is not supported");
      }
      return x;
    }
    return InvalidFormat(f.path() + ": '" + K(k) + "' is neither an integer nor an array");
  }
};

Status CommonConfig(const Meta& m, int64_t n_vocab, Json* c) {
  MOXIE_ASSIGN_OR_RETURN(int64_t H, m.Req("embedding_length"));
  MOXIE_ASSIGN_OR_RETURN(int64_t L, m.Req("block_count"));
  // Checked here, before anything loops over the layers (the model's own check comes later).
  if (L < 1 || L > 4096) {
    return InvalidFormat(m.f.path() + ": '" + m.K("block_count") + "' = " + std::to_string(L) +
                         " is outside [1, 4096]");
  }
  MOXIE_ASSIGN_OR_RETURN(int64_t nh, m.Uniform("attention.head_count", 0));
  MOXIE_ASSIGN_OR_RETURN(int64_t nkv, m.Uniform("attention.head_count_kv", nh));
  for (const auto& [key, v] : {std::pair<const char*, int64_t>{"attention.head_count", nh}, {"attention.head_count_kv", nkv}}) {
    if (v < 1 || v > 4096) {  // loops over heads run before the model's own checks
      return InvalidFormat(m.f.path() + ": '" + m.K(key) + "' = " + std::to_string(v) + " is outside [1, 4096]");
    }
  }
  (*c)["hidden_size"] = H;
  (*c)["num_hidden_layers"] = L;
  (*c)["num_attention_heads"] = nh;
  (*c)["num_key_value_heads"] = nkv;
  (*c)["vocab_size"] = n_vocab;
  (*c)["max_position_embeddings"] = m.Int("context_length", 4096);
  (*c)["rms_norm_eps"] = m.Float("attention.layer_norm_rms_epsilon", 1e-6);
  (*c)["rope_theta"] = m.Float("rope.freq_base", 10000.0);
  const std::string scaling = m.f.GetStringOr(m.K("rope.scaling.type"), "none");
  if (scaling == "linear" || scaling == "yarn") {
    Json rs;
    rs["type"] = scaling;
    rs["factor"] = m.Float("rope.scaling.factor", 1.0);
    if (scaling == "yarn") {
      rs["original_max_position_embeddings"] = m.Int("rope.scaling.original_context_length", 4096);
      // llama.cpp stores 0.1 * mscale_all_dim; DeepSeek's configs set mscale = mscale_all_dim.
      if (m.Has("rope.scaling.yarn_log_multiplier")) {
        const double ms = m.Float("rope.scaling.yarn_log_multiplier", 0.0) / 0.1;
        rs["mscale"] = ms;
        rs["mscale_all_dim"] = ms;
      }
      if (m.Has("rope.scaling.yarn_beta_fast")) rs["beta_fast"] = m.Float("rope.scaling.yarn_beta_fast", 32);
      if (m.Has("rope.scaling.yarn_beta_slow")) rs["beta_slow"] = m.Float("rope.scaling.yarn_beta_slow", 1);
    }
    (*c)["rope_scaling"] = rs;
  } else if (scaling != "none") {
    return Unsupported(m.f.path() + ": rope.scaling.type '" + scaling + "' is not supported");
  }
  (*c)["bos_token_id"] = m.f.GetIntOr("tokenizer.ggml.bos_token_id", -1);
  (*c)["eos_token_id"] = m.f.GetIntOr("tokenizer.ggml.eos_token_id", -1);
  return Status::Ok();
}

Status FamilyConfig(const Meta& m, Json* c) {
  const std::string& a = m.arch;
  const int64_t E = m.Int("expert_count", 0), k = m.Int("expert_used_count", 0);
  if (a == "llama") {
    if (E == 0) return Unsupported(m.f.path() + ": dense llama models are not supported (MoE only)");
    (*c)["model_type"] = "mixtral";
    (*c)["num_local_experts"] = E;
    (*c)["num_experts_per_tok"] = k;
    (*c)["intermediate_size"] = m.Int("expert_feed_forward_length", m.Int("feed_forward_length", 0));
  } else if (a == "qwen2moe" || a == "qwen3moe" || a == "olmoe") {
    (*c)["model_type"] = a == "qwen2moe" ? "qwen2_moe" : a == "qwen3moe" ? "qwen3_moe" : "olmoe";
    (*c)["num_experts"] = E;
    (*c)["num_experts_per_tok"] = k;
    const int64_t ff = m.Int("expert_feed_forward_length", m.Int("feed_forward_length", 0));
    (*c)["moe_intermediate_size"] = ff;
    (*c)["intermediate_size"] = a == "olmoe" ? ff : m.Int("feed_forward_length", ff);
    (*c)["shared_expert_intermediate_size"] = m.Int("expert_shared_feed_forward_length", 0);
    // llama.cpp fixes the renormalisation per arch (qwen3moe yes, others no) unless the file says.
    (*c)["norm_topk_prob"] = m.Bool("expert_weights_norm", a == "qwen3moe");
    if (m.Has("attention.key_length")) (*c)["head_dim"] = m.Int("attention.key_length", 0);
    if (a == "qwen2moe") (*c)["qkv_bias"] = m.f.FindTensor("blk.0.attn_q.bias") != nullptr;
    (*c)["attention_bias"] = m.f.FindTensor("blk.0.attn_output.bias") != nullptr;
  } else if (a == "deepseek2") {
    const bool v3 = m.Int("expert_gating_func", 1) == 2;
    (*c)["model_type"] = v3 ? "deepseek_v3" : "deepseek_v2";
    (*c)["n_routed_experts"] = E;
    (*c)["num_experts_per_tok"] = k;
    (*c)["n_shared_experts"] = m.Int("expert_shared_count", 0);
    (*c)["moe_intermediate_size"] = m.Int("expert_feed_forward_length", 0);
    (*c)["intermediate_size"] = m.Int("feed_forward_length", 0);
    (*c)["first_k_dense_replace"] = m.Int("leading_dense_block_count", 0);
    (*c)["routed_scaling_factor"] = m.Float("expert_weights_scale", 1.0);
    (*c)["norm_topk_prob"] = m.Bool("expert_weights_norm", false);
    const int64_t groups = m.Int("expert_group_count", 1);
    (*c)["n_group"] = groups;
    (*c)["topk_group"] = m.Int("expert_group_used_count", 1);
    (*c)["scoring_func"] = v3 ? "sigmoid" : "softmax";
    (*c)["topk_method"] = v3 ? "noaux_tc" : (groups > 1 ? "group_limited_greedy" : "greedy");
    const int64_t q_lora = m.Int("attention.q_lora_rank", 0);
    if (q_lora > 0) (*c)["q_lora_rank"] = q_lora;
    else (*c)["q_lora_rank"] = nullptr;
    MOXIE_ASSIGN_OR_RETURN(int64_t kv_lora, m.Req("attention.kv_lora_rank"));
    (*c)["kv_lora_rank"] = kv_lora;
    const int64_t rope = m.Int("rope.dimension_count", 64);
    const int64_t kl = m.Int("attention.key_length_mla", m.Int("attention.key_length", 0));
    const int64_t vl = m.Int("attention.value_length_mla", m.Int("attention.value_length", 0));
    (*c)["qk_rope_head_dim"] = rope;
    (*c)["qk_nope_head_dim"] = kl - rope;
    (*c)["v_head_dim"] = vl;
  } else {
    return Unsupported(m.f.path() + ": GGUF architecture '" + a +
                       "' is not supported (llama with experts, qwen2moe, qwen3moe, olmoe, "
                       "deepseek2)");
  }
  return Status::Ok();
}

// arch `llama`: llama.cpp's converter permuted each head's Q/K rows so that adjacent-pair RoPE
// works; put them back (row r of the HF layout = GGUF row 2j or 2j + 1).
void UnpermuteQk(GgufWeights& w, const std::string& name, int64_t n_head) {
  WeightRef* r = w.Mutable(name);
  // A tensor of a type Moxie cannot read stays as it is, so the loader's type check names it
  // (its view's row size would be a guess, and the copy would read past the tensor).
  if (r == nullptr || !r->dtype_supported || r->view.shape.rank() < 1 || n_head <= 0) return;
  const int64_t rows = r->view.shape.dims[0];
  const int64_t hd = rows / n_head;
  const size_t rb = r->view.shape.rank() == 2 ? RowBytes(r->view.dtype, r->view.shape.dims[1])
                                               : RowBytes(r->view.dtype, 1);
  std::vector<uint8_t> out(static_cast<size_t>(rows) * rb);
  const auto* in = static_cast<const uint8_t*>(r->view.data);
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t j = 0; j < hd / 2; ++j) {
      std::memcpy(&out[(h * hd + j) * rb], in + (h * hd + 2 * j) * rb, rb);
      std::memcpy(&out[(h * hd + hd / 2 + j) * rb], in + (h * hd + 2 * j + 1) * rb, rb);
    }
  }
  w.Own(name, std::move(out), r->view.dtype, r->view.shape);
}

// DeepSeek: kv_b_proj [nh * (nope + v), kv_lora] from attn_k_b [nh, kv_lora, nope] (transposed
// per head) and attn_v_b [nh, v, kv_lora]. Built in f32.
Status ReassembleKvB(GgufWeights& w, const std::string& p, int64_t nh) {
  const WeightRef* kb = w.Find(p + "attn_k_b");
  const WeightRef* vb = w.Find(p + "attn_v_b");
  if (kb == nullptr || vb == nullptr) return Status::Ok();
  if (!kb->dtype_supported || !vb->dtype_supported || kb->view.shape.rank() != 3 ||
      vb->view.shape.rank() != 3) {
    return Unsupported(kb->file + ": attn_k_b/attn_v_b must be 3-D tensors of a supported type");
  }
  const int64_t lora = kb->view.dim(1), nope = kb->view.dim(2), vd = vb->view.dim(1);
  if (kb->view.dim(0) != nh || vb->view.dim(0) != nh || vb->view.dim(2) != lora) {
    return InvalidFormat(kb->file + ": attn_k_b " + kb->view.shape.ToString() + " and attn_v_b " +
                         vb->view.shape.ToString() + " do not fit together");
  }
  auto to_f32 = [](const TensorView& t) {  // any dtype, row by row (quantized blocks never span rows)
    std::vector<float> out(static_cast<size_t>(t.numel()));
    const int64_t row = t.shape.dims.back();
    for (int64_t i = 0; i * row < t.numel(); ++i) RowToF32(t.dtype, t.row(i), out.data() + i * row, row);
    return out;
  };
  const std::vector<float> k = to_f32(kb->view), v = to_f32(vb->view);
  const int64_t rows = nh * (nope + vd);
  std::vector<uint8_t> out(static_cast<size_t>(rows * lora) * 4);
  auto* o = reinterpret_cast<float*>(out.data());
  for (int64_t h = 0; h < nh; ++h) {
    for (int64_t n = 0; n < nope; ++n) {
      for (int64_t c = 0; c < lora; ++c) o[(h * (nope + vd) + n) * lora + c] = k[(h * lora + c) * nope + n];
    }
    for (int64_t j = 0; j < vd; ++j) {
      for (int64_t c = 0; c < lora; ++c) {
        o[(h * (nope + vd) + nope + j) * lora + c] = v[(h * vd + j) * lora + c];
      }
    }
  }
  w.Own("model.layers." + p.substr(4) + "self_attn.kv_b_proj.weight", std::move(out), DType::kF32,
        Shape{{rows, lora}});
  w.Erase(p + "attn_k_b");
  w.Erase(p + "attn_v_b");
  return Status::Ok();
}

// "ffn_gate.12.weight" -> 0 (gate) / 1 (up) / 2 (down) with *expert = 12; -1 otherwise.
int PerExpertSuffix(const std::string& suffix, int* expert) {
  static const char* kNames[3] = {"ffn_gate.", "ffn_up.", "ffn_down."};
  for (int p = 0; p < 3; ++p) {
    const size_t n = std::strlen(kNames[p]);
    if (suffix.compare(0, n, kNames[p]) != 0) continue;
    const size_t end = suffix.find(".weight", n);
    if (end == std::string::npos || end == n || end + 7 != suffix.size() || end - n > 6) return -1;
    int e = 0;
    for (size_t i = n; i < end; ++i) {
      if (suffix[i] < '0' || suffix[i] > '9') return -1;
      e = e * 10 + (suffix[i] - '0');
    }
    *expert = e;
    return p;
  }
  return -1;
}

}  // namespace

Result<GgufModel> OpenGgufModel(const std::string& path) {
  MOXIE_ASSIGN_OR_RETURN(auto file, GgufFile::Open(path));
  MOXIE_ASSIGN_OR_RETURN(std::string arch, file->GetString("general.architecture"));
  const GgufTensorInfo* embd = file->FindTensor("token_embd.weight");
  if (embd == nullptr || embd->ne.size() != 2) {
    return InvalidFormat(path + ": missing 2-D tensor 'token_embd.weight'");
  }
  Json c = Json::object();
  Meta m{*file, arch};
  MOXIE_RETURN_IF_ERROR(CommonConfig(m, embd->ne[1], &c));
  MOXIE_RETURN_IF_ERROR(FamilyConfig(m, &c));
  c["tie_word_embeddings"] = file->FindTensor("output.weight") == nullptr;
  const bool deepseek = arch == "deepseek2";
  auto weights = std::make_unique<GgufWeights>(std::move(file));
  const GgufFile& f = weights->file();
  for (const auto& t : f.tensors()) {
    DType dt = DType::kF32;
    const bool ok = DTypeFromGgml(t.type, &dt);
    std::string hf;
    if (t.name == "token_embd.weight") {
      hf = "model.embed_tokens.weight";
    } else if (t.name == "output_norm.weight") {
      hf = "model.norm.weight";
    } else if (t.name == "output.weight") {
      hf = "lm_head.weight";
    } else if (t.name.rfind("blk.", 0) == 0) {
      const size_t dot = t.name.find('.', 4);
      const std::string layer = t.name.substr(4, dot - 4), suffix = t.name.substr(dot + 1);
      const std::string lp = "model.layers." + layer + ".";
      const std::string shared = deepseek ? "mlp.shared_experts." : "mlp.shared_expert.";
      if (auto it = LayerNames().find(suffix); it != LayerNames().end()) {
        hf = lp + it->second;
      } else if (suffix == "ffn_gate_shexp.weight") {
        hf = lp + shared + "gate_proj.weight";
      } else if (suffix == "ffn_up_shexp.weight") {
        hf = lp + shared + "up_proj.weight";
      } else if (suffix == "ffn_down_shexp.weight") {
        hf = lp + shared + "down_proj.weight";
      } else if (suffix == "ffn_gate_inp_shexp.weight") {
        hf = lp + "mlp.shared_expert_gate.weight";
      } else if (int e = -1; PerExpertSuffix(suffix, &e) >= 0) {
        // Moxie's per-expert layout (moxie.per_expert_layers): blk.N.ffn_gate.E.weight.
        static const char* kProj[3] = {"gate_proj", "up_proj", "down_proj"};
        hf = lp + "mlp.experts." + std::to_string(e) + "." + kProj[PerExpertSuffix(suffix, &e)] + ".weight";
      } else if (suffix == "attn_k_b.weight" || suffix == "attn_v_b.weight") {
        hf = "blk." + layer + "." + suffix.substr(0, suffix.size() - 7);  // reassembled below
      }
    }
    if (hf.empty()) hf = t.name;  // unknown: kept under its GGUF name (reported as unused)
    weights->Add(hf, t, dt, ok);
    if (hf.size() > 29 && hf.compare(hf.size() - 29, 29, "mlp.shared_expert_gate.weight") == 0) {
      // llama.cpp writes it as [H] or [H, 1]; the HF tensor is [1, H].
      WeightRef* r = weights->Mutable(hf);
      r->view.shape = Shape{{1, r->view.numel()}};
    }
  }
  const int64_t L = c["num_hidden_layers"].get<int64_t>();
  for (int64_t l = 0; l < L; ++l) {
    const std::string lp = "model.layers." + std::to_string(l) + ".";
    if (arch == "llama") {
      UnpermuteQk(*weights, lp + "self_attn.q_proj.weight", c["num_attention_heads"].get<int64_t>());
      UnpermuteQk(*weights, lp + "self_attn.k_proj.weight", c["num_key_value_heads"].get<int64_t>());
    }
    if (deepseek) {
      MOXIE_RETURN_IF_ERROR(
          ReassembleKvB(*weights, "blk." + std::to_string(l) + ".", c["num_attention_heads"].get<int64_t>()));
    }
  }
  GgufModel g;
  g.config = ConfigReader(std::move(c), path + " (metadata)");
  g.weights = std::move(weights);
  return g;
}

}  // namespace moxie
