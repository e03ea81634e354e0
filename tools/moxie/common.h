// Helpers shared by the subcommands: argument parsing and error reporting.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/status.h"
#include "formats/tokenizer.h"
#include "models/model.h"
#include "runtime/generate.h"
#include "runtime/session.h"

namespace moxie::cli {

// Prints "moxie: error: <message>" to stderr and returns 1.
int Fail(const Status& s);
// `model` if given; otherwise the bundled demo model: $MOXIE_MODEL, else the folder this build
// was configured with (models/moxie-demo-moe), else models/moxie-demo-moe beside the executable's
// build tree.
std::string ModelOrDefault(const std::string& model);
// Parses "1,2,3" (spaces allowed) into non-negative ints: token ids, or what `item` names in errors.
Result<std::vector<int32_t>> ParseTokenList(const std::string& s, const std::string& flag,
                                            const char* item = "token id");

// Generation flags shared by `run` and `chat`.
struct GenOptionsCli {
  int n_predict = 128;
  int threads = 0;
  int ctx = 0;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  SamplerConfig sampler;
  int64_t seed = -1;
  bool pin = false;
  bool no_repack = false;
  std::string kv_type = "f32";
  bool bf16_act = false;
};
void AddGenerationFlags(CLI::App* cmd, GenOptionsCli* g);
// `--kv-type f32|f16` (the KV cache's element type) bound to *kv_type; KvType maps it to a DType.
void AddKvTypeFlag(CLI::App* cmd, std::string* kv_type);
DType KvType(const std::string& kv_type);
// `--bf16-activations` (SessionOptions::bf16_activations) bound to *on; says on stderr when the
// CPU lacks the kernels (Bf16ActAvailable) and f32 activations are used.
void AddBf16ActFlag(CLI::App* cmd, bool* on);
bool Bf16ActAvailable();

// A model with its tokenizer and a session, ready to generate.
struct TextModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<Session> session;
  GenerateOptions gen;
};
Result<TextModel> LoadTextModel(const std::string& dir, const GenOptionsCli& g);
// EOS ids: tokenizer eos, config.json eos_token_id, generation_config.json eos_token_id (all).
std::vector<int32_t> EosTokens(const std::string& dir, const Model& m, const Tokenizer& t);
// "moxie: prefill N tokens X tok/s; decode ..." on stderr.
void PrintTimings(double load_s, const GenerateResult& r);

}  // namespace moxie::cli
