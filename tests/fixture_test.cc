// Whole-model tests against external references (../shared/fixtures, copied to tests/data):
// Hugging Face transformers (float32, eager) and, for deepseek-v2, llama.cpp.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "formats/gguf_export.h"
#include "formats/npy.h"
#include "formats/synth_model.h"
#include "kernels/kernel_table.h"
#include "moe/routing_trace.h"
#include "runtime/session.h"
#include "tests/test_util.h"

namespace moxie {
namespace {

using nlohmann::json;
using testing::ModelDir;

constexpr float kLogitTol = 1e-4f;  // acceptance; oracles agree to ~4e-6
constexpr float kWeightTol = 1e-5f;

const char* kFixtures[] = {"deepseek-v2", "deepseek-v3", "deepseek-v3-nogroup", "mixtral",
                           "olmoe",       "qwen2moe",    "qwen2moe-bf16-sharded", "qwen3moe"};

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::vector<int32_t> Ids(const json& j) { return j.get<std::vector<int32_t>>(); }

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Session> session;
};

Loaded LoadPath(const std::string& path, int n_threads = 2, bool q8_act = true, bool repack = true,
                DType kv_type = DType::kF32, int kv_block = 0) {
  Loaded l;
  LoadOptions lo;
  lo.repack = repack;
  auto m = LoadModel(path, lo);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return l;
  l.model = std::move(m).value();
  SessionOptions so;
  so.n_threads = n_threads;
  so.max_ctx = 256;
  so.max_batch = 64;  // the long sequence (96) is fed in two chunks
  so.quantized_activations = q8_act;
  so.kv_type = kv_type;
  so.kv_block = kv_block;
  auto s = Session::Create(*l.model, so);
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (s.ok()) l.session = std::move(s).value();
  return l;
}

Loaded Load(const std::string& name) { return LoadPath(ModelDir(name)); }

// The mixed batch of the batch-invariance tests: sequence 0 = prompt a[0..10) and sequence 1 =
// long b[0..4) prefilled, then one batch interleaving a[10..13) and b[4..6).
constexpr int32_t kMixedPos[] = {10, 4, 11, 5, 12};
constexpr int32_t kMixedSeq[] = {0, 1, 0, 1, 0};
std::vector<float> MixedBatchLogits(Session& s, const std::vector<int32_t>& a, const std::vector<int32_t>& b,
                                    size_t V) {
  std::vector<float> tmp(64 * V), mixed(5 * V);
  EXPECT_TRUE(s.Feed(0, a.data(), 10, true, tmp.data()).ok());
  EXPECT_TRUE(s.Feed(1, b.data(), 4, true, tmp.data()).ok());
  const int32_t tok[] = {a[10], b[4], a[11], b[5], a[12]};
  Batch batch;
  batch.n_tok = 5;
  batch.tokens = tok;
  batch.pos = kMixedPos;
  batch.seq = kMixedSeq;
  EXPECT_TRUE(s.Forward(batch, mixed.data()).ok());
  return mixed;
}

class FixtureTest : public ::testing::TestWithParam<const char*> {};

// Logits (prefill and decode) within 1e-4 of the reference, argmax identical at every position,
// and the selected experts identical at every MoE layer and token.
void CheckLogitsAndRouting(const std::string& name, const std::string& model_path) {
  const std::string dir = ModelDir(name);
  Loaded l = LoadPath(model_path);
  ASSERT_TRUE(l.session);
  const json seqs = ReadJson(dir + "/reference/sequences.json");
  const size_t V = static_cast<size_t>(l.model->info().n_vocab);
  for (const std::string seq_name : {"prompt", "long"}) {
    const auto ids = Ids(seqs[seq_name]["ids"]);
    const int T = static_cast<int>(ids.size());
    for (const std::string mode : {"prefill", "decode"}) {
      SCOPED_TRACE(model_path + " " + seq_name + " " + mode);
      std::vector<float> logits(static_cast<size_t>(T) * V);
      RoutingTrace trace;
      ForwardOptions fo;
      fo.observer = &trace;
      l.session->Reset(0);
      if (mode == "prefill") {
        ASSERT_TRUE(l.session->Feed(0, ids.data(), T, true, logits.data(), fo).ok());
      } else {
        for (int t = 0; t < T; ++t) {
          ASSERT_TRUE(l.session->Feed(0, &ids[t], 1, false, logits.data() + t * V, fo).ok());
        }
      }
      auto ref = ReadNpyF32(dir + "/reference/" + seq_name + "." + mode + ".npy");
      ASSERT_TRUE(ref.ok()) << ref.status().message();
      ASSERT_EQ(ref->data.size(), logits.size());
      float max_diff = 0;
      EXPECT_TRUE(testing::AllClose(logits.data(), ref->data.data(), logits.size(), kLogitTol, V,
                                    &max_diff));
      std::printf("    %-40s %-6s %-7s max |logit diff| %.2e\n", model_path.substr(model_path.find("models/") + 7).c_str(),
                  seq_name.c_str(), mode.c_str(), max_diff);
      for (int t = 0; t < T; ++t) {
        const float* a = logits.data() + t * V;
        const float* b = ref->data.data() + t * V;
        EXPECT_EQ(std::max_element(a, a + V) - a, std::max_element(b, b + V) - b) << "row " << t;
      }
      // Routing (the reference records the prefill pass; decode must choose the same experts).
      const json rref = ReadJson(dir + "/reference/" + seq_name + ".routing.json");
      std::vector<int> want_layers = rref["moe_layers"].get<std::vector<int>>();
      std::vector<int> got_layers;
      for (const auto& [layer, rows] : trace.layers()) got_layers.push_back(layer);
      EXPECT_EQ(got_layers, want_layers);
      for (const auto& L : rref["layers"]) {
        const int layer = L["layer"].get<int>();
        const auto& rows = trace.layers().at(layer);
        ASSERT_EQ(rows.size(), static_cast<size_t>(T));
        for (int t = 0; t < T; ++t) {
          auto want_ids = L["ids"][t].get<std::vector<int>>();
          auto want_w = L["weights"][t].get<std::vector<float>>();
          const auto& row = rows.at(t);
          std::vector<std::pair<int, float>> got;
          for (size_t j = 0; j < row.ids.size(); ++j) got.emplace_back(row.ids[j], row.weights[j]);
          std::sort(got.begin(), got.end());
          ASSERT_EQ(got.size(), want_ids.size()) << "layer " << layer << " token " << t;
          for (size_t j = 0; j < got.size(); ++j) {
            EXPECT_EQ(got[j].first, want_ids[j]) << "layer " << layer << " token " << t;
            EXPECT_NEAR(got[j].second, want_w[j], kWeightTol) << "layer " << layer << " token " << t;
          }
        }
      }
    }
  }
}

TEST_P(FixtureTest, LogitsAndRoutingMatchReference) {
  CheckLogitsAndRouting(GetParam(), ModelDir(GetParam()));
}

// The same weights from the fixture's F32 GGUF (llama.cpp's layout: stacked experts, permuted
// Mixtral Q/K rows, split DeepSeek k_b/v_b) give the same logits and routing.
TEST_P(FixtureTest, GgufLogitsAndRoutingMatchReference) {
  CheckLogitsAndRouting(GetParam(), ModelDir(GetParam()) + "/model.gguf");
}

// The fixture's Q8_0 GGUF (made by the reference tools), in both activation modes:
//  - f32 activations against the dequantized weights: must equal Hugging Face run on the
//    dequantized weights (hf-dequant, ~1e-5) and be no further from the f32 reference than
//    llama.cpp's own Q8_0 logits are;
//  - 8-bit activations (the default, llama.cpp's scheme): must be closer to llama.cpp's Q8_0 logits
//    than the exact dequantized model is (same quantization of the activations; only summation
//    order differs).
TEST_P(FixtureTest, Q8_0GgufMatchesReferences) {
  const std::string name = GetParam();
  const std::string dir = ModelDir(name);
  const std::string gguf = dir + "/model.q8_0.gguf";
  if (!std::filesystem::exists(gguf)) GTEST_SKIP() << name << " has no Q8_0 GGUF (bf16 fixture)";
  const auto ids = Ids(ReadJson(dir + "/reference/sequences.json")["prompt"]["ids"]);
  int relaid = -1;
  auto run = [&](bool q8_act, bool repack = true) {
    Loaded l = LoadPath(gguf, 2, q8_act, repack);
    EXPECT_TRUE(l.session);
    if (!l.session) return std::vector<float>{};
    if (repack) relaid = l.model->info().relaid_tensors;
    const size_t V = static_cast<size_t>(l.model->info().n_vocab);
    std::vector<float> logits(ids.size() * V);
    EXPECT_TRUE(l.session->Feed(0, ids.data(), static_cast<int>(ids.size()), true, logits.data()).ok());
    return logits;
  };
  const std::vector<float> exact = run(false), q8 = run(true);
  ASSERT_FALSE(exact.empty());
  ASSERT_FALSE(q8.empty());
  // Weights re-laid out at load (Q8_0_R8) give the same bits as the file's layout.
  const std::vector<float> q8_plain = run(true, false);
  ASSERT_EQ(q8_plain.size(), q8.size());
  EXPECT_EQ(std::memcmp(q8_plain.data(), q8.data(), q8.size() * 4), 0) << "repacked != plain Q8_0";
  if (Avx2Kernels() != nullptr) {
    EXPECT_GT(relaid, 0) << "no weight was re-laid out";
  }
  const size_t V = exact.size() / ids.size();
  auto f32 = ReadNpyF32(dir + "/reference/prompt.prefill.npy");
  auto llama = ReadNpyF32(dir + "/reference/q8_0/llama.cpp.prompt.prefill.npy");
  ASSERT_TRUE(f32.ok() && llama.ok());
  auto max_diff = [&](const std::vector<float>& a, const std::vector<float>& b) {
    float m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
    return m;
  };
  const float ours = max_diff(exact, f32->data), theirs = max_diff(llama->data, f32->data);
  const float q8_llama = max_diff(q8, llama->data), exact_llama = max_diff(exact, llama->data);
  const float q8_f32 = max_diff(q8, f32->data);
  std::printf("    %-22s Q8_0 vs f32: moxie %.3f (8-bit act. %.3f), llama.cpp %.3f; 8-bit activations vs "
              "llama.cpp %.2e (f32 activations %.2e)\n",
              name.c_str(), ours, q8_f32, theirs, q8_llama, exact_llama);
  EXPECT_LE(ours, theirs);
  if (name.rfind("deepseek", 0) != 0) {
    EXPECT_LT(q8_llama, 0.25f * exact_llama);
  } else {
    // MLA: llama.cpp multiplies the absorbed attn_k_b / attn_v_b (8-bit activations) where Moxie
    // expands kv_b_proj in f32, so the two 8-bit paths differ by more than summation order (on
    // deepseek-v3 a group-limited routing decision flips). Checked: argmax agreement with
    // llama.cpp's Q8_0 at >= 80 % of positions.
    size_t agree = 0;
    for (size_t t = 0; t < ids.size(); ++t) {
      const float* a = q8.data() + t * V;
      const float* b = llama->data.data() + t * V;
      agree += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
    }
    std::printf("    %-22s 8-bit activations: argmax agrees with llama.cpp Q8_0 at %zu/%zu positions\n",
                name.c_str(), agree, ids.size());
    EXPECT_GE(agree * 5, ids.size() * 4);
  }
  const std::string hf = dir + "/reference/q8_0/hf-dequant.prompt.prefill.npy";
  if (std::filesystem::exists(hf)) {
    auto h = ReadNpyF32(hf);
    ASSERT_TRUE(h.ok());
    EXPECT_TRUE(testing::AllClose(exact.data(), h->data.data(), exact.size(), kLogitTol, V));
  }
}

// The 32 greedy tokens after the prompt (prefill, then one token at a time).
TEST_P(FixtureTest, GreedyTokensMatchReference) {
  const std::string name = GetParam();
  Loaded l = Load(name);
  ASSERT_TRUE(l.session);
  const json g = ReadJson(ModelDir(name) + "/reference/greedy.json");
  const auto prompt = Ids(g["prompt"]);
  const auto want = Ids(g["generated"]);
  const size_t V = static_cast<size_t>(l.model->info().n_vocab);
  std::vector<float> logits(V);
  ASSERT_TRUE(l.session->Feed(0, prompt.data(), static_cast<int>(prompt.size()), false,
                              logits.data()).ok());
  std::vector<int32_t> got;
  for (size_t i = 0; i < want.size(); ++i) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) -
                                              logits.begin());
    got.push_back(next);
    ASSERT_TRUE(l.session->Feed(0, &next, 1, false, logits.data()).ok());
  }
  EXPECT_EQ(got, want);
}

