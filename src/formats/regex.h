// Regex: a PCRE2 pattern compiled for UTF-8 with Unicode properties (UTF | UCP), as the
// pre-tokenizer regexes of Hugging Face tokenizers need (\p{L}, (?i:...), look-ahead).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace moxie {

class Regex {
 public:
  static Result<std::shared_ptr<const Regex>> Compile(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All non-overlapping matches in `text` (valid UTF-8) as [begin, end) byte ranges, left to
  // right; empty matches are skipped. Thread-safe.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  void* code_ = nullptr;  // pcre2_code_8*
  std::string pattern_;
};

}  // namespace moxie
