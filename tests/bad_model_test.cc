// Bad model folders: each gets a clear error naming the file, tensor or field — never a crash.
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "formats/tokenizer.h"
#include "models/model.h"
#include "runtime/session.h"
#include "tests/test_util.h"

namespace moxie {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A writable copy of a fixture folder.
class ModelCopy {
 public:
  explicit ModelCopy(const std::string& fixture) {
    for (const auto& e : fs::directory_iterator(testing::ModelDir(fixture))) {
      if (e.is_regular_file()) fs::copy_file(e.path(), fs::path(dir_.path()) / e.path().filename());
    }
  }
  std::string path() const { return dir_.path(); }
  std::string file(const std::string& n) const { return dir_.File(n); }

  json ReadConfig() const {
    std::ifstream in(file("config.json"));
    return json::parse(in);
  }
  void WriteConfig(const json& j) const { WriteText("config.json", j.dump(2)); }
  void WriteText(const std::string& name, const std::string& text) const {
    std::ofstream(file(name), std::ios::trunc) << text;
  }
  // Rewrites model.safetensors through `edit`, which may drop or replace tensors.
  template <typename Edit>
  void RewriteTensors(Edit edit) const {
    std::vector<std::vector<uint8_t>> keep;  // owned copies: the mapping closes before the write
    std::vector<NamedTensor> tensors;
    {
      auto st = SafetensorsFile::Open(file("model.safetensors"));
      ASSERT_TRUE(st.ok());
      keep.reserve((*st)->tensors().size());
      for (const auto& t : (*st)->tensors()) {
        keep.emplace_back(t.data, t.data + (t.end - t.begin));
        tensors.push_back({t.name, TensorView{keep.back().data(), t.dtype, t.shape}});
      }
    }
    edit(tensors);
    ASSERT_TRUE(WriteSafetensors(file("model.safetensors"), tensors).ok());
  }

 private:
  testing::TempDir dir_;
};

void ExpectLoadError(const std::string& dir, const std::vector<std::string>& needles) {
  auto m = LoadModel(dir);
  ASSERT_FALSE(m.ok()) << "model loaded but an error was expected";
  for (const auto& n : needles) {
    EXPECT_NE(m.status().message().find(n), std::string::npos)
        << "message lacks '" << n << "': " << m.status().message();
  }
}

TEST(BadModel, NotAFolder) { ExpectLoadError("/nonexistent/model", {"/nonexistent/model"}); }

TEST(BadModel, MalformedConfigJson) {
  ModelCopy m("mixtral");
  m.WriteText("config.json", R"({"model_type": "mixtral", "hidden_size": 64,,})");
  ExpectLoadError(m.path(), {"config.json", "malformed JSON"});
}

TEST(BadModel, MissingConfigField) {
  ModelCopy m("mixtral");
  json c = m.ReadConfig();
  c.erase("hidden_size");
  m.WriteConfig(c);
  ExpectLoadError(m.path(), {"config.json", "missing required field 'hidden_size'"});
}

TEST(BadModel, WrongFieldType) {
  ModelCopy m("olmoe");
  json c = m.ReadConfig();
  c["num_experts"] = "eight";
  m.WriteConfig(c);
  ExpectLoadError(m.path(), {"config.json", "'num_experts'", "expected an integer"});
}

TEST(BadModel, TopKLargerThanExperts) {
  ModelCopy m("qwen3moe");
  json c = m.ReadConfig();
  c["num_experts_per_tok"] = 9;
  m.WriteConfig(c);
  ExpectLoadError(m.path(), {"config.json", "top-k = 9", "number of experts (8)"});
}

// Counts that do not fit an int are refused, not narrowed (2^32 + 8 experts would load as 8).
TEST(BadModel, ExpertCountBeyondInt) {
  ModelCopy m("qwen3moe");
  json c = m.ReadConfig();
  c["num_experts"] = (int64_t{1} << 32) + 8;
  m.WriteConfig(c);
  ExpectLoadError(m.path(), {"config.json", "number of experts 4294967304"});
  c = m.ReadConfig();
  c["num_experts"] = 8;
  c["num_experts_per_tok"] = (int64_t{1} << 32) + 2;
  m.WriteConfig(c);
  ExpectLoadError(m.path(), {"config.json", "top-k = 4294967298"});
}

// A config.json that is not a regular file (a link to /dev/zero would read forever).
TEST(BadModel, ConfigNotARegularFile) {
  ModelCopy m("qwen3moe");
  fs::remove(m.file("config.json"));
  fs::create_symlink("/dev/zero", m.file("config.json"));
  ExpectLoadError(m.path(), {"config.json", "not a regular file"});
}

// Chained Replace normalizers that could grow a prompt a billion-fold are refused at load.
TEST(BadModel, NormalizerGrowthRefused) {
  ModelCopy m("qwen3moe");
  std::ifstream in(m.file("tokenizer.json"));
  json t = json::parse(in);
  json steps = json::array();
  for (int i = 0; i < 6; ++i) {
    steps.push_back({{"type", "Replace"}, {"pattern", {{"String", "l"}}}, {"content", std::string(1000, 'l')}});
  }
  t["normalizer"] = {{"type", "Sequence"}, {"normalizers", steps}};
  m.WriteText("tokenizer.json", t.dump());
  auto tok = Tokenizer::FromPath(m.path());
  ASSERT_FALSE(tok.ok());
  const std::string msg = tok.status().message();
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("could grow a text"), std::string::npos) << msg;
}

