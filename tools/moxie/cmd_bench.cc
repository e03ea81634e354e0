// `moxie bench -m MODEL [-p 512] [-n 128] [-t 2] [-r 5] [-b 1,4,8] [-d 0] [-o md|json]`: prefill and
// decode speed like llama-bench (random token ids, from an empty context or after -d tokens of
// context, median and spread over repetitions), batched decode of B sequences with the expert-union roofline from the routing
// actually observed, load time, peak RSS, a memory-bandwidth probe and the roofline shares, and
// the time split by phase from cheap counters.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <map>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/membw.h"
#include "core/thread_pool.h"
#include "formats/json_parse.h"
#include "kernels/kernel_table.h"
#include "tools/moxie/commands.h"
#include "tools/moxie/common.h"

namespace moxie::cli {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The process's peak resident set (VmHWM; getrusage's ru_maxrss where /proc is missing).
int64_t PeakRssBytes() {
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    long long kib = -1;
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::sscanf(line, "VmHWM: %lld kB", &kib) == 1) break;
    }
    std::fclose(f);
    if (kib >= 0) return static_cast<int64_t>(kib) * 1024;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

// Resets VmHWM to the current resident set (Linux: "5" to /proc/self/clear_refs); false if it
// could not, so that later peaks would include whatever ran in between.
bool ResetPeakRss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

struct Stats {
  double median = 0, min = 0, max = 0;
};
Stats Summarise(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Stats s;
  if (v.empty()) return s;
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  return s;
}

// Counts, per step, the distinct experts each MoE layer ran (the weights a step must read).
class UnionCounter : public RoutingObserver {
 public:
  explicit UnionCounter(const ModelInfo& info) {
    for (size_t i = 0; i < info.moe_layers.size(); ++i) {
      bytes_[info.moe_layers[i]] = info.expert_bytes[i];
    }
  }
  // Runs inside the timed decode loops: no allocation once seen_ has grown to the expert count.
  void OnRouting(const RoutingEvent& ev) override {
    size_t distinct = 0;
    for (int t = 0; t < ev.n_tok; ++t) {
      for (int j = 0; j < ev.count[t]; ++j) {
        const int32_t id = ev.ids[t * ev.k_max + j];
        if (id < 0) continue;
        if (static_cast<size_t>(id) >= seen_.size()) seen_.resize(static_cast<size_t>(id) + 1, 0);
        if (!seen_[static_cast<size_t>(id)]) {
          seen_[static_cast<size_t>(id)] = 1;
          ++distinct;
        }
      }
    }
    for (int t = 0; t < ev.n_tok; ++t) {
      for (int j = 0; j < ev.count[t]; ++j) {
        const int32_t id = ev.ids[t * ev.k_max + j];
        if (id >= 0) seen_[static_cast<size_t>(id)] = 0;
      }
    }
    expert_bytes_ += static_cast<double>(distinct) * static_cast<double>(bytes_[ev.layer]);
    experts_ += static_cast<double>(distinct);
    ++layer_steps_;
  }
  double expert_bytes_ = 0, experts_ = 0;
  int64_t layer_steps_ = 0;

 private:
  std::map<int, int64_t> bytes_;
  std::vector<uint8_t> seen_;  // experts of the current event, cleared after it
};

std::string Mb(double b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f MiB", b / 1048576.0);
  return s;
}

nlohmann::ordered_json PhasesJson(const PhaseTimes& t) {
  return {{"attention", t.attention}, {"router", t.router}, {"experts", t.experts}, {"shared", t.shared},
          {"dense", t.dense},         {"lm_head", t.lm_head}, {"other", t.other}};
}

// Each thread's idle share of a test's time and the parallel jobs per forward step, from the pool's
// counters (ThreadPool::set_idle_timing).
struct Idle {
  std::vector<double> share;
  double serial_share = 0;  // thread 0 between jobs
  double jobs_per_step = 0;
};

Idle ReadIdle(const ThreadPool* pool, double seconds, double steps) {
  Idle r;
  if (pool == nullptr || seconds <= 0 || steps <= 0) return r;
  for (int t = 0; t < pool->size(); ++t) r.share.push_back(pool->idle_seconds(t) / seconds);
  r.jobs_per_step = static_cast<double>(pool->jobs()) / steps;
  r.serial_share = pool->serial_seconds() / seconds;
  return r;
}

