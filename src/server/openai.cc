#include "server/openai.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/utf8.h"

namespace moxie::server {
namespace {

using OptErr = std::optional<ApiError>;

ApiError Bad(const std::string& param, const std::string& message) {
  return ApiError{400, message, "invalid_request_error", param, ""};
}

bool Present(const Json& b, const char* key) {
  auto it = b.find(key);
  return it != b.end() && !it->is_null();
}

OptErr GetNumber(const Json& b, const char* key, double lo, double hi, float* out) {
  if (!Present(b, key)) return std::nullopt;
  const Json& v = b.at(key);
  if (!v.is_number()) return Bad(key, std::string("'") + key + "' must be a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    return Bad(key, std::string("'") + key + "' must be between " + Dump(Json(lo)) + " and " +
                        Dump(Json(hi)) + ", got " + Dump(v));
  }
  *out = static_cast<float>(x);
  return std::nullopt;
}

OptErr GetInt(const Json& b, const char* key, int64_t lo, int64_t hi, int64_t* out) {
  if (!Present(b, key)) return std::nullopt;
  const Json& v = b.at(key);
  if (!v.is_number_integer()) return Bad(key, std::string("'") + key + "' must be an integer");
  // Unsigned values above INT64_MAX arrive as number_unsigned.
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return Bad(key, std::string("'") + key + "' is too large");
  }
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) {
    return Bad(key, std::string("'") + key + "' must be between " + std::to_string(lo) + " and " +
                        std::to_string(hi) + ", got " + std::to_string(x));
  }
  *out = x;
  return std::nullopt;
}

OptErr GetBool(const Json& b, const char* key, bool* out) {
  if (!Present(b, key)) return std::nullopt;
  const Json& v = b.at(key);
  if (!v.is_boolean()) return Bad(key, std::string("'") + key + "' must be a boolean");
  *out = v.get<bool>();
  return std::nullopt;
}

