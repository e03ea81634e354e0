// GGUF export against external references: the fixtures' model.gguf / model.q8_0.gguf were written
// by llama.cpp's gguf-py (and match llama.cpp's own converter bit for bit, see the fixtures
// README). Exporting the HF folder must give the same tensors (names, shapes, types, bytes) and
// the same model metadata; loading the export must give the same logits as the HF folder.
#include "formats/gguf_export.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "formats/hf_checkpoint.h"
#include "formats/gguf_model.h"
#include "formats/synth_model.h"
#include "kernels/kernel_table.h"
#include "models/model.h"
#include "runtime/session.h"
#include "tests/test_util.h"

namespace moxie {
namespace {

using testing::ModelDir;
using testing::TempDir;

const char* kGgufFixtures[] = {"deepseek-v2", "deepseek-v3", "deepseek-v3-nogroup", "mixtral",
                               "olmoe",       "qwen2moe",    "qwen3moe"};

Result<ExportReport> Export(const std::string& dir, const std::string& out, ExportOptions opts) {
  MOXIE_ASSIGN_OR_RETURN(auto ck, HfCheckpoint::Open(dir));
  ThreadPool pool(2);
  ExecContext ctx{&pool, &BestKernels()};
  return ExportGguf(ck->config(), *ck, dir, out, opts, ctx);
}

// Every tensor of `ref` is in `got` with the same shape, type and bytes, and nothing else is.
void ExpectSameTensors(const std::string& ref_path, const std::string& got_path) {
  auto ref = GgufFile::Open(ref_path);
  auto got = GgufFile::Open(got_path);
  ASSERT_OK(ref);
  ASSERT_OK(got);
  EXPECT_EQ((*ref)->tensors().size(), (*got)->tensors().size());
  for (const auto& t : (*ref)->tensors()) {
    const GgufTensorInfo* g = (*got)->FindTensor(t.name);
    ASSERT_NE(g, nullptr) << ref_path << ": " << t.name << " missing in the export";
    EXPECT_EQ(g->ne, t.ne) << t.name;
    ASSERT_EQ(g->type, t.type) << t.name;
    ASSERT_EQ(g->nbytes, t.nbytes) << t.name;
    EXPECT_EQ(std::memcmp(g->data, t.data, t.nbytes), 0) << ref_path << ": bytes of " << t.name << " differ";
  }
}

// Model metadata (everything but general.name and the tokenizer) equals the reference file's.
void ExpectSameModelMetadata(const std::string& ref_path, const std::string& got_path) {
  auto ref = GgufFile::Open(ref_path);
  auto got = GgufFile::Open(got_path);
  ASSERT_OK(ref);
  ASSERT_OK(got);
  for (const auto& [k, v] : (*ref)->kv()) {
    if (k == "general.name" || k.rfind("tokenizer.", 0) == 0) continue;
    const GgufValue* g = (*got)->Find(k);
    ASSERT_NE(g, nullptr) << ref_path << ": key " << k << " missing in the export";
    EXPECT_EQ(g->type, v.type) << k;
    if (v.is_string()) {
      EXPECT_EQ(g->as_string(), v.as_string()) << k;
    } else if (!v.is_array()) {
      EXPECT_EQ(g->as_float(), v.as_float()) << k;
    }
  }
}

TEST(GgufExport, F32MatchesReferenceConverter) {
  for (const char* name : kGgufFixtures) {
    SCOPED_TRACE(name);
    TempDir tmp;
    const std::string out = tmp.File("m.gguf");
    ExportOptions o;
    o.type = 0;
    ASSERT_OK(Export(ModelDir(name), out, o));
    ExpectSameTensors(ModelDir(name) + "/model.gguf", out);
    ExpectSameModelMetadata(ModelDir(name) + "/model.gguf", out);
  }
}

TEST(GgufExport, Q8_0MatchesReferenceConverter) {
  for (const char* name : kGgufFixtures) {
    SCOPED_TRACE(name);
    TempDir tmp;
    const std::string out = tmp.File("m.gguf");
    ExportOptions o;
    o.type = 8;
    auto rep = Export(ModelDir(name), out, o);
    ASSERT_OK(rep);
    ExpectSameTensors(ModelDir(name) + "/model.q8_0.gguf", out);
    ExpectSameModelMetadata(ModelDir(name) + "/model.q8_0.gguf", out);
  }
}

std::vector<float> Logits(const std::string& path, const std::vector<int32_t>& ids) {
  auto m = LoadModel(path);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return {};
  SessionOptions so;
  so.n_threads = 1;
  so.max_ctx = 64;
  auto s = Session::Create(**m, so);
  EXPECT_TRUE(s.ok());
  const size_t V = static_cast<size_t>((*m)->info().n_vocab);
  std::vector<float> logits(ids.size() * V);
  EXPECT_TRUE((*s)->Feed(0, ids.data(), static_cast<int>(ids.size()), true, logits.data()).ok());
  return logits;
}

const std::vector<int32_t> kPrompt = {84, 294, 32, 113, 117, 354, 107, 497, 470, 32, 106, 308, 345};

TEST(GgufExport, RoundTripGivesIdenticalLogits) {
  // f32 from f32 folders; bf16 from the bf16 folder (the same bytes both ways).
  for (const char* name : {"mixtral", "deepseek-v3", "qwen2moe-bf16-sharded"}) {
    SCOPED_TRACE(name);
    TempDir tmp;
    const std::string out = tmp.File("m.gguf");
    ExportOptions o;
    o.type = std::string(name) == "qwen2moe-bf16-sharded" ? 30 : 0;
    ASSERT_OK(Export(ModelDir(name), out, o));
    const auto a = Logits(ModelDir(name), kPrompt), b = Logits(out, kPrompt);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_FALSE(a.empty());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
    // Re-exporting the GGUF (its tensors seen under HF names) gives the same file content.
    auto g = OpenGgufModel(out);
    ASSERT_OK(g);
    ThreadPool pool(1);
    ExecContext ctx{&pool, &BestKernels()};
    const std::string out2 = tmp.File("m2.gguf");
    ASSERT_OK(ExportGguf(g->config, *g->weights, out, out2, o, ctx));
    ExpectSameTensors(out, out2);
  }
}

TEST(GgufExport, PerExpertTypesUseMoxieLayoutAndLoad) {
  TempDir tmp;
  const std::string plan = tmp.File("plan.json");
  std::ofstream(plan) << R"({"default": "f32", "layers": {"1": {"default": "f32", "experts": {"3": "q8_0", "5": "f16"}}, "2": "q8_0"}})";
  auto p = LoadExpertTypePlan(plan, 3, 8, 0);
  ASSERT_OK(p);
  ExportOptions o;
  o.type = 0;
  o.expert_plan = &*p;
  const std::string out = tmp.File("m.gguf");
  ASSERT_OK(Export(ModelDir("qwen3moe"), out, o));
  auto f = GgufFile::Open(out);
  ASSERT_OK(f);
  const GgufValue* v = (*f)->Find("moxie.per_expert_layers");
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(v->as_array().items.size(), 1u);
  EXPECT_EQ(v->as_array().items[0].as_int(), 1);
  EXPECT_EQ((*f)->FindTensor("blk.1.ffn_gate_exps.weight"), nullptr);
  ASSERT_NE((*f)->FindTensor("blk.1.ffn_down.3.weight"), nullptr);
  EXPECT_EQ((*f)->FindTensor("blk.1.ffn_down.3.weight")->type, 8u);
  EXPECT_EQ((*f)->FindTensor("blk.1.ffn_up.5.weight")->type, 1u);
  EXPECT_EQ((*f)->FindTensor("blk.1.ffn_up.4.weight")->type, 0u);
  ASSERT_NE((*f)->FindTensor("blk.2.ffn_gate_exps.weight"), nullptr);  // uniform layer: stacked
  EXPECT_EQ((*f)->FindTensor("blk.2.ffn_gate_exps.weight")->type, 8u);
  EXPECT_EQ((*f)->FindTensor("blk.0.ffn_gate_exps.weight")->type, 0u);
  // Loads and runs close to the f32 model (Q8_0/F16 experts in two layers).
  const auto a = Logits(ModelDir("qwen3moe"), kPrompt), b = Logits(out, kPrompt);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  EXPECT_GT(worst, 0.f);    // the quantised experts were really used
  EXPECT_LT(worst, 0.05f);  // and are close (Q8_0 fixture files differ by ~1e-1 with every weight Q8_0)
}

TEST(GgufExport, KeepOverridesAndFallbacks) {
  TempDir tmp;
  ExportOptions o;
  o.type = 12;  // q4_k: rows of 64/128 cannot take 256-element blocks -> Q8_0 fallback
  o.keep[TensorClass::kAttn] = 1;
  o.keep[TensorClass::kRouter] = 8;
  const std::string out = tmp.File("m.gguf");
  auto rep = Export(ModelDir("deepseek-v3"), out, o);
  ASSERT_OK(rep);
  auto f = GgufFile::Open(out);
  ASSERT_OK(f);
  EXPECT_EQ((*f)->FindTensor("blk.0.attn_q_a.weight")->type, 1u);
  EXPECT_EQ((*f)->FindTensor("blk.1.ffn_gate_inp.weight")->type, 8u);   // router as asked
  EXPECT_EQ((*f)->FindTensor("blk.1.exp_probs_b.bias")->type, 0u);      // vectors stay f32
  EXPECT_EQ((*f)->FindTensor("blk.1.ffn_gate_exps.weight")->type, 8u);  // fallback
  bool any_fallback = false;
  for (const auto& t : rep->tensors) any_fallback |= t.fell_back;
  EXPECT_TRUE(any_fallback);
  EXPECT_EQ(*(*f)->GetInt("general.quantization_version"), 2);
  // Refuses to overwrite.
  auto again = Export(ModelDir("deepseek-v3"), out, o);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("--force"), std::string::npos);
  o.overwrite = true;
  ASSERT_OK(Export(ModelDir("deepseek-v3"), out, o));
}

TEST(GgufExport, PlanErrorsNameTheKey) {
  TempDir tmp;
  auto check = [&](const std::string& text, const std::string& needle) {
    const std::string p = tmp.File("p.json");
    std::ofstream(p) << text;
    auto r = LoadExpertTypePlan(p, 3, 8, 8);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(p), std::string::npos);
  };
  check("[1]", "not a JSON object");
  check(R"({"defualt": "q8_0"})", "defualt");
  check(R"({"layers": {"3": "q8_0"}})", "layer '3'");
  check(R"({"layers": {"x": "q8_0"}})", "layer 'x'");
  check(R"({"layers": {"0": {"experts": {"8": "q8_0"}}}})", "expert '8'");
  check(R"({"layers": {"0": "q3_k"}})", "layers.0");
  check(R"({"layers": {"0": ["q8_0"]}})", "8 experts");
  check(R"({"layers": {"0": {"expert": {}}}})", "'expert'");
  EXPECT_FALSE(LoadExpertTypePlan(tmp.File("none.json"), 3, 8, 8).ok());
}

