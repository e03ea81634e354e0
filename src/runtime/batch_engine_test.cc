// BatchEngine: outputs under continuous batching equal the single-sequence generation loop
// (batch-invariant numerics), and the slot/queue bookkeeping holds under cancel and overload.
#include "runtime/batch_engine.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "core/thread_pool.h"
#include "formats/gguf_export.h"
#include "formats/synth_model.h"
#include "formats/tokenizer.h"
#include "kernels/kernel_table.h"
#include "runtime/generate.h"
#include "tests/test_util.h"

namespace moxie {
namespace {

const char* DemoDir() { return MOXIE_DEMO_MODEL_DIR; }

struct Collected {
  std::string text;
  EngineEvent done;
  bool error = false;
  int n_logprobs = 0;
};

Collected Drain(RequestHandle& h) {
  Collected c;
  EngineEvent ev;
  for (;;) {
    if (!h.Next(&ev, std::chrono::milliseconds(60000))) {
      ADD_FAILURE() << "no event within 60 s";
      c.error = true;
      return c;
    }
    if (ev.kind == EngineEvent::Kind::kText) {
      c.text += ev.text;
      c.n_logprobs += static_cast<int>(ev.logprobs.size());
    } else {
      c.error = ev.kind == EngineEvent::Kind::kError;
      if (c.error) ADD_FAILURE() << ev.error.message();
      c.done = ev;
      return c;
    }
  }
}

class BatchEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = LoadModel(DemoDir());
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_ = m->release();
    auto t = Tokenizer::FromPath(DemoDir());
    ASSERT_TRUE(t.ok()) << t.status().message();
    tok_ = t->release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tok_;
  }
  // The reference: the plain generation loop, one sequence alone.
  static GenerateResult Alone(const std::vector<int32_t>& prompt, int max_tokens,
                              const std::vector<std::string>& stop = {}) {
    SessionOptions so;
    so.n_threads = 2;
    so.max_ctx = 256;
    auto s = Session::Create(*model_, so);
    EXPECT_TRUE(s.ok());
    GenerateOptions g;
    g.max_tokens = max_tokens;
    g.stop = stop;
    g.sampler.temperature = 0;
    auto r = Generate(**s, *tok_, prompt, g, nullptr);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return *r;
  }
  static EngineRequest Greedy(const std::string& text, int max_tokens) {
    EngineRequest r;
    r.prompt = tok_->Encode(text, {.add_special = true});
    r.max_tokens = max_tokens;
    r.sampler.temperature = 0;
    return r;
  }
  static Model* model_;
  static Tokenizer* tok_;
};
Model* BatchEngineTest::model_ = nullptr;
Tokenizer* BatchEngineTest::tok_ = nullptr;

TEST_F(BatchEngineTest, GreedyOutputsUnderLoadEqualTheSingleSequenceLoop) {
  const std::vector<std::string> prompts = {
      "The jury said",
      "It was a cold morning in the city, and the committee",
      "He",
      "The president of the company announced that the plans for the new building would be",
      "Music and art",
      "In 1961 the state legislature",
  };
  BatchEngineOptions o;
  o.n_slots = 4;  // fewer slots than requests: some wait in the queue and join mid-flight
  o.ctx = 256;
  o.n_threads = 2;
  o.max_step_tokens = 16;  // forces chunked prefill mixed with decode steps
  o.prefill_chunk_while_decoding = 5;
  auto e = BatchEngine::Create(*model_, *tok_, o);
  ASSERT_OK(e.status());
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto h = (*e)->Submit(Greedy(prompts[i], 12 + static_cast<int>(i) * 3));
    ASSERT_OK(h.status());
    hs.push_back(*h);
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Collected c = Drain(*hs[i]);
    const auto ref = Alone(Greedy(prompts[i], 1).prompt, 12 + static_cast<int>(i) * 3);
    EXPECT_EQ(c.text, ref.text) << "prompt " << i;
    EXPECT_EQ(c.done.completion_tokens, static_cast<int>(ref.tokens.size())) << "prompt " << i;
    EXPECT_EQ(c.done.finish_reason, ref.finish_reason == "eos" ? "stop" : ref.finish_reason);
    EXPECT_EQ(c.done.prompt_tokens, static_cast<int>(ref.prompt_tokens));
  }
  const EngineStats st = (*e)->Stats();
  EXPECT_EQ(st.requests_finished, prompts.size());
  EXPECT_EQ(st.active_slots, 0);
  // Several sequences shared steps (that is what batching is).
  uint64_t multi = st.steps - st.batch_buckets[0];
  EXPECT_GT(multi, 0u);
}