// A GGUF tensor of a type Moxie does not read, on a tensor the llama-arch loader re-orders
// (attn_q): a clear error naming it, not a copy past its end.
TEST(BadModel, GgufUnsupportedTypeOnPermutedTensor) {
  testing::TempDir d;
  const std::string path = d.File("model.gguf");
  fs::copy_file(testing::ModelDir("mixtral") + "/model.q8_0.gguf", path);
  std::vector<char> bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string name = "blk.0.attn_q.weight";
  size_t at = std::string::npos;
  for (size_t i = 8; i + name.size() < bytes.size(); ++i) {
    uint64_t len = 0;
    std::memcpy(&len, &bytes[i - 8], 8);
    if (len == name.size() && std::memcmp(&bytes[i], name.data(), name.size()) == 0) {
      at = i + name.size();
      break;
    }
  }
  ASSERT_NE(at, std::string::npos) << "tensor info not found";
  uint32_t n_dims = 0;
  std::memcpy(&n_dims, &bytes[at], 4);
  ASSERT_EQ(n_dims, 2u);
  const uint32_t kI8 = 24;  // a ggml type no weight may have here
  std::memcpy(&bytes[at + 4 + 8 * n_dims], &kI8, 4);
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ExpectLoadError(path, {"blk.0.attn_q.weight", "I8"});
}

TEST(BadModel, UnknownModelType) {
  ModelCopy m("mixtral");
  json c = m.ReadConfig();
  c["model_type"] = "llama9";
  m.WriteConfig(c);
  ExpectLoadError(m.path(), {"'llama9' is not supported", "mixtral", "deepseek_v3", "qwen3_moe"});
}

TEST(BadModel, QuantizedCheckpointRefused) {
  ModelCopy m("deepseek-v3");
  json c = m.ReadConfig();
  c["quantization_config"] = {{"quant_method", "fp8"}};
  m.WriteConfig(c);
  ExpectLoadError(m.path(), {"quant_method", "fp8"});
}

TEST(BadModel, ShapeContradictsConfig) {
  ModelCopy m("qwen2moe");
  json c = m.ReadConfig();
  c["moe_intermediate_size"] = 97;
  m.WriteConfig(c);
  ExpectLoadError(m.path(), {"model.safetensors", "experts.0.gate_proj.weight", "has shape [96, 64]",
                             "implies [97, 64]"});
}

TEST(BadModel, MissingTensor) {
  ModelCopy m("olmoe");
  m.RewriteTensors([](std::vector<NamedTensor>& t) {
    std::erase_if(t, [](const NamedTensor& x) {
      return x.name == "model.layers.1.self_attn.k_norm.weight";
    });
  });
  ExpectLoadError(m.path(), {"missing tensor 'model.layers.1.self_attn.k_norm.weight'", "[64]"});
}

TEST(BadModel, UnsupportedTensorDtype) {
  ModelCopy m("mixtral");
  m.RewriteTensors([](std::vector<NamedTensor>& t) {
    for (auto& x : t) {
      if (x.name == "model.norm.weight") x.view.dtype = DType::kI32;
    }
  });
  ExpectLoadError(m.path(), {"model.norm.weight", "dtype I32", "F32, F16, BF16"});
}

TEST(BadModel, TruncatedSafetensors) {
  ModelCopy m("mixtral");
  const auto size = fs::file_size(m.file("model.safetensors"));
  fs::resize_file(m.file("model.safetensors"), size / 2);
  ExpectLoadError(m.path(), {"model.safetensors", "outside the data buffer"});
}

