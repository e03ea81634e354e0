// Scalar reference implementations of the ggml weight block formats (GGUF tensors).
//
// Layouts follow docs/moe-architectures.md §4.4 (ggml-common.h / ggml-quants.c). Blocks are read
// and written byte by byte (fp16 fields through memcpy, little-endian), so rows may sit at any
// address, e.g. inside a memory-mapped GGUF file where 18- or 17-byte blocks are never aligned.
//
// Decoders are bit-exact to ggml's dequantize_row_* (same float operations in the same order).
// Encoders:
//   Q8_0, Q4_0, MXFP4: exactly ggml's quantize_row_*_ref (same bytes for the same finite input).
//   Q4_K, Q5_K, Q6_K:  a simpler quantizer than ggml's iterative search (not byte-identical to
//     ggml, but any valid block decodes the same way everywhere). Per sub-block the range is taken
//     from min/max; the 6-bit (Q4_K/Q5_K) or int8 (Q6_K) sub-block scales and the fp16 super-block
//     scales are rounded *up*, so every element lies inside its sub-block's grid and nothing is
//     clipped. Error bounds, with A = max|x| over the 256-element super-block:
//       Q4_K (nmax 15), Q5_K (nmax 31), 32-element sub-block j with R_j = max(0, max x) - min(0,
//       min x):
//         |x - x̂| ≤ (R_j + A/20) / (2·nmax) + 2^-24
//       Q6_K, 16-element sub-block j with a_j = max|x| over it:
//         |x - x̂| ≤ (a_j + A/100) / 62 + 2^-24
//     (the 2^-24 term is the fp16 subnormal quantum of the super-block scales: it only matters for
//     blocks whose values are tiny, which flush to ~0.)
//   Bounds of the exact-ggml encoders (A = max|x| over the 32-element block, d its f32 scale):
//     Q8_0: |x - x̂| ≤ A/254 + 127·|d - fp16(d)| ≤ A/254 + A/2048 (+ 127·2^-25 once fp16(d) is
//       subnormal, i.e. A ≲ 7.8e-3).
//     Q4_0: |x - x̂| ≤ A/8 + A/2048 (+ 8·2^-25): the grid is -8..7 steps of A/8 with the largest-
//       magnitude element at -8, so an element of opposite sign near A clips to 7 steps; typical
//       errors are half a step (A/16).
//     MXFP4: nearest E2M1 value times 2^(e-127), e = floor(log2 A) - 2 + 127 (clamped to
//       [0, 254]): |x - x̂| ≤ A/4 (values in (6, 8)·2^(e-127) saturate to 6·2^(e-127)); for
//       A < 2^-125 (e clamped to 0) |x - x̂| ≤ 2^-129.
//
// Range: formats with fp16 scales cannot hold arbitrarily large values. QuantizeRow refuses
// (InvalidArgument naming the element) a block whose fp16 scale would overflow instead of writing
// an infinite scale: Q8_0 needs max|x| ≲ 8.3e6, Q4_0 ≲ 5.2e5, Q4_K/Q5_K ≲ 4.1e6 for negative
// values (positive spans up to ~6e7 / 1.2e8), Q6_K ≲ 2.5e8. MXFP4 (E8M0 scale) covers every
// finite float. Tiny values (below the fp16 scales' resolution) flush to zero (Q8_0, Q4_0) or to
// within 2^-24 of it (K-quants).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

#include "core/status.h"

