#include "kernels/ref/bf16_r16.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "kernels/ref/bf16_act.h"

namespace moxie {

namespace {

// Copies each row's 4-byte pair p (elements 2p, 2p + 1) of every 16-row group to line p of the
// group: move(line, lane, pair) places it (or, unpacking, back).
template <typename Move>
void ForEachR16Pair(int64_t n_rows, int64_t n_in, Move move) {
  MOXIE_CHECK(n_rows % 16 == 0 && n_in % 2 == 0);
  const auto row_bytes = static_cast<size_t>(2 * n_in);
  for (size_t g = 0; g < static_cast<size_t>(n_rows / 16); ++g) {
    for (size_t p = 0; p < static_cast<size_t>(n_in / 2); ++p) {
      for (size_t i = 0; i < 16; ++i) move(g * 16 * row_bytes + 64 * p, i, (g * 16 + i) * row_bytes + 4 * p);
    }
  }
}

// BF16_R16: lane i of a line is row i's pair as one u32. F16_R16: the pair's halves at 2i and 32 + 2i.
void PutBf16(uint8_t* line, size_t i, const uint8_t* pair) { std::memcpy(line + 4 * i, pair, 4); }
void GetBf16(const uint8_t* line, size_t i, uint8_t* pair) { std::memcpy(pair, line + 4 * i, 4); }
void PutF16(uint8_t* line, size_t i, const uint8_t* pair) {
  std::memcpy(line + 2 * i, pair, 2);
  std::memcpy(line + 32 + 2 * i, pair + 2, 2);
}
void GetF16(const uint8_t* line, size_t i, uint8_t* pair) {
  std::memcpy(pair, line + 2 * i, 2);
  std::memcpy(pair + 2, line + 32 + 2 * i, 2);
}

template <void (*kPut)(uint8_t*, size_t, const uint8_t*)>
void RepackR16(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  ForEachR16Pair(n_rows, n_in, [&](size_t line, size_t i, size_t pair) { kPut(d + line, i, s + pair); });
}

template <void (*kGet)(const uint8_t*, size_t, uint8_t*)>
void UnpackR16Row(const void* group, int i, int64_t n_in, void* dst) {
  const auto* g = static_cast<const uint8_t*>(group);
  auto* d = static_cast<uint8_t*>(dst);
  for (size_t p = 0; p < static_cast<size_t>(n_in / 2); ++p) kGet(g + 64 * p, static_cast<size_t>(i), d + 4 * p);
}

}  // namespace

void RepackBf16ToR16(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  RepackR16<PutBf16>(src, n_rows, n_in, dst);
}
void UnpackBf16R16Row(const void* group, int i, int64_t n_in, void* dst) { UnpackR16Row<GetBf16>(group, i, n_in, dst); }
void RepackF16ToR16(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  RepackR16<PutF16>(src, n_rows, n_in, dst);
}
void UnpackF16R16Row(const void* group, int i, int64_t n_in, void* dst) { UnpackR16Row<GetF16>(group, i, n_in, dst); }

namespace {

// The documented order over a layout whose line p gives row i's pair p by kGet (as a file stores
// it: two 16-bit values), each value widened by kWiden.
template <void (*kGet)(const uint8_t*, size_t, uint8_t*), float (*kWiden)(uint16_t)>
void MatmulR16Ref(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows, float* y,
                  size_t ldy) {
  MOXIE_CHECK(n_rows % 16 == 0 && n_in % 2 == 0);
  const auto* wb = static_cast<const uint8_t*>(w);
  for (size_t r = 0; r < n_rows; ++r) {
    const uint8_t* group = wb + (r / 16) * 16 * 2 * n_in;
    for (size_t t = 0; t < n_tok; ++t) {
      const float* xt = x + t * ldx;
      float a[2] = {0.f, 0.f};
      for (size_t p = 0; p < n_in / 2; ++p) {
        uint8_t pair[4];
        kGet(group + 64 * p, r % 16, pair);
        uint16_t e[2];
        std::memcpy(e, pair, 4);
        float& acc = a[p % 2];
        acc = std::fma(kWiden(e[0]), xt[2 * p], acc);
        acc = std::fma(kWiden(e[1]), xt[2 * p + 1], acc);
      }
      y[t * ldy + r] = a[0] + a[1];
    }
  }
}

}  // namespace

void MatmulBf16R16Ref(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
                      float* y, size_t ldy) {
  MatmulR16Ref<GetBf16, Bf16ToF32>(x, ldx, n_tok, w, n_in, n_rows, y, ldy);
}

void MatmulF16R16Ref(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
                     float* y, size_t ldy) {
  MatmulR16Ref<GetF16, F16ToF32>(x, ldx, n_tok, w, n_in, n_rows, y, ldy);
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
