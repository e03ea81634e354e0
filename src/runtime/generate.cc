#include "runtime/generate.h"

#include <algorithm>
#include <chrono>

namespace moxie {
namespace {

// Length of the longest suffix of `s` that is a proper prefix of some stop string (that text
// must be held back: the next token may complete the stop string).
size_t HeldBack(const std::string& s, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& st : stops) {
    for (size_t k = std::min(st.size() - 1, s.size()); k > hold; --k) {
      if (s.compare(s.size() - k, k, st, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

}  // namespace

std::string TextOutput::Push(int32_t token) {
  if (stopped_) return "";
  pending_ += dec_.Push(token);
  if (!stop_.empty()) {
    size_t cut = std::string::npos;
    for (const auto& s : stop_) cut = std::min(cut, pending_.find(s));
    if (cut != std::string::npos) {
      pending_.resize(cut);
      stopped_ = true;
    }
  }
  const size_t hold = stopped_ ? 0 : HeldBack(pending_, stop_);
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string TextOutput::Finish() {
  if (stopped_) return "";
  std::string out = std::move(pending_);
  out += dec_.Flush();
  pending_.clear();
  return out;
}

Result<GenerateResult> Generate(Session& session, const Tokenizer& tok,
                                const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                                const TextCallback& on_text, std::vector<int32_t>* cached,
                                int seq) {
  MOXIE_RETURN_IF_ERROR(opts.sampler.Validate());
  if (prompt.empty()) return InvalidArgument("empty prompt: nothing to condition on");
  for (const auto& s : opts.stop) {
    if (s.empty()) return InvalidArgument("empty stop string");
  }
  const int ctx = session.max_ctx();
  if (static_cast<int>(prompt.size()) >= ctx) {
    return InvalidArgument("the prompt has " + std::to_string(prompt.size()) +
                           " tokens but the context holds " + std::to_string(ctx) +
                           " (raise --ctx or shorten the prompt)");
  }
  GenerateResult res;
  res.prompt_tokens = static_cast<int>(prompt.size());
  // Reuse the cached prefix (at least one prompt token is always re-fed to get logits).
  size_t reuse = 0;
  if (cached != nullptr) {
    while (reuse < cached->size() && reuse + 1 < prompt.size() && (*cached)[reuse] == prompt[reuse]) {
      ++reuse;
    }
  }
  session.Truncate(seq, static_cast<int>(reuse));
  res.reused_tokens = static_cast<int>(reuse);
  const int V = session.model().info().n_vocab;
  std::vector<float> logits(static_cast<size_t>(V));
  Sampler sampler(opts.sampler, V);
  for (int32_t t : prompt) sampler.Accept(t);
  auto t0 = std::chrono::steady_clock::now();
  MOXIE_RETURN_IF_ERROR(session.Feed(seq, prompt.data() + reuse,
                                     static_cast<int>(prompt.size() - reuse), false, logits.data()));
  auto t1 = std::chrono::steady_clock::now();
  res.prefill_s = std::chrono::duration<double>(t1 - t0).count();
  if (cached != nullptr) *cached = prompt;

  TextOutput out(tok, opts.stop);
  bool stopped = false;
  res.finish_reason = "length";
  for (int i = 0; i < opts.max_tokens; ++i) {
    MOXIE_RETURN_IF_ERROR(CheckLogits(logits.data(), static_cast<size_t>(V), i));
    const int32_t next = sampler.Sample(logits.data());
    if (std::find(opts.eos_tokens.begin(), opts.eos_tokens.end(), next) != opts.eos_tokens.end()) {
      res.finish_reason = "eos";
      break;
    }
    res.tokens.push_back(next);
    sampler.Accept(next);
    const std::string piece = out.Push(next);
    if (!piece.empty()) {
      res.text += piece;
      if (on_text && !on_text(piece)) stopped = true;
    }
    if (out.stopped() || stopped) {
      stopped = true;
      res.finish_reason = "stop";
      break;
    }
    if (session.n_past(seq) + 1 > ctx) break;  // context full
    if (i + 1 < opts.max_tokens) {
      MOXIE_RETURN_IF_ERROR(session.Feed(seq, &next, 1, false, logits.data()));
      if (cached != nullptr) cached->push_back(next);
    }
  }
  if (!stopped) {
    const std::string rest = out.Finish();
    if (!rest.empty()) {
      res.text += rest;
      if (on_text) on_text(rest);
    }
  }
  res.decode_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return res;
}

}  // namespace moxie
