// ExpertPlan: the dispatch step. Groups a batch's (token, expert) assignments by expert so each
// expert's weights are read once per step for all tokens that chose it. Expert parallelism will
// replace this step (and the combine) with an exchange between ranks.
#pragma once

#include <cstdint>

#include "core/arena.h"
#include "moe/router.h"

namespace moxie {

struct ExpertPlan {
  int n_expert = 0;
  int32_t* offset = nullptr;  // [n_expert + 1]: assignments of expert e are [offset[e], offset[e+1])
  int32_t* token = nullptr;   // [n_assign] batch row of each assignment
  float* weight = nullptr;    // [n_assign] routing weight of each assignment

  static size_t ScratchFloats(int n_tok, int k_max, int n_expert) {
    return Arena::Round(static_cast<size_t>(n_expert) + 1) +
           2 * Arena::Round(static_cast<size_t>(n_tok) * static_cast<size_t>(k_max));
  }
  // Builds the plan from `routing` (counting sort; tokens stay in batch order within an expert).
  void Build(const Routing& routing, int n_expert, Arena& arena);
  int n_tokens(int e) const { return offset[e + 1] - offset[e]; }
};

}  // namespace moxie