TEST_F(BatchEngineTest, StopStringsAndPrefixReuseMatchTheLoop) {
  BatchEngineOptions o;
  o.n_slots = 2;
  o.ctx = 256;
  o.n_threads = 2;
  auto e = BatchEngine::Create(*model_, *tok_, o);
  ASSERT_OK(e.status());
  const auto ref = Alone(Greedy("The jury said", 1).prompt, 40);
  ASSERT_GT(ref.text.size(), 6u);
  // A stop string taken from the middle of the reference output cuts the text right before it.
  const std::string stop = ref.text.substr(ref.text.size() / 2, 3);
  const auto ref_stop = Alone(Greedy("The jury said", 1).prompt, 40, {stop});
  EngineRequest r = Greedy("The jury said", 40);
  r.stop = {stop};
  auto h = (*e)->Submit(r);
  ASSERT_OK(h.status());
  const Collected c = Drain(**h);
  EXPECT_EQ(c.text, ref_stop.text);
  EXPECT_EQ(c.done.finish_reason, "stop");
  // The same prompt again reuses the slot's cached prefix and still gives the same text.
  auto h2 = (*e)->Submit(Greedy("The jury said", 40));
  ASSERT_OK(h2.status());
  const Collected c2 = Drain(**h2);
  EXPECT_EQ(c2.text, ref.text);
  EXPECT_GT(c2.done.cached_tokens, 0);
}

// A request whose prompt shares a prefix with another slot's cache (here: one still serving its
// request) gets those K/V rows copied instead of recomputed, and the same text as alone.
TEST_F(BatchEngineTest, SharedPrefixIsCopiedFromABusySlot) {
  BatchEngineOptions o;
  o.n_slots = 2;
  o.ctx = 256;
  o.n_threads = 2;
  auto e = BatchEngine::Create(*model_, *tok_, o);
  ASSERT_OK(e.status());
  const std::string shared =
      "You are a helpful assistant who answers questions about the history of the city council and "
      "its committees, the jury, and the state legislature. ";
  const EngineRequest first = Greedy(shared + "The jury said", 200);  // busy long after
  auto h1 = (*e)->Submit(first);
  ASSERT_OK(h1.status());
  // Wait until the first request decodes (its prompt is in its slot), then send the second.
  EngineEvent ev;
  ASSERT_TRUE((*h1)->Next(&ev, std::chrono::milliseconds(60000)));
  const EngineRequest second = Greedy(shared + "In 1961 the state legislature", 20);
  auto h2 = (*e)->Submit(second);
  ASSERT_OK(h2.status());
  const Collected c2 = Drain(**h2);
  const Collected c1 = Drain(**h1);
  size_t common = 0;
  while (common < first.prompt.size() && common < second.prompt.size() &&
         first.prompt[common] == second.prompt[common]) {
    ++common;
  }
  ASSERT_GT(common, 10u);
  EXPECT_EQ(c2.done.cached_tokens, static_cast<int>(common));
  EXPECT_EQ(c2.text, Alone(second.prompt, 20).text);
  EXPECT_EQ(ev.text + c1.text, Alone(first.prompt, 200).text);
  EXPECT_EQ((*e)->Stats().copied_prompt_tokens, common);
}

TEST_F(BatchEngineTest, LogprobsComeWithEveryToken) {
  BatchEngineOptions o;
  o.n_slots = 1;
  o.ctx = 128;
  o.n_threads = 2;
  auto e = BatchEngine::Create(*model_, *tok_, o);
  ASSERT_OK(e.status());
  EngineRequest r = Greedy("The jury said", 10);
  r.top_logprobs = 3;
  auto h = (*e)->Submit(r);
  ASSERT_OK(h.status());
  EngineEvent ev;
  int n = 0;
  while ((*h)->Next(&ev, std::chrono::milliseconds(60000)) && ev.kind == EngineEvent::Kind::kText) {
    for (const auto& lp : ev.logprobs) {
      ++n;
      ASSERT_EQ(lp.top.size(), 3u);
      // Greedy: the chosen token is the most likely one; logprobs are <= 0 and sorted.
      EXPECT_EQ(lp.top[0].first, lp.token);
      EXPECT_FLOAT_EQ(lp.top[0].second, lp.logprob);
      EXPECT_LE(lp.top[0].second, 0.0f);
      EXPECT_GE(lp.top[0].second, lp.top[1].second);
      EXPECT_GE(lp.top[1].second, lp.top[2].second);
    }
  }
  ASSERT_EQ(ev.kind, EngineEvent::Kind::kDone);
  EXPECT_EQ(n, ev.completion_tokens);
}

