// `moxie perplexity -m DIR -f text.txt [--ctx N --stride S] [--json]`: the standard strided
// evaluation (Hugging Face "perplexity of fixed-length models", llama.cpp's perplexity):
// windows of `ctx` tokens start every `stride` tokens; the first window scores all its predicted
// tokens (ctx - 1), every later window only its last `stride` tokens (those no earlier window
// scored), each conditioned on up to ctx - 1 preceding tokens. ppl = exp(mean NLL).
// With `--kl-base REF` a second model (e.g. the f32 original of a quantised file) runs on the same
// windows and the report adds, over the scored positions, KL(P_ref || P_model) (mean, max, 99th
// percentile), top-1 agreement and the reference's own perplexity (llama.cpp's
// --kl-divergence in one run).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/json_parse.h"
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
  static std::string model, file, kl_base;
  static int ctx = 512, stride = 0, threads = 0;
  static bool json = false, no_progress = false, f32_act = false;
  cmd->add_option("-m,--model", model, "Hugging Face model folder (default: the demo model)");
  cmd->add_option("-f,--file", file, "UTF-8 text to evaluate")->required();
  cmd->add_option("--ctx", ctx, "Window length in tokens")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--stride", stride, "Window step (default ctx/2)")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-t,--threads", threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--kl-base", kl_base,
                  "Reference model (folder or GGUF) to compare with: KL divergence and top-1 agreement");
  static std::string kv_type = "f32";
  AddKvTypeFlag(cmd, &kv_type);
  static bool bf16_act = false;
  AddBf16ActFlag(cmd, &bf16_act);
  cmd->add_flag("--f32-activations", f32_act,
                "Quantized weights: f32 activations against the dequantized weights (exact to the dequantized "
                "model) instead of 8-bit activations");
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
    so.quantized_activations = !f32_act;
    so.kv_type = KvType(kv_type);
    so.bf16_activations = bf16_act;
    auto sess = Session::Create(**m, so);
    if (!sess.ok()) {
      *rc = Fail(sess.status());
      return;
    }
    std::unique_ptr<Model> ref;
    std::unique_ptr<Session> ref_sess;
    if (!kl_base.empty()) {
      auto rm = LoadModel(kl_base);
      if (!rm.ok()) {
        *rc = Fail(rm.status());
        return;
      }
      ref = std::move(*rm);
      if (ref->info().n_vocab != (*m)->info().n_vocab) {
        *rc = Fail(InvalidArgument("--kl-base " + kl_base + " has vocab " + std::to_string(ref->info().n_vocab) +
                                   ", the model " + std::to_string((*m)->info().n_vocab)));
        return;
      }
      auto rs = Session::Create(*ref, so);
      if (!rs.ok()) {
        *rc = Fail(rs.status());
        return;
      }
      ref_sess = std::move(*rs);
    }
    const auto ids = (*tok)->Encode(*text, {.add_special = true, .parse_special = true});
    if (ids.size() < 2) {
      *rc = Fail(InvalidArgument(file + ": fewer than 2 tokens; nothing to evaluate"));
      return;
    }
    const size_t N = ids.size();
    const size_t V = static_cast<size_t>((*m)->info().n_vocab);
    const int chunk = (*sess)->max_batch();
    const int ref_chunk = ref_sess ? std::min(chunk, ref_sess->max_batch()) : chunk;
    const int step = std::min(chunk, ref_chunk);
    std::vector<float> logits(static_cast<size_t>(chunk) * V);
    std::vector<float> ref_logits(ref_sess ? static_cast<size_t>(step) * V : 0);
    double ref_nll = 0;
    std::vector<double> kls;
    size_t top1_agree = 0;
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
      if (ref_sess) ref_sess->Reset(0);
      for (size_t c = b; c < e; c += static_cast<size_t>(step)) {
        const int n = static_cast<int>(std::min(static_cast<size_t>(step), e - c));
        Status st = (*sess)->Feed(0, ids.data() + c, n, true, logits.data());
        if (st.ok() && ref_sess) st = ref_sess->Feed(0, ids.data() + c, n, true, ref_logits.data());
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
          if (ref_sess) {
            const float* rr = ref_logits.data() + static_cast<size_t>(r) * V;
            float rmx = rr[0];
            size_t a1 = 0, a2 = 0;
            for (size_t v = 1; v < V; ++v) {
              if (rr[v] > rr[a1]) a1 = v;
              if (row[v] > row[a2]) a2 = v;
              rmx = std::max(rmx, rr[v]);
            }
            double rz = 0;
            for (size_t v = 0; v < V; ++v) rz += std::exp(static_cast<double>(rr[v] - rmx));
            const double lrz = std::log(rz) + rmx, lz = std::log(z) + mx;
            double kl = 0;  // sum_v p_ref (log p_ref - log p)
            for (size_t v = 0; v < V; ++v) {
              const double lp_ref = rr[v] - lrz, lp = row[v] - lz;
              kl += std::exp(lp_ref) * (lp_ref - lp);
            }
            kls.push_back(std::max(0.0, kl));
            ref_nll += lrz - rr[ids[target]];
            top1_agree += a1 == a2;
          }
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
    double kl_mean = 0, kl_max = 0, kl_p99 = 0;
    if (!kls.empty()) {
      for (double k : kls) kl_mean += k;
      kl_mean /= static_cast<double>(kls.size());
      std::vector<double> sorted = kls;
      std::sort(sorted.begin(), sorted.end());
      kl_max = sorted.back();
      kl_p99 = sorted[std::min(sorted.size() - 1, static_cast<size_t>(0.99 * static_cast<double>(sorted.size())))];
    }
    const double agree = kls.empty() ? 0 : static_cast<double>(top1_agree) / static_cast<double>(kls.size());
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
      if (ref_sess) {
        j["kl_base"] = kl_base;
        j["base_ppl"] = std::exp(ref_nll / static_cast<double>(n_scored));
        j["kl_mean"] = kl_mean;
        j["kl_p99"] = kl_p99;
        j["kl_max"] = kl_max;
        j["top1_agreement"] = agree;
      }
      std::printf("%s\n", DumpJson(j, 1).c_str());
    } else {
      std::printf("perplexity %.4f over %zu tokens (%zu windows, ctx %d, stride %d) in %.1f s\n", ppl,
                  n_scored, begins.size(), ctx, s, secs);
      if (ref_sess) {
        std::printf("vs %s: base perplexity %.4f; KL divergence mean %.6f, p99 %.6f, max %.6f; top-1 agreement "
                    "%.2f%%\n",
                    kl_base.c_str(), std::exp(ref_nll / static_cast<double>(n_scored)), kl_mean, kl_p99, kl_max,
                    100.0 * agree);
      }
    }
    *rc = 0;
  });
}

}  // namespace moxie::cli
