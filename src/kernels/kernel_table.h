// KernelTable: the compute primitives of one instruction set, bound once at startup.
//
// Kernels see raw pointers and sizes only (no model or format types). Every kernel has a scalar
// reference in kernels/ref/; ISA variants live in kernels/cpu/<isa>/ (the only translation units
// built with ISA flags) and are tested against the reference on the same machine.
// Set MOXIE_ISA=ref (or avx2) to force a variant.
#pragma once

#include <cstddef>

#include "core/dtype.h"

namespace moxie {

// y[t * ldy + r] = sum_i x[t * ldx + i] * W[r][i]   for t < n_tok, r < n_rows.
// W holds n_rows contiguous rows of n_in elements of the kernel's weight dtype. Rows are read once
// per call and reused for all tokens. x, y are f32; W may be unaligned.
using MatmulFn = void (*)(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in,
                          size_t n_rows, float* y, size_t ldy);

struct KernelTable {
  const char* isa = "ref";
  MatmulFn matmul_f32 = nullptr;
  MatmulFn matmul_f16 = nullptr;
  MatmulFn matmul_bf16 = nullptr;

  // nullptr if the dtype has no matmul kernel.
  MatmulFn Matmul(DType w) const {
    switch (w) {
      case DType::kF32: return matmul_f32;
      case DType::kF16: return matmul_f16;
      case DType::kBF16: return matmul_bf16;
      default: return nullptr;
    }
  }
};

const KernelTable& RefKernels();
// nullptr when the CPU or the build lacks AVX2+FMA+F16C.
const KernelTable* Avx2Kernels();
// The best table for this CPU, honouring MOXIE_ISA. Chosen once; thread-safe.
const KernelTable& BestKernels();

}  // namespace moxie