// `moxie info`'s parameter counts equal the fixture generator's (meta.json).
TEST_P(FixtureTest, ParameterCounts) {
  const std::string name = GetParam();
  auto m = LoadModel(ModelDir(name));
  ASSERT_TRUE(m.ok()) << m.status().message();
  const json meta = ReadJson(ModelDir(name) + "/meta.json");
  EXPECT_EQ((*m)->info().params_total, meta["params"]["total"].get<int64_t>());
  EXPECT_EQ((*m)->info().params_active, meta["params"]["active_per_token"].get<int64_t>());
}

// Several sequences at different positions in one batch give the same logits as each alone.
// Batch invariance: a sequence decoded alone and decoded in the same steps as another sequence
// gets bit-identical logits (fixed reduction order per row and token in every kernel, per-token
// routing and combine order). Uses the Q8_0 GGUF with 8-bit activations where there is one.
TEST_P(FixtureTest, DecodeLogitsBitIdenticalAloneAndBatched) {
  for (DType kv_type : {DType::kF32, DType::kF16}) {
    SCOPED_TRACE(std::string("KV cache ") + DTypeName(kv_type));
  const std::string name = GetParam();
  const std::string q8 = ModelDir(name) + "/model.q8_0.gguf";
  const std::string path = std::filesystem::exists(q8) ? q8 : ModelDir(name);
  auto m = LoadModel(path);
  ASSERT_TRUE(m.ok());
  const json seqs = ReadJson(ModelDir(name) + "/reference/sequences.json");
  const auto a = Ids(seqs["prompt"]["ids"]);
  const auto b = Ids(seqs["long"]["ids"]);
  const size_t V = static_cast<size_t>((*m)->info().n_vocab);
  const int kSteps = 12;
  auto run = [&](bool with_b) {
    SessionOptions so;
    so.n_threads = 2;
    so.n_seq = 2;
    so.max_ctx = 64;
    so.kv_type = kv_type;
    auto s = Session::Create(**m, so);
    EXPECT_TRUE(s.ok());
    std::vector<float> out(kSteps * V), tmp(2 * V);
    for (int i = 0; i < kSteps; ++i) {
      // Sequence 1 runs ahead of sequence 0 (other positions, other tokens, other experts).
      const int32_t tok[] = {a[static_cast<size_t>(i)], b[static_cast<size_t>(i)], b[static_cast<size_t>(i + 40)]};
      const int32_t pos[] = {i, 2 * i, 2 * i + 1};
      const int32_t sq[] = {0, 1, 1};
      Batch batch;
      batch.n_tok = with_b ? 3 : 1;
      batch.tokens = tok;
      batch.pos = pos;
      batch.seq = sq;
      const int32_t rows[] = {0};
      batch.logit_rows = rows;
      batch.n_logit_rows = 1;
      EXPECT_TRUE((*s)->Forward(batch, tmp.data()).ok());
      std::memcpy(out.data() + static_cast<size_t>(i) * V, tmp.data(), V * sizeof(float));
    }
    return out;
  };
  const auto alone = run(false), batched = run(true);
  EXPECT_EQ(std::memcmp(alone.data(), batched.data(), alone.size() * sizeof(float)), 0)
      << path << ": logits of sequence 0 depend on the other sequence in its batch";
  }
}

