#include "moe/expert_ffn.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/ops.h"
#include "kernels/ref/quant.h"

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

namespace moxie {

namespace {

// Activations of one group prepared for the weight formats it meets: f32 rows, and rows in each
// activation format (ActFormat: Q8_0, Q8_K, bf16) a matrix's QMatmul wants.
struct PreparedAct {
  static constexpr int kMaxForms = 2;  // gate's and up's (ExpertGroupsScratchFloats reserves 2)
  const float* x = nullptr;            // [n, n_in], ld n_in
  uint32_t fmt[kMaxForms] = {};
  const uint8_t* rows[kMaxForms] = {};
  size_t stride[kMaxForms] = {};  // bytes per row
  int n_forms = 0;
  int Find(uint32_t f) const {
    for (int i = 0; i < n_forms; ++i) {
      if (fmt[i] == f) return i;
    }
    return -1;
  }
};

bool UsesQAct(const KernelTable& kt, const ExecContext& ctx, const TensorView& w) {
  return ctx.PreparedActivations(w.dtype) && kt.QMatmul(w.dtype) != nullptr;
}

// Prepares `n` rows of x in every activation format the matrices in `ws` need.
void Prepare(const KernelTable& kt, const ExecContext& ctx, std::initializer_list<const TensorView*> ws, const float* x, size_t n,
             size_t n_in, Arena& arena, PreparedAct* a) {
  a->x = x;
  for (const TensorView* w : ws) {
    if (!UsesQAct(kt, ctx, *w)) continue;
    const uint32_t fmt = ActFormat(w->dtype);
    if (a->Find(fmt) >= 0) continue;
    MOXIE_CHECK(a->n_forms < PreparedAct::kMaxForms);
    const size_t stride = ActRowBytes(w->dtype, n_in);
    auto* buf = reinterpret_cast<uint8_t*>(arena.Alloc(Arena::Round((n * stride + 3) / 4)));
    const QuantizeActFn qa = kt.QuantizeAct(w->dtype);
    for (size_t t = 0; t < n; ++t) qa(x + t * n_in, buf + t * stride, n_in);
    a->fmt[a->n_forms] = fmt;
    a->rows[a->n_forms] = buf;
    a->stride[a->n_forms] = stride;
    ++a->n_forms;
  }
}

// y[t * ldy + r] for rows [r0, r1) of w, all n tokens of `a`.
void Rows(const KernelTable& kt, const ExecContext& ctx, const TensorView& w, size_t r0, size_t r1, const PreparedAct& a,
          size_t n, float* y, size_t ldy) {
  if (r1 <= r0) return;
  const size_t n_in = static_cast<size_t>(w.dim(1));
  const auto* wr = static_cast<const uint8_t*>(w.row(static_cast<int64_t>(r0)));
  if (UsesQAct(kt, ctx, w)) {
    const int i = a.Find(ActFormat(w.dtype));
    MOXIE_CHECK(i >= 0);
    kt.QMatmul(w.dtype)(a.rows[i], a.stride[i], n, wr, n_in, r1 - r0, y + r0, ldy);
  } else {
    kt.Matmul(w.dtype)(a.x, n_in, n, wr, n_in, r1 - r0, y + r0, ldy);
  }
}

}  // namespace

size_t ExpertGroupsScratchFloats(size_t n_assign, size_t n_embd, size_t n_ff) {
  // gathered x + its prepared forms (<= 2: gate's and up's); gate, up, h and h's forms (<= 2
  // reserved, down needs 1); down outputs. A form takes at most 2 bytes per element (bf16; Q8_0
  // 34 / 32, Q8_K 292 / 256).
  const size_t q = Arena::Round(n_assign * n_embd / 2 + 64);  // >= any form, in floats
  const size_t qf = Arena::Round(n_assign * n_ff / 2 + 64);
  // + per-group rounding (<= 8 allocations of <= kAlign floats each) and the group table.
  return Arena::Round(n_assign * n_embd) + 2 * q + 3 * Arena::Round(n_assign * n_ff) + 2 * qf +
         Arena::Round(n_assign * n_embd) + n_assign * (8 * Arena::kAlign + 32) + 64;
}

void RunExpertGroups(const ExecContext& ctx, const ExpertGroup* groups, int n_groups, const float* x,
                     size_t n_embd, float* out, Arena& arena) {
  if (n_groups <= 0) return;
  const size_t mark = arena.mark();
  const KernelTable& kt = ctx.kernels != nullptr ? *ctx.kernels : BestKernels();
  const size_t H = n_embd;
  const size_t G = static_cast<size_t>(n_groups);
  // Per-group buffers (all from the arena, in the arena's float units).
  struct Buf {
    PreparedAct xa, ha;
    float* g = nullptr;
    float* u = nullptr;
    float* h = nullptr;
    float* yd = nullptr;
    size_t ff = 0, n = 0;
  };
  Buf* b = reinterpret_cast<Buf*>(arena.Alloc(Arena::Round((G * sizeof(Buf) + 3) / 4)));
  for (size_t i = 0; i < G; ++i) {
    const ExpertGroup& gr = groups[i];
    Buf& bi = b[i];
    new (&bi) Buf();
    bi.n = static_cast<size_t>(gr.n_tok);
    bi.ff = static_cast<size_t>(gr.w->gate.dim(0));
    float* xg = arena.Alloc(bi.n * H);
    for (size_t t = 0; t < bi.n; ++t) std::memcpy(xg + t * H, x + static_cast<size_t>(gr.tokens[t]) * H, H * sizeof(float));
    Prepare(kt, ctx, {&gr.w->gate, &gr.w->up}, xg, bi.n, H, arena, &bi.xa);
    bi.g = arena.Alloc(bi.n * bi.ff);
    bi.u = arena.Alloc(bi.n * bi.ff);
    bi.h = arena.Alloc(bi.n * bi.ff);
    bi.yd = arena.Alloc(bi.n * H);
  }
  // Phase A's pieces of equal cost, claimed dynamically (ParallelChunks).
  const int n_pieces = ctx.n_threads() * std::max(1, ctx.chunks_per_thread);
  // Phase A: gate/up rows; cost per row ~ its bytes (+ a compute term for many tokens).
  double total = 0;
  auto row_cost = [&](size_t i) {
    const ExpertGroup& gr = groups[i];
    const double bytes = static_cast<double>(gr.w->gate.nbytes() + gr.w->up.nbytes()) / static_cast<double>(b[i].ff);
    return bytes + static_cast<double>(b[i].n) * static_cast<double>(H) * 0.25;
  };
  for (size_t i = 0; i < G; ++i) total += row_cost(i) * static_cast<double>(b[i].ff);
  ctx.ParallelChunks(static_cast<size_t>(n_pieces), [&](size_t p0, size_t p1, int) {
    for (size_t p = p0; p < p1; ++p) {
      const double lo = total * static_cast<double>(p) / n_pieces, hi = total * static_cast<double>(p + 1) / n_pieces;
      double acc = 0;
      for (size_t i = 0; i < G; ++i) {
        const double c = row_cost(i), span = c * static_cast<double>(b[i].ff);
        if (acc + span <= lo || acc >= hi) {
          acc += span;
          continue;
        }
        // Rows of group i inside [lo, hi), rounded to multiples of 8 rows (the AVX2 kernels'
        // tile height) at inner boundaries.
        auto to_row = [&](double v) {
          if (v <= acc) return size_t{0};
          if (v >= acc + span) return b[i].ff;
          const size_t r = static_cast<size_t>((v - acc) / c);
          return std::min(b[i].ff, (r + 4) / 8 * 8);
        };
        const size_t r0 = to_row(lo), r1 = to_row(hi);
        acc += span;
        if (r1 <= r0) continue;
        const ExpertGroup& gr = groups[i];
        Rows(kt, ctx, gr.w->gate, r0, r1, b[i].xa, b[i].n, b[i].g, b[i].ff);
        Rows(kt, ctx, gr.w->up, r0, r1, b[i].xa, b[i].n, b[i].u, b[i].ff);
        for (size_t t = 0; t < b[i].n; ++t) {
          const size_t o = t * b[i].ff;
          SwiGlu(b[i].g + o + r0, b[i].u + o + r0, b[i].h + o + r0, r1 - r0);
        }
      }
    }
  });
  // h in the formats the down matrices want.
  for (size_t i = 0; i < G; ++i) Prepare(kt, ctx, {&groups[i].w->down}, b[i].h, b[i].n, b[i].ff, arena, &b[i].ha);
  // Phase B: down rows split by output row; each thread accumulates its rows over the groups in
  // order.
  constexpr size_t kRowGroup = 8;  // ranges in whole 8-row groups, as in Linear
  ctx.ParallelChunks((H + kRowGroup - 1) / kRowGroup, [&](size_t g0, size_t g1, int) {
    const size_t r0 = g0 * kRowGroup, r1 = std::min(H, g1 * kRowGroup);
    if (r1 <= r0) return;
    for (size_t i = 0; i < G; ++i) {
      const ExpertGroup& gr = groups[i];
      Rows(kt, ctx, gr.w->down, r0, r1, b[i].ha, b[i].n, b[i].yd, H);
      for (size_t t = 0; t < b[i].n; ++t) {
        float* o = out + static_cast<size_t>(gr.tokens[t]) * H;
        const float* y = b[i].yd + t * H;
        const float w = gr.weights != nullptr ? gr.weights[t] : 1.0f;
        for (size_t c = r0; c < r1; ++c) o[c] += w * y[c];
      }
    }
  });
  arena.Release(mark);
}

}  // namespace moxie
