#include "formats/json_parse.h"

#include <vector>

namespace moxie {

JsonShape JsonShapeWithin(std::string_view text, int max_depth, size_t max_members, size_t* at) {
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
    } else if (c == '[' || c == '{') {
      if (static_cast<int>(open.size()) >= max_depth) {
        *at = i;
        return JsonShape::kTooDeep;
      }
      open.push_back(c == '{' ? 1 : kArray);
    } else if (c == ']' || c == '}') {
      if (!open.empty()) open.pop_back();
    } else if (c == ',' && max_members > 0 && !open.empty() && open.back() != kArray &&
               ++open.back() > max_members) {
      *at = i;
      return JsonShape::kTooManyMembers;
    }
  }
  return JsonShape::kOk;
}

}  // namespace moxie