nlohmann::ordered_json IdleJson(const Idle& i) {
  return {{"thread_idle_share", i.share}, {"serial_share", i.serial_share}, {"jobs_per_step", i.jobs_per_step}};
}

void PrintPhases(const std::string& what, const PhaseTimes& t, const Idle& idle = {}) {
  const double tot = t.total();
  if (tot <= 0) return;
  std::printf("%s time by phase: attention %.0f %%, router %.0f %%, experts %.0f %%, shared %.0f %%, dense %.0f %%, "
              "lm_head %.0f %%, other %.0f %%",
              what.c_str(), 100 * t.attention / tot, 100 * t.router / tot, 100 * t.experts / tot, 100 * t.shared / tot,
              100 * t.dense / tot, 100 * t.lm_head / tot, 100 * t.other / tot);
  if (idle.share.size() > 1) {
    // Thread 0 waits at the barriers; the others also through thread 0's serial work between jobs.
    std::printf("; idle:");
    for (size_t i = 0; i < idle.share.size(); ++i) std::printf("%s %.1f %%", i ? " /" : "", 100 * idle.share[i]);
    std::printf(" (thread 0 at barriers; others between jobs); thread 0 serial %.1f %%; %.0f jobs/step",
                100 * idle.serial_share, idle.jobs_per_step);
  }
  std::printf("\n");
}

// "roofline | share" cells; dashes without a bandwidth probe.
std::string RoofCells(double tok_s, double roof) {
  if (roof <= 0) return "- | -";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f | %.0f %%", roof, 100 * tok_s / roof);
  return buf;
}

// "read GB/s (experts)" cell.
std::string ReadCell(double all, double experts) {
  char buf[64];
  if (experts > 0) {
    std::snprintf(buf, sizeof buf, "%.1f (%.1f)", all, experts);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", all);
  }
  return buf;
}

}  // namespace