// Fields both endpoints share: sampling, limits, stop, stream.
OptErr ParseCommon(const Json& b, const ServedModel& m, ParsedRequest* p) {
  if (Present(b, "model") && !b.at("model").is_string()) return Bad("model", "'model' must be a string");
  OptErr e;
  if ((e = GetBool(b, "stream", &p->stream))) return e;
  if (Present(b, "stream_options")) {
    const Json& so = b.at("stream_options");
    if (!so.is_object()) return Bad("stream_options", "'stream_options' must be an object");
    if (Present(so, "include_usage")) {
      if (!so.at("include_usage").is_boolean()) {
        return Bad("stream_options.include_usage", "'stream_options.include_usage' must be a boolean");
      }
      p->include_usage = so.at("include_usage").get<bool>();
    }
  }
  if (Present(b, "response_format")) {
    const Json& rf = b.at("response_format");
    if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string()) {
      return Bad("response_format", "'response_format' must be an object with a 'type'");
    }
    if (rf["type"] != "text") {
      return Bad("response_format", "response_format type '" + rf["type"].get<std::string>() +
                                        "' is not supported (constrained decoding is not "
                                        "implemented); use 'text'");
    }
  }
  int64_t n = 1;
  if ((e = GetInt(b, "n", 1, 128, &n))) return e;
  if (n != 1) return Bad("n", "only n = 1 is supported");
  int64_t best_of = 1;
  if ((e = GetInt(b, "best_of", 1, 128, &best_of))) return e;
  if (best_of != 1) return Bad("best_of", "only best_of = 1 is supported");

  SamplerConfig& sc = p->engine.sampler;  // OpenAI semantics: only what the request asks for
  sc.temperature = 1.0f;
  sc.top_p = 1.0f;
  sc.top_k = 0;
  sc.min_p = 0.0f;
  sc.penalty_last_n = -1;  // penalties see the whole text so far
  if ((e = GetNumber(b, "temperature", 0, 2, &sc.temperature))) return e;
  if ((e = GetNumber(b, "top_p", 0, 1, &sc.top_p))) return e;
  if (Present(b, "top_p") && !(sc.top_p > 0)) return Bad("top_p", "'top_p' must be > 0");
  if ((e = GetNumber(b, "presence_penalty", -2, 2, &sc.presence_penalty))) return e;
  if ((e = GetNumber(b, "frequency_penalty", -2, 2, &sc.frequency_penalty))) return e;
  // Widely used extensions (vLLM, llama-server).
  int64_t top_k = 0;
  if ((e = GetInt(b, "top_k", -1, 1 << 30, &top_k))) return e;
  sc.top_k = static_cast<int>(std::max<int64_t>(0, top_k));
  if ((e = GetNumber(b, "min_p", 0, 1, &sc.min_p))) return e;
  if ((e = GetNumber(b, "repetition_penalty", 1e-3, 100, &sc.repetition_penalty))) return e;
  if (Present(b, "logit_bias")) {  // OpenAI: {"token id": bias in [-100, 100]}, added to the logits
    const Json& lb = b.at("logit_bias");
    if (!lb.is_object()) return Bad("logit_bias", "'logit_bias' must be an object mapping token ids to numbers");
    const int64_t n_vocab = m.tok != nullptr ? m.tok->n_vocab() : 0;
    for (const auto& [key, v] : lb.items()) {
      int64_t id = key.empty() || key.size() > 10 ? -1 : 0;
      for (char c : key) id = id >= 0 && c >= '0' && c <= '9' ? id * 10 + (c - '0') : -1;
      if (id < 0 || id >= n_vocab) {
        return Bad("logit_bias", "'logit_bias' key '" + RepairUtf8(key.substr(0, 32)) +
                                     "' is not a token id of this model (0 to " + std::to_string(n_vocab - 1) + ")");
      }
      if (!v.is_number() || !(std::fabs(v.get<double>()) <= 100)) {
        return Bad("logit_bias", "'logit_bias' values must be numbers between -100 and 100");
      }
      sc.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(v.get<double>()));
    }
  }
  int64_t seed = -1;
  if (Present(b, "seed")) {
    if ((e = GetInt(b, "seed", INT64_MIN, INT64_MAX, &seed))) return e;
    sc.seed = static_cast<uint64_t>(seed);
  } else {
    sc.seed = std::random_device{}();
  }

  if (Present(b, "stop")) {
    const Json& s = b.at("stop");
    if (s.is_string()) {
      p->engine.stop.push_back(s.get<std::string>());
    } else if (s.is_array()) {
      if (s.size() > 4) return Bad("stop", "'stop' takes at most 4 strings");
      for (const auto& x : s) {
        if (!x.is_string()) return Bad("stop", "'stop' must be a string or an array of strings");
        p->engine.stop.push_back(x.get<std::string>());
      }
    } else {
      return Bad("stop", "'stop' must be a string or an array of strings");
    }
    for (const auto& x : p->engine.stop) {
      if (x.empty()) return Bad("stop", "'stop' strings must not be empty");
    }
  }
  bool ignore_eos = false;  // vLLM / llama-server extension
  if ((e = GetBool(b, "ignore_eos", &ignore_eos))) return e;
  if (!ignore_eos) p->engine.eos_tokens = m.eos_tokens;
  p->engine.timeout_s = m.timeout_s;
  return std::nullopt;
}

// max_tokens: explicit (capped by the server) or whatever the context leaves.
OptErr ParseMaxTokens(const Json& b, const ServedModel& m, int64_t dflt, ParsedRequest* p) {
  const int64_t cap = m.max_tokens_cap > 0 ? m.max_tokens_cap : m.ctx;
  int64_t mt = 0;
  OptErr e;
  const bool newer = Present(b, "max_completion_tokens");
  const char* key = newer ? "max_completion_tokens" : "max_tokens";
  if ((e = GetInt(b, key, 1, INT32_MAX, &mt))) return e;
  int64_t unused = 0;  // the older name, when both are sent, is still checked
  if (newer && (e = GetInt(b, "max_tokens", 1, INT32_MAX, &unused))) return e;
  // Not sent: the default (OpenAI's 16 for completions), within the server's cap; only an
  // explicit value over the cap is refused.
  if (mt == 0) mt = dflt > 0 ? std::min(dflt, cap) : cap;
  if (mt > cap) {
    return Bad(key, std::string("'") + key + "' is " + std::to_string(mt) +
                        " but this server allows at most " + std::to_string(cap));
  }
  const int64_t room = m.ctx - static_cast<int64_t>(p->engine.prompt.size());
  if (room < 1) {
    ApiError err = Bad("messages", "this model's context holds " + std::to_string(m.ctx) +
                                       " tokens, but the prompt has " +
                                       std::to_string(p->engine.prompt.size()));
    err.param = p->chat ? "messages" : "prompt";
    err.code = "context_length_exceeded";
    return err;
  }
  p->engine.max_tokens = static_cast<int>(std::min(mt, room));
  return std::nullopt;
}

