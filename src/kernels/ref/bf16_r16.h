// BF16_R16 (DType::kBF16R16) and F16_R16 (DType::kF16R16): BF16 / F16 weights with 16 rows
// interleaved at load, so that a 16-row group streams as one contiguous run (a row-major
// 2048-input row is one 4 KiB page, and 8-16 such rows in flight start as many short streams) and
// one 64-byte line feeds 16 rows at once.
//
// The f32-activation arithmetic of every table's BF16_R16 and F16_R16 kernel, per (row, token): two f32
// accumulators, a0 over the even pairs p and a1 over the odd ones, each pair adding w[2p]·x[2p]
// then w[2p+1]·x[2p+1] with one fma each, pairs in order; the result is a0 + a1. The reference
// below does exactly that, so every table gives its bits (tested), whatever the tile or batch.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moxie {

// n_rows (a multiple of 16) BF16 rows of n_in (even) elements at src -> the BF16_R16 layout at dst
// (the same number of bytes).
void RepackBf16ToR16(const void* src, int64_t n_rows, int64_t n_in, void* dst);
// Row i (< 16) of the BF16_R16 group at `group` -> n_in bf16 values at dst.
void UnpackBf16R16Row(const void* group, int i, int64_t n_in, void* dst);

// y[t * ldy + r] = Σ W[r][i] · x[t * ldx + i] in the order described above (n_rows % 16 == 0).
void MatmulBf16R16Ref(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
                      float* y, size_t ldy);
// F16: the same, for F16 rows (F16_R16; each weight widened to f32 exactly).
void RepackF16ToR16(const void* src, int64_t n_rows, int64_t n_in, void* dst);
void UnpackF16R16Row(const void* group, int i, int64_t n_in, void* dst);
void MatmulF16R16Ref(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
                     float* y, size_t ldy);
// bf16 activations (kernels/ref/bf16_act.h): QMatmulBf16ActRef on the unpacked rows.
void QMatmulBf16R16ActRef(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                          size_t n_rows, float* y, size_t ldy);

}  // namespace moxie