// Prefill equals decoding token by token, bit for bit: a prompt of 48 tokens goes through one
// forward (attention tiles of up to 32 queries: consecutive tokens x a K/V head's query heads,
// some of them split into per-token sub-tiles; 8- and 4-token matmul tiles) and through 48
// one-token forwards; every position's logits must be the same bits (f32 and f16 KV caches).
TEST_P(FixtureTest, PrefillLogitsBitIdenticalToTokenByTokenDecode) {
  const std::string name = GetParam();
  const std::string q8 = ModelDir(name) + "/model.q8_0.gguf";
  const std::string path = std::filesystem::exists(q8) ? q8 : ModelDir(name);
  auto m = LoadModel(path);
  ASSERT_TRUE(m.ok());
  const auto ids = Ids(ReadJson(ModelDir(name) + "/reference/sequences.json")["long"]["ids"]);
  const int T = std::min<int>(48, static_cast<int>(ids.size()));
  ASSERT_GE(T, 40) << "the fixture's long sequence is too short to cross a tile";
  const size_t V = static_cast<size_t>((*m)->info().n_vocab);
  for (DType kv_type : {DType::kF32, DType::kF16}) {
    SCOPED_TRACE(path + ", KV cache " + DTypeName(kv_type));
    SessionOptions so;
    so.n_threads = 2;
    so.max_ctx = 64;
    so.kv_type = kv_type;
    auto prefill = Session::Create(**m, so);
    auto decode = Session::Create(**m, so);
    ASSERT_TRUE(prefill.ok() && decode.ok());
    std::vector<float> a(static_cast<size_t>(T) * V), b(static_cast<size_t>(T) * V);
    ASSERT_TRUE((*prefill)->Feed(0, ids.data(), T, true, a.data()).ok());
    for (int t = 0; t < T; ++t) {
      const size_t u = static_cast<size_t>(t);
      ASSERT_TRUE((*decode)->Feed(0, &ids[u], 1, false, b.data() + u * V).ok());
    }
    for (int t = 0; t < T; ++t) {
      EXPECT_EQ(std::memcmp(a.data() + static_cast<size_t>(t) * V, b.data() + static_cast<size_t>(t) * V,
                            V * sizeof(float)),
                0)
          << "position " << t;
    }
  }
}

