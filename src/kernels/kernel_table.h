// KernelTable: the compute primitives of one instruction set, bound once at startup.
//
// Kernels see raw pointers and sizes only (no model or format types). Every kernel has a scalar
// reference in kernels/ref/; ISA variants live in kernels/cpu/<isa>/ (the only translation units
// built with ISA flags) and are tested against the reference on the same machine.
// Set MOXIE_ISA=ref, avx2 or avx512 to force a variant (one the CPU lacks falls back, with a note).
#pragma once

#include <cstddef>
#include <vector>

#include "core/dtype.h"

namespace moxie {

// y[t * ldy + r] = sum_i x[t * ldx + i] * W[r][i]   for t < n_tok, r < n_rows.
// W holds n_rows contiguous rows of n_in elements of the kernel's weight dtype. Rows are read once
// per call and reused for all tokens. x, y are f32; W may be unaligned.
using MatmulFn = void (*)(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in,
                          size_t n_rows, float* y, size_t ldy);

// Quantized weights with 8-bit activations (llama.cpp's CPU scheme): the caller first quantizes the
// n_tok activation rows with QuantizeActFn for the weight dtype (Q8_0 blocks for Q8_0/Q4_0/MXFP4
// weights, Q8_K for Q4_K/Q5_K/Q6_K; kernels/ref/quant.h, ActRowBytes) into xq, row t at
// xq + t * xq_stride bytes; then
//   y[t * ldy + r] = dot(W[r], dequant(xq row t))   computed in integers per block as ggml does.
// n_in is a multiple of the weight's block size. BF16 weights take bf16 activations the same way
// on CPUs with AVX512_BF16 (kernels/ref/bf16_act.h).
using QuantizeActFn = void (*)(const float* x, void* xq, size_t n_in);
using QMatmulFn = void (*)(const void* xq, size_t xq_stride, size_t n_tok, const void* w,
                           size_t n_in, size_t n_rows, float* y, size_t ldy);

// Attention over a KV cache, for m queries that share K/V (the heads of one GQA group, or
// consecutive tokens of one sequence): query i at q + i·ldq, K and V rows j < n at k + j·ldk and
// v + j·ldv (floats).
//   s[i·lds + j] = scale · dot(q_i, K_j) over d elements        (AttnScoresFn)
//   o[i·ldo + c] += Σ_j p[i·ldp + j] · V_j[c] for c < d, j in order (AttnValuesFn)
// Each dot's reduction order depends only on d, and each output column accumulates over j in
// order, so a result does not depend on m, n, or which other queries share the call (a range of
// keys can be split over calls: values accumulate into o).
using AttnScoresFn = void (*)(const float* q, size_t ldq, size_t m, const float* k, size_t ldk,
                              size_t n, size_t d, float scale, float* s, size_t lds);
using AttnValuesFn = void (*)(const float* p, size_t ldp, size_t m, const float* v, size_t ldv,
                              size_t n, size_t d, float* o, size_t ldo);
// The same over an f16 cache (k, v and their strides in f16 elements): each element is widened
// exactly, so the results are the f32 kernels' bits on the widened values.
using AttnScoresF16Fn = void (*)(const float* q, size_t ldq, size_t m, const uint16_t* k, size_t ldk,
                                 size_t n, size_t d, float scale, float* s, size_t lds);
using AttnValuesF16Fn = void (*)(const float* p, size_t ldp, size_t m, const uint16_t* v, size_t ldv,
                                 size_t n, size_t d, float* o, size_t ldo);

// h[i] = silu(g[i]) · u[i], silu(z) = z / (1 + e^−z) (the SwiGLU activation). Every element gets
// the same arithmetic wherever it sits in the call, so rows split into any ranges give the same bits.
using SiluMulFn = void (*)(const float* g, const float* u, float* h, size_t n);
// x[0, n) <- e^(x_i − max) / Σ_j e^(x_j − max) (the attention softmax). The result depends only on
// the n values.
using SoftmaxFn = void (*)(float* x, size_t n);

struct KernelTable {
  static constexpr int kSlots = 32;  // indexed by DType value
  const char* isa = "ref";
  MatmulFn matmul[kSlots] = {};
  // 8-bit-activation path for quantized dtypes, bf16 activations for BF16 (nullptr: use matmul,
  // f32 activations).
  QMatmulFn qmatmul[kSlots] = {};
  QuantizeActFn quantize_act[kSlots] = {};
  AttnScoresFn attn_scores = nullptr;
  AttnValuesFn attn_values = nullptr;
  AttnScoresF16Fn attn_scores_f16 = nullptr;
  AttnValuesF16Fn attn_values_f16 = nullptr;
  SiluMulFn silu_mul = nullptr;
  SoftmaxFn softmax = nullptr;

  // nullptr if the dtype has no matmul kernel.
  MatmulFn Matmul(DType w) const {
    const int i = static_cast<int>(w);
    return i < kSlots ? matmul[i] : nullptr;
  }
  QMatmulFn QMatmul(DType w) const {
    const int i = static_cast<int>(w);
    return i < kSlots ? qmatmul[i] : nullptr;
  }
  QuantizeActFn QuantizeAct(DType w) const {
    const int i = static_cast<int>(w);
    return i < kSlots ? quantize_act[i] : nullptr;
  }
  void Set(DType w, MatmulFn f) { matmul[static_cast<int>(w)] = f; }
  void SetQ(DType w, QuantizeActFn qa, QMatmulFn f) {
    quantize_act[static_cast<int>(w)] = qa;
    qmatmul[static_cast<int>(w)] = f;
  }
};

// Bytes of one activation row of n_in elements prepared by QuantizeAct(w) for QMatmul(w): bf16 for
// BF16 weights (kernels/ref/bf16_act.h), Q8_0 / Q8_K blocks for the quantized types
// (kernels/ref/quant.h).
size_t ActRowBytes(DType w, size_t n_in);
// The activation format QMatmul(w) reads, as a ggml type id (BF16, Q8_0 or Q8_K): activations
// prepared for weights of equal formats are interchangeable.
uint32_t ActFormat(DType w);

// Row `r` of a weight of dtype `t` to f32 (any float or quantized dtype; n elements).
void RowToF32(DType t, const void* src, float* dst, int64_t n);

const KernelTable& RefKernels();
// nullptr when the CPU or the build lacks AVX2+FMA+F16C.
const KernelTable* Avx2Kernels();
// The AVX2 table with kernels using AVX-512 (F, BW, VL, DQ) and VNNI where they exist; nullptr when
// the CPU (or its OS) or the build lacks them.
const KernelTable* Avx512Kernels();
// The AVX-512 table with the BF16 × bf16-activation matmul on AMX tiles and, where the CPU has
// AMX-INT8, Q8_0_R8 for 16+ tokens (same bits as the AVX-512 kernel) (kernels/cpu/amx); nullptr
// when the CPU, its OS or the build lacks AMX-BF16 (or AVX512_BF16), or Linux refuses the process
// the tile state.
const KernelTable* AmxKernels();
// Every SIMD table this CPU can run (avx2, avx512, avx512+amx), for tests and benches that compare
// them.
std::vector<const KernelTable*> SimdKernels();
// The best table for this CPU, honouring MOXIE_ISA (ref, avx2, avx512, amx). Chosen once;
// thread-safe.
const KernelTable& BestKernels();

}  // namespace moxie
