// The HTTP layer alone: HttpServer over a scripted engine (EngineApi) on a loopback port, driven
// by cpp-httplib's client. Each engine outcome (text, done, error before or during a stream, a
// full queue, a client that vanishes) maps to the HTTP answer an OpenAI client expects, with no
// model in the loop. The real engine behind real clients is tests/server_test.py.
#include "server/http_server.h"

#include <httplib.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "server/server_test_util.h"

namespace moxie::server {
namespace {

// Answers every Submit with the scripted events (or the scripted refusal), and keeps the handles.
class ScriptedEngine : public EngineApi {
 public:
  Result<std::shared_ptr<RequestHandle>> Submit(EngineRequest req) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (!refuse.ok()) return refuse;
    seen.push_back(std::move(req));
    auto h = std::make_shared<RequestHandle>();
    for (const EngineEvent& e : script) h->Push(e);
    handles_.push_back(h);
    return h;
  }
  EngineStats Stats() const override { return {}; }
  const BatchEngineOptions& options() const override { return opts_; }

  std::shared_ptr<RequestHandle> handle(size_t i) {
    std::lock_guard<std::mutex> lk(mu_);
    return i < handles_.size() ? handles_[i] : nullptr;
  }

  std::vector<EngineEvent> script;
  Status refuse = Status::Ok();
  std::vector<EngineRequest> seen;

 private:
  std::mutex mu_;
  BatchEngineOptions opts_;
  std::vector<std::shared_ptr<RequestHandle>> handles_;
};

EngineEvent Text(const std::string& s) {
  EngineEvent e;
  e.kind = EngineEvent::Kind::kText;
  e.text = s;
  return e;
}
EngineEvent Done(const std::string& reason, int prompt, int completion) {
  EngineEvent e;
  e.kind = EngineEvent::Kind::kDone;
  e.finish_reason = reason;
  e.prompt_tokens = prompt;
  e.completion_tokens = completion;
  return e;
}
EngineEvent Error(Status st) {
  EngineEvent e;
  e.kind = EngineEvent::Kind::kError;
  e.error = std::move(st);
  return e;
}

class HttpLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_.name = "scripted";
    model_.tok = testing::DemoTokenizer();
    ASSERT_NE(model_.tok, nullptr) << "the demo model's tokenizer does not load";
    model_.ctx = 256;
    HttpOptions o;
    o.port = 0;
    o.http_threads = 8;
    server_ = std::make_unique<HttpServer>(engine_, model_, o);
    ASSERT_TRUE(server_->Bind().ok());
    thread_ = std::thread([this] { (void)server_->Run(); });
  }
  void TearDown() override {
    server_->Stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Result Post(const std::string& body, int read_timeout_s = 10) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(read_timeout_s, 0);
    return c.Post("/v1/completions", body, "application/json");
  }

  ServedModel model_;
  ScriptedEngine engine_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

TEST_F(HttpLayerTest, WholeAnswerJoinsTextAndCountsUsage) {
  engine_.script = {Text("Hel"), Text(""), Text("lo"), Done("length", 3, 2)};
  auto r = Post(R"({"prompt":"hi","max_tokens":2})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const Json j = Json::parse(r->body);
  EXPECT_EQ(j["choices"][0]["text"], "Hello");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(j["usage"]["completion_tokens"], 2);
  EXPECT_EQ(j["usage"]["total_tokens"], 5);
  ASSERT_EQ(engine_.seen.size(), 1u);
  EXPECT_EQ(engine_.seen[0].max_tokens, 2);
  EXPECT_FALSE(engine_.seen[0].prompt.empty());
}

TEST_F(HttpLayerTest, EngineErrorsBecomeOpenAiErrors) {
  engine_.script = {Error(DeadlineExceeded("ran past --timeout"))};
  auto r = Post(R"({"prompt":"hi"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504);
  EXPECT_EQ(Json::parse(r->body)["error"]["message"], "ran past --timeout");
  engine_.script = {Text("partial"), Error(Internal("boom"))};
  r = Post(R"({"prompt":"hi"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);  // no partial answer passes for a whole one
  EXPECT_EQ(Json::parse(r->body)["error"]["type"], "server_error");
}

TEST_F(HttpLayerTest, FullQueueIs503WithRetryAfter) {
  engine_.refuse = Unavailable("the request queue is full");
  auto r = Post(R"({"prompt":"hi"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_EQ(Json::parse(r->body)["error"]["message"], "the request queue is full");
}

// A stream that fails midway: the text so far, then an error event, then [DONE], all in a 200.
TEST_F(HttpLayerTest, StreamErrorMidwayEndsWithErrorEventAndDone) {
  engine_.script = {Text("a"), Error(Internal("boom"))};
  auto r = Post(R"({"prompt":"hi","stream":true})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  const std::string& b = r->body;
  const size_t text = b.find("\"text\":\"a\""), err = b.find("\"boom\""), done = b.find("data: [DONE]");
  ASSERT_NE(text, std::string::npos) << b;
  ASSERT_NE(err, std::string::npos) << b;
  ASSERT_NE(done, std::string::npos) << b;
  EXPECT_LT(text, err);
  EXPECT_LT(err, done);
}

// A client that gives up on a whole answer (its read times out and it closes the connection):
// the request is cancelled although no byte was ever sent to it.
TEST_F(HttpLayerTest, VanishedClientOfAWholeAnswerCancelsIt) {
  engine_.script = {Text("never finishes")};
  auto r = Post(R"({"prompt":"hi"})", /*read_timeout_s=*/1);
  EXPECT_FALSE(r);  // timed out
  std::shared_ptr<RequestHandle> h;
  bool cancelled = false;
  for (int i = 0; i < 100 && !cancelled; ++i) {
    h = engine_.handle(0);
    cancelled = h != nullptr && h->cancelled();
    if (!cancelled) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(cancelled);
}

}  // namespace
}  // namespace moxie::server