// A message's content as the template sees it: a string (text parts joined with "\n", as vLLM
// does for text-only part lists). Null or missing content (an assistant turn that only calls
// tools: {"role":"assistant","content":null,"tool_calls":[...]}) becomes "", which templates
// test and concatenate as text.
OptErr NormalizeContent(Json& msg, size_t i) {
  const std::string where = "messages[" + std::to_string(i) + "].content";
  auto it = msg.find("content");
  if (it == msg.end() || it->is_null()) {
    msg["content"] = "";
    return std::nullopt;
  }
  if (it->is_string()) return std::nullopt;
  if (!it->is_array()) return Bad(where, "'" + where + "' must be a string or an array of parts");
  std::string text;
  for (size_t k = 0; k < it->size(); ++k) {
    const Json& part = (*it)[k];
    const std::string pw = where + "[" + std::to_string(k) + "]";
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
      return Bad(pw, "'" + pw + "' must be an object with a 'type'");
    }
    const std::string type = part["type"].get<std::string>();
    if (type != "text") return Bad(pw, "content part type '" + type + "' is not supported (text only)");
    if (!part.contains("text") || !part["text"].is_string()) {
      return Bad(pw + ".text", "'" + pw + ".text' must be a string");
    }
    if (k > 0) text += "\n";
    text += part["text"].get<std::string>();
  }
  *it = text;
  return std::nullopt;
}

std::string FinishReason(const std::string& r) { return r; }

}  // namespace

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json ErrorBody(const ApiError& e) {
  Json err = Json::object();
  err["message"] = e.message;
  err["type"] = e.type;
  err["param"] = e.param.empty() ? Json(nullptr) : Json(e.param);
  err["code"] = e.code.empty() ? Json(nullptr) : Json(e.code);
  return Json{{"error", err}};
}

ApiError FromStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return ApiError{400, s.message(), "invalid_request_error", "", ""};
    case StatusCode::kUnavailable:
      return ApiError{503, s.message(), "server_overloaded", "", ""};
    case StatusCode::kDeadlineExceeded:
      return ApiError{504, s.message(), "timeout", "", ""};
    default:
      return ApiError{500, s.message(), "server_error", "", ""};
  }
}

