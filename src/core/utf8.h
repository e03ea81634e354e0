// UTF-8 helpers: validation, repair, and finding the end of the last complete character.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moxie {

// Length of the valid UTF-8 sequence starting at s[i] (1-4), or 0 if it is invalid or truncated.
size_t Utf8SeqLen(std::string_view s, size_t i);
// True if `s` is entirely valid UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool IsValidUtf8(std::string_view s);
// Copy of `s` with every invalid byte replaced by U+FFFD (one per maximal invalid subpart).
std::string RepairUtf8(std::string_view s);
// Length of the longest prefix of `s` that does not end inside a possibly-incomplete character:
// the bytes after it are the start of a multi-byte sequence that more bytes may complete.
size_t Utf8CompletePrefix(std::string_view s);
// Appends the UTF-8 encoding of code point cp.
void AppendUtf8(std::string* out, uint32_t cp);
// Decodes one valid sequence at s[i] (call only where Utf8SeqLen > 0).
uint32_t DecodeUtf8At(std::string_view s, size_t i, size_t* len);

}  // namespace moxie
