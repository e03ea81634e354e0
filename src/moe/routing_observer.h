// RoutingObserver: receives every routing decision (for traces, analytics, `--routing-out`).
// Called on the engine thread, synchronously, once per MoE layer per forward step; the event's
// pointers are valid only during the call.
#pragma once

#include <cstdint>

namespace moxie {

struct RoutingEvent {
  int layer = 0;       // model layer index
  int n_tok = 0;       // tokens in this step
  int k_max = 0;
  int n_expert = 0;
  const int32_t* seq = nullptr;      // [n_tok] sequence id of each token
  const int32_t* pos = nullptr;      // [n_tok] position of each token in its sequence
  const int32_t* count = nullptr;    // [n_tok] experts chosen per token
  const int32_t* ids = nullptr;      // [n_tok, k_max] chosen experts, best first
  const float* weights = nullptr;    // [n_tok, k_max] final weights (after norm and scale)
  const float* scores = nullptr;     // [n_tok, n_expert] router scores (softmax/sigmoid)
  const float* choice = nullptr;     // [n_tok, n_expert] selection scores (bias, group mask)
};

class RoutingObserver {
 public:
  virtual ~RoutingObserver() = default;
  virtual void OnRouting(const RoutingEvent& event) = 0;
};

}  // namespace moxie