TEST(BadModel, NoWeightsFile) {
  ModelCopy m("mixtral");
  fs::remove(m.file("model.safetensors"));
  ExpectLoadError(m.path(), {"no model.safetensors or model.safetensors.index.json"});
}

TEST(BadModel, IndexNamesFileOutsideFolder) {
  ModelCopy m("qwen2moe-bf16-sharded");
  std::ifstream in(m.file("model.safetensors.index.json"));
  json idx = json::parse(in);
  idx["weight_map"]["model.norm.weight"] = "../../etc/passwd";
  m.WriteText("model.safetensors.index.json", idx.dump());
  ExpectLoadError(m.path(), {"model.safetensors.index.json", "invalid shard file"});
}

TEST(BadModel, IndexNamesTensorMissingFromShard) {
  ModelCopy m("qwen2moe-bf16-sharded");
  std::ifstream in(m.file("model.safetensors.index.json"));
  json idx = json::parse(in);
  idx["weight_map"]["model.extra.weight"] = "model-00001-of-00002.safetensors";
  m.WriteText("model.safetensors.index.json", idx.dump());
  ExpectLoadError(m.path(), {"model.extra.weight", "model-00001-of-00002.safetensors",
                             "no such tensor"});
}

TEST(BadModel, IndexShardMissing) {
  ModelCopy m("qwen2moe-bf16-sharded");
  fs::remove(m.file("model-00002-of-00002.safetensors"));
  ExpectLoadError(m.path(), {"model-00002-of-00002.safetensors"});
}

TEST(BadModel, GroupsDoNotDivideExperts) {
  ModelCopy m("deepseek-v3");
  json c = m.ReadConfig();
  c["n_group"] = 3;
  m.WriteConfig(c);
  ExpectLoadError(m.path(), {"n_group = 3", "does not divide"});
}

TEST(BadModel, UnsupportedRopeScaling) {
  ModelCopy m("qwen3moe");
  json c = m.ReadConfig();
  c["rope_scaling"] = {{"rope_type", "warp"}, {"factor", 2.0}};
  m.WriteConfig(c);
  ExpectLoadError(m.path(), {"rope scaling type 'warp'"});
}

