// `moxie logits -m DIR --tokens 1,2,3 --out l.npy [--mode prefill|decode] [--routing-out r.json]`
// Writes float32 [T, V]: row t = logits after consuming tokens 0..t.
#include <chrono>
#include <cstdio>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/npy.h"
#include "formats/json_parse.h"
#include "moe/routing_trace.h"
#include "runtime/session.h"
#include "tools/moxie/commands.h"
#include "tools/moxie/common.h"

namespace moxie::cli {

void RegisterLogits(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("logits", "Write the logits of a token sequence as .npy");
  static std::string model, tokens, out, mode = "prefill", routing_out;
  static int threads = 0;
  cmd->add_option("-m,--model", model, "Hugging Face model folder (default: the demo model)");
  cmd->add_option("--tokens", tokens, "Comma-separated token ids")->required();
  cmd->add_option("--out", out, "Output .npy file (float32 [T, vocab])")->required();
  cmd->add_option("--mode", mode, "prefill: one forward pass; decode: one token at a time")
      ->check(CLI::IsMember({"prefill", "decode"}));
  cmd->add_option("--routing-out", routing_out, "Write per-layer expert choices as JSON");
  cmd->add_option("-t,--threads", threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  static std::string kv_type = "f32";
  AddKvTypeFlag(cmd, &kv_type);
  static bool bf16_act = false;
  AddBf16ActFlag(cmd, &bf16_act);
  cmd->callback([rc] {
    model = ModelOrDefault(model);
    auto ids = ParseTokenList(tokens, "--tokens");
    if (!ids.ok()) {
      *rc = Fail(ids.status());
      return;
    }
    auto t0 = std::chrono::steady_clock::now();
    auto m = LoadModel(model);
    if (!m.ok()) {
      *rc = Fail(m.status());
      return;
    }
    const int T = static_cast<int>(ids->size());
    SessionOptions so;
    so.n_threads = threads;
    so.kv_type = KvType(kv_type);
    so.bf16_activations = bf16_act;
    so.max_ctx = std::max(T, std::min((*m)->info().max_position, 4096));
    auto s = Session::Create(**m, so);
    if (!s.ok()) {
      *rc = Fail(s.status());
      return;
    }
    auto t1 = std::chrono::steady_clock::now();
    const size_t V = static_cast<size_t>((*m)->info().n_vocab);
    std::vector<float> logits(static_cast<size_t>(T) * V);
    RoutingTrace trace;
    ForwardOptions fo;
    if (!routing_out.empty()) fo.observer = &trace;
    Status st;
    if (mode == "prefill") {
      st = (*s)->Feed(0, ids->data(), T, /*all_logits=*/true, logits.data(), fo);
    } else {
      for (int t = 0; t < T && st.ok(); ++t) {
        st = (*s)->Feed(0, ids->data() + t, 1, false, logits.data() + static_cast<size_t>(t) * V, fo);
      }
    }
    if (!st.ok()) {
      *rc = Fail(st);
      return;
    }
    auto t2 = std::chrono::steady_clock::now();
    st = WriteNpyF32(out, logits.data(), {T, static_cast<int64_t>(V)});
    if (!st.ok()) {
      *rc = Fail(st);
      return;
    }
    if (!routing_out.empty()) {
      nlohmann::ordered_json extra;
      extra["model_type"] = (*m)->info().model_type;
      extra["mode"] = mode;
      extra["tokens"] = *ids;
      FILE* f = std::fopen(routing_out.c_str(), "wb");
      if (f == nullptr) {
        *rc = Fail(IoError(routing_out + ": cannot open for writing"));
        return;
      }
      const std::string text = trace.ToJson(DumpJson(extra));
      std::fwrite(text.data(), 1, text.size(), f);
      std::fclose(f);
    }
    const double load_s = std::chrono::duration<double>(t1 - t0).count();
    const double run_s = std::chrono::duration<double>(t2 - t1).count();
    std::fprintf(stderr, "moxie: %d tokens (%s) in %.3f s (%.1f tok/s); load %.3f s; %d threads\n", T,
                 mode.c_str(), run_s, T / run_s, load_s, (*s)->n_threads());
    *rc = 0;
  });
}

}  // namespace moxie::cli
