// BF16 weights with bf16 activations: llama.cpp's CPU scheme for BF16 weights (its vec_dot_type
// for BF16 is BF16), which lets CPUs with AVX512_BF16 multiply 32 pairs per instruction
// (vdpbf16ps) instead of widening the weights to f32. Activations are rounded to bf16
// (round-to-nearest-even, F32ToBf16), like the 8-bit activations of the quantized types; the
// products of two bf16 values are exact in f32, so only the rounding of the activations and the
// f32 accumulation order separate this from the f32-activation path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moxie {

// Bytes of a row of n bf16 activations.
inline size_t Bf16ActRowBytes(size_t n) { return 2 * n; }
// x (n floats) -> n bf16 values at xq (unaligned).
void QuantizeActBf16(const float* x, void* xq, size_t n);
// The reference: y[t * ldy + r] = Σ_i bf16 act[t][i] · W[r][i], summed in element order in f32
// (the oracle the fast kernels are tested against, within tolerance: they sum in other orders).
void QMatmulBf16ActRef(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                       size_t n_rows, float* y, size_t ldy);

}  // namespace moxie
