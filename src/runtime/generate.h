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
