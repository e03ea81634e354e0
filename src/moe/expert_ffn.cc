#include "moe/expert_ffn.h"

#include "kernels/ops.h"

namespace moxie {

void RunSwiGlu(const ExecContext& ctx, const ExpertWeights& w, const float* x, size_t n_tok,
               float* y, Arena& arena) {
  const size_t n_ff = static_cast<size_t>(w.gate.dim(0));
  const size_t n_embd = static_cast<size_t>(w.gate.dim(1));
  const size_t mark = arena.mark();
  float* g = arena.Alloc(n_tok * n_ff);
  float* u = arena.Alloc(n_tok * n_ff);
  float* h = arena.Alloc(n_tok * n_ff);
  Linear(ctx, x, n_embd, n_tok, w.gate, nullptr, g, n_ff);
  Linear(ctx, x, n_embd, n_tok, w.up, nullptr, u, n_ff);
  SwiGlu(g, u, h, n_tok * n_ff);
  Linear(ctx, h, n_ff, n_tok, w.down, nullptr, y, n_embd);
  arena.Release(mark);
}

}  // namespace moxie