namespace moxie {

// Weight block formats; values are the ggml type ids.
enum class QuantType : uint32_t {
  kQ4_0 = 2,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kMXFP4 = 39
};

struct QuantInfo {
  int block;      // elements per block
  int type_size;  // bytes per block
  const char* name;
};

// Info for a supported weight type id (the values of QuantType); nullptr for anything else
// (including Q8_K, which is an activation format only).
const QuantInfo* GetQuantInfo(uint32_t ggml_type);
// Name of a type ("Q4_K"); "?" if unsupported.
const char* QuantTypeName(QuantType t);

// Bytes of a row of n elements. n must be a non-negative multiple of the block size (checked).
size_t QuantRowBytes(QuantType t, int64_t n);

// Dequantizes one row of n elements (n a multiple of the block size, checked) to f32.
void DequantizeRow(QuantType t, const void* src, float* dst, int64_t n);

// Quantizes one row of n elements into QuantRowBytes(t, n) bytes at dst. Errors (dst untouched):
// n not a non-negative multiple of the block size; a NaN or infinite element (the message names
// its index); a block whose fp16 scale would overflow (names the block's largest element);
// an unsupported type.
Status QuantizeRow(QuantType t, const float* src, void* dst, int64_t n);

// dot(dequantized row, x) in f32: each block is dequantized exactly as DequantizeRow does and the
// products are summed in element order into one f32 accumulator, so the result is bit-identical to
// DequantizeRow followed by `float acc = 0; for i: acc += w[i] * x[i];`.
float DotRowF32(QuantType t, const void* row, const float* x, int64_t n);

// ---- Q8 activation path (what llama.cpp's CPU backend does) ----
//
// Activations are quantized per block to 8 bits and dotted with the weight row in integers:
//   Q4_0, Q8_0, MXFP4 weights use Q8_0 activations (34 bytes / 32: fp16 d, int8 qs[32]);
//   Q4_K, Q5_K, Q6_K weights use Q8_K activations (292 bytes / 256: f32 d, int8 qs[256],
//   int16 bsums[16] = sums of qs over consecutive groups of 16), little-endian, packed.
// Q8_0 activations are quantized as quantize_row_q8_0_ref; Q8_K as quantize_row_q8_K_ref
// (d = -max/127 where max is the signed largest-magnitude element, qs = round-half-even of
// x·(-127/max)).
// The integer sums and the f32 accumulation follow ggml_vec_dot_*_generic (ggml's portable C
// kernels) step by step, so DotRowQ8 is bit-identical to them for the same bytes (ggml's SIMD
// kernels sum in other orders and differ from both by f32 rounding).
//
// Activation inputs are not validated: a non-finite element makes its block's scale NaN (so the
// dot is NaN, as a float dot would be); Q8_0 blocks with max|x| ≳ 8.3e6 get an infinite fp16
// scale (as in ggml).
inline constexpr uint32_t kGgmlTypeQ8_0 = 8;
inline constexpr uint32_t kGgmlTypeQ8_K = 15;
inline constexpr int kQ8KBlock = 256;
inline constexpr int kQ8KBlockBytes = 292;

// ggml type id of the activation format used with `weight_type` (kGgmlTypeQ8_0 or kGgmlTypeQ8_K).
uint32_t ActivationGgmlType(QuantType weight_type);
// Bytes of n activations quantized for `weight_type` (n a multiple of its block size, checked).
size_t ActivationRowBytes(QuantType weight_type, int64_t n);
// Quantizes n activations into ActivationRowBytes(weight_type, n) bytes at dst.
void QuantizeActivationRow(QuantType weight_type, const float* x, void* dst, int64_t n);
// Dequantizes an activation row produced by QuantizeActivationRow (for tests and debugging).
void DequantizeActivationRow(QuantType weight_type, const void* xq, float* dst, int64_t n);
// Dot product of a weight row (type t) with an activation row quantized for t.
float DotRowQ8(QuantType t, const void* row, const void* xq, int64_t n);

// The quant format a weight dtype's activations follow: its own ggml type, or that of the plain
// format of an R8 layout (Q8_0 for Q8_0_R8, ...).
QuantType WeightQuantType(DType t);

// Q8_0_R8 (see DType::kQ8_0R8): n_rows (a multiple of 8) Q8_0 rows of n_in elements at src, in
// the interleaved layout at dst (the same number of bytes; src and dst must not overlap).
void RepackQ8_0ToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst);
// Row i (0..7) of the 8-row group at `group`, back in plain Q8_0 blocks (nb blocks at dst).
void UnpackQ8_0R8Row(const void* group, int i, int64_t nb, void* dst);
// Q4_0_R8 (see DType::kQ4_0R8): the same for Q4_0.
void RepackQ4_0ToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst);
void UnpackQ4_0R8Row(const void* group, int i, int64_t nb, void* dst);
// MXFP4_R8 (see DType::kMXFP4R8): the same for MXFP4.
void RepackMxfp4ToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst);
void UnpackMxfp4R8Row(const void* group, int i, int64_t nb, void* dst);
// Q4_K_R8 (see DType::kQ4_KR8): the same for Q4_K (n_in a multiple of 256). Every 12-byte scales
// field maps to its 16 six-bit values one to one, so any block round-trips exactly.
void RepackQ4_KToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst);
void UnpackQ4_KR8Row(const void* group, int i, int64_t nb, void* dst);
// Q5_K_R8 (see DType::kQ5_KR8): Q4_K_R8 plus the fifth bits; round-trips exactly as Q4_K_R8.
void RepackQ5_KToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst);
void UnpackQ5_KR8Row(const void* group, int i, int64_t nb, void* dst);
// Q6_K_R8 (see DType::kQ6_KR8): the same for Q6_K. Every bit of a block has one place in the
// layout, so any block round-trips exactly.
void RepackQ6_KToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst);
void UnpackQ6_KR8Row(const void* group, int i, int64_t nb, void* dst);

}  // namespace moxie