// An f16 KV cache (each K/V value rounded to f16 once: relative error <= 2^-11) keeps prefill
// and decode logits near the reference: 0.9e-3..2.7e-3 on these fixtures, against 1e-2 here.
// The f16 logits must also differ from the f32 cache's (the f16 path ran).
TEST_P(FixtureTest, F16KvCacheStaysNearReference) {
  const std::string name = GetParam();
  const std::string dir = ModelDir(name);
  Loaded l16 = LoadPath(dir, 2, true, true, DType::kF16);
  Loaded l32 = LoadPath(dir);
  ASSERT_TRUE(l16.session && l32.session);
  const json seqs = ReadJson(dir + "/reference/sequences.json");
  const size_t V = static_cast<size_t>(l16.model->info().n_vocab);
  for (const std::string seq_name : {"prompt", "long"}) {
    const auto ids = Ids(seqs[seq_name]["ids"]);
    const int T = static_cast<int>(ids.size());
    for (const std::string mode : {"prefill", "decode"}) {
      SCOPED_TRACE(name + " " + seq_name + " " + mode);
      std::vector<float> got(static_cast<size_t>(T) * V), f32(got.size());
      for (Loaded* l : {&l16, &l32}) {
        float* out = l == &l16 ? got.data() : f32.data();
        l->session->Reset(0);
        if (mode == "prefill") {
          ASSERT_TRUE(l->session->Feed(0, ids.data(), T, true, out).ok());
        } else {
          for (int t = 0; t < T; ++t) ASSERT_TRUE(l->session->Feed(0, &ids[t], 1, false, out + t * V).ok());
        }
      }
      auto ref = ReadNpyF32(dir + "/reference/" + seq_name + "." + mode + ".npy");
      ASSERT_TRUE(ref.ok()) << ref.status().message();
      float max_diff = 0;
      EXPECT_TRUE(testing::AllClose(got.data(), ref->data.data(), got.size(), 1e-2f, V, &max_diff));
      std::printf("    %-28s %-6s %-7s f16 KV: max |logit diff| %.2e\n", name.c_str(), seq_name.c_str(),
                  mode.c_str(), max_diff);
      EXPECT_NE(std::memcmp(got.data(), f32.data(), got.size() * sizeof(float)), 0) << "f16 cache not used";
    }
  }
}

