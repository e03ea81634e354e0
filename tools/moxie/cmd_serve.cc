// `moxie serve`: the OpenAI-compatible HTTP server (src/server) over the batch engine.
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <thread>

#include "core/mapped_file.h"
#include "runtime/batch_engine.h"
#include "server/http_server.h"
#include "tools/moxie/commands.h"
#include "tools/moxie/common.h"

namespace moxie::cli {

void RegisterServe(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching");
  static std::string model, alias, tmpl_file;
  static server::HttpOptions http;
  static BatchEngineOptions eng;
  static int max_tokens = 0;
  static double timeout_s = 600;
  static size_t max_body_kib = 4096;
  cmd->add_option("-m,--model", model, "Model folder or GGUF file (default: the demo model)");
  cmd->add_option("--host", http.host, "Address to bind (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", http.port, "Port (0: any free port, printed at start)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", http.api_key, "Require 'Authorization: Bearer KEY' (not on /health)");
  cmd->add_option("--parallel", eng.n_slots, "Sequences decoded together (KV slots)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("-c,--ctx", eng.ctx, "Context size per slot in tokens (0: min(model, 4096))")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("-t,--threads", eng.n_threads, "Threads (0: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_flag("--pin", eng.pin_threads, "Bind each thread to one CPU");
  AddBf16ActFlag(cmd, &eng.bf16_activations);
  static bool no_repack = false;
  cmd->add_flag("--no-repack", no_repack,
                "Use matmul weights as stored (faster load, slower kernels; default: Q8_0/Q4_0/MXFP4/K-quants 8 "
                "rows and BF16/F16 16 rows interleaved at load, others copied onto huge pages)");
  static std::string kv_type = "f32";
  AddKvTypeFlag(cmd, &kv_type);
  cmd->add_option("--step-tokens", eng.max_step_tokens,
                  "Most tokens in one forward step (decode tokens + prefill chunks)")
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--prefill-chunk", eng.prefill_chunk_while_decoding,
                  "Prefill tokens per step while other requests decode")
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--max-queue", eng.max_queue, "Requests waiting beyond the slots (then 503)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--max-tokens", max_tokens, "Largest max_tokens a request may ask (0: the context)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--timeout", timeout_s, "Per-request time limit in seconds (0: none)")
      ->check(CLI::Range(0.0, 1e7));
  cmd->add_option("--max-body-kib", max_body_kib, "Largest request body in KiB (then 413)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--alias", alias, "Model name in /v1/models and responses (default: file name)");
  cmd->add_option("--chat-template", tmpl_file, "Use this .jinja chat template instead of the model's");
  cmd->callback([rc] {
    // SIGINT/SIGTERM stop the server cleanly; a vanished client must not kill us with SIGPIPE.
    // Blocked before any thread starts, so every thread inherits the mask and sigwait sees them.
    std::signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    model = ModelOrDefault(model);
    http.max_body_bytes = max_body_kib * 1024;
    LoadOptions lo;
    lo.repack = !no_repack;
    eng.kv_type = KvType(kv_type);
    auto m = LoadModel(model, lo);
    if (!m.ok()) {
      *rc = Fail(m.status());
      return;
    }
    auto tok = Tokenizer::FromPath(model);
    if (!tok.ok()) {
      *rc = Fail(tok.status());
      return;
    }
    server::ServedModel served;
    served.name = alias.empty() ? std::filesystem::path(model).filename().string() : alias;
    if (served.name.empty()) served.name = std::filesystem::path(model).parent_path().filename().string();
    served.tok = tok->get();
    served.eos_tokens = EosTokens(model, **m, **tok);
    for (const auto& [k, v] : (*tok)->special_token_strings()) served.special_tokens[k] = v;
    std::string tmpl_text = (*tok)->chat_template();
    if (!tmpl_file.empty()) {
      auto r = ReadTextFile(tmpl_file);
      if (!r.ok()) {
        *rc = Fail(r.status());
        return;
      }
      tmpl_text = *r;
    }
    if (!tmpl_text.empty()) {
      auto t = jinja::Template::Parse(tmpl_text);
      if (!t.ok()) {
        if (!tmpl_file.empty()) {
          *rc = Fail(t.status().WithContext(tmpl_file));
          return;
        }
        std::fprintf(stderr, "moxie: warning: the model's chat template does not parse (%s); "
                             "/v1/chat/completions is off (pass --chat-template)\n",
                     t.status().message().c_str());
      } else {
        served.chat_template = std::move(*t);
      }
    }
    auto engine = BatchEngine::Create(**m, **tok, eng);
    if (!engine.ok()) {
      *rc = Fail(engine.status());
      return;
    }
    served.ctx = (*engine)->ctx();
    served.max_tokens_cap = max_tokens;
    served.timeout_s = timeout_s;
    served.created = static_cast<int64_t>(std::time(nullptr));


    server::HttpServer srv(**engine, served, http);
    if (Status st = srv.Bind(); !st.ok()) {
      *rc = Fail(st);
      return;
    }
    std::thread waiter([&srv, sigs] {
      int sig = 0;
      sigwait(&sigs, &sig);
      srv.Stop();
    });
    std::fprintf(stderr,
                 "moxie: serving %s on http://%s:%d (%d slots, %d tokens each, chat %s)\n",
                 served.name.c_str(), http.host.c_str(), srv.port(), eng.n_slots, served.ctx,
                 served.chat_template ? "on" : "off");
    std::fflush(stderr);
    Status st = srv.Run();
    pthread_kill(waiter.native_handle(), SIGTERM);  // wakes the waiter if Run ended by itself
    waiter.join();
    *rc = st.ok() ? 0 : Fail(st);
  });
}

}  // namespace moxie::cli
