#include "kernels/ref/bf16_act.h"

#include <cmath>
#include <cstring>

#include "core/dtype.h"

namespace moxie {

void QuantizeActBf16(const float* x, void* xq, size_t n) {
  auto* out = static_cast<uint8_t*>(xq);
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = F32ToBf16(x[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

void QMatmulBf16ActRef(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                       size_t n_rows, float* y, size_t ldy) {
  const auto* xb = static_cast<const uint8_t*>(xq);
  const auto* wb = static_cast<const uint8_t*>(w);
  for (size_t t = 0; t < n_tok; ++t) {
    for (size_t r = 0; r < n_rows; ++r) {
      float acc = 0.0f;
      for (size_t i = 0; i < n_in; ++i) {
        uint16_t a, b;
        std::memcpy(&a, xb + t * xq_stride + 2 * i, 2);
        std::memcpy(&b, wb + (r * n_in + i) * 2, 2);
        acc = std::fma(Bf16ToF32(a), Bf16ToF32(b), acc);
      }
      y[t * ldy + r] = acc;
    }
  }
}

}  // namespace moxie