// The KV cache's blocks (runs of positions whose rows lie together) change no bit: prefill and
// decode logits with blocks of 3 and 7 positions (attention splits its keys at every block end)
// equal those of the automatic block (one block for these small caches), f32 and f16.
TEST_P(FixtureTest, KvCacheBlocksChangeNoLogit) {
  const std::string name = GetParam();
  const std::string dir = ModelDir(name);
  const json seqs = ReadJson(dir + "/reference/sequences.json");
  const auto ids = Ids(seqs["long"]["ids"]);
  const int T = static_cast<int>(ids.size());
  for (DType kv_type : {DType::kF32, DType::kF16}) {
    Loaded base = LoadPath(dir, 2, true, true, kv_type);
    ASSERT_TRUE(base.session);
    ASSERT_EQ(base.session->kv_block(), base.session->max_ctx()) << "a small cache is one block";
    const size_t V = static_cast<size_t>(base.model->info().n_vocab);
    std::vector<float> want(static_cast<size_t>(T) * V), got(want.size());
    for (int block : {3, 7}) {
      Loaded l = LoadPath(dir, 2, true, true, kv_type, block);
      ASSERT_TRUE(l.session);
      ASSERT_EQ(l.session->kv_block(), block);
      for (const std::string mode : {"prefill", "decode"}) {
        SCOPED_TRACE(name + " " + DTypeName(kv_type) + " block " + std::to_string(block) + " " + mode);
        for (Loaded* x : {&base, &l}) {
          float* out = x == &base ? want.data() : got.data();
          x->session->Reset(0);
          if (mode == "prefill") {
            ASSERT_TRUE(x->session->Feed(0, ids.data(), T, true, out).ok());
          } else {
            for (int t = 0; t < T; ++t) ASSERT_TRUE(x->session->Feed(0, &ids[t], 1, false, out + t * V).ok());
          }
        }
        EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
      }
    }
  }
}

// A sequence copied into another slot (Session::CopySequence) continues exactly as the original.
TEST_P(FixtureTest, CopiedSequenceContinuesLikeTheOriginal) {
  const std::string name = GetParam();
  auto m = LoadModel(ModelDir(name));
  ASSERT_TRUE(m.ok());
  const json seqs = ReadJson(ModelDir(name) + "/reference/sequences.json");
  const auto a = Ids(seqs["long"]["ids"]);
  const size_t V = static_cast<size_t>((*m)->info().n_vocab);
  for (const auto& [kv_type, block] : {std::pair{DType::kF32, 0}, {DType::kF16, 0}, {DType::kF32, 6}}) {
    SCOPED_TRACE(std::string("KV cache ") + DTypeName(kv_type) + ", block " + std::to_string(block));
    SessionOptions so;
    so.n_threads = 2;
    so.n_seq = 3;
    so.max_ctx = 64;
    so.kv_type = kv_type;
    so.kv_block = block;  // 6: the 20 copied positions end inside a block
    auto s = Session::Create(**m, so);
    ASSERT_TRUE(s.ok());
    std::vector<float> want(4 * V), got(4 * V), tmp(V);
    ASSERT_TRUE((*s)->Feed(2, a.data() + 30, 12, false, tmp.data()).ok());  // slot 2: other content
    ASSERT_TRUE((*s)->Feed(0, a.data(), 20, false, tmp.data()).ok());
    ASSERT_TRUE((*s)->CopySequence(0, 2).ok());
    EXPECT_EQ((*s)->n_past(2), 20);
    ASSERT_TRUE((*s)->Feed(0, a.data() + 20, 4, true, want.data()).ok());
    ASSERT_TRUE((*s)->Feed(2, a.data() + 20, 4, true, got.data()).ok());
    EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
    EXPECT_FALSE((*s)->CopySequence(0, 3).ok());
    EXPECT_FALSE((*s)->CopySequence(-1, 0).ok());
  }
}

