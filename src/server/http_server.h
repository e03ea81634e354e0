// HttpServer: the OpenAI-compatible HTTP front of a BatchEngine.
//
// Handlers only translate: JSON -> EngineRequest (openai.h), BatchEngine::Submit, then engine
// events -> JSON or Server-Sent Events. All model work happens on the engine thread, so a slow
// or vanished client never blocks other requests; a client that disconnects from a stream
// cancels its request, which frees its slot at the next step.
//
// Routes: GET /health, GET /metrics (Prometheus text), GET /v1/models,
// POST /v1/completions, POST /v1/chat/completions. Errors are OpenAI-style JSON.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"
#include "runtime/batch_engine.h"
#include "server/openai.h"

namespace httplib {
class Server;
}

namespace moxie::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see port())
  std::string api_key;  // non-empty: every route but /health needs "Authorization: Bearer KEY"
  size_t max_body_bytes = 4 << 20;  // larger bodies get 413
  int http_threads = 0;             // 0: enough for every slot and queued request, plus spares
};

class HttpServer {
 public:
  // `engine` and `model` must outlive the server.
  HttpServer(EngineApi& engine, const ServedModel& model, const HttpOptions& opts);
  ~HttpServer();
  // Binds the socket (errors name host and port).
  Status Bind();
  int port() const { return port_; }
  // Serves until Stop() (from another thread or a signal handler's helper thread).
  Status Run();
  void Stop();

 private:
  void Routes();
  std::string Metrics() const;
  void Count(const std::string& route, int status);

  EngineApi& engine_;
  const ServedModel& model_;
  HttpOptions opts_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
  std::atomic<uint64_t> next_id_{1};
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> responses_;  // (route, status) -> count
  std::atomic<int> open_streams_{0};
};

}  // namespace moxie::server
