// OpenAI API <-> engine requests: parsing and validating request bodies, rendering chat prompts,
// and building response / stream-chunk JSON. No I/O: the HTTP layer (http_server.h) calls these.
//
// Every validation error names the offending field (`param`), as OpenAI's API does, and maps to
// HTTP 400. Output text is always valid UTF-8 (the engine replaces bytes that never form a
// character with U+FFFD), and JSON is serialised with invalid bytes replaced, so odd model output
// can never make a response fail.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/jinja/jinja.h"
#include "formats/tokenizer.h"
#include "runtime/batch_engine.h"

namespace moxie::server {

using Json = nlohmann::ordered_json;

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null
};
Json ErrorBody(const ApiError& e);

// What the routes need to know about the served model.
struct ServedModel {
  std::string name;                 // shown in /v1/models and responses
  const Tokenizer* tok = nullptr;
  std::optional<jinja::Template> chat_template;  // absent: /v1/chat/completions answers 400
  std::map<std::string, std::string> special_tokens;
  std::vector<int32_t> eos_tokens;
  int ctx = 0;              // tokens per sequence
  int max_tokens_cap = 0;   // upper bound on max_tokens (0: the context)
  double timeout_s = 0;     // per-request time limit (0: none)
  int64_t created = 0;      // unix time the server started (for /v1/models)
};

struct ParsedRequest {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
  bool echo = false;           // completions: prepend the prompt to the text
  std::string prompt_text;     // completions with echo
  EngineRequest engine;
};

// Body of POST /v1/chat/completions or /v1/completions (already parsed as JSON).
std::variant<ParsedRequest, ApiError> ParseChatRequest(const Json& body, const ServedModel& m);
std::variant<ParsedRequest, ApiError> ParseCompletionRequest(const Json& body,
                                                             const ServedModel& m);

// Accumulates one request's events into the response JSON (non-stream) or SSE chunks (stream).
class ResponseWriter {
 public:
  ResponseWriter(const ParsedRequest& req, const ServedModel& m, std::string id, int64_t created);
  // SSE "data: ...\n\n" lines for a stream; empty when the event adds nothing to send.
  std::string StreamEvent(const EngineEvent& ev);
  // The opening chunk of a chat stream (the assistant role) and the closing "[DONE]".
  std::string StreamStart();
  static std::string StreamDone() { return "data: [DONE]\n\n"; }
  static std::string StreamError(const ApiError& e);
  // Non-stream: add every event, then Body() once kDone arrived.
  void Add(const EngineEvent& ev);
  Json Body() const;
  bool done() const { return done_; }

 private:
  Json Usage() const;
  // `prompt`: with echo, the prompt's scores (EngineRequest::prompt_logprobs) go first, the first
  // prompt token with null logprob, offsets from 0 (legacy completions format only).
  Json LogprobsJson(const std::vector<TokenLogprob>& lps, size_t text_offset,
                    const std::vector<TokenLogprob>* prompt = nullptr) const;
  Json Chunk(Json choice) const;
  const ParsedRequest& req_;
  const ServedModel& m_;
  std::string id_;
  int64_t created_;
  std::string text_;
  std::vector<TokenLogprob> lps_;
  std::vector<TokenLogprob> prompt_lps_;  // echo + logprobs: the prompt's scores
  std::string finish_reason_;
  int prompt_tokens_ = 0, completion_tokens_ = 0, cached_tokens_ = 0;
  bool done_ = false;
};

// /v1/models body.
Json ModelsBody(const ServedModel& m);
// Serialises without ever throwing on invalid UTF-8 (replaced by U+FFFD).
std::string Dump(const Json& j);

// OpenAI-style error for an engine Status (400 for bad requests, 503 when full, 504 on timeout).
ApiError FromStatus(const Status& s);

}  // namespace moxie::server