TEST_P(FixtureTest, BatchOfSequencesMatchesSingleSequences) {
  const std::string name = GetParam();
  auto m = LoadModel(ModelDir(name));
  ASSERT_TRUE(m.ok());
  SessionOptions so;
  so.n_threads = 2;
  so.n_seq = 2;
  so.max_ctx = 64;
  auto s = Session::Create(**m, so);
  ASSERT_TRUE(s.ok());
  const json seqs = ReadJson(ModelDir(name) + "/reference/sequences.json");
  const auto a = Ids(seqs["prompt"]["ids"]);
  const auto b = Ids(seqs["long"]["ids"]);
  const size_t V = static_cast<size_t>((*m)->info().n_vocab);
  const std::vector<float> mixed = MixedBatchLogits(**s, a, b, V);
  // References: each sequence alone, prefilled in one pass.
  const std::string dir = ModelDir(name) + "/reference/";
  auto ref_a = ReadNpyF32(dir + "prompt.prefill.npy");
  auto ref_b = ReadNpyF32(dir + "long.prefill.npy");
  ASSERT_TRUE(ref_a.ok() && ref_b.ok());
  for (int i = 0; i < 5; ++i) {
    const auto& ref = kMixedSeq[i] == 0 ? ref_a->data : ref_b->data;
    EXPECT_TRUE(testing::AllClose(mixed.data() + i * V, ref.data() + kMixedPos[i] * V, V, kLogitTol, V))
        << "batch row " << i;
  }
}

// BF16 weights with bf16 activations (SessionOptions::bf16_activations, AVX512_BF16 only): the
// logits stay near the f32 reference (the activations' rounding moves them ~1e-2 on these tiny
// random models; the argmax agrees at >= 80 % of positions), and a sequence's logits in a mixed
// batch are the bits of the same tokens fed alone.
TEST(Bf16ActivationsFixture, StayNearReferenceAndBatchInvariant) {
  const KernelTable& kt = BestKernels();
  if (kt.QMatmul(DType::kBF16) == nullptr) GTEST_SKIP() << "CPU or build without AVX512_BF16";
  const std::string name = "qwen2moe-bf16-sharded";
  auto m = LoadModel(ModelDir(name));
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto session = [&](bool bf16) {
    SessionOptions so;
    so.n_threads = 2;
    so.n_seq = 2;
    so.max_ctx = 128;
    so.max_batch = 64;
    so.bf16_activations = bf16;
    auto s = Session::Create(**m, so);
    EXPECT_TRUE(s.ok());
    return s.ok() ? std::move(s).value() : nullptr;
  };
  auto s = session(true), exact = session(false);
  ASSERT_TRUE(s && exact);
  const json seqs = ReadJson(ModelDir(name) + "/reference/sequences.json");
  const auto a = Ids(seqs["prompt"]["ids"]);
  const auto b = Ids(seqs["long"]["ids"]);
  const size_t V = static_cast<size_t>((*m)->info().n_vocab);
  const int T = static_cast<int>(a.size());
  std::vector<float> la(static_cast<size_t>(T) * V), le(la.size());
  ASSERT_TRUE(s->Feed(0, a.data(), T, true, la.data()).ok());
  ASSERT_TRUE(exact->Feed(0, a.data(), T, true, le.data()).ok());
  auto ref = ReadNpyF32(ModelDir(name) + "/reference/prompt.prefill.npy");
  ASSERT_TRUE(ref.ok());
  ASSERT_EQ(ref->data.size(), la.size());
  float bf16_diff = 0, exact_diff = 0;
  size_t agree = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    bf16_diff = std::max(bf16_diff, std::fabs(la[i] - ref->data[i]));
    exact_diff = std::max(exact_diff, std::fabs(le[i] - ref->data[i]));
  }
  for (int t = 0; t < T; ++t) {
    const float* x = la.data() + t * V;
    const float* y = ref->data.data() + t * V;
    agree += std::max_element(x, x + V) - x == std::max_element(y, y + V) - y;
  }
  std::printf("    bf16 activations: max |logit diff| %.2e (f32 activations %.2e), argmax %zu/%d\n", bf16_diff,
              exact_diff, agree, T);
  EXPECT_LT(bf16_diff, 0.1f);
  EXPECT_GT(bf16_diff, exact_diff);  // the path really rounds the activations
  EXPECT_GE(agree * 5, static_cast<size_t>(T) * 4);
  // Batch invariance: prompt[0..10) and long[0..4) prefilled, then one batch interleaving both,
  // against the same tokens fed to each sequence alone.
  s->Reset(0);
  const std::vector<float> mixed = MixedBatchLogits(*s, a, b, V);
  std::vector<float> tmp(64 * V), alone_a(static_cast<size_t>(T) * V), alone_b(6 * V);
  s->Reset(0);
  s->Reset(1);
  ASSERT_TRUE(s->Feed(0, a.data(), 10, true, tmp.data()).ok());
  ASSERT_TRUE(s->Feed(0, a.data() + 10, 3, true, alone_a.data()).ok());
  ASSERT_TRUE(s->Feed(1, b.data(), 4, true, tmp.data()).ok());
  ASSERT_TRUE(s->Feed(1, b.data() + 4, 2, true, alone_b.data()).ok());
  for (int i = 0; i < 5; ++i) {
    const float* want = kMixedSeq[i] == 0 ? alone_a.data() + (kMixedPos[i] - 10) * V
                                          : alone_b.data() + (kMixedPos[i] - 4) * V;
    EXPECT_EQ(std::memcmp(mixed.data() + i * V, want, V * 4), 0) << "batch row " << i;
  }
}