// Prompt logprobs (echo + logprobs): one event before any text, a score for every prompt token
// after the first, equal to the log-softmax of a plain prefill's logits at the position before
// (within f32 rounding: the engine prefills in chunks of at most 32 rows, beside another
// request's decode), and the same text as without them.
TEST_F(BatchEngineTest, PromptLogprobsEqualPrefillLogSoftmax) {
  BatchEngineOptions o;
  o.n_slots = 2;
  o.ctx = 256;
  o.n_threads = 2;
  auto e = BatchEngine::Create(*model_, *tok_, o);
  ASSERT_OK(e.status());
  std::string long_text;
  for (int i = 0; i < 12; ++i) long_text += "The jury said that the city had no evidence. ";
  EngineRequest r = Greedy(long_text, 4);
  ASSERT_GT(r.prompt.size(), 40u);  // more than one step's 32 scored rows
  r.top_logprobs = 2;
  r.prompt_logprobs = true;
  auto other = (*e)->Submit(Greedy("Other text decoding beside it", 30));
  ASSERT_OK(other.status());
  auto h = (*e)->Submit(r);
  ASSERT_OK(h.status());
  EngineEvent ev;
  ASSERT_TRUE((*h)->Next(&ev, std::chrono::milliseconds(60000)));
  ASSERT_TRUE(ev.is_prompt_scores);
  ASSERT_EQ(ev.prompt_logprobs.size(), r.prompt.size() - 1);
  const std::vector<TokenLogprob> scores = ev.prompt_logprobs;
  const Collected rest = Drain(**h);
  Drain(**other);
  EXPECT_EQ(rest.text, Alone(r.prompt, 4).text);
  // Reference: every prompt position's logits from one prefill.
  SessionOptions so;
  so.n_threads = 2;
  so.max_ctx = 256;
  auto s = Session::Create(*model_, so);
  ASSERT_OK(s.status());
  const size_t V = static_cast<size_t>(model_->info().n_vocab), T = r.prompt.size();
  std::vector<float> lg(T * V);
  ASSERT_OK((*s)->Feed(0, r.prompt.data(), static_cast<int>(T), true, lg.data()));
  for (size_t i = 0; i + 1 < T; ++i) {
    const float* l = lg.data() + i * V;
    double mx = l[0];
    for (size_t v = 1; v < V; ++v) mx = std::max<double>(mx, l[v]);
    double z = 0;
    for (size_t v = 0; v < V; ++v) z += std::exp(static_cast<double>(l[v]) - mx);
    const double want = static_cast<double>(l[r.prompt[i + 1]]) - mx - std::log(z);
    ASSERT_EQ(scores[i].token, r.prompt[i + 1]);
    EXPECT_NEAR(scores[i].logprob, want, 1e-3) << "prompt token " << i + 1;
    ASSERT_EQ(scores[i].top.size(), 2u);
  }
}

TEST_F(BatchEngineTest, CancelFreesTheSlotAndAFullQueueRefuses) {
  BatchEngineOptions o;
  o.n_slots = 1;
  o.n_threads = 2;
  o.max_queue = 1;
  o.ctx = 512;
  auto e = BatchEngine::Create(*model_, *tok_, o);
  ASSERT_OK(e.status());
  EngineRequest longreq = Greedy("The jury said", 480);
  longreq.eos_tokens.clear();
  auto a = (*e)->Submit(longreq);
  ASSERT_OK(a.status());
  EngineEvent ev;
  ASSERT_TRUE((*a)->Next(&ev, std::chrono::milliseconds(60000)));  // running now
  auto b = (*e)->Submit(Greedy("He", 4));  // waits in the queue
  ASSERT_OK(b.status());
  auto c = (*e)->Submit(Greedy("He", 4));  // queue full
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable);
  (*a)->Cancel();
  const Collected cb = Drain(**b);  // the slot came free
  EXPECT_FALSE(cb.error);
  for (int i = 0; i < 100 && (*e)->Stats().active_slots != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const EngineStats st = (*e)->Stats();
  EXPECT_EQ(st.active_slots, 0);
  EXPECT_EQ(st.requests_cancelled, 1u);
  EXPECT_EQ(st.requests_rejected, 1u);
}

// A client that sends its next request the moment the previous one completes finds the slot free
// (the slot is released before the last event is delivered).
TEST_F(BatchEngineTest, ASlotIsFreeWhenItsRequestEnds) {
  BatchEngineOptions o;
  o.n_slots = 1;
  o.ctx = 64;
  o.n_threads = 1;
  o.max_queue = 0;
  auto e = BatchEngine::Create(*model_, *tok_, o);
  ASSERT_OK(e.status());
  for (int i = 0; i < 30; ++i) {
    auto h = (*e)->Submit(Greedy("He", 2));
    ASSERT_OK(h.status());
    EXPECT_FALSE(Drain(**h).error);
  }
}

