// `moxie generate -m DIR --tokens 1,2,3 -n 32 --greedy`: prints the generated token ids.
#include <chrono>
#include <cstdio>
#include <vector>

#include "runtime/session.h"
#include "tools/moxie/commands.h"
#include "tools/moxie/common.h"

namespace moxie::cli {

void RegisterGenerate(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("generate", "Generate token ids from a prompt of token ids");
  static std::string model, tokens;
  static int n_predict = 32, threads = 0;
  static bool greedy = false, stop_eos = false;
  cmd->add_option("-m,--model", model, "Hugging Face model folder (default: the demo model)");
  cmd->add_option("--tokens", tokens, "Prompt as comma-separated token ids")->required();
  cmd->add_option("-n,--n-predict", n_predict, "Tokens to generate")->check(CLI::Range(0, 1 << 20));
  cmd->add_flag("--greedy", greedy, "Argmax decoding (the only sampler until text in/out lands)");
  cmd->add_flag("--stop-at-eos", stop_eos, "Stop when the model's EOS token is generated");
  cmd->add_option("-t,--threads", threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->callback([rc] {
    model = ModelOrDefault(model);
    if (!greedy) {
      *rc = Fail(InvalidArgument("only --greedy decoding is available in this version"));
      return;
    }
    auto ids = ParseTokenList(tokens, "--tokens");
    if (!ids.ok()) {
      *rc = Fail(ids.status());
      return;
    }
    auto m = LoadModel(model);
    if (!m.ok()) {
      *rc = Fail(m.status());
      return;
    }
    const int T = static_cast<int>(ids->size());
    SessionOptions so;
    so.n_threads = threads;
    so.max_ctx = std::max(T + n_predict, 1);
    auto s = Session::Create(**m, so);
    if (!s.ok()) {
      *rc = Fail(s.status());
      return;
    }
    const size_t V = static_cast<size_t>((*m)->info().n_vocab);
    std::vector<float> logits(V);
    auto t0 = std::chrono::steady_clock::now();
    Status st = (*s)->Feed(0, ids->data(), T, false, logits.data());
    auto t1 = std::chrono::steady_clock::now();
    std::vector<int32_t> out;
    out.reserve(static_cast<size_t>(n_predict));
    for (int i = 0; i < n_predict && st.ok(); ++i) {
      int32_t best = 0;
      for (size_t v = 1; v < V; ++v) {
        if (logits[v] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(v);
      }
      out.push_back(best);
      std::printf(i ? ",%d" : "%d", best);
      std::fflush(stdout);
      if (stop_eos && best == (*m)->info().eos_token) break;
      if (i + 1 < n_predict) st = (*s)->Feed(0, &best, 1, false, logits.data());
    }
    std::printf("\n");
    std::fflush(stdout);
    if (!st.ok()) {
      *rc = Fail(st);
      return;
    }
    auto t2 = std::chrono::steady_clock::now();
    const double pre = std::chrono::duration<double>(t1 - t0).count();
    const double dec = std::chrono::duration<double>(t2 - t1).count();
    std::fprintf(stderr, "moxie: prefill %d tokens %.1f tok/s; decode %zu tokens %.1f tok/s\n", T,
                 T / pre, out.size(), out.size() > 1 ? (out.size() - 1) / dec : 0.0);
    *rc = 0;
  });
}

}  // namespace moxie::cli
