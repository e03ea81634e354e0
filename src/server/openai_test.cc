// OpenAI request parsing and response building, without HTTP.
#include "server/openai.h"

#include <gtest/gtest.h>

#include "core/utf8.h"
#include "server/server_test_util.h"
#include "tests/test_util.h"

namespace moxie::server {
namespace {

class OpenAiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = testing::DemoTokenizer();
    ASSERT_NE(tok_, nullptr) << "the demo model's tokenizer does not load";
    m_.name = "demo";
    m_.tok = tok_;
    m_.ctx = 64;
    auto t = jinja::Template::Parse(tok_->chat_template());
    ASSERT_TRUE(t.ok());
    m_.chat_template = *t;
    m_.eos_tokens = {tok_->eos()};
  }
  // The error's param for a chat body, or "" when it parses.
  std::string ChatParam(const char* body) {
    auto r = ParseChatRequest(Json::parse(body), m_);
    if (auto* e = std::get_if<ApiError>(&r)) {
      EXPECT_EQ(e->http_status, 400);
      EXPECT_FALSE(e->message.empty());
      return e->param.empty() ? "<none>" : e->param;
    }
    return "";
  }
  std::string CompletionParam(const char* body) {
    auto r = ParseCompletionRequest(Json::parse(body), m_);
    if (auto* e = std::get_if<ApiError>(&r)) return e->param.empty() ? "<none>" : e->param;
    return "";
  }
  const Tokenizer* tok_ = nullptr;
  ServedModel m_;
};

TEST_F(OpenAiTest, ValidationErrorsNameTheField) {
  const char* ok = R"({"messages":[{"role":"user","content":"hi"}]})";
  EXPECT_EQ(ChatParam(ok), "");
  EXPECT_EQ(ChatParam(R"({"messages":[]})"), "messages");
  EXPECT_EQ(ChatParam(R"({"messages":"hi"})"), "messages");
  EXPECT_EQ(ChatParam(R"({})"), "messages");
  EXPECT_EQ(ChatParam(R"([1,2])"), "<none>");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"wizard","content":"x"}]})"), "messages[0].role");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":5}]})"), "messages[0].content");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})"),
            "messages[0].content[0]");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})"),
            "temperature");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"temperature":3})"),
            "temperature");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1.5})"),
            "max_tokens");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":0})"),
            "max_tokens");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":100000})"),
            "max_tokens");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"n":2})"), "n");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})"), "stream");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})"), "stop");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]})"),
            "stop");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"seed":"1"})"), "seed");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})"),
            "top_logprobs");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21})"),
            "top_logprobs");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"presence_penalty":-3})"),
            "presence_penalty");
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":1}})"),
            "stream_options.include_usage");
  EXPECT_EQ(CompletionParam(R"({"prompt":"x"})"), "");
  EXPECT_EQ(CompletionParam(R"({"prompt":[1,2,3]})"), "");
  EXPECT_EQ(CompletionParam(R"({"prompt":["x"]})"), "");
  EXPECT_EQ(CompletionParam(R"({})"), "prompt");
  EXPECT_EQ(CompletionParam(R"({"prompt":{"a":1}})"), "prompt");
  EXPECT_EQ(CompletionParam(R"({"prompt":[-1]})"), "prompt");
  EXPECT_EQ(CompletionParam(R"({"prompt":[1e9]})"), "prompt");
  EXPECT_EQ(CompletionParam(R"({"prompt":"x","logprobs":true})"), "logprobs");
}

TEST_F(OpenAiTest, PromptLongerThanTheContextIsContextLengthExceeded) {
  std::string body = R"({"prompt":")";
  for (int i = 0; i < 200; ++i) body += "word ";
  body += R"("})";
  auto r = ParseCompletionRequest(Json::parse(body), m_);
  auto* e = std::get_if<ApiError>(&r);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->code, "context_length_exceeded");
  EXPECT_EQ(e->param, "prompt");
}

