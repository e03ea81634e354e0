// Tokenizer for the Jinja2 template syntax with the chat-template settings: trim_blocks,
// lstrip_blocks, keep_trailing_newline=False, default delimiters (internal to src/formats/jinja/).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moxie::jinja {

enum class Tok { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };

struct Token {
  Tok type = Tok::kEof;
  std::string value;  // text, name, operator, or the unescaped string literal
  int line = 1;
  int64_t int_value = 0;
  double float_value = 0;
};

// Throws JinjaError{"TemplateSyntaxError", "line N: ..."} on malformed input.
std::vector<Token> Tokenize(std::string_view source);

// Describes a token the way jinja2's error messages do ("end of print statement", "'foo'").
std::string DescribeToken(const Token& t);

[[noreturn]] void SyntaxError(int line, const std::string& message);

}  // namespace moxie::jinja
