#include "formats/jinja/pystring.h"

#include <algorithm>

#include "formats/jinja/value.h"

namespace moxie::jinja {
namespace {

bool IsAsciiUpper(char32_t c) { return c >= 'A' && c <= 'Z'; }
bool IsAsciiLower(char32_t c) { return c >= 'a' && c <= 'z'; }
char32_t ToUpper(char32_t c) { return IsAsciiLower(c) ? c - 32 : c; }
char32_t ToLower(char32_t c) { return IsAsciiUpper(c) ? c + 32 : c; }
// Cased letters for str.title(): ASCII letters, plus any non-ASCII letter-ish code point (no case
// change is applied to those, but they keep a word going as in Python).
bool IsCased(char32_t c) { return IsAsciiUpper(c) || IsAsciiLower(c) || (c >= 0xC0 && !IsPyWhitespace(c)); }
bool IsWordChar(char32_t c) {
  return IsAsciiUpper(c) || IsAsciiLower(c) || (c >= '0' && c <= '9') || c == '_' ||
         (c >= 0xAA && !IsPyWhitespace(c) && !(c >= 0x2000 && c <= 0x206F) && !(c >= 0x3000 && c <= 0x303F));
}

bool IsLineBreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

}  // namespace

std::string PyStrip(std::string_view s, const std::optional<std::string>& chars, StripSide side) {
  std::u32string cps = DecodeUtf8(s);
  std::u32string set = chars ? DecodeUtf8(*chars) : std::u32string();
  auto strip = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : IsPyWhitespace(c); };
  size_t b = 0, e = cps.size();
  if (side != StripSide::kRight) {
    while (b < e && strip(cps[b])) ++b;
  }
  if (side != StripSide::kLeft) {
    while (e > b && strip(cps[e - 1])) --e;
  }
  return EncodeUtf8(std::u32string_view(cps).substr(b, e - b));
}

std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep) {
    if (sep->empty()) Throw("ValueError", "empty separator");
    if (!from_right) {
      size_t start = 0;
      while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        size_t p = s.find(*sep, start);
        if (p == std::string_view::npos) break;
        parts.emplace_back(s.substr(start, p - start));
        start = p + sep->size();
      }
      parts.emplace_back(s.substr(start));
      return parts;
    }
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      if (end < sep->size()) break;
      size_t p = s.rfind(*sep, end - sep->size());
      if (p == std::string_view::npos) break;
      parts.emplace_back(s.substr(p + sep->size(), end - p - sep->size()));
      end = p;
    }
    parts.emplace_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  // Whitespace splitting works on code points (Unicode whitespace separates too).
  std::u32string cps = DecodeUtf8(s);
  if (from_right) std::reverse(cps.begin(), cps.end());
  size_t i = 0;
  while (true) {
    while (i < cps.size() && IsPyWhitespace(cps[i])) ++i;
    if (i >= cps.size()) break;
    size_t j = i;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
      j = cps.size();  // the remainder keeps its trailing whitespace, as in Python
    } else {
      while (j < cps.size() && !IsPyWhitespace(cps[j])) ++j;
    }
    std::u32string part = cps.substr(i, j - i);
    if (from_right) std::reverse(part.begin(), part.end());
    parts.push_back(EncodeUtf8(part));
    i = j;
  }
  if (from_right) std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> PySplitLines(std::string_view s, bool keepends) {
  std::u32string cps = DecodeUtf8(s);
  std::vector<std::string> lines;
  size_t start = 0, i = 0;
  while (i < cps.size()) {
    if (!IsLineBreak(cps[i])) {
      ++i;
      continue;
    }
    size_t brk = (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ? 2 : 1;
    size_t end = keepends ? i + brk : i;
    lines.push_back(EncodeUtf8(std::u32string_view(cps).substr(start, end - start)));
    i += brk;
    start = i;
  }
  if (start < cps.size()) lines.push_back(EncodeUtf8(std::u32string_view(cps).substr(start)));
  return lines;
}

std::string PyReplace(std::string_view s, std::string_view old, std::string_view repl, int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts `repl` between code points and at both ends
    std::u32string cps = DecodeUtf8(s);
    int64_t done = 0;
    for (char32_t c : cps) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      AppendUtf8(out, c);
    }
    if (count < 0 || done < count) out += repl;
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t p = s.find(old, start);
    if (p == std::string_view::npos) break;
    out.append(s.substr(start, p - start));
    out.append(repl);
    start = p + old.size();
    ++done;
  }
  out.append(s.substr(start));
  return out;
}

int64_t PyFind(std::string_view s, std::string_view sub, bool from_right) {
  size_t p = from_right ? s.rfind(sub) : s.find(sub);
  if (p == std::string_view::npos) return -1;
  return static_cast<int64_t>(CodePointCount(s.substr(0, p)));
}

int64_t PyCount(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(CodePointCount(s)) + 1;
  int64_t n = 0;
  for (size_t p = s.find(sub); p != std::string_view::npos; p = s.find(sub, p + sub.size())) ++n;
  return n;
}

std::string PyUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(ToUpper(static_cast<unsigned char>(c)));
  return out;
}

std::string PyLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(ToLower(static_cast<unsigned char>(c)));
  return out;
}

std::string PySwapCase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    c = static_cast<char>(IsAsciiUpper(u) ? ToLower(u) : ToUpper(u));
  }
  return out;
}

std::string PyTitle(std::string_view s) {
  std::u32string cps = DecodeUtf8(s);
  bool prev_cased = false;
  for (char32_t& c : cps) {
    c = prev_cased ? ToLower(c) : ToUpper(c);
    prev_cased = IsCased(c);
  }
  return EncodeUtf8(cps);
}

std::string PyCapitalize(std::string_view s) {
  std::u32string cps = DecodeUtf8(s);
  for (size_t i = 0; i < cps.size(); ++i) cps[i] = i == 0 ? ToUpper(cps[i]) : ToLower(cps[i]);
  return EncodeUtf8(cps);
}

std::string JinjaTitle(std::string_view s) {
  // jinja2: "".join(w[0].upper() + w[1:].lower() for w in re.split(r"([-\s({\[<]+)", s) if w)
  std::u32string cps = DecodeUtf8(s);
  auto is_sep = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || IsPyWhitespace(c); };
  bool word_start = true;
  for (char32_t& c : cps) {
    if (is_sep(c)) {
      word_start = true;
      continue;
    }
    c = word_start ? ToUpper(c) : ToLower(c);
    word_start = false;
  }
  return EncodeUtf8(cps);
}

int64_t WordCount(std::string_view s) {
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : DecodeUtf8(s)) {
    bool w = IsWordChar(c);
    if (w && !in_word) ++n;
    in_word = w;
  }
  return n;
}

}  // namespace moxie::jinja
