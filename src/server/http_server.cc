#include "server/http_server.h"
#include "formats/json_parse.h"

#include <dirent.h>
#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>

namespace moxie::server {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(250);
// An idle stream sends an SSE comment this often: clients ignore it, and a vanished client is
// noticed (the write fails) even while its prompt is still waiting or prefilling.
constexpr int kKeepAlivePolls = 8;

void SendError(httplib::Response& res, const ApiError& e) {
  res.status = e.http_status;
  res.set_content(Dump(ErrorBody(e)), "application/json");
}

// Metric label for a path: known routes by name, anything else as "other" (bounded cardinality).
std::string RouteLabel(const std::string& path) {
  static const char* kRoutes[] = {"/health", "/metrics", "/v1/models", "/v1/completions",
                                  "/v1/chat/completions", "/completions", "/chat/completions"};
  for (const char* r : kRoutes) {
    if (path == r) return r;
  }
  return "other";
}

// The socket of the connection a handler is serving, or -1. cpp-httplib 0.11 does not hand it to
// handlers, but a handler runs while its connection is open, and a connection is the only open
// socket with its local and remote address and port. Linux: scans /proc/self/fd.
int FindClientSocket(const httplib::Request& req) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st;
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage peer{}, local{};
    socklen_t plen = sizeof(peer), llen = sizeof(local);
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &plen) != 0 ||
        getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &llen) != 0) {
      continue;
    }
    char host[NI_MAXHOST], port[NI_MAXSERV], lhost[NI_MAXHOST], lport[NI_MAXSERV];
    if (getnameinfo(reinterpret_cast<sockaddr*>(&peer), plen, host, sizeof(host), port,
                    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0 ||
        getnameinfo(reinterpret_cast<sockaddr*>(&local), llen, lhost, sizeof(lhost), lport,
                    sizeof(lport), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
      continue;
    }
    if (req.remote_addr == host && std::to_string(req.remote_port) == port &&
        req.local_addr == lhost && std::to_string(req.local_port) == lport) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

// True once the client has closed or reset its connection (as nginx, a client that shuts down its
// sending side counts as gone). Never blocks; unread bytes (a pipelined request) are no sign.
bool ClientGone(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

std::string Fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

}  // namespace

HttpServer::HttpServer(EngineApi& engine, const ServedModel& model, const HttpOptions& opts)
    : engine_(engine), model_(model), opts_(opts), http_(std::make_unique<httplib::Server>()) {
  Routes();
}

HttpServer::~HttpServer() = default;

void HttpServer::Count(const std::string& route, int status) {
  std::lock_guard<std::mutex> lk(mu_);
  ++responses_[{RouteLabel(route), status}];
}

Status HttpServer::Bind() {
  if (opts_.port < 0 || opts_.port > 65535) return InvalidArgument("--port must be in [0, 65535]");
  if (opts_.port == 0) {
    port_ = http_->bind_to_any_port(opts_.host);
  } else {
    port_ = http_->bind_to_port(opts_.host, opts_.port) ? opts_.port : -1;
  }
  if (port_ <= 0) {
    return IoError("cannot listen on " + opts_.host + ":" + std::to_string(opts_.port) +
                   " (address in use, not a local address, or no permission)");
  }
  return Status::Ok();
}

Status HttpServer::Run() {
  if (!http_->listen_after_bind()) return IoError("the HTTP server stopped with an error");
  return Status::Ok();
}

void HttpServer::Stop() { http_->stop(); }

void HttpServer::Routes() {
  httplib::Server& s = *http_;
  const auto& eo = engine_.options();
  const int threads = opts_.http_threads > 0 ? opts_.http_threads
                                             : eo.n_slots + eo.max_queue + 16;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.set_payload_max_length(opts_.max_body_bytes);
  s.set_read_timeout(30, 0);
  s.set_write_timeout(10, 0);  // a client that stops reading a stream is dropped after this

  // Browser front ends call the API cross-origin (as with llama-server and vLLM).
  s.set_default_headers({{"Access-Control-Allow-Origin", "*"}});
  s.Options(R"(/.*)", [](const httplib::Request& req, httplib::Response& res) {
    res.status = 204;
    res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    // Whatever headers the preflight asks for (the openai SDKs send their X-Stainless-* headers
    // on every request), as llama-server and vLLM allow.
    const std::string asked = req.get_header_value("Access-Control-Request-Headers");
    res.set_header("Access-Control-Allow-Headers", asked.empty() ? "Authorization, Content-Type" : asked);
    res.set_header("Access-Control-Max-Age", "86400");
  });

  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // Preflight requests carry no credentials; /health is for load balancers.
    if (opts_.api_key.empty() || req.path == "/health" || req.method == "OPTIONS") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string want = "Bearer " + opts_.api_key;
    const std::string got = req.get_header_value("Authorization");
    // Length-independent comparison time is not needed on loopback, but cheap. The scheme is
    // case-insensitive (RFC 9110), the key is not.
    bool ok = got.size() == want.size();
    unsigned diff = 0;
    for (size_t i = 0; ok && i < got.size(); ++i) {
      const bool scheme = i < 6;
      const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
      diff |= static_cast<unsigned>(scheme ? lower(got[i]) ^ lower(want[i]) : got[i] ^ want[i]);
    }
    if (ok && diff == 0) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e{401,
               got.empty() ? "missing API key: send 'Authorization: Bearer KEY'" : "invalid API key",
               "authentication_error", "", "invalid_api_key"};
    SendError(res, e);
    Count(req.path, 401);
    return httplib::Server::HandlerResponse::Handled;
  });

  // Errors the library answers itself (404 unknown route, 413 body too large, 400 bad HTTP)
  // get an OpenAI-style body too.
  s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    // A known route with the wrong method: 405 naming the allowed one (the library says 404).
    if (res.status == 404) {
      const bool post_route = req.path == "/v1/chat/completions" || req.path == "/v1/completions" ||
                              req.path == "/chat/completions" || req.path == "/completions";
      const bool get_route = req.path == "/health" || req.path == "/metrics" || req.path == "/v1/models" ||
                             req.path.rfind("/v1/models/", 0) == 0;
      if ((post_route && req.method != "POST") || (get_route && req.method != "GET" && req.method != "HEAD")) {
        res.status = 405;
        res.set_header("Allow", post_route ? "POST, OPTIONS" : "GET, HEAD, OPTIONS");
      }
    }
    e.http_status = res.status;
    switch (res.status) {
      case 404:
        e.message = "no route " + req.method + " " + req.path +
                    " (routes: GET /health, /metrics, /v1/models; POST /v1/completions, "
                    "/v1/chat/completions)";
        e.code = "not_found";
        break;
      case 405:
        e.message = "method " + req.method + " is not allowed on " + req.path + " (allowed: " +
                    res.get_header_value("Allow") + ")";
        e.code = "method_not_allowed";
        break;
      case 415:
        e.message = "unsupported request body: " + req.get_header_value("Content-Type") + " " +
                    req.get_header_value("Content-Encoding") + " (send JSON, uncompressed or gzip)";
        e.code = "unsupported_media_type";
        break;
      case 413:
        e.message = "the request body is larger than the server's limit of " +
                    std::to_string(opts_.max_body_bytes) + " bytes";
        e.code = "request_too_large";
        break;
      default:
        if (res.status == 400 && req.method == "POST" && !req.has_header("Content-Length") &&
            !req.has_header("Transfer-Encoding")) {
          e.message = "the request has no body: send JSON with a Content-Length (or chunked)";
          e.code = "missing_body";
        } else {
          e.message = "bad request (HTTP " + std::to_string(res.status) + ")";
        }
    }
    res.set_content(Dump(ErrorBody(e)), "application/json");
    Count(req.path, res.status);
  });

  s.set_exception_handler([this](const httplib::Request& req, httplib::Response& res,
                                 std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
    SendError(res, ApiError{500, "internal error: " + what, "server_error", "", ""});
    Count(req.path, 500);
  });

  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
    Count("/health", 200);
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(Metrics(), "text/plain; version=0.0.4");
    Count("/metrics", 200);
  });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(Dump(ModelsBody(model_)), "application/json");
    Count("/v1/models", 200);
  });
  s.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] != model_.name) {
      SendError(res, ApiError{404, "the model '" + std::string(req.matches[1]) +
                                       "' does not exist (this server serves '" + model_.name + "')",
                              "invalid_request_error", "model", "model_not_found"});
      Count("/v1/models", 404);
      return;
    }
    res.set_content(Dump(ModelsBody(model_)["data"][0]), "application/json");
    Count("/v1/models", 200);
  });

  auto generate = [this](bool chat) {
    return [this, chat](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
      const std::string route = chat ? "/v1/chat/completions" : "/v1/completions";
      // The body, read here so that the size limit holds for what arrives: the library checks it
      // only against Content-Length, so a chunked body or a gzip one (inflated as it is read)
      // could otherwise grow without bound. Over the limit: 413, and the connection closes.
      if (req.is_multipart_form_data()) {
        res.status = 415;  // the error handler writes the body
        return;
      }
      std::string request_body;
      bool too_large = false;
      // Past the limit the body is read on and dropped, up to a bound, so that a client which
      // sends a finite body gets its 413 (a close with unread bytes would reset the connection
      // before the client reads the answer); an endless body is cut off there.
      const size_t drain_limit = std::max<size_t>(size_t{64} << 20, 4 * opts_.max_body_bytes);
      size_t dropped = 0;
      const bool read = reader([&](const char* data, size_t n) {
        if (too_large || request_body.size() + n > opts_.max_body_bytes) {
          too_large = true;
          request_body.clear();
          dropped += n;
          return dropped <= drain_limit;
        }
        request_body.append(data, n);
        return true;
      });
      if (too_large) {
        res.status = 413;
        res.set_header("Connection", "close");
        return;
      }
      if (!read) {
        if (res.status < 400) res.status = 400;
        res.set_header("Connection", "close");
        return;
      }
      auto parsed_body = ParseJson<Json>(request_body, "request body");
      if (!parsed_body.ok()) {
        SendError(res, ApiError{400, parsed_body.status().message(), "invalid_request_error", "", ""});
        Count(route, 400);
        return;
      }
      const Json body = std::move(parsed_body).value();
      auto parsed = chat ? ParseChatRequest(body, model_) : ParseCompletionRequest(body, model_);
      if (auto* err = std::get_if<ApiError>(&parsed)) {
        SendError(res, *err);
        Count(route, err->http_status);
        return;
      }
      auto preq = std::make_shared<ParsedRequest>(std::move(std::get<ParsedRequest>(parsed)));
      auto handle = engine_.Submit(preq->engine);
      if (!handle.ok()) {
        const ApiError e = FromStatus(handle.status());
        if (e.http_status == 503) res.set_header("Retry-After", "1");
        SendError(res, e);
        Count(route, e.http_status);
        return;
      }
      const std::string id =
          (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id_.fetch_add(1));
      const int64_t created = static_cast<int64_t>(std::time(nullptr));
      auto writer = std::make_shared<ResponseWriter>(*preq, model_, id, created);
      std::shared_ptr<RequestHandle> h = *handle;
      if (!preq->stream) {
        // No bytes go out before the answer, so a vanished client is noticed on its socket.
        const int fd = FindClientSocket(req);
        auto next_check = std::chrono::steady_clock::now() + kPoll;
        EngineEvent ev;
        while (!writer->done()) {
          const bool got = h->Next(&ev, kPoll);
          if (std::chrono::steady_clock::now() >= next_check) {
            next_check = std::chrono::steady_clock::now() + kPoll;
            if (ClientGone(fd)) {
              h->Cancel();  // frees the slot at the next step
              // nginx's "client closed request"; a half-closed client still gets the body.
              SendError(res, ApiError{499, "the client closed the connection", "cancelled", "", ""});
              Count(route, 499);
              return;
            }
          }
          if (!got) continue;
          if (ev.kind == EngineEvent::Kind::kError) {
            const ApiError e = FromStatus(ev.error);
            SendError(res, e);
            Count(route, e.http_status);
            return;
          }
          writer->Add(ev);
        }
        res.set_content(Dump(writer->Body()), "application/json");
        Count(route, 200);
        return;
      }
      Count(route, 200);
      open_streams_.fetch_add(1);
      auto state = std::make_shared<int>(0);  // 0: start not sent, 1: streaming, 2: finished
      res.set_header("Cache-Control", "no-cache");
      auto provider = [h, writer, preq, state](size_t, httplib::DataSink& sink) {
        auto send = [&](const std::string& s) { return s.empty() || sink.write(s.data(), s.size()); };
        if (*state == 0) {
          *state = 1;
          if (!send(writer->StreamStart())) return false;
        }
        EngineEvent ev;
        int idle = 0;
        while (!h->Next(&ev, kPoll)) {
          if (++idle % kKeepAlivePolls == 0 && !send(": keep-alive\n\n")) return false;
        }
        if (ev.kind == EngineEvent::Kind::kError) {
          *state = 2;
          send(ResponseWriter::StreamError(FromStatus(ev.error)));
          send(ResponseWriter::StreamDone());
          sink.done();
          return true;
        }
        if (!send(writer->StreamEvent(ev))) return false;
        if (ev.kind == EngineEvent::Kind::kDone) {
          *state = 2;
          if (!send(ResponseWriter::StreamDone())) return false;
          sink.done();
        }
        return true;
      };
      auto release = [this, h, state](bool) {
        // Ended early (client gone, write failed): stop generating and free the slot.
        if (*state != 2) h->Cancel();
        open_streams_.fetch_sub(1);
      };
      if (req.version == "HTTP/1.0") {
        // No chunked transfer coding in HTTP/1.0 (RFC 9112, 7.1): the stream ends when the
        // connection closes.
        res.set_header("Connection", "close");
        res.set_content_provider("text/event-stream", provider, release);
      } else {
        res.set_chunked_content_provider("text/event-stream", provider, release);
      }
    };
  };
  s.Post("/v1/chat/completions", generate(true));
  s.Post("/v1/completions", generate(false));
  // Some clients use the unversioned paths.
  s.Post("/chat/completions", generate(true));
  s.Post("/completions", generate(false));
}