std::variant<ParsedRequest, ApiError> ParseChatRequest(const Json& body, const ServedModel& m) {
  if (!body.is_object()) return Bad("", "the request body must be a JSON object");
  ParsedRequest p;
  p.chat = true;
  if (!m.chat_template) {
    return Bad("messages", "the served model has no chat template; use /v1/completions or start "
                           "the server with --chat-template FILE.jinja");
  }
  if (!body.contains("messages")) return Bad("messages", "'messages' is required");
  const Json& msgs = body["messages"];
  if (!msgs.is_array() || msgs.empty()) {
    return Bad("messages", "'messages' must be a non-empty array");
  }
  jinja::ChatInputs in;
  in.messages = Json::array();
  for (size_t i = 0; i < msgs.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!msgs[i].is_object()) return Bad(where, "'" + where + "' must be an object");
    Json msg = msgs[i];
    if (!msg.contains("role") || !msg["role"].is_string()) {
      return Bad(where + ".role", "'" + where + ".role' must be a string");
    }
    const std::string role = msg["role"].get<std::string>();
    static const char* kRoles[] = {"system", "developer", "user", "assistant", "tool"};
    if (std::find(std::begin(kRoles), std::end(kRoles), role) == std::end(kRoles)) {
      return Bad(where + ".role", "unknown role '" + role +
                                      "' (system, developer, user, assistant, tool)");
    }
    if (auto e = NormalizeContent(msg, i)) return *e;
    in.messages.push_back(std::move(msg));
  }
  if (Present(body, "tools")) {
    if (!body["tools"].is_array()) return Bad("tools", "'tools' must be an array");
    in.tools = body["tools"];
  }
  if (auto e = GetBool(body, "logprobs", &p.logprobs)) return *e;
  int64_t top = -1;
  if (auto e = GetInt(body, "top_logprobs", 0, 20, &top)) return *e;
  if (top >= 0 && !p.logprobs) return Bad("top_logprobs", "'top_logprobs' requires 'logprobs': true");
  p.engine.top_logprobs = p.logprobs ? static_cast<int>(std::max<int64_t>(top, 0)) : -1;
  if (auto e = ParseCommon(body, m, &p)) return *e;
  in.special_tokens = m.special_tokens;
  in.add_generation_prompt = true;
  auto prompt = jinja::ApplyChatTemplate(*m.chat_template, in, {});
  if (!prompt.ok()) {
    // The template's own checks (e.g. "roles must alternate") are the client's to fix.
    return Bad("messages", "the chat template rejected the messages: " + prompt.status().message());
  }
  p.engine.prompt = m.tok->Encode(*prompt, {.add_special = false, .parse_special = true});
  if (p.engine.prompt.empty()) return Bad("messages", "the rendered prompt has no tokens");
  if (auto e = ParseMaxTokens(body, m, 0, &p)) return *e;
  return p;
}

std::variant<ParsedRequest, ApiError> ParseCompletionRequest(const Json& body,
                                                             const ServedModel& m) {
  if (!body.is_object()) return Bad("", "the request body must be a JSON object");
  ParsedRequest p;
  if (!body.contains("prompt")) return Bad("prompt", "'prompt' is required");
  const Json* pr = &body["prompt"];
  // A batch of one prompt is accepted ([\"text\"] or [[1,2,3]]); n = 1 otherwise.
  if (pr->is_array() && pr->size() == 1 && ((*pr)[0].is_string() || (*pr)[0].is_array())) {
    pr = &(*pr)[0];
  }
  if (pr->is_string()) {
    p.prompt_text = pr->get<std::string>();
    p.engine.prompt = m.tok->Encode(p.prompt_text, {.add_special = true, .parse_special = true});
  } else if (pr->is_array() && !pr->empty()) {
    for (const auto& t : *pr) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= m.tok->n_vocab()) {
        return Bad("prompt", "'prompt' must be a string, or an array of token ids in [0, " +
                                 std::to_string(m.tok->n_vocab()) + ")");
      }
      p.engine.prompt.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    p.prompt_text = m.tok->Decode(p.engine.prompt);
  } else {
    return Bad("prompt", "'prompt' must be a string, an array of token ids, or an array holding one "
                         "of those");
  }
  if (p.engine.prompt.empty()) return Bad("prompt", "the prompt has no tokens");
  if (Present(body, "suffix")) return Bad("suffix", "'suffix' is not supported");
  if (auto e = GetBool(body, "echo", &p.echo)) return *e;
  int64_t lp = -1;
  if (auto e = GetInt(body, "logprobs", 0, 20, &lp)) return *e;
  p.logprobs = lp >= 0;
  p.engine.top_logprobs = static_cast<int>(lp);
  // echo + logprobs: the prompt's tokens are scored too (OpenAI's legacy behaviour, which
  // lm-evaluation-harness's loglikelihood tasks read).
  p.engine.prompt_logprobs = p.echo && p.logprobs;
  if (auto e = ParseCommon(body, m, &p)) return *e;
  if (auto e = ParseMaxTokens(body, m, 16, &p)) return *e;  // OpenAI's default for completions
  return p;
}

