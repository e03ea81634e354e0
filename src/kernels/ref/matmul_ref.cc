// Scalar reference matmuls: the ground truth every ISA variant is tested against.
#include <cstdint>
#include <cstring>

#include "kernels/kernel_table.h"

namespace moxie {
namespace {

template <typename LoadW>
void MatmulRef(const float* x, size_t ldx, size_t n_tok, const uint8_t* w, size_t row_bytes,
               size_t n_in, size_t n_rows, float* y, size_t ldy, LoadW load) {
  for (size_t r = 0; r < n_rows; ++r) {
    const uint8_t* wr = w + r * row_bytes;
    for (size_t t = 0; t < n_tok; ++t) {
      const float* xt = x + t * ldx;
      float acc = 0.f;
      for (size_t i = 0; i < n_in; ++i) acc += xt[i] * load(wr, i);
      y[t * ldy + r] = acc;
    }
  }
}

void MatmulF32(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
               float* y, size_t ldy) {
  MatmulRef(x, ldx, n_tok, static_cast<const uint8_t*>(w), n_in * 4, n_in, n_rows, y, ldy,
            [](const uint8_t* p, size_t i) {
              float f;
              std::memcpy(&f, p + 4 * i, 4);
              return f;
            });
}

void MatmulF16(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
               float* y, size_t ldy) {
  MatmulRef(x, ldx, n_tok, static_cast<const uint8_t*>(w), n_in * 2, n_in, n_rows, y, ldy,
            [](const uint8_t* p, size_t i) {
              uint16_t h;
              std::memcpy(&h, p + 2 * i, 2);
              return F16ToF32(h);
            });
}

void MatmulBf16(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in,
                size_t n_rows, float* y, size_t ldy) {
  MatmulRef(x, ldx, n_tok, static_cast<const uint8_t*>(w), n_in * 2, n_in, n_rows, y, ldy,
            [](const uint8_t* p, size_t i) {
              uint16_t h;
              std::memcpy(&h, p + 2 * i, 2);
              return Bf16ToF32(h);
            });
}

}  // namespace

const KernelTable& RefKernels() {
  static const KernelTable table = [] {
    KernelTable t;
    t.isa = "ref";
    t.matmul_f32 = MatmulF32;
    t.matmul_f16 = MatmulF16;
    t.matmul_bf16 = MatmulBf16;
    return t;
  }();
  return table;
}

}  // namespace moxie
