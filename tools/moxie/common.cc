#include "tools/moxie/common.h"
#include "formats/json_parse.h"

#include <cerrno>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "kernels/kernel_table.h"

namespace moxie::cli {

int Fail(const Status& s) {
  std::fprintf(stderr, "moxie: error: %s\n", s.message().c_str());
  return 1;
}

std::string ModelOrDefault(const std::string& model) {
  if (!model.empty()) return model;
  if (const char* env = std::getenv("MOXIE_MODEL"); env != nullptr && *env != '\0') return env;
  namespace fs = std::filesystem;
  std::error_code ec;
#ifdef MOXIE_DEMO_MODEL_DIR
  if (fs::exists(fs::path(MOXIE_DEMO_MODEL_DIR) / "config.json", ec)) return MOXIE_DEMO_MODEL_DIR;
#endif
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  const fs::path rel = exe.parent_path() / ".." / ".." / "models" / "moxie-demo-moe";
  if (!ec && fs::exists(rel / "config.json", ec)) return rel.lexically_normal().string();
  return "models/moxie-demo-moe";  // reported as missing by the loader if it is not there
}

Result<std::vector<int32_t>> ParseTokenList(const std::string& s, const std::string& flag, const char* item) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string tok = s.substr(i, j - i);
    const size_t a = tok.find_first_not_of(" \t");
    const size_t b = tok.find_last_not_of(" \t");
    tok = a == std::string::npos ? "" : tok.substr(a, b - a + 1);
    if (tok.empty()) return InvalidArgument(flag + ": empty entry in the list '" + s + "'");
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(tok.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || v < 0 || v > INT32_MAX) {
      return InvalidArgument(flag + ": '" + tok + "' is not a valid " + item);
    }
    out.push_back(static_cast<int32_t>(v));
    i = j + 1;
  }
  if (out.empty()) return InvalidArgument(flag + ": nothing given");
  return out;
}

void AddGenerationFlags(CLI::App* cmd, GenOptionsCli* g) {
  cmd->add_option("-n,--n-predict", g->n_predict, "Maximum tokens to generate")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("-t,--threads", g->threads, "Threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("-c,--ctx", g->ctx, "Context size in tokens (0 = min(model max, 4096))")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--temp", g->sampler.temperature, "Temperature (0 = greedy)");
  cmd->add_option("--top-k", g->sampler.top_k, "Top-k (0 = off)");
  cmd->add_option("--top-p", g->sampler.top_p, "Top-p / nucleus (1 = off)");
  cmd->add_option("--min-p", g->sampler.min_p, "Min-p (0 = off)");
  cmd->add_option("--repeat-penalty", g->sampler.repetition_penalty, "Repetition penalty (1 = off)");
  cmd->add_option("--repeat-last-n", g->sampler.penalty_last_n, "Penalty window (-1 = all)");
  cmd->add_option("--presence-penalty", g->sampler.presence_penalty, "Presence penalty");
  cmd->add_option("--frequency-penalty", g->sampler.frequency_penalty, "Frequency penalty");
  cmd->add_option("--seed", g->seed, "Sampling seed (-1 = random)");
  cmd->add_option("--stop", g->stop, "Stop string (repeatable)");
  cmd->add_flag("--ignore-eos", g->ignore_eos, "Do not stop at EOS tokens");
  cmd->add_flag("--pin", g->pin, "Bind each thread to one CPU");
  cmd->add_flag("--no-repack", g->no_repack,
                "Use matmul weights as stored (faster load, slower kernels; default: Q8_0/Q4_0/MXFP4/K-quants 8 "
                "rows and BF16/F16 16 rows interleaved at load, others copied onto huge pages)");
  AddKvTypeFlag(cmd, &g->kv_type);
  AddBf16ActFlag(cmd, &g->bf16_act);
}

bool Bf16ActAvailable() { return BestKernels().QMatmul(DType::kBF16) != nullptr; }

