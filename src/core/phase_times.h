// Cheap per-phase wall-clock counters for a forward pass (`moxie bench`): the engine adds the
// seconds spent in each phase when a PhaseTimes is passed in ForwardOptions (two clock reads per
// phase per layer; nothing when it is null).
#pragma once

#include <chrono>

namespace moxie {

struct PhaseTimes {
  double attention = 0;  // norms + attention (incl. its projections)
  double router = 0;     // router matmul + selection
  double experts = 0;    // routed experts (gather, FFN, weighted combine)
  double shared = 0;     // shared experts
  double dense = 0;      // dense FFN layers
  double lm_head = 0;    // final norm + output projection
  double other = 0;      // embedding lookup, residual adds
  double total() const { return attention + router + experts + shared + dense + lm_head + other; }
};

inline double PhaseClock() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace moxie