ResponseWriter::ResponseWriter(const ParsedRequest& req, const ServedModel& m, std::string id,
                               int64_t created)
    : req_(req), m_(m), id_(std::move(id)), created_(created) {
  if (req_.echo) text_ = req_.prompt_text;
}

Json ResponseWriter::Usage() const {
  Json u = Json::object();
  u["prompt_tokens"] = prompt_tokens_;
  u["completion_tokens"] = completion_tokens_;
  u["total_tokens"] = prompt_tokens_ + completion_tokens_;
  u["prompt_tokens_details"] = Json{{"cached_tokens", cached_tokens_}};
  return u;
}

Json ResponseWriter::LogprobsJson(const std::vector<TokenLogprob>& lps, size_t text_offset,
                                  const std::vector<TokenLogprob>* prompt) const {
  auto token_json = [&](int32_t id, float lp) {
    const std::string raw = m_.tok->TokenBytes(id, false);
    Json bytes = Json::array();
    for (unsigned char c : raw) bytes.push_back(static_cast<int>(c));
    return Json{{"token", RepairUtf8(raw)}, {"logprob", lp}, {"bytes", bytes}};
  };
  if (req_.chat) {
    Json content = Json::array();
    for (const auto& t : lps) {
      Json j = token_json(t.token, t.logprob);
      Json top = Json::array();
      for (const auto& [id, lp] : t.top) top.push_back(token_json(id, lp));
      j["top_logprobs"] = top;
      content.push_back(j);
    }
    return Json{{"content", content}};
  }
  // Legacy completions format: one entry per token; `t` null for the prompt's first token.
  Json tokens = Json::array(), token_lps = Json::array(), tops = Json::array(), offs = Json::array();
  auto add = [&](int32_t id, const TokenLogprob* t, size_t* off) {
    const std::string s = RepairUtf8(m_.tok->TokenBytes(id, false));
    tokens.push_back(s);
    offs.push_back(*off);
    *off += s.size();
    if (t == nullptr) {
      token_lps.push_back(nullptr);
      tops.push_back(nullptr);
      return;
    }
    token_lps.push_back(t->logprob);
    Json top = Json::object();
    for (const auto& [tid, lp] : t->top) top[RepairUtf8(m_.tok->TokenBytes(tid, false))] = lp;
    tops.push_back(top);
  };
  if (prompt != nullptr) {  // echo: the prompt's tokens first, offsets from 0
    size_t poff = 0;
    const auto& ids = req_.engine.prompt;
    for (size_t i = 0; i < ids.size(); ++i) {
      add(ids[i], i >= 1 && i - 1 < prompt->size() ? &(*prompt)[i - 1] : nullptr, &poff);
    }
  }
  size_t off = text_offset;
  for (const auto& t : lps) add(t.token, &t, &off);
  return Json{{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops},
              {"text_offset", offs}};
}

Json ResponseWriter::Chunk(Json choice) const {
  Json j = Json::object();
  j["id"] = id_;
  j["object"] = req_.chat ? "chat.completion.chunk" : "text_completion";
  j["created"] = created_;
  j["model"] = m_.name;
  j["choices"] = Json::array({std::move(choice)});
  // With stream_options.include_usage every chunk carries "usage": null, the last one the counts
  // (OpenAI's stream format).
  if (req_.include_usage) j["usage"] = nullptr;
  return j;
}

std::string ResponseWriter::StreamStart() {
  if (!req_.chat) {
    if (!req_.echo || req_.prompt_text.empty()) return "";
    Json c = {{"index", 0}, {"text", req_.prompt_text}, {"logprobs", nullptr},
              {"finish_reason", nullptr}};
    return "data: " + Dump(Chunk(c)) + "\n\n";
  }
  Json c = {{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}},
            {"logprobs", nullptr}, {"finish_reason", nullptr}};
  return "data: " + Dump(Chunk(c)) + "\n\n";
}

std::string ResponseWriter::StreamError(const ApiError& e) {
  return "data: " + Dump(ErrorBody(e)) + "\n\n";
}

