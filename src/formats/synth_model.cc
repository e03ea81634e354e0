#include "formats/synth_model.h"

#include <cmath>
#include <map>

#include "formats/gguf_writer.h"

namespace moxie {

namespace {

using Json = nlohmann::json;

struct ShapeSpec {
  const char* name;
  const char* arch;  // native GGUF architecture
  int64_t layers, hidden, heads, kv_heads, head_dim;
  int64_t experts, top_k, moe_ff, dense_ff, shared_ff, vocab, max_pos;
  double rope_theta, eps;
  // MLA (deepseek2 only)
  int64_t kv_lora = 0, nope = 0, rope_dim = 0, v_dim = 0, n_shared = 0, first_dense = 0;
};

const ShapeSpec kShapes[] = {
    {"olmoe-1b-7b", "olmoe", 16, 2048, 16, 16, 128, 64, 8, 1024, 1024, 0, 50304, 4096, 10000.0, 1e-5},
    {"qwen3-30b-a3b", "qwen3moe", 48, 2048, 32, 4, 128, 128, 8, 768, 6144, 0, 151936, 40960, 1e6, 1e-6},
    {"qwen1.5-moe-a2.7b", "qwen2moe", 24, 2048, 16, 16, 128, 60, 4, 1408, 5632, 5632, 151936, 8192, 1e6, 1e-6},
    {"mixtral-8x7b", "mixtral", 32, 4096, 32, 8, 128, 8, 2, 14336, 14336, 0, 32000, 32768, 1e6, 1e-5},
    {"deepseek-v2-lite", "deepseek2", 27, 2048, 16, 16, 192, 64, 6, 1408, 10944, 0, 102400, 163840, 10000.0, 1e-6,
     512, 128, 64, 128, 2, 1},
    {"tiny", "qwen3moe", 2, 256, 4, 2, 64, 8, 2, 256, 512, 256, 1024, 4096, 10000.0, 1e-6, 256, 32, 32, 64, 1, 1},
};

const char* kArchs[] = {"olmoe", "qwen3moe", "qwen2moe", "mixtral", "deepseek2"};

constexpr float kStd = 0.02f;

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [-a, a) with standard deviation `std`, two values per 64-bit draw.
void FillUniform(uint64_t state, float std, float* out, int64_t n) {
  const float a = std * std::sqrt(3.0f);
  const float scale = 2.0f * a / 16777216.0f;
  int64_t i = 0;
  for (; i + 1 < n; i += 2) {
    const uint64_t r = SplitMix(state);
    out[i] = static_cast<float>(r >> 40) * scale - a;
    out[i + 1] = static_cast<float>((r >> 8) & 0xFFFFFF) * scale - a;
  }
  if (i < n) out[i] = static_cast<float>(SplitMix(state) >> 40) * scale - a;
}

class SynthWeights : public WeightSource {
 public:
  SynthWeights(std::string desc, uint64_t seed) : desc_(std::move(desc)), seed_(seed) {}
  const WeightRef* Find(const std::string& name) const override {
    auto it = refs_.find(name);
    return it == refs_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> Names() const override {
    std::vector<std::string> v;
    for (const auto& [n, r] : refs_) v.push_back(n);
    return v;
  }
  std::string Describe() const override { return desc_; }
  void FillRowF32(const WeightRef& ref, int64_t row, float* out) const override {
    const int64_t n = ref.view.shape.dims.back();
    FillUniform(seed_ ^ Fnv1a(ref.name) ^ (static_cast<uint64_t>(row) * 0xD1B54A32D192ED03ull), kStd, out, n);
  }

  // Computed on demand (rows from the generator).
  void Computed(const std::string& name, std::vector<int64_t> shape) { Add(name, nullptr, std::move(shape)); }
  // Stored: small tensors (norms = 1, biases and MLA kv_b random).
  void Stored(const std::string& name, std::vector<int64_t> shape, bool ones) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    auto v = std::make_unique<std::vector<float>>(static_cast<size_t>(n), 1.0f);
    if (!ones) FillUniform(seed_ ^ Fnv1a(name), kStd, v->data(), n);
    Add(name, v->data(), std::move(shape));
    stored_.push_back(std::move(v));
  }

