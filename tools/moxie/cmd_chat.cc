// Chat commands: `moxie template` (render a chat template exactly) and `moxie chat` (REPL).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/json_parse.h"
#include "formats/jinja/jinja.h"
#include "formats/tokenizer.h"
#include "runtime/generate.h"
#include "tools/moxie/commands.h"
#include "tools/moxie/common.h"

namespace moxie::cli {
namespace {

using OJson = nlohmann::ordered_json;

Result<OJson> ReadJsonArray(const std::string& path, const std::string& flag) {
  MOXIE_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  MOXIE_ASSIGN_OR_RETURN(OJson j, ParseJson<OJson>(text, flag + " " + path));
  if (!j.is_array()) return InvalidFormat(flag + " " + path + ": expected a JSON array");
  return j;
}

// The chat template and special tokens of a model folder (tokenizer_config.json /
// chat_template.jinja) or a GGUF file (tokenizer.chat_template).
struct TemplateSource {
  std::string text;
  std::map<std::string, std::string> special;
};

Result<TemplateSource> TemplateFromModel(const std::string& path) {
  TemplateSource ts;
  MOXIE_ASSIGN_OR_RETURN(auto tok, Tokenizer::FromPath(path));
  ts.text = tok->chat_template();
  for (const auto& [k, v] : tok->special_token_strings()) ts.special[k] = v;
  if (ts.text.empty()) {
    return NotFound(path + ": the model has no chat template (tokenizer_config.json "
                           "chat_template, chat_template.jinja or tokenizer.chat_template); "
                           "pass --template FILE.jinja");
  }
  return ts;
}

}  // namespace

void RegisterTemplate(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("template", "Render a chat template; prints exactly the result");
  static std::string model, tmpl_file, messages_file, tools_file, now;
  static bool add_gen = false, cont = false;
  static std::vector<std::string> vars, specials;
  auto* m = cmd->add_option("-m,--model", model, "Model folder or GGUF (template + special tokens)");
  auto* t = cmd->add_option("--template", tmpl_file, "A .jinja template file");
  m->excludes(t);
  cmd->add_option("--messages", messages_file, "JSON array of messages (OpenAI chat format)")
      ->required();
  cmd->add_option("--tools", tools_file, "JSON array of tools");
  cmd->add_flag("--add-generation-prompt", add_gen, "End with the assistant turn's opening");
  cmd->add_flag("--continue-final-message", cont, "Leave the final message open (prefill)");
  cmd->add_option("--var", vars, "Extra template variable NAME=JSON (repeatable)");
  cmd->add_option("--special", specials, "Special token NAME=STRING, e.g. bos_token=<s>");
  cmd->add_option("--now", now, "Fixed time for strftime_now, e.g. 2025-01-15T09:30:00");
  cmd->callback([rc] {
    TemplateSource ts;
    if (!model.empty()) {
      auto r = TemplateFromModel(model);
      if (!r.ok()) {
        *rc = Fail(r.status());
        return;
      }
      ts = std::move(r).value();
    } else if (!tmpl_file.empty()) {
      auto r = ReadTextFile(tmpl_file);
      if (!r.ok()) {
        *rc = Fail(r.status());
        return;
      }
      ts.text = std::move(r).value();
    } else {
      *rc = Fail(InvalidArgument("give -m MODEL or --template FILE.jinja"));
      return;
    }
    jinja::ChatInputs in;
    auto msgs = ReadJsonArray(messages_file, "--messages");
    if (!msgs.ok()) {
      *rc = Fail(msgs.status());
      return;
    }
    in.messages = std::move(msgs).value();
    if (!tools_file.empty()) {
      auto tools = ReadJsonArray(tools_file, "--tools");
      if (!tools.ok()) {
        *rc = Fail(tools.status());
        return;
      }
      in.tools = std::move(tools).value();
    }
    in.add_generation_prompt = add_gen;
    in.continue_final_message = cont;
    in.special_tokens = ts.special;
    for (const auto& s : specials) {
      const size_t eq = s.find('=');
      if (eq == std::string::npos || eq == 0) {
        *rc = Fail(InvalidArgument("--special expects NAME=STRING, got '" + s + "'"));
        return;
      }
      in.special_tokens[s.substr(0, eq)] = s.substr(eq + 1);
    }
    for (const auto& v : vars) {
      const size_t eq = v.find('=');
      auto val = eq == std::string::npos ? Result<OJson>(OJson()) : ParseJson<OJson>(v.substr(eq + 1), "--var");
      if (eq == std::string::npos || eq == 0 || !val.ok()) {
        *rc = Fail(InvalidArgument("--var expects NAME=JSON (e.g. enable_thinking=false), got '" + v + "'"));
        return;
      }
      in.extra_vars[v.substr(0, eq)] = std::move(val).value();
    }
    auto tmpl = jinja::Template::Parse(ts.text);
    if (!tmpl.ok()) {
      *rc = Fail(tmpl.status().WithContext("template"));
      return;
    }
    jinja::RenderOptions ro;
    ro.strftime_now_iso = now;
    auto out = jinja::ApplyChatTemplate(*tmpl, in, ro);
    if (!out.ok()) {
      *rc = Fail(out.status());
      return;
    }
    std::fwrite(out->data(), 1, out->size(), stdout);
    *rc = 0;
  });
}

void RegisterChat(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("chat", "Interactive chat with the model's chat template");
  static std::string model, system_prompt, tmpl_file;
  static GenOptionsCli g;
  cmd->add_option("-m,--model", model, "Hugging Face model folder (default: the demo model)");
  cmd->add_option("--system", system_prompt, "System prompt");
  cmd->add_option("--template", tmpl_file, "Use this .jinja chat template instead of the model's");
  AddGenerationFlags(cmd, &g);
  cmd->footer(
      "Type a message and press Enter. /reset clears the history, /exit or Ctrl-D quits.\n"
      "Reads stdin line by line, so a script can drive it through a pipe.");
  cmd->callback([rc] {
    model = ModelOrDefault(model);
    auto env = LoadTextModel(model, g);
    if (!env.ok()) {
      *rc = Fail(env.status());
      return;
    }
    std::string tmpl_text = env->tok->chat_template();
    if (!tmpl_file.empty()) {
      auto r = ReadTextFile(tmpl_file);
      if (!r.ok()) {
        *rc = Fail(r.status());
        return;
      }
      tmpl_text = *r;
    }
    if (tmpl_text.empty()) {
      *rc = Fail(NotFound(model + ": the model has no chat template; pass --template FILE.jinja "
                                  "or use `moxie run`"));
      return;
    }
    auto tmpl = jinja::Template::Parse(tmpl_text);
    if (!tmpl.ok()) {
      *rc = Fail(tmpl.status().WithContext("chat template"));
      return;
    }
    jinja::ChatInputs in;
    for (const auto& [k, v] : env->tok->special_token_strings()) in.special_tokens[k] = v;
    in.add_generation_prompt = true;
    auto reset = [&] {
      in.messages = OJson::array();
      if (!system_prompt.empty()) in.messages.push_back({{"role", "system"}, {"content", system_prompt}});
    };
    reset();
    const bool tty = isatty(STDIN_FILENO) != 0;
    std::vector<int32_t> cached;
    std::string line;
    for (;;) {
      if (tty) {
        std::printf("> ");
        std::fflush(stdout);
      }
      if (!std::getline(std::cin, line)) break;
      if (line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        reset();
        std::printf("(history cleared)\n");
        std::fflush(stdout);
        continue;
      }
      if (line.empty()) continue;
      in.messages.push_back({{"role", "user"}, {"content", line}});
      auto prompt = jinja::ApplyChatTemplate(*tmpl, in, {});
      if (!prompt.ok()) {
        *rc = Fail(prompt.status().WithContext("chat template"));
        return;
      }
      const auto ids = env->tok->Encode(*prompt, {.add_special = false, .parse_special = true});
      auto res = Generate(*env->session, *env->tok, ids, env->gen,
                          [](const std::string& s) {
                            std::fwrite(s.data(), 1, s.size(), stdout);
                            std::fflush(stdout);
                            return true;
                          },
                          &cached);
      if (!res.ok()) {
        std::fprintf(stderr, "moxie: error: %s\n", res.status().message().c_str());
        in.messages.erase(in.messages.end() - 1);  // the turn did not happen
        continue;
      }
      std::printf("\n");
      std::fflush(stdout);
      in.messages.push_back({{"role", "assistant"}, {"content", res->text}});
      PrintTimings(0.0, *res);
    }
    *rc = 0;
  });
}

}  // namespace moxie::cli