std::string ResponseWriter::StreamEvent(const EngineEvent& ev) {
  if (ev.is_prompt_scores) {  // a chunk without text carrying the prompt's scores
    if (req_.chat || !req_.logprobs) return "";
    Json c = {{"index", 0}, {"text", ""}, {"logprobs", LogprobsJson({}, 0, &ev.prompt_logprobs)},
              {"finish_reason", nullptr}};
    return "data: " + Dump(Chunk(c)) + "\n\n";
  }
  if (ev.kind == EngineEvent::Kind::kText) {
    if (ev.text.empty() && ev.logprobs.empty()) return "";
    Json lp = req_.logprobs && !ev.logprobs.empty() ? LogprobsJson(ev.logprobs, text_.size())
                                                    : Json(nullptr);
    text_ += ev.text;
    Json c = req_.chat ? Json{{"index", 0}, {"delta", {{"content", ev.text}}}, {"logprobs", lp},
                              {"finish_reason", nullptr}}
                       : Json{{"index", 0}, {"text", ev.text}, {"logprobs", lp},
                              {"finish_reason", nullptr}};
    return "data: " + Dump(Chunk(c)) + "\n\n";
  }
  if (ev.kind != EngineEvent::Kind::kDone) return "";
  prompt_tokens_ = ev.prompt_tokens;
  completion_tokens_ = ev.completion_tokens;
  cached_tokens_ = ev.cached_tokens;
  done_ = true;
  Json c = req_.chat ? Json{{"index", 0}, {"delta", Json::object()}, {"logprobs", nullptr},
                            {"finish_reason", FinishReason(ev.finish_reason)}}
                     : Json{{"index", 0}, {"text", ""}, {"logprobs", nullptr},
                            {"finish_reason", FinishReason(ev.finish_reason)}};
  std::string out = "data: " + Dump(Chunk(c)) + "\n\n";
  if (req_.include_usage) {
    Json u = Chunk(Json::object());
    u["choices"] = Json::array();
    u["usage"] = Usage();
    out += "data: " + Dump(u) + "\n\n";
  }
  return out;
}

void ResponseWriter::Add(const EngineEvent& ev) {
  if (ev.is_prompt_scores) {
    prompt_lps_ = ev.prompt_logprobs;
    return;
  }
  if (ev.kind == EngineEvent::Kind::kText) {
    text_ += ev.text;
    lps_.insert(lps_.end(), ev.logprobs.begin(), ev.logprobs.end());
  } else if (ev.kind == EngineEvent::Kind::kDone) {
    finish_reason_ = FinishReason(ev.finish_reason);
    prompt_tokens_ = ev.prompt_tokens;
    completion_tokens_ = ev.completion_tokens;
    cached_tokens_ = ev.cached_tokens;
    done_ = true;
  }
}

Json ResponseWriter::Body() const {
  Json j = Json::object();
  j["id"] = id_;
  j["object"] = req_.chat ? "chat.completion" : "text_completion";
  j["created"] = created_;
  j["model"] = m_.name;
  const size_t echo_len = req_.echo ? req_.prompt_text.size() : 0;
  Json lp = req_.logprobs ? LogprobsJson(lps_, echo_len, req_.engine.prompt_logprobs ? &prompt_lps_ : nullptr)
                          : Json(nullptr);
  Json choice = Json::object();
  choice["index"] = 0;
  if (req_.chat) {
    choice["message"] = Json{{"role", "assistant"}, {"content", text_}};
  } else {
    choice["text"] = text_;
  }
  choice["logprobs"] = lp;
  choice["finish_reason"] = finish_reason_;
  j["choices"] = Json::array({choice});
  j["usage"] = Usage();
  return j;
}

Json ModelsBody(const ServedModel& m) {
  Json model = {{"id", m.name}, {"object", "model"}, {"created", m.created}, {"owned_by", "moxie"},
                {"meta", {{"n_ctx", m.ctx}}}};
  return Json{{"object", "list"}, {"data", Json::array({model})}};
}

}  // namespace moxie::server