 private:
  void Add(const std::string& name, const float* data, std::vector<int64_t> shape) {
    WeightRef r;
    r.name = name;
    r.view = TensorView{data, DType::kF32, Shape{std::move(shape)}};
    r.dtype_name = "F32";
    r.dtype_supported = true;
    r.file = desc_;
    refs_[name] = std::move(r);
  }

  std::string desc_;
  uint64_t seed_;
  std::map<std::string, WeightRef> refs_;
  std::vector<std::unique_ptr<std::vector<float>>> stored_;
};

}  // namespace

std::vector<std::string> SynthShapeNames() {
  std::vector<std::string> v;
  for (const auto& s : kShapes) v.emplace_back(s.name);
  return v;
}

std::vector<std::string> SynthArchNames() { return {std::begin(kArchs), std::end(kArchs)}; }

Result<SynthModel> MakeSynthModel(const std::string& shape_name, const std::string& arch_in, uint64_t seed) {
  const ShapeSpec* sp = nullptr;
  for (const auto& s : kShapes) {
    if (shape_name == s.name) sp = &s;
  }
  if (sp == nullptr) {
    std::string list;
    for (const auto& n : SynthShapeNames()) list += (list.empty() ? "" : ", ") + n;
    return InvalidArgument("unknown shape '" + shape_name + "' (shapes: " + list + ")");
  }
  const ShapeSpec& s = *sp;
  const std::string arch = arch_in.empty() ? s.arch : arch_in;
  bool known = false;
  for (const char* a : kArchs) known |= arch == a;
  if (!known) return InvalidArgument("unknown architecture '" + arch + "' (olmoe, qwen3moe, qwen2moe, mixtral, deepseek2)");
  const bool mla_shape = s.kv_lora > 0 && std::string(s.name) != "tiny";
  if (arch == "deepseek2" && s.kv_lora == 0) {
    return InvalidArgument("shape '" + shape_name + "' has no MLA dimensions; deepseek2 needs them");
  }
  if (mla_shape && arch != "deepseek2") {
    return InvalidArgument("shape '" + shape_name + "' uses MLA attention; only --arch deepseek2 expresses it");
  }
  if ((arch == "olmoe" || arch == "mixtral") && s.heads * s.head_dim != s.hidden) {
    return InvalidArgument("shape '" + shape_name + "' has head_dim " + std::to_string(s.head_dim) + " != hidden / heads; arch " +
                           arch + " cannot express it (use qwen3moe)");
  }
  if (arch == "qwen2moe" && s.shared_ff == 0) {
    return InvalidArgument("shape '" + shape_name + "' has no shared expert; arch qwen2moe needs one (use qwen3moe)");
  }
  const int64_t H = s.hidden, L = s.layers, V = s.vocab, E = s.experts, hd = s.head_dim;
  Json c = Json::object();
  c["vocab_size"] = V;
  c["hidden_size"] = H;
  c["num_hidden_layers"] = L;
  c["num_attention_heads"] = s.heads;
  c["num_key_value_heads"] = arch == "deepseek2" ? s.heads : s.kv_heads;
  c["max_position_embeddings"] = s.max_pos;
  c["rope_theta"] = s.rope_theta;
  c["rms_norm_eps"] = s.eps;
  c["tie_word_embeddings"] = false;
  c["bos_token_id"] = V - 1;
  c["eos_token_id"] = V - 1;
  c["num_experts_per_tok"] = s.top_k;
  if (arch == "qwen3moe") {
    c["model_type"] = "qwen3_moe";
    c["head_dim"] = hd;
    c["num_experts"] = E;
    c["moe_intermediate_size"] = s.moe_ff;
    c["intermediate_size"] = s.dense_ff;
    c["norm_topk_prob"] = true;
  } else if (arch == "olmoe") {
    c["model_type"] = "olmoe";
    c["num_experts"] = E;
    c["intermediate_size"] = s.moe_ff;
    c["norm_topk_prob"] = false;
  } else if (arch == "qwen2moe") {
    c["model_type"] = "qwen2_moe";
    c["num_experts"] = E;
    c["moe_intermediate_size"] = s.moe_ff;
    c["intermediate_size"] = s.dense_ff;
    c["shared_expert_intermediate_size"] = s.shared_ff;
    c["norm_topk_prob"] = false;
  } else if (arch == "mixtral") {
    c["model_type"] = "mixtral";
    c["num_local_experts"] = E;
    c["intermediate_size"] = s.moe_ff;
  } else {
    c["model_type"] = "deepseek_v2";
    c["n_routed_experts"] = E;
    c["n_shared_experts"] = s.n_shared;
    c["moe_intermediate_size"] = s.moe_ff;
    c["intermediate_size"] = s.dense_ff;
    c["first_k_dense_replace"] = s.first_dense;
    c["moe_layer_freq"] = 1;
    c["kv_lora_rank"] = s.kv_lora;
    c["q_lora_rank"] = nullptr;
    c["qk_nope_head_dim"] = s.nope;
    c["qk_rope_head_dim"] = s.rope_dim;
    c["v_head_dim"] = s.v_dim;
    c["routed_scaling_factor"] = 1.0;
    c["topk_method"] = "greedy";
    c["n_group"] = 1;
    c["topk_group"] = 1;
    c["scoring_func"] = "softmax";
    c["norm_topk_prob"] = false;
    if (mla_shape) {
      c["rope_scaling"] = Json{{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096},
                               {"mscale", 0.707}, {"mscale_all_dim", 0.707}, {"beta_fast", 32}, {"beta_slow", 1}};
    }
  }
  auto w = std::make_unique<SynthWeights>("synthetic " + shape_name + " (" + arch + ", seed " + std::to_string(seed) + ")",
                                          seed);
  w->Computed("model.embed_tokens.weight", {V, H});
  w->Stored("model.norm.weight", {H}, true);
  w->Computed("lm_head.weight", {V, H});
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w->Stored(p + "input_layernorm.weight", {H}, true);
    w->Stored(p + "post_attention_layernorm.weight", {H}, true);
    const int64_t nh = s.heads, nkv = s.kv_heads;
    if (arch == "deepseek2") {
      w->Computed(p + "self_attn.q_proj.weight", {nh * (s.nope + s.rope_dim), H});
      w->Computed(p + "self_attn.kv_a_proj_with_mqa.weight", {s.kv_lora + s.rope_dim, H});
      w->Stored(p + "self_attn.kv_a_layernorm.weight", {s.kv_lora}, true);
      w->Stored(p + "self_attn.kv_b_proj.weight", {nh * (s.nope + s.v_dim), s.kv_lora}, false);
      w->Computed(p + "self_attn.o_proj.weight", {H, nh * s.v_dim});
    } else {
      w->Computed(p + "self_attn.q_proj.weight", {nh * hd, H});
      w->Computed(p + "self_attn.k_proj.weight", {nkv * hd, H});
      w->Computed(p + "self_attn.v_proj.weight", {nkv * hd, H});
      w->Computed(p + "self_attn.o_proj.weight", {H, nh * hd});
      if (arch == "qwen2moe") {
        w->Stored(p + "self_attn.q_proj.bias", {nh * hd}, false);
        w->Stored(p + "self_attn.k_proj.bias", {nkv * hd}, false);
        w->Stored(p + "self_attn.v_proj.bias", {nkv * hd}, false);
      } else if (arch == "qwen3moe") {
        w->Stored(p + "self_attn.q_norm.weight", {hd}, true);
        w->Stored(p + "self_attn.k_norm.weight", {hd}, true);
      } else if (arch == "olmoe") {
        w->Stored(p + "self_attn.q_norm.weight", {nh * hd}, true);
        w->Stored(p + "self_attn.k_norm.weight", {nkv * hd}, true);
      }
    }
    if (arch == "deepseek2" && l < s.first_dense) {
      w->Computed(p + "mlp.gate_proj.weight", {s.dense_ff, H});
      w->Computed(p + "mlp.up_proj.weight", {s.dense_ff, H});
      w->Computed(p + "mlp.down_proj.weight", {H, s.dense_ff});
      continue;
    }
    w->Computed(p + "mlp.gate.weight", {E, H});
    for (int64_t e = 0; e < E; ++e) {
      const std::string ep = p + "mlp.experts." + std::to_string(e) + ".";
      w->Computed(ep + "gate_proj.weight", {s.moe_ff, H});
      w->Computed(ep + "up_proj.weight", {s.moe_ff, H});
      w->Computed(ep + "down_proj.weight", {H, s.moe_ff});
    }
    if (arch == "qwen2moe") {
      w->Computed(p + "mlp.shared_expert.gate_proj.weight", {s.shared_ff, H});
      w->Computed(p + "mlp.shared_expert.up_proj.weight", {s.shared_ff, H});
      w->Computed(p + "mlp.shared_expert.down_proj.weight", {H, s.shared_ff});
      w->Computed(p + "mlp.shared_expert_gate.weight", {1, H});
    } else if (arch == "deepseek2" && s.n_shared > 0) {
      const int64_t sf = s.n_shared * s.moe_ff;
      w->Computed(p + "mlp.shared_experts.gate_proj.weight", {sf, H});
      w->Computed(p + "mlp.shared_experts.up_proj.weight", {sf, H});
      w->Computed(p + "mlp.shared_experts.down_proj.weight", {H, sf});
    }
  }
  SynthModel m;
  m.config = ConfigReader(std::move(c), "synthetic " + shape_name + " config");
  m.weights = std::move(w);
  m.arch = arch;
  m.n_vocab = V;
  return m;
}

