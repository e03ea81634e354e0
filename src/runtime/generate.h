// The generation loop: prompt tokens in, streamed text out, for `moxie run`, `moxie chat` and
// (later) the server. Stops at EOS tokens, stop strings, max tokens or the end of the context.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/tokenizer.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace moxie {

struct GenerateOptions {
  int max_tokens = 128;
  std::vector<std::string> stop;      // stop strings (not included in the output)
  std::vector<int32_t> eos_tokens;    // generation ends when one is sampled (not printed)
  SamplerConfig sampler;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (EOS excluded)
  std::string text;             // decoded text (up to, not including, a stop string)
  std::string finish_reason;    // "eos", "stop", "length" (max tokens or context full)
  int prompt_tokens = 0;
  int reused_tokens = 0;        // prompt tokens already in the KV cache
  double prefill_s = 0, decode_s = 0;
};

// Generated tokens -> text that is safe to show: never splits a UTF-8 character (bytes that never
// form one become U+FFFD), cuts the text at the first stop string and holds back a tail that may
// still grow into one. Shared by Generate and the batch engine, so both emit the same text.
class TextOutput {
 public:
  TextOutput(const Tokenizer& tok, const std::vector<std::string>& stop)
      : dec_(tok, /*skip_special=*/true), stop_(stop) {}
  // Text that became final with `token` (possibly empty). After a stop string appears, stopped()
  // is true and the text before it has been returned.
  std::string Push(int32_t token);
  // The held-back rest at the end of generation (empty after a stop).
  std::string Finish();
  bool stopped() const { return stopped_; }

 private:
  StreamingDecoder dec_;
  const std::vector<std::string>& stop_;
  std::string pending_;  // decoded, not yet emitted (may start a stop string)
  bool stopped_ = false;
};

// Called with each piece of new text (valid UTF-8); return false to stop early.
using TextCallback = std::function<bool(const std::string&)>;

// Runs `prompt` on sequence `seq` of `session`, reusing the longest prefix of `cached` (the
// tokens already in that slot) and generating after it. On return `cached` holds the slot's
// tokens. Errors: prompt longer than the context, bad sampler settings.
Result<GenerateResult> Generate(Session& session, const Tokenizer& tok,
                                const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                                const TextCallback& on_text, std::vector<int32_t>* cached = nullptr,
                                int seq = 0);

}  // namespace moxie
