#include "formats/jinja/lexer.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "formats/jinja/value.h"

namespace moxie::jinja {

void SyntaxError(int line, const std::string& message) {
  Throw("TemplateSyntaxError", "line " + std::to_string(line) + ": " + message);
}

std::string DescribeToken(const Token& t) {
  switch (t.type) {
    case Tok::kEof: return "end of template";
    case Tok::kVarEnd: return "end of print statement";
    case Tok::kBlockEnd: return "end of statement block";
    case Tok::kVarBegin: return "begin of print statement";
    case Tok::kBlockBegin: return "begin of statement block";
    case Tok::kText: return "template data";
    case Tok::kString: return "string";
    case Tok::kInt: return "integer";
    case Tok::kFloat: return "float";
    default: return "'" + t.value + "'";
  }
}

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }

// jinja2 normalizes \r\n and \r to \n and drops one trailing newline (keep_trailing_newline=False).
std::string Normalize(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out += src[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's "unicode-escape" decoding, which jinja2 applies to string literals.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out += s[i];
      continue;
    }
    char c = s[++i];
    switch (c) {
      case '\n': break;  // line continuation
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x':
      case 'u':
      case 'U': {
        size_t n = c == 'x' ? 2 : c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        bool ok = i + n < s.size();
        for (size_t k = 1; ok && k <= n; ++k) {
          int h = HexValue(s[i + k]);
          if (h < 0) ok = false;
          cp = cp * 16 + static_cast<uint32_t>(h < 0 ? 0 : h);
        }
        if (!ok || cp > 0x10FFFF) {
          out += '\\';
          out += c;
        } else {
          AppendUtf8(out, cp);
          i += n;
        }
        break;
      }
      default:
        if (c >= '0' && c <= '7') {
          uint32_t cp = static_cast<uint32_t>(c - '0');
          for (int k = 0; k < 2 && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7'; ++k) {
            cp = cp * 8 + static_cast<uint32_t>(s[++i] - '0');
          }
          AppendUtf8(out, cp);
        } else {
          out += '\\';
          out += c;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(Normalize(source)) {}

  std::vector<Token> Run() {
    while (pos_ < src_.size()) {
      if (!LexTag()) break;
    }
    Emit(Tok::kEof, "");
    return std::move(tokens_);
  }

 private:
  void Emit(Tok type, std::string value) {
    Token t;
    t.type = type;
    t.value = std::move(value);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }
  int CountLines(size_t from, size_t to) const {
    return static_cast<int>(std::count(src_.begin() + static_cast<long>(from),
                                       src_.begin() + static_cast<long>(to), '\n'));
  }
  bool StartsWith(size_t p, std::string_view s) const { return src_.compare(p, s.size(), s) == 0; }

  // Emits the text before a tag, applying "-" stripping and lstrip_blocks.
  void EmitText(size_t from, size_t to, char sign, bool is_block_or_comment) {
    std::string text = src_.substr(from, to - from);
    int start_line = line_;
    line_ += CountLines(from, to);
    if (sign == '-') {
      size_t end = text.size();
      while (end > 0 && IsSpace(text[end - 1])) --end;
      text.resize(end);
    } else if (sign != '+' && is_block_or_comment) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if (l_pos > 0 || line_starting_) {
        bool only_ws = l_pos < text.size();
        for (size_t k = l_pos; k < text.size() && only_ws; ++k) only_ws = IsSpace(text[k]);
        if (only_ws) text.resize(l_pos);
      }
    }
    if (!text.empty()) {
      Token t;
      t.type = Tok::kText;
      t.value = std::move(text);
      t.line = start_line;
      tokens_.push_back(std::move(t));
    }
  }

  // After a tag's closing delimiter: "-" strips all whitespace, plain block/comment ends eat one
  // newline (trim_blocks), "+" keeps everything.
  void AfterTagEnd(char sign, bool trim) {
    size_t start = pos_;
    if (sign == '-') {
      while (pos_ < src_.size() && IsSpace(src_[pos_])) ++pos_;
    } else if (sign != '+' && trim && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
    line_ += CountLines(start, pos_);
    line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
  }

  // Lexes text up to and including the next tag. Returns false at end of input.
  bool LexTag() {
    size_t t = pos_;
    while (true) {
      t = src_.find('{', t);
      if (t == std::string::npos || t + 1 >= src_.size()) {
        EmitText(pos_, src_.size(), 0, false);
        pos_ = src_.size();
        return false;
      }
      char k = src_[t + 1];
      if (k == '{' || k == '%' || k == '#') break;
      ++t;
    }
    char kind = src_[t + 1];
    size_t p = t + 2;
    char sign = 0;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
    if (kind == '%' && LexRaw(t, p, sign)) return true;
    EmitText(pos_, t, sign, kind != '{');
    pos_ = p;
    if (kind == '#') {
      LexComment();
    } else {
      Emit(kind == '{' ? Tok::kVarBegin : Tok::kBlockBegin, "");
      LexInside(kind);
    }
    return true;
  }

  void LexComment() {
    size_t e = src_.find("#}", pos_);
    if (e == std::string::npos) SyntaxError(line_, "Missing end of comment tag");
    char sign = (e > pos_ && (src_[e - 1] == '-' || src_[e - 1] == '+')) ? src_[e - 1] : 0;
    line_ += CountLines(pos_, e);
    pos_ = e + 2;
    AfterTagEnd(sign, true);
  }

  // {% raw %}...{% endraw %}: the body is copied verbatim.
  bool LexRaw(size_t tag_start, size_t p, char sign) {
    size_t q = p;
    while (q < src_.size() && IsSpace(src_[q])) ++q;
    if (!StartsWith(q, "raw") || (q + 3 < src_.size() && IsNameChar(src_[q + 3]))) return false;
    q += 3;
    while (q < src_.size() && IsSpace(src_[q])) ++q;
    char end_sign = 0;
    if (StartsWith(q, "-%}")) {
      end_sign = '-';
      q += 3;
    } else if (StartsWith(q, "%}")) {
      q += 2;
    } else {
      return false;
    }
    EmitText(pos_, tag_start, sign, true);
    line_ += CountLines(tag_start, q);
    pos_ = q;
    if (end_sign == '-') AfterTagEnd('-', false);
    for (size_t s = src_.find("{%", pos_); s != std::string::npos; s = src_.find("{%", s + 1)) {
      size_t r = s + 2;
      char inner_sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) inner_sign = src_[r++];
      while (r < src_.size() && IsSpace(src_[r])) ++r;
      if (!StartsWith(r, "endraw")) continue;
      r += 6;
      while (r < src_.size() && IsSpace(src_[r])) ++r;
      char close_sign = 0;
      if (StartsWith(r, "-%}") || StartsWith(r, "+%}")) {
        close_sign = src_[r];
        r += 3;
      } else if (StartsWith(r, "%}")) {
        r += 2;
      } else {
        continue;
      }
      line_starting_ = false;
      EmitText(pos_, s, inner_sign, true);
      line_ += CountLines(s, r);
      pos_ = r;
      AfterTagEnd(close_sign, true);
      return true;
    }
    SyntaxError(line_, "Missing end of raw directive");
  }

  // Tokens inside {{ }} or {% %}, up to the closing delimiter at bracket depth 0.
  void LexInside(char kind) {
    std::string stack;
    const char* close = kind == '{' ? "}}" : "%}";
    while (true) {
      size_t ws = pos_;
      while (pos_ < src_.size() && IsSpace(src_[pos_])) ++pos_;
      line_ += CountLines(ws, pos_);
      if (pos_ >= src_.size()) {
        SyntaxError(line_, std::string("unexpected end of template, expected '") +
                               (kind == '{' ? "end of print statement" : "end of statement block") + "'.");
      }
      if (stack.empty()) {
        char sign = 0;
        if ((src_[pos_] == '-' || (kind == '%' && src_[pos_] == '+')) && StartsWith(pos_ + 1, close)) {
          sign = src_[pos_++];
        }
        if (StartsWith(pos_, close)) {
          pos_ += 2;
          Emit(kind == '{' ? Tok::kVarEnd : Tok::kBlockEnd, "");
          AfterTagEnd(sign, kind == '%');
          return;
        }
        if (sign) --pos_;
      }
      LexToken(stack);
    }
  }

  void LexToken(std::string& stack) {
    char c = src_[pos_];
    if (IsDigit(c)) return LexNumber();
    if (IsNameStart(c)) {
      size_t s = pos_;
      while (pos_ < src_.size() && IsNameChar(src_[pos_])) ++pos_;
      return Emit(Tok::kName, src_.substr(s, pos_ - s));
    }
    if (c == '\'' || c == '"') return LexString(c);
    static const char* kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (StartsWith(pos_, op)) {
        pos_ += 2;
        return Emit(Tok::kOp, op);
      }
    }
    if (!std::strchr("+-/*%~[](){}><=.:|,;", c)) {
      SyntaxError(line_, std::string("unexpected char '") + c + "'");
    }
    ++pos_;
    if (c == '(' || c == '[' || c == '{') {
      stack += c == '(' ? ')' : c == '[' ? ']' : '}';
    } else if (c == ')' || c == ']' || c == '}') {
      if (stack.empty()) SyntaxError(line_, std::string("unexpected '") + c + "'");
      if (stack.back() != c) {
        SyntaxError(line_, std::string("unexpected '") + c + "', expected '" + stack.back() + "'");
      }
      stack.pop_back();
    }
    Emit(Tok::kOp, std::string(1, c));
  }

  void LexNumber() {
    size_t s = pos_;
    bool after_dot = !tokens_.empty() && tokens_.back().type == Tok::kOp && tokens_.back().value == ".";
    if (src_[pos_] == '0' && pos_ + 1 < src_.size() && std::strchr("xXoObB", src_[pos_ + 1])) {
      char base_c = static_cast<char>(src_[pos_ + 1] | 0x20);
      int base = base_c == 'x' ? 16 : base_c == 'o' ? 8 : 2;
      pos_ += 2;
      std::string digits;
      while (pos_ < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) {
        if (src_[pos_] != '_') digits += src_[pos_];
        ++pos_;
      }
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(digits.c_str(), &end, base);
      if (digits.empty() || *end || errno) SyntaxError(line_, "invalid integer literal");
      Emit(Tok::kInt, src_.substr(s, pos_ - s));
      tokens_.back().int_value = v;
      return;
    }
    auto digits = [&] {
      while (pos_ < src_.size() && (IsDigit(src_[pos_]) || src_[pos_] == '_')) ++pos_;
    };
    digits();
    bool is_float = false;
    if (!after_dot && pos_ + 1 < src_.size() && src_[pos_] == '.' && IsDigit(src_[pos_ + 1])) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (!after_dot && pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t q = pos_ + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && IsDigit(src_[q])) {
        is_float = true;
        pos_ = q;
        digits();
      }
    }
    std::string text = src_.substr(s, pos_ - s);
    std::string clean;
    for (char ch : text) {
      if (ch != '_') clean += ch;
    }
    Emit(is_float ? Tok::kFloat : Tok::kInt, text);
    errno = 0;
    if (is_float) {
      tokens_.back().float_value = std::strtod(clean.c_str(), nullptr);
    } else {
      tokens_.back().int_value = std::strtoll(clean.c_str(), nullptr, 10);
      if (errno == ERANGE) SyntaxError(line_, "integer literal too large: " + text);
    }
  }

  void LexString(char quote) {
    size_t s = ++pos_;
    while (pos_ < src_.size() && src_[pos_] != quote) {
      if (src_[pos_] == '\\') ++pos_;
      ++pos_;
    }
    if (pos_ >= src_.size()) SyntaxError(line_, std::string("unterminated string literal (") + quote + ")");
    Emit(Tok::kString, Unescape(std::string_view(src_).substr(s, pos_ - s)));
    line_ += CountLines(s, pos_);
    ++pos_;
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> Tokenize(std::string_view source) { return Lexer(source).Run(); }

}  // namespace moxie::jinja