TEST_F(OpenAiTest, ChatRendersTheTemplateAndDefaultsFollowOpenAi) {
  auto r = ParseChatRequest(
      Json::parse(R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]})"),
      m_);
  auto* p = std::get_if<ParsedRequest>(&r);
  ASSERT_NE(p, nullptr);
  // Text parts are joined with a newline, as vLLM does.
  jinja::ChatInputs in;
  in.messages = Json::parse(R"([{"role":"user","content":"a\nb"}])");
  in.add_generation_prompt = true;
  for (const auto& [k, v] : tok_->special_token_strings()) in.special_tokens[k] = v;
  auto want = jinja::ApplyChatTemplate(*m_.chat_template, in, {});
  ASSERT_OK(want.status());
  EXPECT_EQ(p->engine.prompt, tok_->Encode(*want, {.add_special = false, .parse_special = true}));
  EXPECT_FLOAT_EQ(p->engine.sampler.temperature, 1.0f);
  EXPECT_FLOAT_EQ(p->engine.sampler.top_p, 1.0f);
  EXPECT_EQ(p->engine.sampler.top_k, 0);
  EXPECT_EQ(p->engine.max_tokens, m_.ctx - static_cast<int>(p->engine.prompt.size()));
  EXPECT_EQ(p->engine.top_logprobs, -1);
  auto c = ParseCompletionRequest(Json::parse(R"({"prompt":"a","seed":7,"stop":"x"})"), m_);
  auto* pc = std::get_if<ParsedRequest>(&c);
  ASSERT_NE(pc, nullptr);
  EXPECT_EQ(pc->engine.max_tokens, 16);  // OpenAI's completions default
  EXPECT_EQ(pc->engine.sampler.seed, 7u);
  EXPECT_EQ(pc->engine.stop, std::vector<std::string>{"x"});
}

TEST_F(OpenAiTest, ChatWithoutATemplateIsA400) {
  m_.chat_template.reset();
  EXPECT_EQ(ChatParam(R"({"messages":[{"role":"user","content":"hi"}]})"), "messages");
}

TEST_F(OpenAiTest, ResponsesAreValidJsonWhateverTheTokenBytes) {
  auto r = ParseChatRequest(
      Json::parse(R"({"messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":1,"stream":true,"stream_options":{"include_usage":true}})"),
      m_);
  auto* p = std::get_if<ParsedRequest>(&r);
  ASSERT_NE(p, nullptr);
  ResponseWriter w(*p, m_, "chatcmpl-1", 123);
  // Byte tokens that are not UTF-8 on their own (the demo vocabulary is byte-level BPE).
  std::vector<int32_t> odd;
  for (int32_t id = 0; id < tok_->n_vocab() && odd.size() < 3; ++id) {
    if (!IsValidUtf8(tok_->TokenBytes(id, false))) odd.push_back(id);
  }
  ASSERT_FALSE(odd.empty());
  EngineEvent ev;
  ev.text = "ok \xEF\xBF\xBD";
  for (int32_t id : odd) ev.logprobs.push_back({id, -1.5f, {{id, -1.5f}}});
  std::string sse = w.StreamStart() + w.StreamEvent(ev);
  EngineEvent done;
  done.kind = EngineEvent::Kind::kDone;
  done.finish_reason = "length";
  done.prompt_tokens = 5;
  done.completion_tokens = static_cast<int>(odd.size());
  sse += w.StreamEvent(done);
  size_t n_chunks = 0;
  for (size_t at = 0; (at = sse.find("data: ", at)) != std::string::npos; at += 6) {
    const size_t end = sse.find("\n\n", at);
    ASSERT_NE(end, std::string::npos);
    const std::string payload = sse.substr(at + 6, end - at - 6);
    ASSERT_TRUE(IsValidUtf8(payload));
    const Json j = Json::parse(payload);  // throws (fails the test) if not JSON
    ++n_chunks;
    if (j["choices"].empty()) {
      EXPECT_EQ(j["usage"]["total_tokens"], 5 + static_cast<int>(odd.size()));
    }
  }
  EXPECT_EQ(n_chunks, 4u);  // role, content, finish, usage
  EXPECT_NE(sse.find("\"bytes\":["), std::string::npos);
}

}  // namespace
}  // namespace moxie::server
