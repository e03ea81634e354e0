// Python str algorithms on UTF-8 strings, indexing by code point as Python does
// (internal to src/formats/jinja/). Case mapping covers ASCII only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moxie::jinja {

enum class StripSide { kBoth, kLeft, kRight };
// str.strip / lstrip / rstrip; `chars` unset strips Python whitespace.
std::string PyStrip(std::string_view s, const std::optional<std::string>& chars, StripSide side);
// str.split / str.rsplit; `sep` unset splits on whitespace runs and drops empty parts.
std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit, bool from_right);
std::vector<std::string> PySplitLines(std::string_view s, bool keepends);
std::string PyReplace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
int64_t PyFind(std::string_view s, std::string_view sub, bool from_right);  // code-point index or -1
int64_t PyCount(std::string_view s, std::string_view sub);
std::string PyUpper(std::string_view s);
std::string PyLower(std::string_view s);
std::string PyTitle(std::string_view s);       // str.title
std::string PyCapitalize(std::string_view s);  // str.capitalize
std::string PySwapCase(std::string_view s);
std::string JinjaTitle(std::string_view s);    // jinja2's `title` filter (word starts after - space ( { [ <)
int64_t WordCount(std::string_view s);         // len(re.findall(r"\w+", s))

}  // namespace moxie::jinja
