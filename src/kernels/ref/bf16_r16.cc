#include "kernels/ref/bf16_r16.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "kernels/ref/bf16_act.h"

namespace moxie {

void RepackBf16ToR16(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  MOXIE_CHECK(n_rows % 16 == 0 && n_in % 2 == 0);
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  const auto row_bytes = static_cast<size_t>(2 * n_in);
  const auto pairs = static_cast<size_t>(n_in / 2);
  for (int64_t g = 0; g < n_rows / 16; ++g) {
    const uint8_t* gs = s + static_cast<size_t>(g) * 16 * row_bytes;
    uint8_t* gd = d + static_cast<size_t>(g) * 16 * row_bytes;
    for (size_t p = 0; p < pairs; ++p) {
      for (size_t i = 0; i < 16; ++i) std::memcpy(gd + 64 * p + 4 * i, gs + i * row_bytes + 4 * p, 4);
    }
  }
}

void UnpackBf16R16Row(const void* group, int i, int64_t n_in, void* dst) {
  const auto* g = static_cast<const uint8_t*>(group);
  auto* d = static_cast<uint8_t*>(dst);
  for (size_t p = 0; p < static_cast<size_t>(n_in / 2); ++p) std::memcpy(d + 4 * p, g + 64 * p + 4 * static_cast<size_t>(i), 4);
}

void RepackF16ToR16(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  MOXIE_CHECK(n_rows % 16 == 0 && n_in % 2 == 0);
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  const auto row_bytes = static_cast<size_t>(2 * n_in);
  const auto pairs = static_cast<size_t>(n_in / 2);
  for (int64_t g = 0; g < n_rows / 16; ++g) {
    const uint8_t* gs = s + static_cast<size_t>(g) * 16 * row_bytes;
    uint8_t* gd = d + static_cast<size_t>(g) * 16 * row_bytes;
    for (size_t p = 0; p < pairs; ++p) {
      for (size_t i = 0; i < 16; ++i) {
        std::memcpy(gd + 64 * p + 2 * i, gs + i * row_bytes + 4 * p, 2);
        std::memcpy(gd + 64 * p + 32 + 2 * i, gs + i * row_bytes + 4 * p + 2, 2);
      }
    }
  }
}

void UnpackF16R16Row(const void* group, int i, int64_t n_in, void* dst) {
  const auto* g = static_cast<const uint8_t*>(group);
  auto* d = static_cast<uint8_t*>(dst);
  const auto lane = 2 * static_cast<size_t>(i);
  for (size_t p = 0; p < static_cast<size_t>(n_in / 2); ++p) {
    std::memcpy(d + 4 * p, g + 64 * p + lane, 2);
    std::memcpy(d + 4 * p + 2, g + 64 * p + 32 + lane, 2);
  }
}

namespace {

// The documented order over a layout whose line p gives row `lane`'s weights 2p and 2p + 1 by
// pair(line, lane, &w0, &w1).
template <typename Pair>
void MatmulR16Ref(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows, float* y,
                  size_t ldy, Pair pair) {
  MOXIE_CHECK(n_rows % 16 == 0 && n_in % 2 == 0);
  const auto* wb = static_cast<const uint8_t*>(w);
  for (size_t r = 0; r < n_rows; ++r) {
    const uint8_t* group = wb + (r / 16) * 16 * 2 * n_in;
    for (size_t t = 0; t < n_tok; ++t) {
      const float* xt = x + t * ldx;
      float a[2] = {0.f, 0.f};
      for (size_t p = 0; p < n_in / 2; ++p) {
        float w0, w1;
        pair(group + 64 * p, r % 16, &w0, &w1);
        float& acc = a[p % 2];
        acc = std::fma(w0, xt[2 * p], acc);
        acc = std::fma(w1, xt[2 * p + 1], acc);
      }
      y[t * ldy + r] = a[0] + a[1];
    }
  }
}

}  // namespace

void MatmulBf16R16Ref(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
                      float* y, size_t ldy) {
  MatmulR16Ref(x, ldx, n_tok, w, n_in, n_rows, y, ldy, [](const uint8_t* line, size_t lane, float* w0, float* w1) {
    uint16_t e[2];
    std::memcpy(e, line + 4 * lane, 4);
    *w0 = Bf16ToF32(e[0]);
    *w1 = Bf16ToF32(e[1]);
  });
}

void MatmulF16R16Ref(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
                     float* y, size_t ldy) {
  MatmulR16Ref(x, ldx, n_tok, w, n_in, n_rows, y, ldy, [](const uint8_t* line, size_t lane, float* w0, float* w1) {
    uint16_t e[2];
    std::memcpy(&e[0], line + 2 * lane, 2);
    std::memcpy(&e[1], line + 32 + 2 * lane, 2);
    *w0 = F16ToF32(e[0]);
    *w1 = F16ToF32(e[1]);
  });
}

void QMatmulBf16R16ActRef(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                          size_t n_rows, float* y, size_t ldy) {
  MOXIE_CHECK(n_rows % 16 == 0 && n_in % 2 == 0);
  thread_local std::vector<uint16_t> row;  // grows only
  if (row.size() < n_in) row.resize(n_in);
  const auto* wb = static_cast<const uint8_t*>(w);
  for (size_t r = 0; r < n_rows; ++r) {
    UnpackBf16R16Row(wb + (r / 16) * 16 * 2 * n_in, static_cast<int>(r % 16), static_cast<int64_t>(n_in), row.data());
    QMatmulBf16ActRef(xq, xq_stride, n_tok, row.data(), n_in, 1, y + r, ldy);
  }
}

}  // namespace moxie
