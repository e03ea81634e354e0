#include "formats/jinja/jinja.h"

#include <cstdio>
#include <ctime>
#include <new>

#include "formats/jinja/ast.h"
#include "formats/jinja/builtins.h"
#include "formats/jinja/interp.h"
#include "formats/jinja/pystring.h"

namespace moxie::jinja {
namespace {

Result<std::tm> NowFor(const RenderOptions& opts) {
  std::tm tm{};
  if (opts.strftime_now_iso.empty()) {
    std::time_t t = std::time(nullptr);
    localtime_r(&t, &tm);
    return tm;
  }
  int y, mo, d, h, mi, s;
  char tail;
  if (std::sscanf(opts.strftime_now_iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &tail) != 6 ||
      mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return InvalidArgument("RenderOptions.strftime_now_iso: expected YYYY-MM-DDTHH:MM:SS, got '" +
                           opts.strftime_now_iso + "'");
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  std::time_t t = timegm(&tm);  // normalizes and fills tm_wday / tm_yday for %A, %j, ...
  gmtime_r(&t, &tm);
  return tm;
}

}  // namespace

Result<Template> Template::Parse(std::string_view source) {
  try {
    MOXIE_ASSIGN_OR_RETURN(NodeList nodes, ParseTemplate(source));
    auto root = std::make_shared<ParsedTemplate>();
    root->nodes = std::move(nodes);
    return Template(std::move(root));
  } catch (const std::bad_alloc&) {
    return InvalidFormat("out of memory while parsing the template");
  }
}

Result<std::string> Template::Render(const nlohmann::ordered_json& context, const RenderOptions& opts) const {
  if (!context.is_object()) return InvalidArgument("template context must be a JSON object");
  MOXIE_ASSIGN_OR_RETURN(std::tm now, NowFor(opts));
  try {
    Interp interp(opts, now);
    auto globals = std::make_shared<Scope>(nullptr);
    AddGlobals(*globals);
    auto root = std::make_shared<Scope>(globals);
    for (const auto& [key, value] : context.items()) root->vars[key] = FromJson(value);
    interp.set_root(root);
    std::string out;
    interp.Exec(root_->nodes, root, out);
    return out;
  } catch (const JinjaError& e) {
    return InvalidArgument(e.type + ": " + e.message);
  } catch (const std::bad_alloc&) {
    return InvalidArgument("MemoryError: out of memory while rendering the template");
  }
}

Result<std::string> ApplyChatTemplate(const Template& tmpl, const ChatInputs& in, const RenderOptions& opts) {
  if (!in.messages.is_array()) return InvalidArgument("chat template: messages must be a JSON array");
  if (in.continue_final_message && in.add_generation_prompt) {
    return InvalidArgument("continue_final_message and add_generation_prompt are not compatible");
  }
  if (!in.extra_vars.is_object() && !in.extra_vars.is_null()) {
    return InvalidArgument("chat template: extra_vars must be a JSON object");
  }
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = in.messages;
  ctx["tools"] = in.tools.is_null() || in.tools.is_discarded() ? nlohmann::ordered_json() : in.tools;
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = in.add_generation_prompt;
  for (const auto& [name, token] : in.special_tokens) ctx[name] = token;
  if (in.extra_vars.is_object()) {
    for (const auto& [key, value] : in.extra_vars.items()) ctx[key] = value;
  }
  MOXIE_ASSIGN_OR_RETURN(std::string out, tmpl.Render(ctx, opts));
  if (!in.continue_final_message) return out;

  // transformers >= 4.47: cut right after the final message's content (its stripped form must
  // appear in the output), keeping the content's trailing whitespace only if it was rendered.
  if (in.messages.empty() || !in.messages.back().is_object() || !in.messages.back().contains("content") ||
      !in.messages.back()["content"].is_string()) {
    return InvalidArgument("continue_final_message: the final message needs a string content");
  }
  const std::string final_msg = in.messages.back()["content"].get<std::string>();
  const std::string stripped = PyStrip(final_msg, std::nullopt, StripSide::kBoth);
  const std::string lstripped = PyStrip(final_msg, std::nullopt, StripSide::kLeft);
  size_t loc = out.rfind(stripped);
  if (loc == std::string::npos) {
    return InvalidArgument(
        "continue_final_message is set but the final message does not appear in the chat after "
        "applying the chat template! This can happen if the chat template deletes portions of the "
        "final message.");
  }
  if (out.compare(loc, lstripped.size(), final_msg) == 0) return out.substr(0, loc + lstripped.size());
  return out.substr(0, loc + stripped.size());
}

}  // namespace moxie::jinja
