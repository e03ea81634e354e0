#include "tools/moxie/common.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace moxie::cli {

int Fail(const Status& s) {
  std::fprintf(stderr, "moxie: error: %s\n", s.message().c_str());
  return 1;
}

Result<std::vector<int32_t>> ParseTokenList(const std::string& s, const std::string& flag) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string tok = s.substr(i, j - i);
    const size_t a = tok.find_first_not_of(" \t");
    const size_t b = tok.find_last_not_of(" \t");
    tok = a == std::string::npos ? "" : tok.substr(a, b - a + 1);
    if (tok.empty()) return InvalidArgument(flag + ": empty entry in token list '" + s + "'");
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(tok.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || v < 0 || v > INT32_MAX) {
      return InvalidArgument(flag + ": '" + tok + "' is not a valid token id");
    }
    out.push_back(static_cast<int32_t>(v));
    i = j + 1;
  }
  if (out.empty()) return InvalidArgument(flag + ": no tokens given");
  return out;
}

}  // namespace moxie::cli
