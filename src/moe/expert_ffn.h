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

namespace moxie {

// One expert's share of a step: its weights, the batch rows that chose it and their weights.
struct ExpertGroup {
  const ExpertWeights* w = nullptr;
  int n_tok = 0;
  const int32_t* tokens = nullptr;  // batch rows (each < the step's n_tok)
  const float* weights = nullptr;   // routing weight per row; nullptr = 1
};

// Scratch floats RunExpertGroups needs for `n_assign` (token, expert) assignments in total,
// hidden size n_embd and widest expert n_ff.
size_t ExpertGroupsScratchFloats(size_t n_assign, size_t n_embd, size_t n_ff);

// out[t, :] += Σ_groups w_{t,g} · down_g(silu(gate_g x[t]) ⊙ up_g x[t]), groups accumulated in the
// order given (so a token's result does not depend on what else is in the batch). Two parallel
// matmul phases, one barrier each, instead of three parallel matmuls per expert: (A) the gate and
// up rows of every group, split across threads by bytes and fused with SiLU·up; (B) the down rows
// of every group, split the same way (each thread streams runs of whole matrices); then the
// routing-weighted sum by output row, groups in order. Quantized weights use the
// kernel table's 8-bit-activation path when ctx.quantized_activations (activations quantized once
// per group and format). x: [*, n_embd] (ld n_embd).
void RunExpertGroups(const ExecContext& ctx, const ExpertGroup* groups, int n_groups, const float* x,
                     size_t n_embd, float* out, Arena& arena);

}  // namespace moxie
