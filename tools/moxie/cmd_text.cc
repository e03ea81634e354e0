// Text commands: `moxie tokenize`, `moxie detokenize`, `moxie run`.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/json_parse.h"
#include "formats/tokenizer.h"
#include "runtime/generate.h"
#include "tools/moxie/commands.h"
#include "tools/moxie/common.h"

namespace moxie::cli {

void RegisterTokenize(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text (comma-separated)");
  static std::string model, text;
  static bool pieces = false, no_add_special = false, no_parse_special = false;
  cmd->add_option("-m,--model", model, "Model folder (tokenizer.json) or GGUF file (default: the demo model)");
  cmd->add_option("text", text, "Text to tokenize")->required();
  cmd->add_flag("--pieces", pieces, "Print one 'id<TAB>piece' line per token instead");
  cmd->add_flag("--no-add-special", no_add_special, "Do not add BOS/EOS");
  cmd->add_flag("--no-parse-special", no_parse_special, "Treat special-token text as plain text");
  cmd->callback([rc] {
    model = ModelOrDefault(model);
    auto tok = Tokenizer::FromPath(model);
    if (!tok.ok()) {
      *rc = Fail(tok.status());
      return;
    }
    const auto ids = (*tok)->Encode(text, {.add_special = !no_add_special,
                                           .parse_special = !no_parse_special});
    if (pieces) {
      for (int32_t id : ids) std::printf("%d\t%s\n", id, (*tok)->Piece(id).c_str());
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? ",%d" : "%d", ids[i]);
      std::printf("\n");
    }
    *rc = 0;
  });
}

void RegisterDetokenize(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("detokenize", "Print the text of comma-separated token ids");
  static std::string model, ids_arg;
  static bool skip_special = false;
  cmd->add_option("-m,--model", model, "Model folder (tokenizer.json) or GGUF file (default: the demo model)");
  cmd->add_option("ids", ids_arg, "Token ids, e.g. 1,2,3")->required();
  cmd->add_flag("--skip-special", skip_special, "Leave out special tokens");
  cmd->callback([rc] {
    model = ModelOrDefault(model);
    auto tok = Tokenizer::FromPath(model);
    if (!tok.ok()) {
      *rc = Fail(tok.status());
      return;
    }
    auto ids = ParseTokenList(ids_arg, "ids");
    if (!ids.ok()) {
      *rc = Fail(ids.status());
      return;
    }
    for (int32_t id : *ids) {
      if (id >= (*tok)->n_vocab()) {
        *rc = Fail(InvalidArgument("token id " + std::to_string(id) + " is outside the vocabulary (" +
                                   std::to_string((*tok)->n_vocab()) + " tokens)"));
        return;
      }
    }
    const std::string s = (*tok)->Decode(*ids, skip_special);
    std::fwrite(s.data(), 1, s.size(), stdout);
    *rc = 0;
  });
}

void RegisterRun(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt (streams to stdout)");
  static std::string model, prompt, prompt_file;
  static GenOptionsCli g;
  static bool json = false, no_bos = false;
  cmd->add_option("-m,--model", model, "Hugging Face model folder (default: the demo model)");
  auto* p = cmd->add_option("-p,--prompt", prompt, "Prompt text");
  auto* f = cmd->add_option("-f,--file", prompt_file, "Read the prompt from a file");
  p->excludes(f);
  cmd->add_flag("--json", json, "Print one JSON object (text, token ids, timings) instead");
  cmd->add_flag("--no-bos", no_bos, "Do not add the tokenizer's BOS token");
  AddGenerationFlags(cmd, &g);
  cmd->callback([rc] {
    model = ModelOrDefault(model);
    if (prompt_file.empty() && prompt.empty()) {
      *rc = Fail(InvalidArgument("give a prompt with -p TEXT or -f FILE"));
      return;
    }
    if (!prompt_file.empty()) {
      auto t = ReadTextFile(prompt_file);
      if (!t.ok()) {
        *rc = Fail(t.status());
        return;
      }
      prompt = *t;
    }
    auto t0 = std::chrono::steady_clock::now();
    auto env = LoadTextModel(model, g);
    if (!env.ok()) {
      *rc = Fail(env.status());
      return;
    }
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto ids = env->tok->Encode(prompt, {.add_special = !no_bos, .parse_special = true});
    auto res = Generate(*env->session, *env->tok, ids, env->gen, [](const std::string& s) {
      if (!json) {
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fflush(stdout);
      }
      return true;
    });
    if (!res.ok()) {
      *rc = Fail(res.status());
      return;
    }
    if (json) {
      nlohmann::ordered_json j;
      j["text"] = res->text;
      j["tokens"] = res->tokens;
      j["prompt_tokens"] = ids;
      j["finish_reason"] = res->finish_reason;
      j["timings"] = {{"load_s", load_s},
                      {"prefill_s", res->prefill_s},
                      {"prefill_tok_s", res->prefill_s > 0 ? ids.size() / res->prefill_s : 0.0},
                      {"decode_s", res->decode_s},
                      {"decode_tok_s", res->decode_s > 0 && res->tokens.size() > 1
                                           ? (res->tokens.size() - 1) / res->decode_s
                                           : 0.0}};
      std::printf("%s\n", DumpJson(j).c_str());
    } else {
      std::printf("\n");
    }
    std::fflush(stdout);
    PrintTimings(load_s, *res);
    *rc = 0;
  });
}

}  // namespace moxie::cli
