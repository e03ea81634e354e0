// Jinja2-subset interpreter for Hugging Face chat templates.
//
// Renders byte-identically to Python jinja2 (3.1) configured as transformers does:
// ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, loopcontrols), HF's tojson
// (no HTML escaping, ensure_ascii=False, indent=), raise_exception, strftime_now, the
// `{% generation %}` tag, and jinja2's default (lenient) Undefined.
// Supported syntax: if/elif/else, for (else, `if` filter, tuple unpacking, loop.*), set (incl.
// namespace attributes and block set), macro, filter, with, break/continue, raw, generation,
// comments, whitespace control; Python expressions with the str/list/dict methods templates use.
// Not supported (parse error naming the line): call blocks, include/import/extends/block,
// recursive for loops.
//
// Thread-safety: a Template is immutable after Parse and may be rendered from several threads
// at once. Rendering recurses on the native stack: allow ~4 MiB of stack for adversarial inputs
// (limits below keep the depth bounded).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace moxie::jinja {

struct ParsedTemplate;  // the syntax tree (ast.h)

struct RenderOptions {
  // Fixed "now" for strftime_now, "YYYY-MM-DDTHH:MM:SS"; empty = current local time.
  std::string strftime_now_iso;
  // Bounds: a runaway template fails with an error naming the limit, never hangs or exhausts memory.
  size_t max_output_bytes = 64 << 20;  // also caps any single string built while rendering
  size_t max_steps = 50'000'000;       // evaluation steps (expressions, statements, iterations)
  int max_recursion = 200;             // nested macro calls
};

// A parsed template. Cheap to copy (the syntax tree is shared and immutable).
class Template {
 public:
  // Parse errors are kInvalidFormat Statuses reading "line N: <message>".
  static Result<Template> Parse(std::string_view source);

  // Renders with `context` (a JSON object: messages, tools, add_generation_prompt, bos_token, ...).
  // Runtime errors are kInvalidArgument Statuses reading "<PythonErrorType>: <message>", e.g.
  // "TemplateError: <the template's raise_exception message>",
  // "UndefinedError: 'dict object' has no attribute 'content'",
  // "TypeError: can only concatenate str (not \"NoneType\") to str"; exceeded limits read
  // "ResourceLimitError: ..." / "RecursionError: ...".
  Result<std::string> Render(const nlohmann::ordered_json& context, const RenderOptions& opts) const;

 private:
  explicit Template(std::shared_ptr<const ParsedTemplate> root) : root_(std::move(root)) {}
  std::shared_ptr<const ParsedTemplate> root_;
};

struct ChatInputs {
  nlohmann::ordered_json messages;  // array, OpenAI chat format
  nlohmann::ordered_json tools;     // array or null
  bool add_generation_prompt = false;
  // transformers >= 4.47: render without a generation prompt, then cut the output right after
  // the final message's content so generation continues it. Incompatible with
  // add_generation_prompt (error, as in transformers).
  bool continue_final_message = false;
  std::map<std::string, std::string> special_tokens;  // bos_token, eos_token, ... (passed as variables)
  nlohmann::ordered_json extra_vars = nlohmann::ordered_json::object();  // e.g. enable_thinking
};

// Renders `tmpl` the way transformers' apply_chat_template does: variables messages, tools
// (null when absent), documents (null), add_generation_prompt, the special tokens, then extra_vars.
Result<std::string> ApplyChatTemplate(const Template& tmpl, const ChatInputs& in,
                                      const RenderOptions& opts);

}  // namespace moxie::jinja
