// `moxie quantize -m SRC --type q4_k [--keep attn=q8_0,router=f32] [--expert-types plan.json]
//  -o out.gguf [--force]`: writes SRC (a Hugging Face folder or a GGUF) as a GGUF with the chosen
// weight types, with a progress bar, a per-class summary and a size / bits-per-weight report.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "formats/gguf_export.h"
#include "formats/gguf_model.h"
#include "formats/hf_checkpoint.h"
#include "formats/synth_model.h"
#include "kernels/kernel_table.h"
#include "tools/moxie/commands.h"
#include "tools/moxie/common.h"

namespace moxie::cli {
namespace {

std::string Human(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) {
    b /= 1024;
    ++i;
  }
  char s[32];
  std::snprintf(s, sizeof s, i == 0 ? "%.0f %s" : "%.2f %s", b, u[i]);
  return s;
}

Result<std::map<TensorClass, uint32_t>> ParseKeep(const std::string& s) {
  std::map<TensorClass, uint32_t> out;
  size_t p = 0;
  while (p < s.size()) {
    size_t q = s.find(',', p);
    if (q == std::string::npos) q = s.size();
    const std::string item = s.substr(p, q - p);
    p = q + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    TensorClass c;
    uint32_t t = 0;
    if (eq == std::string::npos || !ParseTensorClass(item.substr(0, eq), &c)) {
      return InvalidArgument("--keep: '" + item +
                             "' is not CLASS=TYPE with CLASS one of embed, output, attn, router, experts, shared, dense");
    }
    if (!ParseWeightType(item.substr(eq + 1), &t)) {
      return InvalidArgument("--keep: '" + item.substr(eq + 1) + "' is not a weight type (" + WeightTypeList() + ")");
    }
    out[c] = t;
  }
  return out;
}

void PrintSummary(const ExportReport& r, const std::string& out) {
  struct Row {
    std::set<std::string> types;
    int n = 0;
    int64_t params = 0;
    uint64_t bytes = 0;
    int fallbacks = 0;
  };
  std::map<int, Row> rows;
  int64_t params = 0;
  uint64_t bytes = 0;
  for (const auto& t : r.tensors) {
    Row& row = rows[static_cast<int>(t.cls)];
    row.types.insert(GgmlType(t.type)->name);
    ++row.n;
    row.params += t.params;
    row.bytes += t.bytes;
    row.fallbacks += t.fell_back;
    params += t.params;
    bytes += t.bytes;
  }
  std::printf("\n%-8s %-14s %7s %14s %12s %7s %6s\n", "class", "type", "tensors", "params", "bytes", "share", "bpw");
  for (const auto& [c, row] : rows) {
    std::string types;
    for (const auto& t : row.types) types += (types.empty() ? "" : "+") + t;
    std::printf("%-8s %-14s %7d %14lld %12s %6.1f%% %6.2f\n", TensorClassName(static_cast<TensorClass>(c)),
                types.c_str(), row.n, static_cast<long long>(row.params), Human(static_cast<double>(row.bytes)).c_str(),
                100.0 * static_cast<double>(row.bytes) / static_cast<double>(bytes),
                8.0 * static_cast<double>(row.bytes) / static_cast<double>(row.params));
  }
  std::printf("%-8s %-14s %7zu %14lld %12s %6.1f%% %6.2f\n", "total", "", r.tensors.size(),
              static_cast<long long>(params), Human(static_cast<double>(bytes)).c_str(), 100.0,
              8.0 * static_cast<double>(bytes) / static_cast<double>(params));
  for (const auto& [c, row] : rows) {
    if (row.fallbacks > 0) {
      std::printf("note: %d %s tensor(s) have rows that the requested type's blocks do not divide; written as a "
                  "fallback type (see the type column)\n",
                  row.fallbacks, TensorClassName(static_cast<TensorClass>(c)));
    }
  }
  if (!r.skipped.empty()) {
    std::printf("note: %zu source tensor(s) not written (not part of the %s graph), e.g. %s\n", r.skipped.size(),
                r.arch.c_str(), r.skipped.front().c_str());
  }
  std::printf("wrote %s: %s (%llu bytes), %.3f bits per weight, arch %s\n", out.c_str(),
              Human(static_cast<double>(r.file_bytes)).c_str(), static_cast<unsigned long long>(r.file_bytes),
              8.0 * static_cast<double>(bytes) / static_cast<double>(params), r.arch.c_str());
}

// A progress callback: a bar redrawn in place on a terminal, a line per 10 % otherwise.
std::function<void(uint64_t, uint64_t, const std::string&)> ProgressBar() {
  const bool tty = isatty(2) != 0;
  auto last = std::make_shared<int>(-1);
  return [tty, last](uint64_t done, uint64_t total, const std::string& t) {
    const int pct = total ? static_cast<int>(100 * done / total) : 100;
    if (!tty && pct / 10 == *last / 10) return;
    if (tty && pct == *last) return;
    *last = pct;
    const int width = 30, fill = pct * width / 100;
    std::fprintf(stderr, tty ? "\r[%.*s%*s] %3d%% %-40.40s" : "[%.*s%*s] %3d%% %s\n", fill,
                 "==============================", width - fill, "", pct, t.c_str());
    if (tty && pct == 100) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
}

// The flags `quantize` and `synth` share: --type (empty allowed only when `type_optional`),
// --keep, --force and the refusal to overwrite.
Status CommonExportOptions(const std::string& type, bool type_optional, const std::string& keep, bool force,
                           const std::string& out, ExportOptions* opts) {
  if (!(type.empty() && type_optional) && !ParseWeightTypeOrRecipe(type, &opts->type, &opts->recipe)) {
    return InvalidArgument("--type '" + type + "' is not one of " + WeightTypeOrRecipeList());
  }
  MOXIE_ASSIGN_OR_RETURN(opts->keep, ParseKeep(keep));
  opts->overwrite = force;
  if (!force && access(out.c_str(), F_OK) == 0) return InvalidArgument(out + " exists; pass --force to overwrite it");
  return Status::Ok();
}

int Threads(int t) { return t > 0 ? t : std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

}  // namespace

void RegisterQuantize(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("quantize", "Write a model as GGUF with chosen weight types");
  static std::string model, type, keep, plan_path, out;
  static bool force = false, no_progress = false;
  static int threads = 0;
  cmd->add_option("-m,--model", model, "Hugging Face model folder or GGUF file (default: the demo model)");
  cmd->add_option("--type", type, "Weight type of 2-D weights, or a mixed recipe: " + WeightTypeOrRecipeList());
  cmd->add_option("--keep", keep,
                  "Per-class types, e.g. attn=q8_0,router=f32 (classes: embed, output, attn, router, experts, "
                  "shared, dense); routers default to f32, vectors are always f32");
  cmd->add_option("--expert-types", plan_path, "JSON plan of per-expert types (see README)");
  cmd->add_option("-o,--output", out, "Output .gguf file")->required();
  cmd->add_flag("--force", force, "Overwrite the output file if it exists");
  cmd->add_option("-t,--threads", threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_flag("--no-progress", no_progress, "No progress bar on stderr");
  cmd->callback([rc] {
    model = ModelOrDefault(model);
    if (type.empty() && plan_path.empty()) {
      *rc = Fail(InvalidArgument("give --type (" + WeightTypeOrRecipeList() + ") and/or --expert-types PLAN.json"));
      return;
    }
    ExportOptions opts;
    opts.type = 1;  // non-expert weights of a plan-only run: f16
    if (Status st = CommonExportOptions(type, true, keep, force, out, &opts); !st.ok()) {
      *rc = Fail(st);
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    // The source as HF names + config (a GGUF is translated by gguf_model).
    std::unique_ptr<WeightSource> src;
    ConfigReader cfg{nlohmann::json::object(), ""};
    if (LooksLikeGguf(model)) {
      auto g = OpenGgufModel(model);
      if (!g.ok()) {
        *rc = Fail(g.status());
        return;
      }
      cfg = g->config;
      src = std::move(g->weights);
    } else {
      auto ck = HfCheckpoint::Open(model);
      if (!ck.ok()) {
        *rc = Fail(ck.status());
        return;
      }
      cfg = (*ck)->config();
      src = std::move(*ck);
    }
    ExpertTypePlan plan;
    if (!plan_path.empty()) {
      int64_t L = 0, E = 0;
      const auto& j = cfg.json();
      L = j.value("num_hidden_layers", int64_t{0});
      for (const char* k : {"num_local_experts", "num_experts", "n_routed_experts"}) {
        if (j.contains(k) && j[k].is_number()) E = j[k].get<int64_t>();
      }
      auto p = LoadExpertTypePlan(plan_path, static_cast<int>(L), static_cast<int>(E),
                                  type.empty() ? 8u /* q8_0 */ : opts.type);
      if (!p.ok()) {
        *rc = Fail(p.status());
        return;
      }
      plan = std::move(*p);
      opts.expert_plan = &plan;
    }
    std::string name = model;
    while (!name.empty() && name.back() == '/') name.pop_back();
    name = name.substr(name.find_last_of('/') + 1);
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
    opts.name = name;
    if (!no_progress) opts.progress = ProgressBar();
    ThreadPool pool(Threads(threads));
    ExecContext ctx{&pool, &BestKernels()};
    auto rep = ExportGguf(cfg, *src, model, out, opts, ctx);
    if (!rep.ok()) {
      *rc = Fail(rep.status());
      return;
    }
    PrintSummary(*rep, out);
    std::printf("took %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    *rc = 0;
  });
}

}  // namespace moxie::cli

namespace moxie::cli {

void RegisterSynth(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("synth", "Write a random-weight GGUF model of a real published shape");
  static std::string shape, arch, type, keep, out;
  static bool force = false, no_progress = false;
  static int threads = 0;
  static uint64_t seed = 1;
  std::string shapes, archs;
  for (const auto& s : SynthShapeNames()) shapes += (shapes.empty() ? "" : ", ") + s;
  for (const auto& a : SynthArchNames()) archs += (archs.empty() ? "" : ", ") + a;
  cmd->add_option("--shape", shape, "Model shape: " + shapes)->required();
  cmd->add_option("--arch", arch, "Architecture to express the shape in (default: the shape's own): " + archs);
  cmd->add_option("--type", type, "Weight type of 2-D weights, or a mixed recipe: " + WeightTypeOrRecipeList())
      ->required();
  cmd->add_option("--keep", keep, "Per-class types, as in `moxie quantize`");
  cmd->add_option("--seed", seed, "Seed of the random weights");
  cmd->add_option("-o,--output", out, "Output .gguf file")->required();
  cmd->add_flag("--force", force, "Overwrite the output file if it exists");
  cmd->add_option("-t,--threads", threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_flag("--no-progress", no_progress, "No progress bar on stderr");
  cmd->callback([rc] {
    ExportOptions opts;
    if (Status st = CommonExportOptions(type, false, keep, force, out, &opts); !st.ok()) {
      *rc = Fail(st);
      return;
    }
    auto sm = MakeSynthModel(shape, arch, seed);
    if (!sm.ok()) {
      *rc = Fail(sm.status());
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    opts.name = "moxie-synth-" + shape + "-" + sm->arch;
    const int64_t n_vocab = sm->n_vocab;
    opts.write_tokenizer = [n_vocab](GgufWriter* w) { return WriteSynthVocab(n_vocab, w); };
    if (!no_progress) opts.progress = ProgressBar();
    ThreadPool pool(Threads(threads));
    ExecContext ctx{&pool, &BestKernels()};
    auto rep = ExportGguf(sm->config, *sm->weights, "", out, opts, ctx);
    if (!rep.ok()) {
      *rc = Fail(rep.status());
      return;
    }
    PrintSummary(*rep, out);
    std::printf("took %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    *rc = 0;
  });
}

}  // namespace moxie::cli
