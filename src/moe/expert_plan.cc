#include "moe/expert_plan.h"

namespace moxie {

void ExpertPlan::Build(const Routing& routing, int n_expert_in, Arena& arena) {
  n_expert = n_expert_in;
  const size_t cap = static_cast<size_t>(routing.n_tok) * static_cast<size_t>(routing.k_max);
  offset = arena.AllocAs<int32_t>(static_cast<size_t>(n_expert) + 1);
  token = arena.AllocAs<int32_t>(cap);
  weight = arena.Alloc(cap);
  for (int e = 0; e <= n_expert; ++e) offset[e] = 0;
  for (int t = 0; t < routing.n_tok; ++t) {
    for (int j = 0; j < routing.count[t]; ++j) ++offset[routing.ids[t * routing.k_max + j] + 1];
  }
  for (int e = 0; e < n_expert; ++e) offset[e + 1] += offset[e];
  // Fill using offset[e] as a cursor, then shift back.
  for (int t = 0; t < routing.n_tok; ++t) {
    for (int j = 0; j < routing.count[t]; ++j) {
      const int e = routing.ids[t * routing.k_max + j];
      const int slot = offset[e]++;
      token[slot] = t;
      weight[slot] = routing.weights[t * routing.k_max + j];
    }
  }
  for (int e = n_expert; e > 0; --e) offset[e] = offset[e - 1];
  offset[0] = 0;
}

}  // namespace moxie
