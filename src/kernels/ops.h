// Row-wise operators built on the KernelTable, parallelised through an ExecContext.
// Shapes: activations are f32 row-major [n_tok, width] with a leading dimension (ld*) in elements.
#pragma once

#include <cmath>
#include <cstddef>

#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace moxie {

// y[t, :] = W · x[t, :] (+ bias) for a weight W of shape [out, in] in any float dtype.
// bias is f32 [out] or nullptr. Parallel over output rows (static ranges).
void Linear(const ExecContext& ctx, const float* x, size_t ldx, size_t n_tok, const TensorView& w,
            const float* bias, float* y, size_t ldy);

// One output of LinearMany: y[t, :] = W · x[t, :] (+ bias), as Linear's arguments.
struct LinearOut {
  const TensorView* w = nullptr;
  const float* bias = nullptr;
  float* y = nullptr;
  size_t ldy = 0;
};
// Linear for n (1..4) weights of one input width on the same x (attention's q, k and v): x is
// prepared once per activation format and all the rows are split over the threads in one job
// (one barrier instead of n); each output gets the bits Linear gives it.
void LinearMany(const ExecContext& ctx, const float* x, size_t ldx, size_t n_tok, const LinearOut* outs, int n);

// out = x / sqrt(mean(x^2) + eps) * weight, weight f32 [n] (or nullptr for no weight).
void RmsNorm(const float* x, const float* weight, size_t n, float eps, float* out);

// Row-wise steps run by all threads from this many rows (tokens) up, below it on the calling
// thread (a decode step's few rows cost less than a barrier).
inline constexpr size_t kParallelRows = 8;

// For each of n_tok rows of n elements: x[t] += y[t] (y may be nullptr: no add), then
// out[t] = RmsNorm(x[t]). Same bits as the row-by-row calls, split over threads for many rows.
void AddRmsNormRows(const ExecContext& ctx, float* x, const float* y, const float* weight, size_t n_tok, size_t n,
                    float eps, float* out);

// In-place softmax over n values (max-subtracted, f32).
void SoftmaxInPlace(float* x, size_t n);

inline float Sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }
float SiluF(float z);

// h[i] = silu(gate[i]) * up[i]
void SwiGlu(const float* gate, const float* up, float* h, size_t n);

}  // namespace moxie