Status WriteSynthVocab(int64_t n_vocab, GgufWriter* w) {
  if (n_vocab < 258) return InvalidArgument("synthetic vocabulary needs at least 258 tokens");
  // GPT-2's byte -> printable-unicode map.
  std::vector<std::string> byte_piece(256);
  int next = 256;
  auto utf8 = [](int cp) {
    std::string o;
    if (cp < 0x80) {
      o += static_cast<char>(cp);
    } else {
      o += static_cast<char>(0xC0 | (cp >> 6));
      o += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return o;
  };
  for (int b = 0; b < 256; ++b) {
    const bool direct = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    byte_piece[static_cast<size_t>(b)] = utf8(direct ? b : next++);
  }
  std::vector<std::string> tokens(byte_piece);
  std::vector<std::string> merges;
  const int64_t n_merged = n_vocab - 257;
  // Two-byte tokens (byte + byte), then longer ones (previous merged token + byte).
  for (int64_t k = 0; k < n_merged; ++k) {
    std::string left;
    std::string right;
    if (k < 65536) {
      left = byte_piece[static_cast<size_t>(k / 256)];
      right = byte_piece[static_cast<size_t>(k % 256)];
    } else {
      const int64_t j = k - 65536;
      left = tokens[static_cast<size_t>(256 + j / 256)];
      right = byte_piece[static_cast<size_t>(j % 256)];
    }
    tokens.push_back(left + right);
    merges.push_back(left + " " + right);
  }
  tokens.push_back("<|endoftext|>");
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;
  w->SetString("tokenizer.ggml.model", "gpt2");
  w->SetString("tokenizer.ggml.pre", "gpt-2");
  w->SetStrings("tokenizer.ggml.tokens", tokens);
  w->SetI32s("tokenizer.ggml.token_type", types);
  w->SetStrings("tokenizer.ggml.merges", merges);
  w->SetU32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(n_vocab - 1));
  w->SetU32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(n_vocab - 1));
  w->SetBool("tokenizer.ggml.add_bos_token", false);
  return Status::Ok();
}

}  // namespace moxie
