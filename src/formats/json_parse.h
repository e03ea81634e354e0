// Parsing untrusted JSON (model folders, tokenizer files, plan files, HTTP bodies): one place that
// turns every way a text can fail into a Status naming the source and the byte, and never throws.
// nlohmann's DOM copies and compares values recursively, so a document nested a hundred thousand
// levels deep would overflow the stack after a successful parse: nesting is limited first.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace moxie {

// Deepest nesting a JSON input may have: far beyond any real config, tokenizer or request.
constexpr int kMaxJsonDepth = 256;

// Most members one object may have in an nlohmann::ordered_json parse: its objects are vectors
// searched for the key on every insert, so n members cost n²/2 key comparisons (an HTTP body of
// 200 000 members in one object took 37 s of a core). Far beyond any request's object; the
// unordered nlohmann::json (a std::map, no limit) reads tokenizer vocabularies of any size.
constexpr size_t kMaxOrderedJsonMembers = 16384;

enum class JsonShape { kOk, kTooDeep, kTooManyMembers };
// One pass over `text` outside its strings: the first '[' / '{' nested deeper than max_depth, or
// the first object member past max_members (0: no limit; *at: its separating comma), sets *at to
// its byte offset and says which.
JsonShape JsonShapeWithin(std::string_view text, int max_depth, size_t max_members, size_t* at);

// Parses `text` as J (nlohmann::json or ordered_json). `what` names the source in errors
// ("path/to/config.json", "request body"). `cb`: nlohmann's parser callback, or nullptr.
template <typename J>
Result<J> ParseJson(std::string_view text, const std::string& what,
                    const typename J::parser_callback_t& cb = nullptr) {
  size_t at = 0;
  constexpr size_t kMembers = std::is_same_v<J, nlohmann::ordered_json> ? kMaxOrderedJsonMembers : 0;
  switch (JsonShapeWithin(text, kMaxJsonDepth, kMembers, &at)) {
    case JsonShape::kTooDeep:
      return InvalidFormat(what + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                           " levels at byte " + std::to_string(at));
    case JsonShape::kTooManyMembers:
      return InvalidFormat(what + ": a JSON object with more than " + std::to_string(kMaxOrderedJsonMembers) +
                           " members (at byte " + std::to_string(at) + ")");
    case JsonShape::kOk:
      break;
  }
  try {
    return J::parse(text.begin(), text.end(), cb);
  } catch (const typename J::parse_error& e) {
    return InvalidFormat(what + ": malformed JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  } catch (const typename J::exception& e) {  // e.g. a number out of range ("1e400")
    return InvalidFormat(what + ": unreadable JSON: " + e.what());
  }
}

// Serializes j; strings that are not valid UTF-8 (a GGUF's names and strings, file paths) come out
// with U+FFFD instead of making nlohmann throw.
template <typename J>
std::string DumpJson(const J& j, int indent = -1) {
  return j.dump(indent, ' ', false, J::error_handler_t::replace);
}

}  // namespace moxie
