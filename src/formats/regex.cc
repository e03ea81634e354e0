#define PCRE2_CODE_UNIT_WIDTH 8
#include "formats/regex.h"

#include <pcre2.h>

namespace moxie {

Result<std::shared_ptr<const Regex>> Regex::Compile(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return InvalidFormat("regex error at offset " + std::to_string(off) + ": " +
                         reinterpret_cast<const char*>(msg) + " in /" + pattern + "/");
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; interpreter otherwise
  std::shared_ptr<Regex> r(new Regex());
  r->code_ = code;
  r->pattern_ = pattern;
  return std::shared_ptr<const Regex>(std::move(r));
}

Regex::~Regex() {
  if (code_ != nullptr) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

std::vector<std::pair<size_t, size_t>> Regex::FindAll(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  size_t pos = 0;
  while (pos <= text.size()) {
    const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos,
                               pos == 0 ? 0 : PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;  // no match (or error: treated as no further matches)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {
      // Empty match: step over one UTF-8 character.
      size_t step = 1;
      while (b + step < text.size() && (static_cast<uint8_t>(text[b + step]) & 0xC0) == 0x80) ++step;
      pos = b + step;
    }
  }
  pcre2_match_data_free(md);
  return out;
}

}  // namespace moxie