// The logits of a 13-token prefill then one decode step (the single-token kernels) of the model at
// `path`, loaded with or without the load-time layouts; *relaid gets the count of re-laid-out
// weights when `repack`. Empty if the model does not load.
std::vector<float> PrefillAndStepLogits(const std::string& path, bool repack, int* relaid) {
  const std::vector<int32_t> ids{1, 5, 9, 200, 31, 7, 77, 3, 500, 2, 14, 15, 92};
  Loaded l = LoadPath(path, 2, true, repack);
  if (!l.session) return {};
  if (repack) *relaid = l.model->info().relaid_tensors;
  const size_t V = static_cast<size_t>(l.model->info().n_vocab);
  std::vector<float> logits(ids.size() * V), step(V);
  EXPECT_TRUE(l.session->Feed(0, ids.data(), static_cast<int>(ids.size()), true, logits.data()).ok());
  const int32_t next = 42;
  EXPECT_TRUE(l.session->Feed(0, &next, 1, false, step.data()).ok());
  logits.insert(logits.end(), step.begin(), step.end());
  return logits;
}

// BF16 weights are re-laid out at load as BF16_R16 (16 rows interleaved) where a SIMD table has
// kernels for it; the logits (prefill and a decode step) stay within the f32 reordering of the
// row-major layout's.
TEST(Bf16R16Fixture, RelaidModelStaysNearRowMajor) {
  const std::string path = ModelDir("qwen2moe-bf16-sharded");
  int relaid = -1;
  const std::vector<float> plain = PrefillAndStepLogits(path, false, &relaid);
  const std::vector<float> r16 = PrefillAndStepLogits(path, true, &relaid);
  ASSERT_FALSE(plain.empty());
  ASSERT_EQ(plain.size(), r16.size());
  float diff = 0;
  for (size_t i = 0; i < plain.size(); ++i) diff = std::max(diff, std::fabs(plain[i] - r16[i]));
  std::printf("    %d weights re-laid out; max |logit diff| to row-major %.2e\n", relaid, diff);
  EXPECT_LT(diff, 1e-4f);
  if (BestKernels().Matmul(DType::kBF16R16) != nullptr && std::strcmp(BestKernels().isa, "ref") != 0) {
    EXPECT_GT(relaid, 0) << "no BF16 weight was re-laid out";
  }
}

