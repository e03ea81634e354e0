#include "moe/expert_ffn.h"

#include <algorithm>
#include <atomic>
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
  const LinearOut gate_up[2] = {{&w.gate, nullptr, g, n_ff}, {&w.up, nullptr, u, n_ff}};
  LinearMany(ctx, x, n_embd, n_tok, gate_up, 2);
  const KernelTable& kt = ctx.kernels != nullptr ? *ctx.kernels : BestKernels();
  kt.silu_mul(g, u, h, n_tok * n_ff);
  Linear(ctx, h, n_ff, n_tok, w.down, nullptr, y, n_embd);
  arena.Release(mark);
}

}  // namespace moxie

namespace moxie {

namespace {

// Activations prepared for the weight formats they meet: f32 rows, and rows in each activation
// format (ActFormat: Q8_0, Q8_K, bf16) a matrix's QMatmul wants.
struct PreparedAct {
  static constexpr int kMaxForms = 3;  // one per activation format (a group's gate and up use <= 2)
  const float* x = nullptr;            // [n, n_in], ld n_in (nullptr when no matrix reads f32)
  uint32_t fmt[kMaxForms] = {};
  QuantizeActFn qa[kMaxForms] = {};
  uint8_t* rows[kMaxForms] = {};
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

// Adds to `a` a buffer of n rows (from the arena, not filled) for each activation format that w
// wants and `a` lacks.
void AddForm(const KernelTable& kt, const ExecContext& ctx, const TensorView& w, size_t n, size_t n_in, Arena& arena,
             PreparedAct* a) {
  if (!UsesQAct(kt, ctx, w)) return;
  const uint32_t fmt = ActFormat(w.dtype);
  if (a->Find(fmt) >= 0) return;
  MOXIE_CHECK(a->n_forms < PreparedAct::kMaxForms);
  const size_t stride = ActRowBytes(w.dtype, n_in);
  const int i = a->n_forms++;
  a->fmt[i] = fmt;
  a->qa[i] = kt.QuantizeAct(w.dtype);
  a->rows[i] = reinterpret_cast<uint8_t*>(arena.Alloc(Arena::Round((n * stride + 3) / 4)));
  a->stride[i] = stride;
}

// Row t of a.x in every form of `a`.
void FillRow(const PreparedAct& a, size_t t, size_t n_in) {
  for (int i = 0; i < a.n_forms; ++i) a.qa[i](a.x + t * n_in, a.rows[i] + t * a.stride[i], n_in);
}

// fn(i) for every i < n: split over the threads from min_parallel rows up, below that on this
// thread (decode's few rows cost less than a barrier).
template <typename Fn>
void ForRows(const ExecContext& ctx, size_t n, size_t min_parallel, Fn&& fn) {
  ctx.ParallelForFrom(min_parallel, n, [&](size_t b, size_t e, int) {
    for (size_t i = b; i < e; ++i) fn(i);
  });
}
// Rows from which ForRows goes parallel: quantizing a row of x (~1 us for 2048 elements; h is
// quantized inside phase A), and gathering one (a copy of a few KiB).
constexpr size_t kParallelQuantRows = 8, kParallelCopyRows = 64;
// Products (rows x outputs) from which the routing-weighted combine goes parallel.
constexpr size_t kParallelCombineProducts = 32768;

// fn(i, r0, r1) over rows [r0, r1) of groups i < G (rows(i) rows each), the cost (row_cost(i) per
// row) split in ParallelChunks' pieces, consecutive in group order: with ParallelChunks'
// owner-first claiming, a thread streams a run of whole matrices. Inner piece boundaries fall on
// multiples of 16 rows (the kernels' groups: 8 rows, BF16_R16's 16).
template <typename RowsOf, typename RowCost, typename Fn>
void ForCostPieces(const ExecContext& ctx, size_t G, RowsOf&& rows, RowCost&& row_cost, Fn&& fn) {
  double total = 0;
  for (size_t i = 0; i < G; ++i) total += row_cost(i) * static_cast<double>(rows(i));
  // The cost in fine units, so the pool's (tapered) chunk boundaries fall anywhere.
  constexpr size_t kUnits = size_t{1} << 16;
  ctx.ParallelChunks(kUnits, [&](size_t p0, size_t p1, int) {
    const double lo = total * static_cast<double>(p0) / kUnits, hi = total * static_cast<double>(p1) / kUnits;
    double acc = 0;
    for (size_t i = 0; i < G; ++i) {
      const size_t n = rows(i);
      const double c = row_cost(i), span = c * static_cast<double>(n);
      if (acc + span <= lo || acc >= hi) {
        acc += span;
        continue;
      }
      auto to_row = [&](double v) {
        if (v <= acc) return size_t{0};
        if (v >= acc + span) return n;
        const size_t r = static_cast<size_t>((v - acc) / c);
        return std::min(n, (r + 8) / 16 * 16);
      };
      const size_t r0 = to_row(lo), r1 = to_row(hi);
      acc += span;
      if (r1 > r0) fn(i, r0, r1);
    }
  });
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
  // x per token in up to 3 forms (one per activation format; a step has <= n_assign tokens);
  // per group: gathered x and its forms (<= 2: gate's and up's); gate, up, h and h's form (<= 2
  // reserved, down needs 1); down outputs. A form takes at most 2 bytes per element (bf16; Q8_0
  // 34 / 32, Q8_K 292 / 256).
  const size_t q = Arena::Round(n_assign * n_embd / 2 + 64);  // >= any form, in floats
  const size_t qf = Arena::Round(n_assign * n_ff / 2 + 64);
  // + per-group rounding (<= 8 allocations of <= kAlign floats each), the group table, the
  // groups' first rows and their phase-A row counts.
  return 3 * q + Arena::Round(n_assign * n_embd) + 2 * q + 3 * Arena::Round(n_assign * n_ff) + 2 * qf +
         Arena::Round(n_assign * n_embd) + n_assign * (8 * Arena::kAlign + 96) +
         Arena::Round(n_assign + 2) + Arena::Round(n_assign + 1) + 64;
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
    float* xf = nullptr;  // the group's f32 rows of x (xa.x), when a matrix reads f32
    float* g = nullptr;
    float* u = nullptr;
    float* h = nullptr;
    float* yd = nullptr;
    size_t ff = 0, n = 0;
  };
  static_assert(sizeof(Buf) <= 96 * sizeof(float), "ExpertGroupsScratchFloats reserves 96 floats per group");
  Buf* b = reinterpret_cast<Buf*>(arena.Alloc(Arena::Round((G * sizeof(Buf) + 3) / 4)));
  // x is prepared once per token (a token meets up to k experts) in every format some gate / up
  // wants, by all threads, and then gathered per group; f32 rows are gathered only for groups
  // with a matrix on the f32 path. The same bits as preparing each group's rows (one function of
  // the row).
  size_t n_x = 0;  // rows of x in use: 1 + the largest token index
  PreparedAct xt;
  xt.x = x;
  uint32_t* first = arena.AllocAs<uint32_t>(G + 1);  // group i's rows: [first[i], first[i + 1]) in flat order
  first[0] = 0;
  for (size_t i = 0; i < G; ++i) {
    const ExpertGroup& gr = groups[i];
    for (int t = 0; t < gr.n_tok; ++t) n_x = std::max(n_x, static_cast<size_t>(gr.tokens[t]) + 1);
    first[i + 1] = first[i] + static_cast<uint32_t>(gr.n_tok);
  }
  for (size_t i = 0; i < G; ++i) {
    AddForm(kt, ctx, groups[i].w->gate, n_x, H, arena, &xt);
    AddForm(kt, ctx, groups[i].w->up, n_x, H, arena, &xt);
  }
  for (size_t i = 0; i < G; ++i) {
    const ExpertGroup& gr = groups[i];
    Buf& bi = b[i];
    new (&bi) Buf();
    bi.n = static_cast<size_t>(gr.n_tok);
    bi.ff = static_cast<size_t>(gr.w->gate.dim(0));
    if (!UsesQAct(kt, ctx, gr.w->gate) || !UsesQAct(kt, ctx, gr.w->up)) bi.xa.x = bi.xf = arena.Alloc(bi.n * H);
    AddForm(kt, ctx, gr.w->gate, bi.n, H, arena, &bi.xa);
    AddForm(kt, ctx, gr.w->up, bi.n, H, arena, &bi.xa);
    bi.g = arena.Alloc(bi.n * bi.ff);
    bi.u = arena.Alloc(bi.n * bi.ff);
    bi.h = arena.Alloc(bi.n * bi.ff);
    bi.yd = arena.Alloc(bi.n * H);
  }
  const size_t n_rows = first[G];
  // Group of flat row r (groups with rows only; first[] is non-decreasing).
  auto group_of = [&](size_t r) {
    return static_cast<size_t>(std::upper_bound(first, first + G + 1, r) - first) - 1;
  };
  if (xt.n_forms > 0) ForRows(ctx, n_x, kParallelQuantRows, [&](size_t t) { FillRow(xt, t, H); });
  ForRows(ctx, n_rows, kParallelCopyRows, [&](size_t r) {
    const size_t i = group_of(r), t = r - first[i];
    const Buf& bi = b[i];
    const size_t src = static_cast<size_t>(groups[i].tokens[t]);
    if (bi.xf != nullptr) std::memcpy(bi.xf + t * H, x + src * H, H * sizeof(float));
    for (int f = 0; f < bi.xa.n_forms; ++f) {
      const int j = xt.Find(bi.xa.fmt[f]);
      std::memcpy(bi.xa.rows[f] + t * bi.xa.stride[f], xt.rows[j] + src * xt.stride[j], bi.xa.stride[f]);
    }
  });
  // h in the format each down matrix wants, prepared by the thread that completes the group's
  // last rows in phase A (a counter per group), so no job of its own: a barrier fewer per layer.
  // The same bits as quantizing after phase A (one function of the finished row).
  bool h_forms = false;
  for (size_t i = 0; i < G; ++i) {
    b[i].ha.x = b[i].h;
    AddForm(kt, ctx, groups[i].w->down, b[i].n, b[i].ff, arena, &b[i].ha);
    h_forms = h_forms || b[i].ha.n_forms > 0;
  }
  uint32_t* rows_done = arena.AllocAs<uint32_t>(G);
  std::fill(rows_done, rows_done + G, 0u);
  // Phase A: gate/up rows; cost per row ~ its bytes (+ a compute term for many tokens).
  ForCostPieces(
      ctx, G, [&](size_t i) { return b[i].ff; },
      [&](size_t i) {
        const ExpertGroup& gr = groups[i];
        return static_cast<double>(gr.w->gate.nbytes() + gr.w->up.nbytes()) / static_cast<double>(b[i].ff) +
               static_cast<double>(b[i].n) * static_cast<double>(H) * 0.25;
      },
      [&](size_t i, size_t r0, size_t r1) {
        const ExpertGroup& gr = groups[i];
        Rows(kt, ctx, gr.w->gate, r0, r1, b[i].xa, b[i].n, b[i].g, b[i].ff);
        Rows(kt, ctx, gr.w->up, r0, r1, b[i].xa, b[i].n, b[i].u, b[i].ff);
        for (size_t t = 0; t < b[i].n; ++t) {
          const size_t o = t * b[i].ff;
          kt.silu_mul(b[i].g + o + r0, b[i].u + o + r0, b[i].h + o + r0, r1 - r0);
        }
        if (!h_forms) return;
        // acq_rel: the thread that completes the group sees the other pieces' rows of h.
        const uint32_t piece = static_cast<uint32_t>(r1 - r0);
        if (std::atomic_ref<uint32_t>(rows_done[i]).fetch_add(piece, std::memory_order_acq_rel) + piece == b[i].ff) {
          for (size_t t = 0; t < b[i].n; ++t) FillRow(b[i].ha, t, b[i].ff);
        }
      });
  // Phase B: down rows of every group, split as phase A (a thread streams whole down matrices
  // where it can: pieces of a few hundred KiB, one per group and row range, read ~13 % slower
  // from DRAM than whole ones, kernel bench of the Q8_0_R8 kernel on random 272 KiB matrices).
  ForCostPieces(
      ctx, G, [&](size_t) { return H; },
      [&](size_t i) {
        return static_cast<double>(groups[i].w->down.nbytes()) / static_cast<double>(H) +
               static_cast<double>(b[i].n) * static_cast<double>(b[i].ff) * 0.25;
      },
      [&](size_t i, size_t r0, size_t r1) {
        Rows(kt, ctx, groups[i].w->down, r0, r1, b[i].ha, b[i].n, b[i].yd, H);
      });
  // The routing-weighted sum, groups in the order given for every output element (so the same
  // bits whatever the split), by output rows.
  // A decode step's few rows (8 x 2048 products: a few us) cost less on this thread than a job.
  constexpr size_t kRowGroup = 8;
  const size_t n_row_groups = (H + kRowGroup - 1) / kRowGroup;
  const size_t min_parallel = n_rows * H >= kParallelCombineProducts ? 0 : n_row_groups + 1;
  ctx.ParallelForFrom(min_parallel, n_row_groups, [&](size_t g0, size_t g1, int) {
    const size_t r0 = g0 * kRowGroup, r1 = std::min(H, g1 * kRowGroup);
    for (size_t i = 0; i < G; ++i) {
      const ExpertGroup& gr = groups[i];
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