TEST_F(BatchEngineTest, BadRequestsAreRefusedWithReasons) {
  BatchEngineOptions o;
  o.n_slots = 1;
  o.ctx = 32;
  o.n_threads = 1;
  auto e = BatchEngine::Create(*model_, *tok_, o);
  ASSERT_OK(e.status());
  EngineRequest r = Greedy("The jury said", 4);
  r.prompt.assign(40, r.prompt[0]);
  auto h = (*e)->Submit(r);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("context holds 32"), std::string::npos);
  r = Greedy("x", 4);
  r.prompt = {model_->info().n_vocab};
  EXPECT_FALSE((*e)->Submit(r).ok());
  r = Greedy("x", 0);
  EXPECT_FALSE((*e)->Submit(r).ok());
  r = Greedy("x", 4);
  r.sampler.top_p = 0;
  EXPECT_FALSE((*e)->Submit(r).ok());
  o.max_step_tokens = 0;
  EXPECT_FALSE(BatchEngine::Create(*model_, *tok_, o).ok());
}

// A model whose weights hold a NaN gives NaN logits: the generation loop and the engine fail the
// request with an error that says so, instead of sampling garbage (greedy would pick token 0).
TEST(NonFiniteLogits, FailTheRequestWithAClearError) {
  auto sm = MakeSynthModel("tiny", "", 5);
  ASSERT_TRUE(sm.ok()) << sm.status().message();
  const std::string path =
      (std::filesystem::temp_directory_path() / ("moxie_nan_" + std::to_string(::getpid()) + ".gguf")).string();
  ExportOptions opts;
  opts.type = 0;  // F32: the norm weights are runs of 1.0f to find
  opts.overwrite = true;
  opts.name = "tiny-nan";
  const int64_t n_vocab = sm->n_vocab;
  opts.write_tokenizer = [n_vocab](GgufWriter* w) { return WriteSynthVocab(n_vocab, w); };
  {
    ThreadPool pool(2);
    ExecContext ctx{&pool, &BestKernels()};
    ASSERT_OK(ExportGguf(sm->config, *sm->weights, "", path, opts, ctx).status());
  }
  {  // one element of the first norm weight (n_embd ones) becomes NaN
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string ones;
    const float one = 1.0f;
    for (int i = 0; i < 256; ++i) ones.append(reinterpret_cast<const char*>(&one), 4);
    const size_t at = bytes.find(ones);
    ASSERT_NE(at, std::string::npos) << "no norm weight of 256 ones in the synth file";
    const float nan = std::nanf("");
    bytes.replace(at, 4, reinterpret_cast<const char*>(&nan), 4);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  }
  auto m = LoadModel(path);
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto t = Tokenizer::FromPath(path);
  ASSERT_TRUE(t.ok()) << t.status().message();
  std::filesystem::remove(path);
  const std::vector<int32_t> prompt{1, 2, 3, 4};
  {
    SessionOptions so;
    so.n_threads = 2;
    so.max_ctx = 64;
    auto s = Session::Create(**m, so);
    ASSERT_TRUE(s.ok());
    GenerateOptions g;
    g.max_tokens = 4;
    g.sampler.temperature = 0;
    auto r = Generate(**s, **t, prompt, g, nullptr);
    ASSERT_FALSE(r.ok()) << "generated from NaN logits: " << r->text;
    EXPECT_NE(r.status().message().find("not finite"), std::string::npos) << r.status().message();
  }
  BatchEngineOptions o;
  o.n_slots = 2;
  o.ctx = 64;
  o.n_threads = 2;
  auto e = BatchEngine::Create(**m, **t, o);
  ASSERT_OK(e.status());
  EngineRequest req;
  req.prompt = prompt;
  req.max_tokens = 4;
  req.sampler.temperature = 0;
  auto h = (*e)->Submit(req);
  ASSERT_OK(h.status());
  EngineEvent ev;
  do {
    ASSERT_TRUE((*h)->Next(&ev, std::chrono::milliseconds(60000))) << "no event within 60 s";
    EXPECT_NE(ev.kind, EngineEvent::Kind::kText) << "text from NaN logits: " << ev.text;
  } while (ev.kind == EngineEvent::Kind::kText);
  ASSERT_EQ(ev.kind, EngineEvent::Kind::kError);
  EXPECT_NE(ev.error.message().find("not finite"), std::string::npos) << ev.error.message();
  EXPECT_EQ((*e)->Stats().active_slots, 0);
}

}  // namespace
}  // namespace moxie