std::string HttpServer::Metrics() const {
  const EngineStats st = engine_.Stats();
  std::ostringstream o;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& v) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n"
      << name << " " << v << "\n";
  };
  metric("moxie_requests_submitted_total", "counter", "Requests accepted into the queue.",
         std::to_string(st.requests_submitted));
  metric("moxie_requests_finished_total", "counter", "Requests that completed.",
         std::to_string(st.requests_finished));
  metric("moxie_requests_cancelled_total", "counter",
         "Requests cancelled (client disconnected).", std::to_string(st.requests_cancelled));
  metric("moxie_requests_failed_total", "counter", "Requests ended by an error or timeout.",
         std::to_string(st.requests_failed));
  metric("moxie_requests_rejected_total", "counter", "Requests refused because the queue was full.",
         std::to_string(st.requests_rejected));
  metric("moxie_prompt_tokens_total", "counter", "Prompt tokens prefilled (cache hits excluded).",
         std::to_string(st.prompt_tokens));
  metric("moxie_prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's KV cache.",
         std::to_string(st.cached_prompt_tokens));
  metric("moxie_prompt_tokens_copied_total", "counter",
         "Prompt tokens whose K/V were copied from another slot (a shared prefix), counted in cached too.",
         std::to_string(st.copied_prompt_tokens));
  metric("moxie_generation_tokens_total", "counter", "Tokens generated.",
         std::to_string(st.generated_tokens));
  metric("moxie_steps_total", "counter", "Engine forward steps.", std::to_string(st.steps));
  metric("moxie_prefill_seconds_total", "counter", "Step time attributed to prefill tokens.",
         Fmt(st.prefill_seconds));
  metric("moxie_decode_seconds_total", "counter", "Step time attributed to decode tokens.",
         Fmt(st.decode_seconds));
  metric("moxie_prefill_tokens_per_second", "gauge", "Prefill throughput since start.",
         Fmt(st.prefill_seconds > 0 ? st.prompt_tokens / st.prefill_seconds : 0));
  metric("moxie_decode_tokens_per_second", "gauge", "Aggregate decode throughput since start.",
         Fmt(st.decode_seconds > 0 ? st.generated_tokens / st.decode_seconds : 0));
  metric("moxie_queue_depth", "gauge", "Requests waiting for a slot.", std::to_string(st.queue_depth));
  metric("moxie_slots_active", "gauge", "Slots running a request.", std::to_string(st.active_slots));
  metric("moxie_slots_total", "gauge", "KV slots (--parallel).", std::to_string(st.n_slots));
  metric("moxie_streams_open", "gauge", "Open streaming responses.",
         std::to_string(open_streams_.load()));
  metric("moxie_batch_tokens_last", "gauge", "Tokens in the last engine step.",
         std::to_string(st.last_batch_tokens));
  o << "# HELP moxie_batch_tokens Tokens per engine step.\n# TYPE moxie_batch_tokens histogram\n";
  for (size_t i = 0; i < st.batch_bounds.size(); ++i) {
    o << "moxie_batch_tokens_bucket{le=\"" << st.batch_bounds[i] << "\"} " << st.batch_buckets[i]
      << "\n";
  }
  o << "moxie_batch_tokens_bucket{le=\"+Inf\"} " << st.steps << "\nmoxie_batch_tokens_sum "
    << st.batch_tokens_sum << "\nmoxie_batch_tokens_count " << st.steps << "\n";
  o << "# HELP moxie_time_to_first_token_seconds Submit to first sampled token.\n"
       "# TYPE moxie_time_to_first_token_seconds histogram\n";
  for (size_t i = 0; i < st.ttft_bounds.size(); ++i) {
    o << "moxie_time_to_first_token_seconds_bucket{le=\"" << Fmt(st.ttft_bounds[i]) << "\"} "
      << st.ttft_buckets[i] << "\n";
  }
  o << "moxie_time_to_first_token_seconds_bucket{le=\"+Inf\"} " << st.ttft_count << "\n"
    << "moxie_time_to_first_token_seconds_sum " << Fmt(st.ttft_sum) << "\n"
    << "moxie_time_to_first_token_seconds_count " << st.ttft_count << "\n";
  o << "# HELP moxie_expert_selections_total Routed-expert selections per MoE layer.\n"
       "# TYPE moxie_expert_selections_total counter\n";
  for (size_t l = 0; l < st.expert_counts.size(); ++l) {
    for (size_t x = 0; x < st.expert_counts[l].size(); ++x) {
      o << "moxie_expert_selections_total{layer=\"" << st.moe_layers[l] << "\",expert=\"" << x
        << "\"} " << st.expert_counts[l][x] << "\n";
    }
  }
  o << "# HELP moxie_http_responses_total HTTP responses by route and status.\n"
       "# TYPE moxie_http_responses_total counter\n";
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& [k, v] : responses_) {
    o << "moxie_http_responses_total{route=\"" << k.first << "\",status=\"" << k.second << "\"} "
      << v << "\n";
  }
  return o.str();
}

}  // namespace moxie::server