// MLA keeps the absorbed latent cache: per layer and position, c_kv and k_pe (kv_lora_rank +
// qk_rope_head_dim elements) shared by all heads, not per-head keys and values.
TEST(MlaCache, HoldsOnlyTheLatentRows) {
  for (const char* name : {"deepseek-v2", "deepseek-v3"}) {
    const json cfg = ReadJson(ModelDir(name) + "/config.json");
    auto m = LoadModel(ModelDir(name));
    ASSERT_TRUE(m.ok());
    for (DType kv_type : {DType::kF32, DType::kF16}) {
      SessionOptions so;
      so.max_ctx = 32;
      so.kv_type = kv_type;
      auto s = Session::Create(**m, so);
      ASSERT_TRUE(s.ok());
      const size_t per_layer = cfg["kv_lora_rank"].get<size_t>() + cfg["qk_rope_head_dim"].get<size_t>();
      EXPECT_EQ((*s)->kv_bytes_per_position(),
                cfg["num_hidden_layers"].get<size_t>() * per_layer * (kv_type == DType::kF16 ? 2 : 4))
          << name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureTest, ::testing::ValuesIn(kFixtures),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

// The random-weight tiny model `sm` written as a GGUF of ggml type `type` in the temp folder (the
// caller removes it); "" on failure (reported).
std::string ExportSynthGguf(const SynthModel& sm, uint32_t type, const std::string& tag) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("moxie_" + tag + "_" + std::to_string(::getpid()) + ".gguf"))
          .string();
  ExportOptions opts;
  opts.type = type;
  opts.overwrite = true;
  opts.name = "tiny-" + tag;
  const int64_t n_vocab = sm.n_vocab;
  opts.write_tokenizer = [n_vocab](GgufWriter* w) { return WriteSynthVocab(n_vocab, w); };
  ThreadPool pool(2);
  ExecContext ctx{&pool, &BestKernels()};
  auto rep = ExportGguf(sm.config, *sm.weights, "", path, opts, ctx);
  EXPECT_TRUE(rep.ok()) << rep.status().message();
  return rep.ok() ? path : "";
}

// Q4_0 / MXFP4 / Q4_K / Q5_K / Q6_K weights re-laid out at load (*_R8) give the same logits, bit for bit,
// as the file's layout, and the kernels actually ran on the re-laid-out tensors (random-weight tiny
// model written in each type: the fixtures have no such file).
TEST(SynthKQuants, RepackedLogitsEqualPlain) {
  auto sm = MakeSynthModel("tiny", "", 11);
  ASSERT_TRUE(sm.ok()) << sm.status().message();
  for (const uint32_t type : {2u /* Q4_0 */, 39u /* MXFP4 */, 12u /* Q4_K */, 13u /* Q5_K */, 14u /* Q6_K */}) {
    SCOPED_TRACE("ggml type " + std::to_string(type));
    const std::string path = ExportSynthGguf(*sm, type, "kq_r8");
    ASSERT_FALSE(path.empty());
    int relaid = -1;
    const std::vector<float> plain = PrefillAndStepLogits(path, false, &relaid);
    const std::vector<float> r8 = PrefillAndStepLogits(path, true, &relaid);
    std::filesystem::remove(path);
    ASSERT_FALSE(plain.empty());
    ASSERT_EQ(plain.size(), r8.size());
    bool finite = true, varied = false;
    for (float v : plain) finite = finite && std::isfinite(v);
    for (float v : plain) varied = varied || v != plain[0];
    EXPECT_TRUE(finite && varied);
    EXPECT_EQ(std::memcmp(plain.data(), r8.data(), r8.size() * 4), 0) << "re-laid out != plain";
    if (Avx2Kernels() != nullptr) {
      EXPECT_GT(relaid, 0) << "no weight was re-laid out";
    }
  }
}

// F16 weights are re-laid out at load as F16_R16 where a SIMD table has its kernels; the logits
// stay within the f32 reordering of the file layout's (random-weight tiny model written as F16:
// the fixtures have no F16 file).
TEST(SynthF16, RelaidModelStaysNearRowMajor) {
  auto sm = MakeSynthModel("tiny", "", 12);
  ASSERT_TRUE(sm.ok()) << sm.status().message();
  const std::string path = ExportSynthGguf(*sm, 1 /* F16 */, "f16_r16");
  ASSERT_FALSE(path.empty());
  int relaid = -1;
  const std::vector<float> plain = PrefillAndStepLogits(path, false, &relaid);
  const std::vector<float> r16 = PrefillAndStepLogits(path, true, &relaid);
  std::filesystem::remove(path);
  ASSERT_FALSE(plain.empty());
  ASSERT_EQ(plain.size(), r16.size());
  float diff = 0, mag = 0;
  bool varied = false;
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_TRUE(std::isfinite(plain[i]) && std::isfinite(r16[i])) << "logit " << i;
    diff = std::max(diff, std::fabs(plain[i] - r16[i]));
    mag = std::max(mag, std::fabs(plain[i]));
    varied = varied || plain[i] != plain[0];
  }
  std::printf("    %d weights re-laid out; max |logit diff| to row-major %.2e (max |logit| %.2e)\n", relaid, diff, mag);
  EXPECT_TRUE(varied);
  EXPECT_LT(diff, 1e-5f * std::max(1.f, mag));
  if (BestKernels().Matmul(DType::kF16R16) != nullptr && std::strcmp(BestKernels().isa, "ref") != 0) {
    EXPECT_GT(relaid, 0) << "no F16 weight was re-laid out";
  }
}

}  // namespace
}  // namespace moxie
