#include "formats/json_parse.h"

#include <vector>

namespace moxie {

bool JsonDepthWithin(std::string_view text, int max_depth, size_t* at) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        *at = i;
        return false;
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

bool JsonMembersWithin(std::string_view text, size_t max_members, size_t* at) {
  // Per open bracket: members seen so far in an object (commas + 1), or kArray for an array.
  constexpr size_t kArray = static_cast<size_t>(-1);
  std::vector<size_t> open;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      open.push_back(1);
    } else if (c == '[') {
      open.push_back(kArray);
    } else if (c == '}' || c == ']') {
      if (!open.empty()) open.pop_back();
    } else if (c == ',' && !open.empty() && open.back() != kArray && ++open.back() > max_members) {
      *at = i;
      return false;
    }
  }
  return true;
}

}  // namespace moxie