void RegisterBench(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("bench", "Prefill / decode / batched-decode speed with roofline shares");
  static std::string model, batches = "1", out = "md";
  static int p = 512, n = 128, threads = 0, reps = 5, depth = 0;
  static bool no_bw = false;
  static bool no_repack = false;
  static bool pin = false;
  static bool identical = false;
  static bool bf16_act = false;
  static uint64_t seed = 1;
  cmd->add_option("-m,--model", model, "Model folder or GGUF (default: the demo model)");
  cmd->add_option("-p,--n-prompt", p, "Prefill length (0 = skip)")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-n,--n-gen", n, "Decoded tokens per run (0 = skip)")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-t,--threads", threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("-r,--repetitions", reps, "Repetitions of each test")->check(CLI::Range(1, 1000));
  cmd->add_option("-b,--batch", batches, "Sequences decoded together, e.g. 1,4,8");
  cmd->add_flag("--identical-sequences", identical,
                "Batched decode: every sequence gets the same tokens, so all route alike and a step reads "
                "one sequence's experts (llama-batched-bench's workload; default: distinct random tokens)");
  cmd->add_option("-d,--depth", depth, "Tokens already in each sequence's context before every test")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-o,--output", out, "md or json")->check(CLI::IsMember({"md", "json"}));
  cmd->add_flag("--no-bandwidth", no_bw, "Skip the memory-bandwidth probe (no roofline shares)");
  cmd->add_flag("--no-repack", no_repack, "Use matmul weights as stored (no interleaved layout or huge-page copy at load)");
  cmd->add_flag("--pin", pin, "Bind each thread to one CPU");
  AddBf16ActFlag(cmd, &bf16_act);
  static std::string kv_type = "f32";
  AddKvTypeFlag(cmd, &kv_type);
  cmd->add_option("--seed", seed, "Seed of the random token ids");
  cmd->callback([rc] {
    model = ModelOrDefault(model);
    auto bl = ParseTokenList(batches, "-b", "batch size");
    if (!bl.ok()) {
      *rc = Fail(bl.status());
      return;
    }
    std::vector<int> bs;
    for (int32_t b : *bl) {
      if (b < 1 || b > 256) {
        *rc = Fail(InvalidArgument("-b: batch sizes must be in [1, 256], got " + std::to_string(b)));
        return;
      }
      bs.push_back(b);
    }
    const int nt = threads > 0 ? threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    const double t0 = Now();
    LoadOptions lo;
    lo.repack = !no_repack;
    auto m = LoadModel(model, lo);
    if (!m.ok()) {
      *rc = Fail(m.status());
      return;
    }
    const double load_s = Now() - t0;
    const ModelInfo& info = (*m)->info();
    int max_b = 1;
    for (int b : bs) max_b = std::max(max_b, b);
    SessionOptions so;
    so.n_threads = nt;
    so.pin_threads = pin;
    so.kv_type = KvType(kv_type);
    so.bf16_activations = bf16_act;
    so.n_seq = max_b;
    if (depth + std::max(p, n) > info.max_position) {
      *rc = Fail(InvalidArgument("-d " + std::to_string(depth) + " plus the longest test (" +
                                 std::to_string(std::max(p, n)) + " tokens) exceeds the model's context " +
                                 std::to_string(info.max_position)));
      return;
    }
    so.max_ctx = std::min(info.max_position, depth + std::max(p, n) + 1);
    so.max_batch = std::max({1, max_b, std::min(p, 512)});
    auto sess = Session::Create(**m, so);
    if (!sess.ok()) {
      *rc = Fail(sess.status());
      return;
    }
    Session& s = **sess;
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int32_t> tokd(0, info.n_vocab - 1);
    std::vector<int32_t> prompt(static_cast<size_t>(std::max({p, depth, 4096})));  // also the decode ids
    for (auto& t : prompt) t = tokd(rng);
    std::vector<float> logits(static_cast<size_t>(max_b) * static_cast<size_t>(info.n_vocab));
    auto fail = [&](const Status& st) {
      *rc = Fail(st);
      return false;
    };
    // Warm-up, as llama-bench's: one prefill of the test's length (pages the weights in and grows
    // every per-thread and per-batch buffer to the test's size; with 8 tokens, the first timed
    // prefill 512 of model A ran ~25 % slower than the next) and one decoded token.
    {
      s.Reset(0);
      Status st = s.Feed(0, prompt.data(), std::max(p, 1), false, logits.data());
      if (st.ok() && n > 0) {
        s.Reset(0);  // the prefill may have filled the context
        st = s.Feed(0, prompt.data(), 1, false, logits.data());
      }
      if (!st.ok() && !fail(st)) return;
    }
    // The context every test starts from: -d tokens in sequence 0, copied to the others.
    if (depth > 0) {
      s.Reset(0);
      Status st = s.Feed(0, prompt.data(), depth, false, logits.data());
      for (int q = 1; q < max_b && st.ok(); ++q) st = s.CopySequence(0, q);
      if (!st.ok() && !fail(st)) return;
    }
    // The bandwidth probe runs right after each decode test, so every roofline share is against
    // what memory delivered at that time (on a shared host the probe moved 20-35 GB/s within
    // minutes, and one probe per run swung the later rows' shares by 10-30 %). Its 1 GiB buffer
    // is kept out of the peak RSS: the peak is read before each probe and reset after it.
    int64_t peak_rss = 0;
    bool peak_valid = true;  // later readings exclude the probes
    std::vector<double> probes;
    auto probe = [&]() -> Bandwidth {
      if (no_bw) return Bandwidth{};
      if (peak_valid) peak_rss = std::max(peak_rss, PeakRssBytes());
      const Bandwidth b = MeasureReadBandwidth(nt, 1024, 4);  // 2 with software prefetch, 2 without
      peak_valid = peak_valid && ResetPeakRss();
      probes.push_back(b.best_gb_s);
      return b;
    };
    nlohmann::ordered_json j;
    std::vector<double> pp, tg;
    PhaseTimes pphases;
    ThreadPool* pool = s.exec().pool;
    if (pool != nullptr) {
      pool->set_idle_timing(true);
      pool->reset_idle();
    }
    double prefill_s = 0;
    for (int r = 0; r < reps && p > 0; ++r) {
      s.Truncate(0, depth);
      ForwardOptions fo;
      fo.times = &pphases;
      const double a = Now();
      Status st = s.Feed(0, prompt.data(), p, false, logits.data(), fo);
      if (!st.ok() && !fail(st)) return;
      const double took = Now() - a;
      prefill_s += took;
      pp.push_back(p / took);
    }
    // Steps: forward calls (a prompt longer than the session's batch is fed in several).
    const double prefill_steps =
        static_cast<double>(reps) * std::ceil(static_cast<double>(p) / std::max(1, s.max_batch()));
    const Idle prefill_idle = ReadIdle(pool, prefill_s, p > 0 ? prefill_steps : 0);
    PhaseTimes phases;
    double decode_s = 0;
    UnionCounter uc1(info);  // the experts a one-sequence decode ran (their bytes / the phase's time)
    if (pool != nullptr) pool->reset_idle();
    for (int r = 0; r < reps && n > 0; ++r) {
      s.Truncate(0, depth);
      ForwardOptions fo;
      fo.times = &phases;
      fo.observer = &uc1;
      const double a = Now();
      for (int i = 0; i < n; ++i) {
        const int32_t tok = prompt[static_cast<size_t>(i) % prompt.size()];
        Status st = s.Feed(0, &tok, 1, false, logits.data(), fo);
        if (!st.ok() && !fail(st)) return;
      }
      const double took = Now() - a;
      decode_s += took;
      tg.push_back(n / took);
    }
    const Idle decode_idle = ReadIdle(pool, decode_s, static_cast<double>(reps) * n);
    // The decode test's probe (or, without one, the run's only probe, at the end).
    Bandwidth bw;
    if (n > 0) bw = probe();
    const Stats pps = Summarise(pp), tgs = Summarise(tg);
    // Bytes a decoded token reads: the weights, and the K/V rows of its context (on average
    // depth + (n + 1) / 2 positions over a decode run).
    const double kv_bytes_tok = static_cast<double>(s.kv_bytes_per_position()) * (depth + (n + 1) / 2.0);
    const double bytes_tok = static_cast<double>(info.DecodeBytesPerToken()) + kv_bytes_tok;
    const double dense_bytes = static_cast<double>(info.weight_bytes - info.embedding_bytes - info.expert_bytes_total);
    // Batched decode: B sequences, one token each per step, all from the same context.
    struct BRow {
      int b;
      Stats tok_s;
      double roofline = 0, experts_per_layer = 0, bytes_step = 0;
      PhaseTimes phases;
      double bandwidth_gb_s = 0;  // the probe right after this row's test
      Idle idle;
      double expert_read_gb_s = 0;  // the experts' bytes over the expert phase's time
    };
    std::vector<BRow> brows;
    for (int b : bs) {
      if (b == 1 || n == 0) continue;
      std::vector<int32_t> toks(static_cast<size_t>(b)), pos(static_cast<size_t>(b)), seq(static_cast<size_t>(b));
      std::vector<double> v;
      UnionCounter uc(info);
      PhaseTimes bph;
      double timed_s = 0;
      // r = -1: one untimed step (the warm-up of this batch size's buffers), then the timed reps.
      for (int r = -1; r < reps; ++r) {
        const double a = Now();
        for (int i = 0; i < (r < 0 ? 1 : n); ++i) {
          for (int q = 0; q < b; ++q) {
            const size_t at = identical ? static_cast<size_t>(i) : static_cast<size_t>(i * b + q);
            toks[static_cast<size_t>(q)] = prompt[at % prompt.size()];
            pos[static_cast<size_t>(q)] = depth + i;
            seq[static_cast<size_t>(q)] = q;
          }
          Batch batch;
          batch.n_tok = b;
          batch.tokens = toks.data();
          batch.pos = pos.data();
          batch.seq = seq.data();
          ForwardOptions fo;
          if (r >= 0) {
            fo.observer = &uc;
            fo.times = &bph;
          }
          Status st = s.Forward(batch, logits.data(), fo);
          if (!st.ok() && !fail(st)) return;
        }
        if (r < 0 && pool != nullptr) pool->reset_idle();
        if (r >= 0) {
          const double took = Now() - a;
          timed_s += took;
          v.push_back(static_cast<double>(b) * n / took);
        }
      }
      const Idle idle = ReadIdle(pool, timed_s, static_cast<double>(reps) * n);
      BRow row{b, Summarise(v), 0, 0, 0, bph, probe().best_gb_s, idle};
      const double steps = static_cast<double>(reps) * n;
      row.bytes_step = dense_bytes + uc.expert_bytes_ / steps + b * kv_bytes_tok;
      row.experts_per_layer = info.moe_layers.empty() ? 0 : uc.experts_ / static_cast<double>(uc.layer_steps_);
      row.expert_read_gb_s = bph.experts > 0 ? uc.expert_bytes_ / bph.experts / 1e9 : 0;
      brows.push_back(row);
    }
    if (peak_valid) peak_rss = std::max(peak_rss, PeakRssBytes());
    if (probes.empty()) bw = probe();  // no decode test: one probe for the record
    const double roof1 = n > 0 && bw.best_gb_s > 0 ? bw.best_gb_s * 1e9 / bytes_tok : 0;
    // The rate a test read its bytes at (those the roofline counts, over the test's time), and the
    // expert phase's own: unlike a share, neither depends on the probe, which moves with the host.
    const double read1 = tgs.median * bytes_tok / 1e9;
    const double expert_read1 = phases.experts > 0 ? uc1.expert_bytes_ / phases.experts / 1e9 : 0;
    auto read_gb_s = [](const BRow& r) { return r.tok_s.median / r.b * r.bytes_step / 1e9; };
    for (auto& r : brows) {
      r.roofline = r.bandwidth_gb_s > 0 ? r.b * r.bandwidth_gb_s * 1e9 / r.bytes_step : 0;
    }
    const double probe_min = probes.empty() ? 0 : *std::min_element(probes.begin(), probes.end());
    const double probe_max = probes.empty() ? 0 : *std::max_element(probes.begin(), probes.end());
    std::string type;
    int64_t most = -1;
    for (const auto& [dt, b] : info.bytes_by_dtype) {
      if (b > most) {
        most = b;
        type = dt;
      }
    }
    if (out == "json") {
      j["model"] = model;
      j["family"] = info.family;
      j["type"] = type;
      j["threads"] = nt;
      j["kv_type"] = kv_type;
      j["depth"] = depth;
      j["identical_sequences"] = identical;
      j["bf16_activations"] = bf16_act && Bf16ActAvailable();
      j["pinned"] = pin;
      j["relaid_tensors"] = info.relaid_tensors;
      j["isa"] = BestKernels().isa;
      j["n_prompt"] = p;
      j["n_gen"] = n;
      j["repetitions"] = reps;
      j["prefill_tok_s"] = pps.median;
      j["prefill_tok_s_min"] = pps.min;
      j["prefill_tok_s_max"] = pps.max;
      j["decode_tok_s"] = tgs.median;
      j["decode_tok_s_min"] = tgs.min;
      j["decode_tok_s_max"] = tgs.max;
      j["decode_bytes_per_token"] = static_cast<int64_t>(bytes_tok);
      j["kv_bytes_per_position"] = static_cast<int64_t>(s.kv_bytes_per_position());
      j["kv_block_positions"] = s.kv_block();
      j["bandwidth_gb_s"] = bw.best_gb_s;
      j["bandwidth_gb_s_median"] = bw.median_gb_s;
      j["bandwidth_probes_gb_s"] = probes;
      j["decode_roofline_tok_s"] = roof1;
      j["decode_roofline_share"] = roof1 > 0 ? tgs.median / roof1 : 0;
      j["decode_read_gb_s"] = read1;
      j["decode_expert_read_gb_s"] = expert_read1;
      nlohmann::ordered_json bj = nlohmann::ordered_json::object();
      for (const auto& r : brows) {
        bj[std::to_string(r.b)] = {{"tok_s", r.tok_s.median},     {"tok_s_min", r.tok_s.min},
                                   {"tok_s_max", r.tok_s.max},    {"roofline_tok_s", r.roofline},
                                   {"roofline_share", r.roofline > 0 ? r.tok_s.median / r.roofline : 0},
                                   {"experts_per_layer", r.experts_per_layer},
                                   {"bytes_per_step", static_cast<int64_t>(r.bytes_step)},
                                   {"read_gb_s", read_gb_s(r)},
                                   {"expert_read_gb_s", r.expert_read_gb_s},
                                   {"bandwidth_gb_s", r.bandwidth_gb_s},
                                   {"phases_s", PhasesJson(r.phases)},
                                   {"idle", IdleJson(r.idle)}};
      }
      j["batched"] = bj;
      j["phases_prefill_s"] = PhasesJson(pphases);
      j["prefill_idle"] = IdleJson(prefill_idle);
      j["phases_decode_s"] = PhasesJson(phases);
      j["decode_idle"] = IdleJson(decode_idle);
      j["load_s"] = load_s;
      j["peak_rss_bytes"] = peak_rss;
      j["weight_bytes"] = info.weight_bytes;
      std::printf("%s\n", DumpJson(j, 1).c_str());
    } else {
      std::printf("model %s (%s, %s), %d threads%s, isa %s; weights %s, %s read per decoded token\n", model.c_str(),
                  info.family.c_str(), type.c_str(), nt, pin ? " (pinned)" : "", BestKernels().isa,
                  Mb(static_cast<double>(info.weight_bytes)).c_str(), Mb(bytes_tok).c_str());
      const double block_kib = static_cast<double>(s.kv_bytes_per_position()) * s.kv_block() / 1024.0;
      std::printf("KV cache %s, %.1f KiB per position, blocks of %d positions (%.*f %s, offered to huge pages); "
                  "every test starts after %d tokens of context\n",
                  kv_type.c_str(), static_cast<double>(s.kv_bytes_per_position()) / 1024.0, s.kv_block(),
                  block_kib >= 1024 ? 1 : 0, block_kib >= 1024 ? block_kib / 1024 : block_kib,
                  block_kib >= 1024 ? "MiB" : "KiB", depth);
      if (bf16_act) {
        std::printf("BF16 weights: %s\n", Bf16ActAvailable() ? "bf16 activations (vdpbf16ps)"
                                                         : "f32 activations (--bf16-activations needs AVX512_BF16)");
      }
      if (info.relaid_tensors > 0) {
        std::printf("%d weights laid out for the kernels at load (Q8_0/Q4_0/MXFP4/K-quants: 8 rows interleaved, "
                    "BF16/F16: 16; others: copied onto huge pages; --no-repack: as stored)\n",
                    info.relaid_tensors);
      }
      if (bw.best_gb_s > 0) {
        std::printf("memory bandwidth (streaming read, %d threads, probed after each decode test, best of 4): ", nt);
        for (size_t i = 0; i < probes.size(); ++i) std::printf("%s%.1f", i ? " / " : "", probes[i]);
        const bool moved = probe_max > 1.15 * probe_min;
        std::printf(" GB/s%s\n", moved ? " (the host's bandwidth moved: the shares with it; read GB/s does not use "
                                          "the probe)"
                                        : "");
      }
      std::printf("\n| test | tok/s (median) | min | max | roofline tok/s | share | read GB/s (experts) |\n"
                  "|---|---|---|---|---|---|---|\n");
      if (p > 0) std::printf("| pp%d | %.2f | %.2f | %.2f | compute-bound | | |\n", p, pps.median, pps.min, pps.max);
      if (n > 0) {
        std::printf("| tg%d | %.2f | %.2f | %.2f | %s | %s |\n", n, tgs.median, tgs.min, tgs.max,
                    RoofCells(tgs.median, roof1).c_str(), ReadCell(read1, expert_read1).c_str());
      }
      for (const auto& r : brows) {
        std::printf("| tg%d x B=%d (aggregate%s; %.1f experts/layer) | %.2f | %.2f | %.2f | %s | %s |\n", n, r.b,
                    identical ? ", identical sequences" : "", r.experts_per_layer, r.tok_s.median, r.tok_s.min, r.tok_s.max,
                    RoofCells(r.tok_s.median, r.roofline).c_str(), ReadCell(read_gb_s(r), r.expert_read_gb_s).c_str());
      }
      if (n > 0) {
        std::printf("(read GB/s: the bytes the roofline counts over the test's time, and in parentheses the experts' "
                    "bytes over the expert phase's time; steadier than a share when the probe moves)\n");
      }
      PrintPhases("prefill", pphases, prefill_idle);
      PrintPhases("decode", phases, decode_idle);
      for (const auto& r : brows) PrintPhases("decode B=" + std::to_string(r.b), r.phases, r.idle);
      std::printf("load %.2f s, peak RSS %s\n", load_s, Mb(static_cast<double>(peak_rss)).c_str());
    }
    *rc = 0;
  });
}

}  // namespace moxie::cli
