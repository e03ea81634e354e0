#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/ref/quant.h"

namespace moxie {

void Linear(const ExecContext& ctx, const float* x, size_t ldx, size_t n_tok, const TensorView& w,
            const float* bias, float* y, size_t ldy) {
  const LinearOut out{&w, bias, y, ldy};
  LinearMany(ctx, x, ldx, n_tok, &out, 1);
}

void LinearMany(const ExecContext& ctx, const float* x, size_t ldx, size_t n_tok, const LinearOut* outs, int n) {
  constexpr int kMaxOuts = 4;
  MOXIE_CHECK(n >= 1 && n <= kMaxOuts);
  const KernelTable& kt = ctx.kernels != nullptr ? *ctx.kernels : BestKernels();
  const size_t n_in = static_cast<size_t>(outs[0].w->dim(1));
  // Per output: its kernel, row bytes, group height and where its prepared activations lie.
  struct Plan {
    MatmulFn mm = nullptr;
    QMatmulFn qmm = nullptr;
    size_t row_bytes = 0, unit = 0, n_out = 0, groups = 0, act = 0, stride = 0;
  };
  Plan plan[kMaxOuts];
  uint32_t fmts[kMaxOuts];
  QuantizeActFn quant[kMaxOuts];
  size_t form_off[kMaxOuts], form_stride[kMaxOuts];
  int n_forms = 0;
  size_t act_bytes = 0;
  double total = 0;  // bytes of all the weights
  for (int i = 0; i < n; ++i) {
    const TensorView& w = *outs[i].w;
    MOXIE_CHECK(w.shape.rank() == 2 && static_cast<size_t>(w.dim(1)) == n_in);
    Plan& p = plan[i];
    p.n_out = static_cast<size_t>(w.dim(0));
    p.row_bytes = RowBytes(w.dtype, static_cast<int64_t>(n_in));
    p.qmm = ctx.PreparedActivations(w.dtype) ? kt.QMatmul(w.dtype) : nullptr;
    if (p.qmm != nullptr) {
      // 8-bit (or bf16) activations, prepared once per format and shared by every thread's rows.
      const uint32_t f = ActFormat(w.dtype);
      int j = 0;
      while (j < n_forms && fmts[j] != f) ++j;
      if (j == n_forms) {
        fmts[j] = f;
        quant[j] = kt.QuantizeAct(w.dtype);
        form_stride[j] = ActRowBytes(w.dtype, n_in);
        form_off[j] = act_bytes;
        act_bytes += (form_stride[j] * n_tok + 63) / 64 * 64;
        ++n_forms;
      }
      p.act = form_off[j];
      p.stride = form_stride[j];
      // Whole 8-row groups (the AVX2 kernels' tile height; any split gives the same bits), or the
      // layout's groups where they are larger (BF16_R16).
      p.unit = std::max<size_t>(8, static_cast<size_t>(RowInterleave(w.dtype)));
    } else {
      p.mm = kt.Matmul(w.dtype);
      MOXIE_CHECK(p.mm != nullptr);
      p.unit = static_cast<size_t>(RowInterleave(w.dtype));  // interleaved layouts: whole groups
    }
    p.groups = (p.n_out + p.unit - 1) / p.unit;
    total += static_cast<double>(p.n_out * p.row_bytes);
  }
  uint8_t* xq = nullptr;
  if (n_forms > 0) {
    // The buffer only grows (the first, largest batch sizes it): steady-state decode does not allocate.
    thread_local std::vector<uint8_t> buf;
    if (buf.size() < act_bytes) buf.resize(act_bytes);
    xq = buf.data();
    // By all threads for prefill-sized batches; a decode step's few rows cost less than a barrier.
    ctx.ParallelForFrom(kParallelRows, n_tok, [&](size_t t0, size_t t1, int) {
      for (int j = 0; j < n_forms; ++j) {
        for (size_t t = t0; t < t1; ++t) quant[j](x + t * ldx, xq + form_off[j] + t * form_stride[j], n_in);
      }
    });
  }
  auto rows = [&](int i, size_t g0, size_t g1) {
    const Plan& p = plan[i];
    const LinearOut& o = outs[i];
    const size_t r0 = g0 * p.unit, r1 = std::min(p.n_out, g1 * p.unit);
    const uint8_t* wr = static_cast<const uint8_t*>(o.w->data) + r0 * p.row_bytes;
    if (p.qmm != nullptr) {
      p.qmm(xq + p.act, p.stride, n_tok, wr, n_in, r1 - r0, o.y + r0, o.ldy);
    } else {
      p.mm(x, ldx, n_tok, wr, n_in, r1 - r0, o.y + r0, o.ldy);
    }
    if (o.bias != nullptr) {
      for (size_t t = 0; t < n_tok; ++t) {
        for (size_t r = r0; r < r1; ++r) o.y[t * o.ldy + r] += o.bias[r];
      }
    }
  };
  if (n == 1) {
    // Equal runs of whole groups.
    ctx.ParallelChunks(plan[0].groups, [&](size_t g0, size_t g1, int) { rows(0, g0, g1); });
    return;
  }
  // The matrices' groups in order, split by bytes (in fine units, ParallelChunks' pieces): a piece
  // may end one matrix and begin the next, and each thread streams a run of consecutive matrices
  // (one barrier for all).
  constexpr size_t kUnits = size_t{1} << 16;
  ctx.ParallelChunks(kUnits, [&](size_t p0, size_t p1, int) {
    const double lo = total * static_cast<double>(p0) / kUnits;
    const double hi = total * static_cast<double>(p1) / kUnits;
    double acc = 0;
    for (int i = 0; i < n; ++i) {
      const Plan& p = plan[i];
      const double gb = static_cast<double>(p.unit * p.row_bytes);  // bytes per group (the last may be short)
      const double span = static_cast<double>(p.n_out * p.row_bytes);
      // The group boundary nearest to byte v of this matrix: one function of v, so pieces tile.
      auto to_group = [&](double v) {
        if (v <= acc) return size_t{0};
        if (v >= acc + span) return p.groups;
        return std::min(p.groups, static_cast<size_t>((v - acc) / gb + 0.5));
      };
      const size_t g0 = to_group(lo), g1 = to_group(hi);
      acc += span;
      if (g1 > g0) rows(i, g0, g1);
    }
  });
}

void AddRmsNormRows(const ExecContext& ctx, float* x, const float* y, const float* weight, size_t n_tok, size_t n,
                    float eps, float* out) {
  ctx.ParallelForFrom(kParallelRows, n_tok, [&](size_t t0, size_t t1, int) {
    for (size_t t = t0; t < t1; ++t) {
      float* xt = x + t * n;
      if (y != nullptr) {
        const float* yt = y + t * n;
        for (size_t i = 0; i < n; ++i) xt[i] += yt[i];
      }
      RmsNorm(xt, weight, n, eps, out + t * n);
    }
  });
}

void RmsNorm(const float* x, const float* weight, size_t n, float eps, float* out) {
  // Wide accumulators (the result does not depend on n's size class), 8 independent lanes (element
  // i into lane i % 8, then a fixed pairwise sum): one dependent chain of double adds ran at ~4
  // cycles per element, ~1 % of a model A prefill; the lanes vectorize. A row's bits depend only on
  // the row, as before.
  double lane[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t k = 0; k < 8; ++k) lane[k] += static_cast<double>(x[i + k]) * x[i + k];
  }
  for (size_t k = 0; i + k < n; ++k) lane[k] += static_cast<double>(x[i + k]) * x[i + k];
  const double ss = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
  const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  if (weight != nullptr) {
    for (size_t i = 0; i < n; ++i) out[i] = weight[i] * (x[i] * inv);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = x[i] * inv;
  }
}

void SoftmaxInPlace(float* x, size_t n) {
  float m = -INFINITY;
  for (size_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  float sum = 0.f;
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (size_t i = 0; i < n; ++i) x[i] *= inv;
}

float SiluF(float z) { return z / (1.0f + std::exp(-z)); }

void SwiGlu(const float* gate, const float* up, float* h, size_t n) {
  for (size_t i = 0; i < n; ++i) h[i] = SiluF(gate[i]) * up[i];
}

}  // namespace moxie