// Fused (transformers v5) expert tensors load and give the same logits as per-expert tensors.
// Found by fuzzing: a GGUF claiming 4294967295 layers made the loader loop over them before any
// check. The layer count is checked first now; the same for deeply nested JSON (stack overflow).
TEST(BadModel, GgufLayerCountOutOfRangeFailsFast) {
  ModelCopy m("qwen3moe");
  std::string bytes;
  {
    std::ifstream in(m.file("model.gguf"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string key = "qwen3moe.block_count";
  const size_t at = bytes.find(key);
  ASSERT_NE(at, std::string::npos);
  const size_t value = at + key.size() + 4;  // after the key: u32 type, then the u32 value
  uint32_t type = 0;
  std::memcpy(&type, bytes.data() + at + key.size(), 4);
  ASSERT_EQ(type, 4u) << "block_count is not stored as u32";
  for (uint32_t bad : {0u, 4097u, 0xffffffffu}) {
    std::memcpy(bytes.data() + value, &bad, 4);
    std::ofstream(m.file("bad.gguf"), std::ios::binary | std::ios::trunc) << bytes;
    ExpectLoadError(m.file("bad.gguf"), {"bad.gguf", "qwen3moe.block_count", std::to_string(bad), "[1, 4096]"});
  }
}

// The same for the head counts (per-head loops run before the model's checks).
TEST(BadModel, GgufHeadCountOutOfRangeFailsFast) {
  ModelCopy m("mixtral");
  std::string bytes;
  {
    std::ifstream in(m.file("model.gguf"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  for (const std::string key : {"llama.attention.head_count", "llama.attention.head_count_kv"}) {
    std::string b = bytes;
    const size_t at = b.find(key + std::string(1, '\x04'));  // key, then the first byte of the u32 type
    ASSERT_NE(at, std::string::npos) << key;
    const uint32_t bad = 0x7fffffffu;
    std::memcpy(b.data() + at + key.size() + 4, &bad, 4);
    std::ofstream(m.file("bad.gguf"), std::ios::binary | std::ios::trunc) << b;
    ExpectLoadError(m.file("bad.gguf"), {"bad.gguf", key, "2147483647", "[1, 4096]"});
  }
}

TEST(BadModel, DeeplyNestedConfigJson) {
  ModelCopy m("qwen3moe");
  json c = m.ReadConfig();
  std::string text = c.dump();
  text.insert(text.size() - 1, ", \"x\": " + std::string(50000, '[') + std::string(50000, ']'));
  m.WriteText("config.json", text);
  ExpectLoadError(m.path(), {"config.json", "nested deeper than 256 levels"});
}

TEST(ModelLayouts, FusedExpertTensorsMatchPerExpert) {
  ModelCopy m("qwen3moe");
  const int E = 8, I = 96, H = 64;
  std::vector<std::vector<float>> fused;
  m.RewriteTensors([&](std::vector<NamedTensor>& t) {
    std::map<std::string, TensorView> by;
    for (auto& x : t) by[x.name] = x.view;
    for (int l = 0; l < 3; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".mlp.experts.";
      std::vector<float> gu(static_cast<size_t>(E) * 2 * I * H), dn(static_cast<size_t>(E) * H * I);
      for (int e = 0; e < E; ++e) {
        const std::string q = p + std::to_string(e) + ".";
        std::memcpy(&gu[static_cast<size_t>(e) * 2 * I * H], by[q + "gate_proj.weight"].data, I * H * 4);
        std::memcpy(&gu[static_cast<size_t>(e) * 2 * I * H + I * H], by[q + "up_proj.weight"].data, I * H * 4);
        std::memcpy(&dn[static_cast<size_t>(e) * H * I], by[q + "down_proj.weight"].data, H * I * 4);
      }
      fused.push_back(std::move(gu));
      fused.push_back(std::move(dn));
      t.push_back({p + "gate_up_proj", TensorView{fused[fused.size() - 2].data(), DType::kF32, Shape{{E, 2 * I, H}}}});
      t.push_back({p + "down_proj", TensorView{fused.back().data(), DType::kF32, Shape{{E, H, I}}}});
    }
    std::erase_if(t, [](const NamedTensor& x) {
      return x.name.find(".mlp.experts.") != std::string::npos &&
             x.name.find("_proj.weight") != std::string::npos;
    });
  });
  auto a = LoadModel(testing::ModelDir("qwen3moe"));
  auto b = LoadModel(m.path());
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_TRUE((*b)->info().unused_tensors.empty());
  EXPECT_EQ((*a)->info().params_total, (*b)->info().params_total);
  const int32_t toks[] = {84, 294, 32, 113, 117};
  std::vector<float> la(5 * 512), lb(5 * 512);
  for (auto* pr : {&a, &b}) {
    SessionOptions so;
    so.n_threads = 1;
    so.max_ctx = 16;
    auto s = Session::Create(***pr, so);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Feed(0, toks, 5, true, (pr == &a ? la : lb).data()).ok());
  }
  EXPECT_TRUE(testing::AllClose(la.data(), lb.data(), la.size(), 0.f, 512));
}

// A context too large for the machine is an error naming the sizes, not a crash.
TEST(BadInput, ContextLargerThanMemoryIsAnError) {
  auto m = LoadModel(testing::ModelDir("mixtral"));
  ASSERT_TRUE(m.ok());
  SessionOptions so;
  so.n_threads = 1;
  so.n_seq = 4096;
  so.max_ctx = 1 << 30;  // petabytes of KV cache
  auto s = Session::Create(**m, so);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("4096 sequence(s) x 1073741824 positions"), std::string::npos)
      << s.status().message();
}

// Inputs to a loaded model: tokens outside the vocabulary, context overflow, bad slots.
TEST(BadInput, TokensAndPositionsAreChecked) {
  auto m = LoadModel(testing::ModelDir("mixtral"));
  ASSERT_TRUE(m.ok());
  SessionOptions so;
  so.n_threads = 1;
  so.max_ctx = 8;
  auto s = Session::Create(**m, so);
  ASSERT_TRUE(s.ok());
  std::vector<float> logits(512 * 16);
  const int32_t bad[] = {1, 512};
  Status st = (*s)->Feed(0, bad, 2, true, logits.data());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("token id 512"), std::string::npos) << st.message();
  const int32_t many[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  (*s)->Reset(0);
  st = (*s)->Feed(0, many, 9, true, logits.data());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("context size 8"), std::string::npos) << st.message();
  EXPECT_FALSE((*s)->Feed(3, many, 1, true, logits.data()).ok());
}

}  // namespace
}  // namespace moxie
