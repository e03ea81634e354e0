// Sampler: turns logits into the next token. Its own unit: no model, no tokenizer.
// Order (as Hugging Face's logits processors and llama.cpp's default chain):
//   logit biases (OpenAI's logit_bias, added first as llama.cpp's chain does)
//   -> repetition / presence / frequency penalties over the last `penalty_last_n` tokens
//   -> greedy if temperature <= 0
//   -> temperature -> top-k -> softmax -> top-p (nucleus) -> min-p -> draw.
// Same seed + same logits -> same tokens. No allocation per call (buffers sized at construction).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace moxie {

struct SamplerConfig {
  float temperature = 0.8f;         // <= 0: greedy (argmax)
  int top_k = 40;                   // <= 0: off
  float top_p = 0.95f;              // >= 1: off
  float min_p = 0.05f;              // <= 0: off
  float repetition_penalty = 1.0f;  // 1: off (CTRL-style: divide positive logits, multiply negative)
  float presence_penalty = 0.0f;    // OpenAI-style, subtracted once per seen token
  float frequency_penalty = 0.0f;   // OpenAI-style, subtracted per occurrence
  int penalty_last_n = 64;          // window for the penalties (-1: whole history)
  // (token id, bias) added to that token's logit before anything else; ids outside the vocabulary
  // are skipped. OpenAI's logit_bias: -100 in effect bans a token, +100 in effect forces it.
  std::vector<std::pair<int32_t, float>> logit_bias;
  uint64_t seed = 0;

  Status Validate() const;  // ranges, with the flag names in messages
};

// Ok when every logit is a number below +inf (-inf bans a token); otherwise an error naming the
// first bad logit and the generated token it came at: the model's weights or activations hold NaN
// or overflowed, and sampling from such logits would give garbage without a word (greedy picks
// token 0 when every logit is NaN).
Status CheckLogits(const float* logits, size_t n_vocab, int generated);

class Sampler {
 public:
  Sampler(const SamplerConfig& config, int n_vocab);
  // Picks a token from `logits` [n_vocab] (not modified).
  int32_t Sample(const float* logits);
  // Records a token of the context (prompt or generated) for the penalties.
  void Accept(int32_t token);
  void Reset();
  const SamplerConfig& config() const { return cfg_; }

 private:
  double Uniform();  // [0, 1), from the seeded 64-bit generator (portable)
  SamplerConfig cfg_;
  int n_vocab_;
  std::mt19937_64 rng_;
  std::vector<int32_t> history_;
  std::vector<float> work_;     // adjusted logits / probabilities
  std::vector<int32_t> idx_;    // candidate ids
  std::vector<int32_t> count_;  // occurrences in the penalty window
};

}  // namespace moxie
