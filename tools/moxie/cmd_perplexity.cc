// `moxie perplexity -m DIR -f text.txt [--ctx N --stride S] [--json]`: the standard strided
// evaluation (Hugging Face "perplexity of fixed-length models", llama.cpp's perplexity):
// windows of `ctx` tokens start every `stride` tokens; the first window scores all its predicted
// tokens (ctx - 1), every later window only its last `stride` tokens (those no earlier window
// scored), each conditioned on up to ctx - 1 preceding tokens. ppl = exp(mean NLL).
#include <chrono>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "tools/moxie/commands.h"
#include "tools/moxie/common.h"

namespace moxie::cli {
namespace {

void Progress(size_t done, size_t total, double nll, size_t n, double secs) {
  const int width = 30;
  const int fill = total ? static_cast<int>(width * done / total) : width;
  std::fprintf(stderr, "\r[%.*s%*s] %3zu%% %zu/%zu windows, ppl %.4f, %.1f s", fill,
               "==============================", width - fill, "", total ? 100 * done / total : 100,
               done, total, n ? std::exp(nll / static_cast<double>(n)) : 0.0, secs);
  std::fflush(stderr);
}

}  // namespace

void RegisterPerplexity(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("perplexity", "Strided perplexity of a text file");
  static std::string model, file;
  static int ctx = 512, stride = 0, threads = 0;
  static bool json = false, no_progress = false;
  cmd->add_option("-m,--model", model, "Hugging Face model folder (default: the demo model)");
  cmd->add_option("-f,--file", file, "UTF-8 text to evaluate")->required();
  cmd->add_option("--ctx", ctx, "Window length in tokens")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--stride", stride, "Window step (default ctx/2)")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-t,--threads", threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_flag("--json", json, "Print the result as JSON");
  cmd->add_flag("--no-progress", no_progress, "No progress bar on stderr");
  cmd->callback([rc] {
    model = ModelOrDefault(model);
    const int s = stride > 0 ? stride : ctx / 2;
    if (s > ctx) {
      *rc = Fail(InvalidArgument("--stride must be <= --ctx"));
      return;
    }
    auto text = ReadTextFile(file);
    if (!text.ok()) {
      *rc = Fail(text.status());
      return;
    }
    auto t0 = std::chrono::steady_clock::now();
    auto m = LoadModel(model);
    if (!m.ok()) {
      *rc = Fail(m.status());
      return;
    }
    auto tok = Tokenizer::FromPath(model);
    if (!tok.ok()) {
      *rc = Fail(tok.status());
      return;
    }
    if (ctx > (*m)->info().max_position) {
      *rc = Fail(InvalidArgument("--ctx " + std::to_string(ctx) +
                                 " exceeds the model's max_position_embeddings " +
                                 std::to_string((*m)->info().max_position)));
      return;
    }
    SessionOptions so;
    so.n_threads = threads;
    so.max_ctx = ctx;
    auto sess = Session::Create(**m, so);
    if (!sess.ok()) {
      *rc = Fail(sess.status());
      return;
    }
    const auto ids = (*tok)->Encode(*text, {.add_special = true, .parse_special = true});
    if (ids.size() < 2) {
      *rc = Fail(InvalidArgument(file + ": fewer than 2 tokens; nothing to evaluate"));
      return;
    }
    const size_t N = ids.size();
    const size_t V = static_cast<size_t>((*m)->info().n_vocab);
    const int chunk = (*sess)->max_batch();
    std::vector<float> logits(static_cast<size_t>(chunk) * V);
    // Windows: begin = 0, s, 2s, ... until a window reaches the end.
    std::vector<size_t> begins;
    for (size_t b = 0;; b += static_cast<size_t>(s)) {
      begins.push_back(b);
      if (b + static_cast<size_t>(ctx) >= N) break;
    }
    double nll = 0;
    size_t n_scored = 0, prev_end = 0;
    auto t1 = std::chrono::steady_clock::now();
    for (size_t w = 0; w < begins.size(); ++w) {
      const size_t b = begins[w], e = std::min(b + static_cast<size_t>(ctx), N);
      // Score targets in [first, e): positions whose prediction comes from the token before.
      const size_t first = std::max(prev_end, b + 1);
      (*sess)->Reset(0);
      for (size_t c = b; c < e; c += static_cast<size_t>(chunk)) {
        const int n = static_cast<int>(std::min(static_cast<size_t>(chunk), e - c));
        Status st = (*sess)->Feed(0, ids.data() + c, n, true, logits.data());
        if (!st.ok()) {
          *rc = Fail(st);
          return;
        }
        for (int r = 0; r < n; ++r) {
          const size_t target = c + static_cast<size_t>(r) + 1;  // row r predicts this token
          if (target < first || target >= e) continue;
          const float* row = logits.data() + static_cast<size_t>(r) * V;
          float mx = row[0];
          for (size_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
          double z = 0;
          for (size_t v = 0; v < V; ++v) z += std::exp(static_cast<double>(row[v] - mx));
          nll += std::log(z) + mx - row[ids[target]];
          ++n_scored;
        }
      }
      prev_end = e;
      if (!no_progress) {
        Progress(w + 1, begins.size(), nll, n_scored,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
      }
    }
    if (!no_progress) std::fprintf(stderr, "\n");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    const double ppl = std::exp(nll / static_cast<double>(n_scored));
    if (json) {
      nlohmann::ordered_json j;
      j["ppl"] = ppl;
      j["nll_sum"] = nll;
      j["n_scored"] = n_scored;
      j["n_tokens"] = N;
      j["ctx"] = ctx;
      j["stride"] = s;
      j["windows"] = begins.size();
      j["seconds"] = secs;
      j["load_s"] = std::chrono::duration<double>(t1 - t0).count();
      std::printf("%s\n", j.dump(1).c_str());
    } else {
      std::printf("perplexity %.4f over %zu tokens (%zu windows, ctx %d, stride %d) in %.1f s\n", ppl,
                  n_scored, begins.size(), ctx, s, secs);
    }
    *rc = 0;
  });
}

}  // namespace moxie::cli