// The Q4_K_M / Q5_K_M recipes on the synthetic tiny shape (2 layers, 8 experts, every row a
// multiple of 256, so no fallback hides a rule): MoreBits(0) is false and MoreBits(1) true for 2
// layers; 8 experts take the Mixtral rules for attn_k/v/output. --keep still wins, and the file
// loads and runs.
TEST(GgufExport, MixedRecipesFollowTheRules) {
  TempDir tmp;
  auto sm = MakeSynthModel("tiny", "", 3);
  ASSERT_OK(sm);
  ThreadPool pool(2);
  ExecContext ctx{&pool, &BestKernels()};
  uint32_t base = 0;
  TypeRecipe recipe = TypeRecipe::kNone;
  ASSERT_TRUE(ParseWeightTypeOrRecipe("Q4_K_M", &base, &recipe));
  EXPECT_EQ(base, 12u);
  EXPECT_EQ(recipe, TypeRecipe::kQ4_K_M);
  ASSERT_TRUE(ParseWeightTypeOrRecipe("q8_0", &base, &recipe));
  EXPECT_EQ(recipe, TypeRecipe::kNone);
  EXPECT_FALSE(ParseWeightTypeOrRecipe("q4_k_l", &base, &recipe));
  EXPECT_NE(WeightTypeOrRecipeList().find("q5_k_m"), std::string::npos);

  auto write = [&](const char* type, const std::string& out, bool keep_attn) {
    ExportOptions o;
    EXPECT_TRUE(ParseWeightTypeOrRecipe(type, &o.type, &o.recipe));
    if (keep_attn) o.keep[TensorClass::kAttn] = 8;
    const int64_t n_vocab = sm->n_vocab;
    o.write_tokenizer = [n_vocab](GgufWriter* w) { return WriteSynthVocab(n_vocab, w); };
    return ExportGguf(sm->config, *sm->weights, "", out, o, ctx);
  };
  const std::string m4 = tmp.File("q4km.gguf"), m5 = tmp.File("q5km.gguf"), mk = tmp.File("keep.gguf");
  ASSERT_OK(write("q4_k_m", m4, false));
  ASSERT_OK(write("q5_k_m", m5, false));
  ASSERT_OK(write("q4_k_m", mk, true));
  auto type_of = [](const std::string& path, const char* tensor) -> int {
    auto f = GgufFile::Open(path);
    if (!f.ok() || (*f)->FindTensor(tensor) == nullptr) return -1;
    return static_cast<int>((*f)->FindTensor(tensor)->type);
  };
  EXPECT_EQ(type_of(m4, "output.weight"), 14);
  EXPECT_EQ(type_of(m4, "token_embd.weight"), 12);
  EXPECT_EQ(type_of(m4, "blk.0.attn_q.weight"), 12);
  EXPECT_EQ(type_of(m4, "blk.0.attn_k.weight"), 8);
  EXPECT_EQ(type_of(m4, "blk.1.attn_v.weight"), 8);
  EXPECT_EQ(type_of(m4, "blk.0.attn_output.weight"), 13);
  EXPECT_EQ(type_of(m4, "blk.0.ffn_gate_exps.weight"), 12);
  EXPECT_EQ(type_of(m4, "blk.0.ffn_down_exps.weight"), 12);
  EXPECT_EQ(type_of(m4, "blk.1.ffn_down_exps.weight"), 14);
  EXPECT_EQ(type_of(m4, "blk.1.ffn_gate_inp.weight"), 0);  // router f32
  EXPECT_EQ(type_of(m5, "blk.0.attn_q.weight"), 13);
  EXPECT_EQ(type_of(m5, "blk.0.attn_output.weight"), 13);
  EXPECT_EQ(type_of(m5, "blk.0.ffn_down_exps.weight"), 13);
  EXPECT_EQ(type_of(m5, "blk.1.ffn_down_exps.weight"), 14);
  EXPECT_EQ(type_of(mk, "blk.0.attn_output.weight"), 8);  // --keep attn=q8_0
  EXPECT_EQ(type_of(mk, "blk.1.ffn_down_exps.weight"), 14);
  auto f = GgufFile::Open(m4);
  ASSERT_OK(f);
  EXPECT_EQ(*(*f)->GetInt("general.file_type"), 15);
  const auto logits = Logits(m4, {1, 2, 3, 4});
  ASSERT_FALSE(logits.empty());
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace moxie
