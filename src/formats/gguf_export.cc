#include "formats/gguf_export.h"
#include "formats/json_parse.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/dtype.h"
#include "formats/gguf_writer.h"
#include "formats/tokenizer_gguf.h"
#include "kernels/kernel_table.h"
#include "kernels/ref/quant.h"

namespace moxie {

namespace {

using Json = nlohmann::json;

constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14,
                   kBF16 = 30, kMXFP4 = 39;

struct TypeName {
  const char* name;
  uint32_t id;
  int ftype;  // llama_ftype for general.file_type
};
constexpr TypeName kTypes[] = {
    {"f32", kF32, 0},    {"f16", kF16, 1},     {"bf16", kBF16, 32}, {"q8_0", kQ8_0, 7},
    {"q4_0", kQ4_0, 2},  {"q4_k", kQ4_K, 14},  {"q5_k", kQ5_K, 16}, {"q6_k", kQ6_K, 18},
    {"mxfp4", kMXFP4, 38},
};

int BlockOf(uint32_t t) { return GgmlType(t)->block; }

// A requested type the row length cannot take: k-quants fall back to Q8_0 (32-element blocks),
// 32-element formats to F16 (what llama.cpp's tools do for such rows).
uint32_t Fallback(uint32_t t, int64_t cols) {
  if (cols % BlockOf(t) == 0) return t;
  if (BlockOf(t) > 32 && cols % 32 == 0) return kQ8_0;
  return kF16;
}

}  // namespace

const char* TensorClassName(TensorClass c) {
  switch (c) {
    case TensorClass::kEmbed: return "embed";
    case TensorClass::kOutput: return "output";
    case TensorClass::kAttn: return "attn";
    case TensorClass::kRouter: return "router";
    case TensorClass::kExperts: return "experts";
    case TensorClass::kShared: return "shared";
    case TensorClass::kDense: return "dense";
    case TensorClass::kNorm: return "norm";
  }
  return "?";
}

bool ParseTensorClass(const std::string& s, TensorClass* out) {
  for (TensorClass c : {TensorClass::kEmbed, TensorClass::kOutput, TensorClass::kAttn, TensorClass::kRouter,
                        TensorClass::kExperts, TensorClass::kShared, TensorClass::kDense}) {
    if (s == TensorClassName(c)) {
      *out = c;
      return true;
    }
  }
  return false;
}

bool ParseWeightType(const std::string& s, uint32_t* ggml_type) {
  std::string l = s;
  for (char& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const auto& t : kTypes) {
    if (l == t.name) {
      *ggml_type = t.id;
      return true;
    }
  }
  return false;
}

std::string WeightTypeList() {
  std::string s;
  for (const auto& t : kTypes) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

namespace {
struct RecipeName {
  const char* name;
  TypeRecipe recipe;
  uint32_t base;
  int ftype;  // llama_ftype
};
constexpr RecipeName kRecipes[] = {{"q4_k_m", TypeRecipe::kQ4_K_M, kQ4_K, 15},
                                   {"q5_k_m", TypeRecipe::kQ5_K_M, kQ5_K, 17}};

// The recipe's type for tensor `name` (see TypeRecipe), or `base`.
uint32_t RecipeType(TypeRecipe r, const std::string& name, int n_layer, int n_expert, uint32_t base) {
  if (r == TypeRecipe::kNone) return base;
  if (name == "output.weight") return kQ6_K;
  int layer = -1, end = 0;
  if (std::sscanf(name.c_str(), "blk.%d.%n", &layer, &end) != 1 || end == 0 || layer < 0) return base;
  const std::string rest = name.substr(static_cast<size_t>(end));
  const int L = n_layer;
  const bool more_bits = layer < L / 8 || layer >= 7 * L / 8 || (layer - L / 8) % 3 == 2;
  if (rest == "attn_v.weight") return n_expert == 8 ? kQ8_0 : more_bits ? kQ6_K : base;
  if (rest == "attn_k.weight") return n_expert == 8 ? kQ8_0 : base;
  if (rest == "attn_output.weight") return n_expert == 8 && r == TypeRecipe::kQ4_K_M ? kQ5_K : base;
  if (rest.rfind("ffn_down", 0) == 0 && more_bits) return kQ6_K;
  return base;
}
}  // namespace

bool ParseWeightTypeOrRecipe(const std::string& s, uint32_t* ggml_type, TypeRecipe* recipe) {
  std::string l = s;
  for (char& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const auto& r : kRecipes) {
    if (l == r.name) {
      *ggml_type = r.base;
      *recipe = r.recipe;
      return true;
    }
  }
  *recipe = TypeRecipe::kNone;
  return ParseWeightType(s, ggml_type);
}

std::string WeightTypeOrRecipeList() {
  std::string s = WeightTypeList();
  for (const auto& r : kRecipes) s += ", " + std::string(r.name);
  return s;
}

Result<ExpertTypePlan> LoadExpertTypePlan(const std::string& path, int n_layer, int n_expert,
                                          uint32_t default_type) {
  std::ifstream in(path);
  if (!in) return NotFound(path + ": cannot open the expert type plan");
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = ParseJson<Json>(ss.str(), path);
  if (!parsed.ok()) return parsed.status();
  Json j = std::move(parsed).value();
  if (!j.is_object()) {
    return InvalidFormat(path + ": not a JSON object (expected {\"default\": ..., \"layers\": {...}})");
  }
  auto type_of = [&](const Json& v, const std::string& where, uint32_t* out) -> Status {
    if (!v.is_string() || !ParseWeightType(v.get<std::string>(), out)) {
      return InvalidFormat(path + ": " + where + ": expected a weight type (" + WeightTypeList() + "), got " +
                           v.dump());
    }
    return Status::Ok();
  };
  uint32_t def = default_type;
  for (const auto& [k, v] : j.items()) {
    if (k == "default") {
      MOXIE_RETURN_IF_ERROR(type_of(v, "'default'", &def));
    } else if (k != "layers") {
      return InvalidFormat(path + ": unknown key '" + k + "' (expected 'default' and 'layers')");
    }
  }
  ExpertTypePlan plan;
  plan.types.assign(static_cast<size_t>(n_layer), std::vector<uint32_t>(static_cast<size_t>(n_expert), def));
  if (!j.contains("layers")) return plan;
  const Json& layers = j["layers"];
  if (!layers.is_object()) return InvalidFormat(path + ": 'layers' must be an object keyed by layer index");
  auto index = [&](const std::string& k, int n, const std::string& what, int* out) -> Status {
    char* end = nullptr;
    const long x = std::strtol(k.c_str(), &end, 10);
    if (k.empty() || *end != '\0' || x < 0 || x >= n) {
      return InvalidFormat(path + ": " + what + " '" + k + "' is not an index in [0, " + std::to_string(n) + ")");
    }
    *out = static_cast<int>(x);
    return Status::Ok();
  };
  for (const auto& [lk, lv] : layers.items()) {
    int l = 0;
    MOXIE_RETURN_IF_ERROR(index(lk, n_layer, "layer", &l));
    auto& row = plan.types[static_cast<size_t>(l)];
    const std::string where = "layers." + lk;
    if (lv.is_string()) {
      uint32_t t = 0;
      MOXIE_RETURN_IF_ERROR(type_of(lv, where, &t));
      std::fill(row.begin(), row.end(), t);
    } else if (lv.is_array()) {
      if (lv.size() != static_cast<size_t>(n_expert)) {
        return InvalidFormat(path + ": " + where + " lists " + std::to_string(lv.size()) + " types; the model has " +
                             std::to_string(n_expert) + " experts per layer");
      }
      for (size_t e = 0; e < lv.size(); ++e) {
        MOXIE_RETURN_IF_ERROR(type_of(lv[e], where + "[" + std::to_string(e) + "]", &row[e]));
      }
    } else if (lv.is_object()) {
      for (const auto& [k, v] : lv.items()) {
        if (k == "default") {
          uint32_t t = 0;
          MOXIE_RETURN_IF_ERROR(type_of(v, where + ".default", &t));
          std::fill(row.begin(), row.end(), t);
        } else if (k != "experts") {
          return InvalidFormat(path + ": " + where + ": unknown key '" + k + "' (expected 'default', 'experts')");
        }
      }
      if (lv.contains("experts")) {
        const Json& ex = lv["experts"];
        if (!ex.is_object()) return InvalidFormat(path + ": " + where + ".experts must be an object");
        for (const auto& [ek, evv] : ex.items()) {
          int e = 0;
          MOXIE_RETURN_IF_ERROR(index(ek, n_expert, where + ": expert", &e));
          MOXIE_RETURN_IF_ERROR(type_of(evv, where + ".experts." + ek, &row[static_cast<size_t>(e)]));
        }
      }
    } else {
      return InvalidFormat(path + ": " + where + ": expected a type, a list of types or an object");
    }
  }
  return plan;
}

namespace {

// One output tensor: its rows come from source rows (possibly of several parts, e.g. one part per
// expert), optionally permuted.
struct OutTensor {
  std::string name;
  std::vector<int64_t> ne;
  TensorClass cls = TensorClass::kNorm;
  uint32_t type = kF32;
  bool fell_back = false;
  int64_t rows = 0, cols = 0;
  std::vector<TensorView> parts;   // each [rows_per_part, cols] (1-D: one row)
  std::vector<const WeightRef*> refs;  // per part: the source tensor (computed rows), or nullptr
  int64_t rows_per_part = 0;
  std::function<int64_t(int64_t)> permute;  // local row -> source row within the part
  std::shared_ptr<std::vector<float>> owned;  // backing store of a computed part
};

struct Family {
  std::string arch;       // GGUF general.architecture
  bool deepseek = false;
  bool llama = false;     // Mixtral: arch llama, Q/K rows permuted
};

int64_t Get(const Json& c, const char* k, int64_t def) {
  auto it = c.find(k);
  return it != c.end() && it->is_number() ? it->get<int64_t>() : def;
}
double GetF(const Json& c, const char* k, double def) {
  auto it = c.find(k);
  return it != c.end() && it->is_number() ? it->get<double>() : def;
}
bool GetB(const Json& c, const char* k, bool def) {
  auto it = c.find(k);
  return it != c.end() && it->is_boolean() ? it->get<bool>() : def;
}

Result<Family> FamilyOf(const ConfigReader& cfg) {
  std::string mt;
  MOXIE_RETURN_IF_ERROR(cfg.String("model_type", &mt));
  Family f;
  if (mt == "mixtral") {
    f.arch = "llama";
    f.llama = true;
  } else if (mt == "qwen2_moe") {
    f.arch = "qwen2moe";
  } else if (mt == "qwen3_moe") {
    f.arch = "qwen3moe";
  } else if (mt == "olmoe") {
    f.arch = "olmoe";
  } else if (mt == "deepseek_v2" || mt == "deepseek_v3") {
    f.arch = "deepseek2";
    f.deepseek = true;
  } else {
    return Unsupported(cfg.path() + ": model_type '" + mt + "' has no GGUF export");
  }
  return f;
}

Status WriteModelMetadata(const ConfigReader& cfg, const Family& fam, int64_t n_vocab, GgufWriter* w) {
  const Json& c = cfg.json();
  const std::string a = fam.arch + ".";
  auto u32 = [&](const std::string& k, int64_t v) { w->SetU32(a + k, static_cast<uint32_t>(v)); };
  auto f32 = [&](const std::string& k, double v) { w->SetF32(a + k, static_cast<float>(v)); };
  int64_t H = 0, L = 0, nh = 0;
  MOXIE_RETURN_IF_ERROR(cfg.Int("hidden_size", &H));
  MOXIE_RETURN_IF_ERROR(cfg.Int("num_hidden_layers", &L));
  MOXIE_RETURN_IF_ERROR(cfg.Int("num_attention_heads", &nh));
  const int64_t nkv = Get(c, "num_key_value_heads", nh);
  const int64_t head_dim = Get(c, "head_dim", H / nh);
  u32("context_length", Get(c, "max_position_embeddings", 4096));
  u32("embedding_length", H);
  u32("block_count", L);
  const bool ds = fam.deepseek;
  const std::string mt = c.value("model_type", "");
  u32("feed_forward_length", Get(c, "intermediate_size", 0));
  u32("attention.head_count", nh);
  u32("attention.head_count_kv", ds ? 1 : nkv);
  f32("attention.layer_norm_rms_epsilon", GetF(c, "rms_norm_eps", 1e-6));
  f32("rope.freq_base", GetF(c, "rope_theta", 10000.0));
  u32("vocab_size", n_vocab);
  if (fam.llama) {
    u32("expert_count", Get(c, "num_local_experts", 0));
    u32("expert_used_count", Get(c, "num_experts_per_tok", 0));
    u32("rope.dimension_count", head_dim);
  } else if (!ds) {
    const int64_t E = Get(c, "num_experts", 0);
    if (mt != "olmoe") u32("expert_feed_forward_length", Get(c, "moe_intermediate_size", 0));
    u32("expert_count", E);
    u32("expert_used_count", Get(c, "num_experts_per_tok", 0));
    if (mt == "qwen2_moe") u32("expert_shared_feed_forward_length", Get(c, "shared_expert_intermediate_size", 0));
    if (mt == "qwen3_moe") {
      u32("attention.key_length", head_dim);
      u32("attention.value_length", head_dim);
    }
    const bool norm = GetB(c, "norm_topk_prob", false);
    if (norm != (mt == "qwen3_moe")) w->SetBool(a + "expert_weights_norm", norm);
  } else {
    u32("leading_dense_block_count", Get(c, "first_k_dense_replace", 0));
    u32("attention.q_lora_rank", Get(c, "q_lora_rank", 0));
    int64_t kv_lora = 0;
    MOXIE_RETURN_IF_ERROR(cfg.Int("kv_lora_rank", &kv_lora));
    u32("attention.kv_lora_rank", kv_lora);
    const int64_t nope = Get(c, "qk_nope_head_dim", 0), rope = Get(c, "qk_rope_head_dim", 0),
                  vd = Get(c, "v_head_dim", 0);
    u32("attention.key_length", nope + rope);
    u32("attention.value_length", vd);
    u32("attention.key_length_mla", nope + rope);
    u32("attention.value_length_mla", vd);
    u32("expert_feed_forward_length", Get(c, "moe_intermediate_size", 0));
    u32("expert_count", Get(c, "n_routed_experts", 0));
    u32("expert_used_count", Get(c, "num_experts_per_tok", 0));
    u32("expert_shared_count", Get(c, "n_shared_experts", 0));
    f32("expert_weights_scale", GetF(c, "routed_scaling_factor", 1.0));
    w->SetBool(a + "expert_weights_norm", GetB(c, "norm_topk_prob", false));
    const bool sigmoid = c.value("scoring_func", std::string("softmax")) == "sigmoid";
    u32("expert_gating_func", sigmoid ? 2 : 1);
    const int64_t groups = Get(c, "n_group", 1);
    if (groups > 1) {
      u32("expert_group_count", groups);
      u32("expert_group_used_count", Get(c, "topk_group", 1));
    }
    u32("rope.dimension_count", rope);
  }
  if (c.contains("rope_scaling") && c["rope_scaling"].is_object()) {
    const Json& rs = c["rope_scaling"];
    std::string type = rs.value("type", rs.value("rope_type", std::string("default")));
    if (type == "linear" || type == "yarn") {
      w->SetString(a + "rope.scaling.type", type);
      f32("rope.scaling.factor", GetF(rs, "factor", 1.0));
      if (type == "yarn") {
        u32("rope.scaling.original_context_length", Get(rs, "original_max_position_embeddings", 4096));
        if (rs.contains("mscale_all_dim")) f32("rope.scaling.yarn_log_multiplier", 0.1 * GetF(rs, "mscale_all_dim", 0));
        if (rs.contains("beta_fast")) f32("rope.scaling.yarn_beta_fast", GetF(rs, "beta_fast", 32));
        if (rs.contains("beta_slow")) f32("rope.scaling.yarn_beta_slow", GetF(rs, "beta_slow", 1));
      }
    } else if (type != "default") {
      return Unsupported(cfg.path() + ": rope_scaling type '" + type + "' has no GGUF export");
    }
  }
  return Status::Ok();
}

// Builds the list of output tensors from the source names.
class Planner {
 public:
  Planner(const ConfigReader& cfg, const WeightSource& src, const Family& fam)
      : cfg_(cfg), src_(src), fam_(fam) {}

  Status Plan(std::vector<OutTensor>* out, std::vector<std::string>* skipped,
              std::vector<int>* moe_layers, int* n_expert) {
    const Json& c = cfg_.json();
    MOXIE_RETURN_IF_ERROR(cfg_.Int("num_hidden_layers", &L_));
    MOXIE_RETURN_IF_ERROR(cfg_.Int("num_attention_heads", &nh_));
    nkv_ = Get(c, "num_key_value_heads", nh_);
    E_ = static_cast<int>(Get(c, fam_.llama ? "num_local_experts" : fam_.deepseek ? "n_routed_experts" : "num_experts", 0));
    *n_expert = E_;
    MOXIE_RETURN_IF_ERROR(Plain("model.embed_tokens.weight", "token_embd.weight", TensorClass::kEmbed, true));
    MOXIE_RETURN_IF_ERROR(Plain("model.norm.weight", "output_norm.weight", TensorClass::kNorm, true));
    MOXIE_RETURN_IF_ERROR(Plain("lm_head.weight", "output.weight", TensorClass::kOutput, false));
    for (int64_t l = 0; l < L_; ++l) {
      const std::string lp = "model.layers." + std::to_string(l) + ".";
      const std::string bp = "blk." + std::to_string(l) + ".";
      struct M { const char* hf; const char* gg; TensorClass cls; };
      static const M kLayer[] = {
          {"input_layernorm.weight", "attn_norm.weight", TensorClass::kNorm},
          {"post_attention_layernorm.weight", "ffn_norm.weight", TensorClass::kNorm},
          {"self_attn.q_proj.weight", "attn_q.weight", TensorClass::kAttn},
          {"self_attn.k_proj.weight", "attn_k.weight", TensorClass::kAttn},
          {"self_attn.v_proj.weight", "attn_v.weight", TensorClass::kAttn},
          {"self_attn.o_proj.weight", "attn_output.weight", TensorClass::kAttn},
          {"self_attn.q_proj.bias", "attn_q.bias", TensorClass::kNorm},
          {"self_attn.k_proj.bias", "attn_k.bias", TensorClass::kNorm},
          {"self_attn.v_proj.bias", "attn_v.bias", TensorClass::kNorm},
          {"self_attn.o_proj.bias", "attn_output.bias", TensorClass::kNorm},
          {"self_attn.q_norm.weight", "attn_q_norm.weight", TensorClass::kNorm},
          {"self_attn.k_norm.weight", "attn_k_norm.weight", TensorClass::kNorm},
          {"self_attn.q_a_proj.weight", "attn_q_a.weight", TensorClass::kAttn},
          {"self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight", TensorClass::kNorm},
          {"self_attn.q_b_proj.weight", "attn_q_b.weight", TensorClass::kAttn},
          {"self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight", TensorClass::kAttn},
          {"self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight", TensorClass::kNorm},
          {"mlp.gate.weight", "ffn_gate_inp.weight", TensorClass::kRouter},
          {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight", TensorClass::kRouter},
          {"mlp.gate.e_score_correction_bias", "exp_probs_b.bias", TensorClass::kRouter},
          {"mlp.gate_proj.weight", "ffn_gate.weight", TensorClass::kDense},
          {"mlp.up_proj.weight", "ffn_up.weight", TensorClass::kDense},
          {"mlp.down_proj.weight", "ffn_down.weight", TensorClass::kDense},
          {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight", TensorClass::kShared},
          {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight", TensorClass::kShared},
          {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight", TensorClass::kShared},
          {"mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight", TensorClass::kShared},
          {"mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight", TensorClass::kShared},
          {"mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight", TensorClass::kShared},
          {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight", TensorClass::kRouter},
      };
      for (const M& m : kLayer) {
        MOXIE_RETURN_IF_ERROR(Plain(lp + m.hf, bp + m.gg, m.cls, false));
        if (std::strcmp(m.gg, "ffn_gate_inp_shexp.weight") == 0 && !out_.empty() &&
            out_.back().name == bp + m.gg) {
          out_.back().ne = {out_.back().rows * out_.back().cols};  // [1, H] -> [H], as llama.cpp
          out_.back().cols = out_.back().ne[0];
          out_.back().rows = 1;
          out_.back().rows_per_part = 1;
          out_.back().cls = TensorClass::kRouter;
        }
      }
      if (fam_.llama) {
        Permute(bp + "attn_q.weight", nh_);
        Permute(bp + "attn_k.weight", nkv_);
      }
      if (fam_.deepseek) MOXIE_RETURN_IF_ERROR(SplitKvB(lp, bp));
      bool moe = false;
      MOXIE_RETURN_IF_ERROR(Experts(lp, bp, &moe));
      if (moe) moe_layers->push_back(static_cast<int>(l));
    }
    for (const auto& n : src_.Names()) {
      if (used_.count(n) == 0) skipped->push_back(n);
    }
    *out = std::move(out_);
    return Status::Ok();
  }

 private:
  Result<const WeightRef*> Fetch(const std::string& name) {
    const WeightRef* r = src_.Find(name);
    if (r == nullptr) return NotFound(src_.Describe() + ": missing tensor '" + name + "'");
    if (!r->dtype_supported) {
      return Unsupported(r->file + ": tensor '" + name + "' has dtype " + r->dtype_name + ", which cannot be converted");
    }
    used_.insert(name);
    return r;
  }

  // Name-for-name tensor (2-D weight or 1-D vector).
  Status Plain(const std::string& hf, const std::string& gg, TensorClass cls, bool required) {
    if (!required && src_.Find(hf) == nullptr) return Status::Ok();
    MOXIE_ASSIGN_OR_RETURN(const WeightRef* r, Fetch(hf));
    const Shape& s = r->view.shape;
    OutTensor t;
    t.name = gg;
    t.cls = s.rank() == 1 ? TensorClass::kNorm : cls;
    if (cls == TensorClass::kRouter) t.cls = TensorClass::kRouter;
    if (s.rank() == 1) {
      t.rows = 1;
      t.cols = s.dims[0];
      t.ne = {t.cols};
    } else if (s.rank() == 2) {
      t.rows = s.dims[0];
      t.cols = s.dims[1];
      t.ne = {t.cols, t.rows};
    } else {
      return InvalidFormat(r->file + ": tensor '" + hf + "' has shape " + s.ToString() + "; expected 1-D or 2-D");
    }
    t.parts = {r->view};
    t.refs = {r};
    t.rows_per_part = t.rows;
    out_.push_back(std::move(t));
    return Status::Ok();
  }

  OutTensor* FindOut(const std::string& name) {
    for (auto& t : out_) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }

  // HF -> llama.cpp order: GGUF row (h, 2j) = HF row (h, j), (h, 2j + 1) = HF row (h, hd/2 + j).
  void Permute(const std::string& name, int64_t heads) {
    OutTensor* t = FindOut(name);
    if (t == nullptr || heads <= 0 || t->rows % heads != 0) return;
    const int64_t hd = t->rows / heads;
    t->permute = [hd](int64_t r) {
      const int64_t h = r / hd, i = r % hd;
      return h * hd + (i % 2 == 0 ? i / 2 : hd / 2 + i / 2);
    };
  }

  Status SplitKvB(const std::string& lp, const std::string& bp) {
    const std::string name = lp + "self_attn.kv_b_proj.weight";
    if (src_.Find(name) == nullptr) return Status::Ok();
    MOXIE_ASSIGN_OR_RETURN(const WeightRef* r, Fetch(name));
    if (r->view.data == nullptr) return InvalidArgument(src_.Describe() + ": '" + name + "' must be stored, not computed");
    const Json& c = cfg_.json();
    const int64_t nope = Get(c, "qk_nope_head_dim", 0), vd = Get(c, "v_head_dim", 0);
    const int64_t lora = Get(c, "kv_lora_rank", 0);
    if (r->view.shape.rank() != 2 || r->view.dim(0) != nh_ * (nope + vd) || r->view.dim(1) != lora) {
      return InvalidFormat(r->file + ": '" + name + "' has shape " + r->view.shape.ToString() + ", expected [" +
                           std::to_string(nh_ * (nope + vd)) + ", " + std::to_string(lora) + "]");
    }
    // attn_k_b: [nh, lora, nope] (each head's K part transposed), computed in f32.
    auto kb = std::make_shared<std::vector<float>>(static_cast<size_t>(nh_ * lora * nope));
    std::vector<float> row(static_cast<size_t>(lora));
    for (int64_t h = 0; h < nh_; ++h) {
      for (int64_t n = 0; n < nope; ++n) {
        RowToF32(r->view.dtype, r->view.row(h * (nope + vd) + n), row.data(), lora);
        for (int64_t cc = 0; cc < lora; ++cc) (*kb)[static_cast<size_t>((h * lora + cc) * nope + n)] = row[static_cast<size_t>(cc)];
      }
    }
    OutTensor k;
    k.name = bp + "attn_k_b.weight";
    k.cls = TensorClass::kAttn;
    k.ne = {nope, lora, nh_};
    k.rows = nh_ * lora;
    k.cols = nope;
    k.owned = kb;
    k.parts = {TensorView{kb->data(), DType::kF32, Shape{{k.rows, k.cols}}}};
    k.refs = {nullptr};
    k.rows_per_part = k.rows;
    out_.push_back(std::move(k));
    // attn_v_b: [nh, vd, lora] = the V rows of each head, in place.
    OutTensor v;
    v.name = bp + "attn_v_b.weight";
    v.cls = TensorClass::kAttn;
    v.ne = {lora, vd, nh_};
    v.rows = nh_ * vd;
    v.cols = lora;
    for (int64_t h = 0; h < nh_; ++h) {
      v.parts.push_back(TensorView{r->view.row(h * (nope + vd) + nope), r->view.dtype, Shape{{vd, lora}}});
      v.refs.push_back(nullptr);
    }
    v.rows_per_part = vd;
    out_.push_back(std::move(v));
    return Status::Ok();
  }

  // Routed experts of one layer, whatever the source layout, as three stacked tensors (the
  // per-expert split is decided later from the types).
  Status Experts(const std::string& lp, const std::string& bp, bool* moe) {
    std::string prefix = lp + "mlp.experts";
    std::string names[3] = {"gate_proj", "up_proj", "down_proj"};
    if (src_.Find(lp + "block_sparse_moe.experts.0.w1.weight") != nullptr) {
      prefix = lp + "block_sparse_moe.experts";
      names[0] = "w1";
      names[1] = "w3";
      names[2] = "w2";
    }
    const char* gg[3] = {"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"};
    std::vector<TensorView> parts[3];
    std::vector<const WeightRef*> refs[3];
    if (src_.Find(prefix + ".0." + names[0] + ".weight") != nullptr) {
      for (int e = 0; e < E_; ++e) {
        for (int p = 0; p < 3; ++p) {
          MOXIE_ASSIGN_OR_RETURN(const WeightRef* r, Fetch(prefix + "." + std::to_string(e) + "." + names[p] + ".weight"));
          if (r->view.shape.rank() != 2) return InvalidFormat(r->file + ": expert tensor '" + r->name + "' is not 2-D");
          parts[p].push_back(r->view);
          refs[p].push_back(r);
        }
      }
    } else if (src_.Find(prefix + ".gate_up_proj") != nullptr) {
      MOXIE_ASSIGN_OR_RETURN(const WeightRef* gu, Fetch(prefix + ".gate_up_proj"));
      MOXIE_ASSIGN_OR_RETURN(const WeightRef* dn, Fetch(prefix + ".down_proj"));
      if (gu->view.data == nullptr || dn->view.data == nullptr) {
        return InvalidArgument(src_.Describe() + ": fused expert tensors must be stored, not computed");
      }
      if (gu->view.shape.rank() != 3 || dn->view.shape.rank() != 3 || gu->view.dim(0) != E_ || dn->view.dim(0) != E_) {
        return InvalidFormat(gu->file + ": fused expert tensors must be [E, 2I, H] and [E, H, I]");
      }
      const int64_t I = gu->view.dim(1) / 2, Hh = gu->view.dim(2);
      for (int e = 0; e < E_; ++e) {
        TensorView ge = gu->view.Slice0(e);
        parts[0].push_back(TensorView{ge.data, ge.dtype, Shape{{I, Hh}}});
        parts[1].push_back(TensorView{ge.row(I), ge.dtype, Shape{{I, Hh}}});
        parts[2].push_back(dn->view.Slice0(e));
        for (auto& rv : refs) rv.push_back(nullptr);
      }
    } else if (src_.Find(prefix + ".gate_proj") != nullptr) {  // stacked 3-D (from a GGUF)
      for (int p = 0; p < 3; ++p) {
        MOXIE_ASSIGN_OR_RETURN(const WeightRef* r, Fetch(prefix + "." + names[p]));
        if (r->view.data == nullptr) return InvalidArgument(r->file + ": stacked '" + r->name + "' must be stored");
        if (r->view.shape.rank() != 3 || r->view.dim(0) != E_) {
          return InvalidFormat(r->file + ": stacked expert tensor '" + r->name + "' must be [" + std::to_string(E_) + ", ., .]");
        }
        for (int e = 0; e < E_; ++e) {
          parts[p].push_back(r->view.Slice0(e));
          refs[p].push_back(nullptr);
        }
      }
    } else {
      return Status::Ok();  // a dense layer
    }
    *moe = true;
    for (int p = 0; p < 3; ++p) {
      const Shape s = parts[p][0].shape;
      for (const auto& v : parts[p]) {
        if (v.shape.dims != s.dims) {
          return InvalidFormat(src_.Describe() + ": experts of '" + prefix + "' differ in shape (" + s.ToString() +
                               " vs " + v.shape.ToString() + ")");
        }
      }
      OutTensor t;
      t.name = bp + gg[p];
      t.cls = TensorClass::kExperts;
      t.rows_per_part = s.dims[0];
      t.rows = s.dims[0] * E_;
      t.cols = s.dims[1];
      t.ne = {t.cols, s.dims[0], E_};
      t.parts = std::move(parts[p]);
      t.refs = std::move(refs[p]);
      out_.push_back(std::move(t));
    }
    return Status::Ok();
  }

  const ConfigReader& cfg_;
  const WeightSource& src_;
  Family fam_;
  int64_t L_ = 0, nh_ = 0, nkv_ = 0;
  int E_ = 0;
  std::vector<OutTensor> out_;
  std::set<std::string> used_;
};

// Splits the stacked expert tensors of layers whose experts have different types into per-expert
// tensors (blk.N.ffn_gate.E.weight ...).
std::vector<OutTensor> SplitPerExpert(std::vector<OutTensor> in, const ExpertTypePlan& plan,
                                      std::vector<int>* per_expert_layers) {
  std::vector<OutTensor> out;
  std::set<int> split;
  for (auto& t : in) {
    int layer = -1;
    if (t.cls == TensorClass::kExperts) layer = std::atoi(t.name.c_str() + 4);
    const bool mixed = layer >= 0 && static_cast<size_t>(layer) < plan.types.size() &&
                       !plan.types[static_cast<size_t>(layer)].empty() &&
                       std::adjacent_find(plan.types[static_cast<size_t>(layer)].begin(),
                                          plan.types[static_cast<size_t>(layer)].end(),
                                          std::not_equal_to<>()) != plan.types[static_cast<size_t>(layer)].end();
    if (!mixed) {
      out.push_back(std::move(t));
      continue;
    }
    split.insert(layer);
    const std::string bp = "blk." + std::to_string(layer) + ".";
    const std::string proj = t.name.substr(bp.size(), t.name.find("_exps") - bp.size());  // ffn_gate
    for (size_t e = 0; e < t.parts.size(); ++e) {
      OutTensor x;
      x.name = bp + proj + "." + std::to_string(e) + ".weight";
      x.cls = TensorClass::kExperts;
      x.type = plan.types[static_cast<size_t>(layer)][e];
      x.rows = t.rows_per_part;
      x.cols = t.cols;
      x.ne = {t.cols, t.rows_per_part};
      x.parts = {t.parts[e]};
      x.refs = {t.refs[e]};
      x.rows_per_part = x.rows;
      out.push_back(std::move(x));
    }
  }
  per_expert_layers->assign(split.begin(), split.end());
  return out;
}

// Writes one tensor: rows converted / quantised in parallel chunks.
Status EmitTensor(const OutTensor& t, const WeightSource& src, GgufWriter* w, const ExecContext& ctx,
                  uint64_t* done, uint64_t total, const ExportOptions& opts) {
  const GgmlTypeInfo* ti = GgmlType(t.type);
  const size_t out_row = static_cast<size_t>(t.cols / ti->block) * static_cast<size_t>(ti->type_size);
  const int64_t chunk_rows = std::max<int64_t>(1, std::min<int64_t>(t.rows, (8 << 20) / std::max<size_t>(out_row, 1)));
  std::vector<uint8_t> buf(static_cast<size_t>(chunk_rows) * out_row);
  const int nt = ctx.n_threads();
  std::vector<std::vector<float>> scratch(static_cast<size_t>(nt), std::vector<float>(static_cast<size_t>(t.cols)));
  std::vector<Status> errs(static_cast<size_t>(nt));
  DType out_dt = DType::kF32;
  const bool out_known = DTypeFromGgml(t.type, &out_dt);
  for (int64_t r0 = 0; r0 < t.rows; r0 += chunk_rows) {
    const int64_t n = std::min(chunk_rows, t.rows - r0);
    ctx.ParallelFor(static_cast<size_t>(n), [&](size_t b, size_t e, int tid) {
      float* f = scratch[static_cast<size_t>(tid)].data();
      for (size_t i = b; i < e; ++i) {
        const int64_t r = r0 + static_cast<int64_t>(i);
        const size_t pi = static_cast<size_t>(r / t.rows_per_part);
        const TensorView& part = t.parts[pi];
        int64_t local = r % t.rows_per_part;
        if (t.permute) local = t.permute(local);
        uint8_t* dst = buf.data() + i * out_row;
        if (part.data == nullptr) {  // computed rows
          src.FillRowF32(*t.refs[pi], local, f);
        } else {
          const auto* s = static_cast<const uint8_t*>(part.data) + RowBytes(part.dtype, t.cols) * static_cast<size_t>(local);
          if (out_known && part.dtype == out_dt) {
            std::memcpy(dst, s, out_row);
            continue;
          }
          RowToF32(part.dtype, s, f, t.cols);
        }
        if (t.type == kF32) {
          std::memcpy(dst, f, out_row);
        } else if (t.type == kF16) {
          for (int64_t j = 0; j < t.cols; ++j) {
            const uint16_t h = F32ToF16(f[j]);
            std::memcpy(dst + 2 * j, &h, 2);
          }
        } else if (t.type == kBF16) {
          for (int64_t j = 0; j < t.cols; ++j) {
            const uint16_t h = F32ToBf16(f[j]);
            std::memcpy(dst + 2 * j, &h, 2);
          }
        } else {
          Status st = QuantizeRow(static_cast<QuantType>(t.type), f, dst, t.cols);
          if (!st.ok() && errs[static_cast<size_t>(tid)].ok()) {
            errs[static_cast<size_t>(tid)] =
                InvalidArgument("tensor '" + t.name + "' row " + std::to_string(r) + ": " + st.message());
          }
        }
      }
    });
    for (const auto& st : errs) MOXIE_RETURN_IF_ERROR(st);
    MOXIE_RETURN_IF_ERROR(w->Write(buf.data(), static_cast<size_t>(n) * out_row));
    *done += static_cast<uint64_t>(n) * out_row;
    if (opts.progress) opts.progress(*done, total, t.name);
  }
  return Status::Ok();
}

}  // namespace

Result<ExportReport> ExportGguf(const ConfigReader& cfg, const WeightSource& src,
                                const std::string& tokenizer_from, const std::string& out,
                                const ExportOptions& opts, const ExecContext& ctx) {
  if (GgmlType(opts.type) == nullptr) return InvalidArgument("unknown output type id " + std::to_string(opts.type));
  MOXIE_ASSIGN_OR_RETURN(Family fam, FamilyOf(cfg));
  Planner planner(cfg, src, fam);
  std::vector<OutTensor> tensors;
  ExportReport rep;
  rep.arch = fam.arch;
  std::vector<int> moe_layers;
  int n_expert = 0;
  MOXIE_RETURN_IF_ERROR(planner.Plan(&tensors, &rep.skipped, &moe_layers, &n_expert));

  // Types: the recipe, class rules, then the per-expert plan, then row-length fallbacks.
  int n_layer = 0;
  for (const auto& t : tensors) {
    int l = -1;
    if (std::sscanf(t.name.c_str(), "blk.%d.", &l) == 1 && l >= n_layer) n_layer = l + 1;
  }
  for (auto& t : tensors) {
    uint32_t ty = RecipeType(opts.recipe, t.name, n_layer, n_expert, opts.type);
    if (t.cls == TensorClass::kNorm || t.ne.size() == 1) {  // vectors stay f32 (llama.cpp expects it)
      ty = kF32;
    } else if (auto it = opts.keep.find(t.cls); it != opts.keep.end()) {
      ty = it->second;
    } else if (t.cls == TensorClass::kRouter) {
      ty = kF32;
    }
    t.type = ty;
  }
  std::vector<int> per_expert_layers;
  if (opts.expert_plan != nullptr) {
    // Uniform layers take the plan's type on the stacked tensors.
    for (auto& t : tensors) {
      if (t.cls != TensorClass::kExperts) continue;
      const size_t l = static_cast<size_t>(std::atoi(t.name.c_str() + 4));
      if (l < opts.expert_plan->types.size() && !opts.expert_plan->types[l].empty()) t.type = opts.expert_plan->types[l][0];
    }
    tensors = SplitPerExpert(std::move(tensors), *opts.expert_plan, &per_expert_layers);
  }
  for (auto& t : tensors) {
    const uint32_t f = Fallback(t.type, t.cols);
    t.fell_back = f != t.type;
    t.type = f;
  }

  GgufWriter w;
  w.SetString("general.architecture", fam.arch);
  w.SetString("general.name", opts.name.empty() ? "moxie-export" : opts.name);
  int ftype = 0;
  for (const auto& tn : kTypes) {
    if (tn.id == opts.type) ftype = tn.ftype;
  }
  for (const auto& r : kRecipes) {
    if (r.recipe == opts.recipe) ftype = r.ftype;
  }
  w.SetU32("general.file_type", static_cast<uint32_t>(ftype));
  int64_t n_vocab = 0;
  for (const auto& t : tensors) {
    if (t.name == "token_embd.weight") n_vocab = t.rows;
  }
  MOXIE_RETURN_IF_ERROR(WriteModelMetadata(cfg, fam, n_vocab, &w));
  bool quantized = false;
  for (const auto& t : tensors) quantized |= BlockOf(t.type) > 1;
  if (quantized) w.SetU32("general.quantization_version", 2);
  if (!per_expert_layers.empty()) w.SetI32s("moxie.per_expert_layers", per_expert_layers);
  if (opts.write_tokenizer) {
    MOXIE_RETURN_IF_ERROR(opts.write_tokenizer(&w));
  } else if (LooksLikeGguf(tokenizer_from)) {
    MOXIE_ASSIGN_OR_RETURN(auto tf, GgufFile::Open(tokenizer_from));
    CopyTokenizerMetadata(*tf, &w);
  } else {
    MOXIE_RETURN_IF_ERROR(WriteTokenizerMetadata(tokenizer_from, &w));
  }

  for (const auto& t : tensors) MOXIE_RETURN_IF_ERROR(w.AddTensor(t.name, t.ne, t.type));
  MOXIE_RETURN_IF_ERROR(w.Open(out, opts.overwrite));
  uint64_t done = 0;
  const uint64_t total = w.data_bytes();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const OutTensor& t = tensors[i];
    MOXIE_RETURN_IF_ERROR(EmitTensor(t, src, &w, ctx, &done, total, opts));
    rep.tensors.push_back(ExportedTensor{t.name, t.cls, t.type, t.rows * t.cols, w.tensor(i).nbytes, t.fell_back});
  }
  MOXIE_RETURN_IF_ERROR(w.Close());
  std::error_code ec;
  rep.file_bytes = std::filesystem::file_size(out, ec);
  return rep;
}

}  // namespace moxie
