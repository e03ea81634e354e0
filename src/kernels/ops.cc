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
  MOXIE_CHECK(w.shape.rank() == 2);
  const size_t n_out = static_cast<size_t>(w.dim(0));
  const size_t n_in = static_cast<size_t>(w.dim(1));
  const KernelTable& kt = ctx.kernels != nullptr ? *ctx.kernels : BestKernels();
  const MatmulFn mm = kt.Matmul(w.dtype);
  MOXIE_CHECK(mm != nullptr);
  const size_t row_bytes = RowBytes(w.dtype, static_cast<int64_t>(n_in));
  const auto* wb = static_cast<const uint8_t*>(w.data);
  const QMatmulFn qmm = ctx.PreparedActivations(w.dtype) ? kt.QMatmul(w.dtype) : nullptr;
  if (qmm != nullptr) {
    // 8-bit (or bf16) activations: prepared once here, shared by every thread's rows. The buffer only
    // grows (the first, largest batch sizes it), so steady-state decode does not allocate.
    const size_t stride = ActRowBytes(w.dtype, n_in);
    thread_local std::vector<uint8_t> xq;
    if (xq.size() < stride * n_tok) xq.resize(stride * n_tok);
    const QuantizeActFn qa = kt.QuantizeAct(w.dtype);
    uint8_t* xqp = xq.data();
    // By all threads for prefill-sized batches; a decode step's few rows cost less than a barrier.
    ctx.ParallelForFrom(kParallelRows, n_tok, [&](size_t t0, size_t t1, int) {
      for (size_t t = t0; t < t1; ++t) qa(x + t * ldx, xqp + t * stride, n_in);
    });
    // Ranges in whole 8-row groups (the AVX2 kernels' tile height; any split gives the same bits),
    // or the layout's groups where they are larger (BF16_R16).
    const size_t unit = std::max<size_t>(8, static_cast<size_t>(RowInterleave(w.dtype)));
    ctx.ParallelChunks((n_out + unit - 1) / unit, [&](size_t g0, size_t g1, int) {
      const size_t r0 = g0 * unit, r1 = std::min(n_out, g1 * unit);
      qmm(xqp, stride, n_tok, wb + r0 * row_bytes, n_in, r1 - r0, y + r0, ldy);
      if (bias != nullptr) {
        for (size_t t = 0; t < n_tok; ++t) {
          for (size_t r = r0; r < r1; ++r) y[t * ldy + r] += bias[r];
        }
      }
    });
    return;
  }
  // Interleaved layouts are addressed by whole groups (8 or 16 rows).
  const auto unit = static_cast<size_t>(RowInterleave(w.dtype));
  ctx.ParallelChunks((n_out + unit - 1) / unit, [&](size_t g0, size_t g1, int) {
    const size_t r0 = g0 * unit, r1 = std::min(n_out, g1 * unit);
    mm(x, ldx, n_tok, wb + r0 * row_bytes, n_in, r1 - r0, y + r0, ldy);
    if (bias != nullptr) {
      for (size_t t = 0; t < n_tok; ++t) {
        for (size_t r = r0; r < r1; ++r) y[t * ldy + r] += bias[r];
      }
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
  double ss = 0.0;  // wide accumulator: result independent of n's size class
  for (size_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
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
