#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace moxie {

Status SamplerConfig::Validate() const {
  if (!std::isfinite(temperature) || temperature < 0) return InvalidArgument("--temp must be >= 0");
  if (!(top_p > 0.0f) || top_p > 1.0f) return InvalidArgument("--top-p must be in (0, 1]");
  if (!(min_p >= 0.0f) || min_p > 1.0f) return InvalidArgument("--min-p must be in [0, 1]");
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty)) {
    return InvalidArgument("--repeat-penalty must be > 0");
  }
  if (!std::isfinite(presence_penalty) || std::fabs(presence_penalty) > 2.0f) {
    return InvalidArgument("--presence-penalty must be in [-2, 2]");
  }
  if (!std::isfinite(frequency_penalty) || std::fabs(frequency_penalty) > 2.0f) {
    return InvalidArgument("--frequency-penalty must be in [-2, 2]");
  }
  if (penalty_last_n < -1) return InvalidArgument("--repeat-last-n must be >= -1");
  for (const auto& [id, bias] : logit_bias) {
    if (!std::isfinite(bias)) return InvalidArgument("logit bias of token " + std::to_string(id) + " is not finite");
  }
  return Status::Ok();
}

Sampler::Sampler(const SamplerConfig& config, int n_vocab)
    : cfg_(config), n_vocab_(n_vocab), rng_(config.seed) {
  work_.resize(static_cast<size_t>(n_vocab));
  idx_.resize(static_cast<size_t>(n_vocab));
  count_.assign(static_cast<size_t>(n_vocab), 0);
  history_.reserve(4096);
}

void Sampler::Reset() {
  history_.clear();
  rng_.seed(cfg_.seed);
}

void Sampler::Accept(int32_t token) {
  if (token >= 0 && token < n_vocab_) history_.push_back(token);
}

double Sampler::Uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

Status CheckLogits(const float* logits, size_t n_vocab, int generated) {
  for (size_t i = 0; i < n_vocab; ++i) {
    const float v = logits[i];
    if (std::isnan(v) || v == std::numeric_limits<float>::infinity()) {
      return Internal("the model's logits are not finite (token " + std::to_string(i) + "'s is " +
                      (std::isnan(v) ? "nan" : "+inf") + ", at generated token " + std::to_string(generated) +
                      "): its weights or activations hold NaN or overflowed");
    }
  }
  return Status::Ok();
}

int32_t Sampler::Sample(const float* logits) {
  const size_t V = static_cast<size_t>(n_vocab_);
  std::copy(logits, logits + V, work_.begin());
  for (const auto& [id, bias] : cfg_.logit_bias) {
    if (id >= 0 && static_cast<size_t>(id) < V) work_[static_cast<size_t>(id)] += bias;
  }
  // Penalties over the window.
  const bool penalize = cfg_.repetition_penalty != 1.0f || cfg_.presence_penalty != 0.0f ||
                        cfg_.frequency_penalty != 0.0f;
  if (penalize && !history_.empty()) {
    const size_t n = cfg_.penalty_last_n < 0
                         ? history_.size()
                         : std::min(history_.size(), static_cast<size_t>(cfg_.penalty_last_n));
    const size_t from = history_.size() - n;
    for (size_t i = from; i < history_.size(); ++i) ++count_[history_[i]];
    for (size_t i = from; i < history_.size(); ++i) {
      const int32_t t = history_[i];
      const int32_t c = count_[t];
      if (c == 0) continue;  // already applied
      float& l = work_[t];
      if (cfg_.repetition_penalty != 1.0f) {
        l = l > 0 ? l / cfg_.repetition_penalty : l * cfg_.repetition_penalty;
      }
      l -= cfg_.presence_penalty + cfg_.frequency_penalty * static_cast<float>(c);
      count_[t] = 0;
    }
  }
  // Greedy at temperature 0, and where 1 / temperature overflows (a temperature under ~3e-39:
  // the top logit's (l - max) / T would be 0 * inf = NaN, and the draw would fall to the last
  // candidate).
  if (cfg_.temperature <= 0.0f || !std::isfinite(1.0f / cfg_.temperature)) {
    return static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());
  }
  // Candidates sorted by logit (ties -> lower id), cut to top-k.
  std::iota(idx_.begin(), idx_.end(), 0);
  size_t n = V;
  auto by_logit = [&](int32_t a, int32_t b) {
    return work_[a] != work_[b] ? work_[a] > work_[b] : a < b;
  };
  if (cfg_.top_k > 0 && static_cast<size_t>(cfg_.top_k) < V) {
    n = static_cast<size_t>(cfg_.top_k);
    std::partial_sort(idx_.begin(), idx_.begin() + n, idx_.end(), by_logit);
  } else {
    std::sort(idx_.begin(), idx_.end(), by_logit);
  }
  // Softmax at temperature over the candidates, in place: each candidate's slot of work_ goes from
  // logit to unnormalised probability (ids are distinct, so no slot is read after it is written).
  const float inv_t = 1.0f / cfg_.temperature;
  const float mx = work_[idx_[0]];
  std::vector<float>& p = work_;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    p[idx_[i]] = std::exp((p[idx_[i]] - mx) * inv_t);
    sum += p[idx_[i]];
  }
  // Top-p: smallest prefix whose mass reaches top_p (at least one token).
  if (cfg_.top_p < 1.0f) {
    double acc = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      acc += p[idx_[i]] / sum;
      if (acc >= cfg_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  // Min-p: drop candidates below min_p x the best probability.
  if (cfg_.min_p > 0.0f) {
    const float floor = cfg_.min_p * p[idx_[0]];
    size_t keep = 1;
    while (keep < n && p[idx_[keep]] >= floor) ++keep;
    n = keep;
  }
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += p[idx_[i]];
  const double r = Uniform() * total;
  double acc = 0;
  for (size_t i = 0; i < n; ++i) {
    acc += p[idx_[i]];
    if (r < acc) return idx_[i];
  }
  return idx_[n - 1];
}

}  // namespace moxie