void AddBf16ActFlag(CLI::App* cmd, bool* on) {
  cmd->add_flag("--bf16-activations", *on,
                "BF16 weights: round activations to bf16 (llama.cpp's scheme; faster prefill on CPUs with "
                "AVX512_BF16, logits move ~1e-2; default: f32 activations)")
      ->each([](const std::string&) {
        if (!Bf16ActAvailable()) {
          std::fprintf(stderr, "moxie: note: --bf16-activations needs a CPU with AVX512_BF16 (kernels: %s); "
                       "using f32 activations\n", BestKernels().isa);
        }
      });
}

void AddKvTypeFlag(CLI::App* cmd, std::string* kv_type) {
  cmd->add_option("--kv-type", *kv_type,
                  "KV cache element type: f32 (exact) or f16 (half the memory and attention reads)")
      ->check(CLI::IsMember({"f32", "f16"}));
}

DType KvType(const std::string& kv_type) { return kv_type == "f16" ? DType::kF16 : DType::kF32; }

std::vector<int32_t> EosTokens(const std::string& dir, const Model& m, const Tokenizer& t) {
  std::vector<int32_t> eos;
  auto add = [&](int64_t id) {
    if (id >= 0 && std::find(eos.begin(), eos.end(), id) == eos.end()) {
      eos.push_back(static_cast<int32_t>(id));
    }
  };
  add(t.eos());
  add(m.info().eos_token);
  const std::string gc = (std::filesystem::path(dir) / "generation_config.json").string();
  auto text = ReadTextFile(gc);
  if (text.ok()) {
    auto parsed = ParseJson<nlohmann::json>(*text, gc);
    const nlohmann::json j = parsed.ok() ? std::move(parsed).value() : nlohmann::json();
    if (j.is_object() && j.contains("eos_token_id")) {
      const auto& e = j["eos_token_id"];
      if (e.is_number_integer()) add(e.get<int64_t>());
      if (e.is_array()) {
        for (const auto& x : e) {
          if (x.is_number_integer()) add(x.get<int64_t>());
        }
      }
    }
  }
  return eos;
}

Result<TextModel> LoadTextModel(const std::string& dir, const GenOptionsCli& g) {
  TextModel tm;
  LoadOptions lo;
  lo.repack = !g.no_repack;
  MOXIE_ASSIGN_OR_RETURN(tm.model, LoadModel(dir, lo));
  MOXIE_ASSIGN_OR_RETURN(tm.tok, Tokenizer::FromPath(dir));
  SessionOptions so;
  so.n_threads = g.threads;
  so.max_ctx = g.ctx;
  so.pin_threads = g.pin;
  so.kv_type = KvType(g.kv_type);
  so.bf16_activations = g.bf16_act;
  MOXIE_ASSIGN_OR_RETURN(tm.session, Session::Create(*tm.model, so));
  tm.gen.max_tokens = g.n_predict;
  tm.gen.stop = g.stop;
  tm.gen.sampler = g.sampler;
  tm.gen.sampler.seed = g.seed >= 0 ? static_cast<uint64_t>(g.seed) : std::random_device{}();
  if (!g.ignore_eos) tm.gen.eos_tokens = EosTokens(dir, *tm.model, *tm.tok);
  MOXIE_RETURN_IF_ERROR(tm.gen.sampler.Validate());
  return tm;
}

void PrintTimings(double load_s, const GenerateResult& r) {
  const int fed = r.prompt_tokens - r.reused_tokens;
  std::fprintf(stderr,
               "moxie: load %.2f s; prefill %d tokens in %.3f s (%.1f tok/s); decode %zu tokens "
               "in %.3f s (%.1f tok/s); finish: %s\n",
               load_s, fed, r.prefill_s, r.prefill_s > 0 ? fed / r.prefill_s : 0.0,
               r.tokens.size(), r.decode_s,
               r.tokens.size() > 1 && r.decode_s > 0 ? (r.tokens.size() - 1) / r.decode_s : 0.0,
               r.finish_reason.c_str());
}

}  // namespace moxie::cli
