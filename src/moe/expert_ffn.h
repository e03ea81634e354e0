// SwiGLU feed-forward execution for one weight set over a group of tokens (experts, shared
// experts, dense MLP layers).
#pragma once

#include <cstddef>

#include "core/arena.h"
#include "core/thread_pool.h"
#include "moe/expert_store.h"

namespace moxie {

// Scratch floats RunSwiGlu needs for n_tok tokens and an FFN width n_ff.
inline size_t SwiGluScratchFloats(size_t n_tok, size_t n_ff) {
  return 3 * Arena::Round(n_tok * n_ff);
}

// y[t, :] = down · (silu(gate · x[t]) ⊙ (up · x[t])) for t < n_tok. x: [n_tok, n_embd] (ld n_embd),
// y: [n_tok, n_embd]. Scratch is taken from `arena` and released before returning.
void RunSwiGlu(const ExecContext& ctx, const ExpertWeights& w, const float* x, size_t n_tok,
               float* y, Arena& arena);

}  // namespace moxie
