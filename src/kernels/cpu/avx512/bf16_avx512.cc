// BF16 weights × bf16 activations with AVX512_BF16 (vdpbf16ps: 32 bf16 pairs into 16 f32 lanes per
// instruction, twice the multiply-adds of an f32 fma and no widening of the weights). Built with
// ISA flags; added to the AVX-512 table only when the CPU has AVX512_BF16 (kernel_table.cc).
//
// Every (row, token) result is the same sequence of operations whatever the tile: one 16-lane
// accumulator over the 32-element chunks in order, the last partial chunk loaded under a mask
// (zeros add nothing), then the fixed 16-lane sum; so a row's output does not depend on which rows
// and tokens share the call (batch invariance), and any row split gives the same bits.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/avx2/avx2_util.h"
#include "core/status.h"
#include "kernels/kernel_table.h"
#include "kernels/ref/bf16_act.h"

namespace moxie {
namespace {

inline __m512bh Load32(const uint16_t* p) { return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p)); }
inline __m512bh Load32Masked(const uint16_t* p, __mmask32 m) {
  return reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, p));
}

// R rows (w, ldw elements apart) × T tokens (x, ldx elements apart).
template <int R, int T>
void Tile(const uint16_t* x, size_t ldx, const uint16_t* w, size_t ldw, size_t n, float* y, size_t ldy) {
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512bh wv[R];
    for (int r = 0; r < R; ++r) wv[r] = Load32(w + r * ldw + i);
    for (int t = 0; t < T; ++t) {
      const __m512bh xv = Load32(x + t * ldx + i);
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], wv[r], xv);
    }
  }
  if (i < n) {
    const __mmask32 m = static_cast<__mmask32>((uint64_t{1} << (n - i)) - 1);
    __m512bh wv[R];
    for (int r = 0; r < R; ++r) wv[r] = Load32Masked(w + r * ldw + i, m);
    for (int t = 0; t < T; ++t) {
      const __m512bh xv = Load32Masked(x + t * ldx + i, m);
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], wv[r], xv);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

// R rows against all tokens in balanced tiles of up to 6.
template <int R>
void RowsAllTokens(const uint16_t* x, size_t ldx, size_t n_tok, const uint16_t* w, size_t ldw, size_t n,
                   float* y, size_t ldy) {
  avx2::BalancedTiles<6>(n_tok, [&](auto T, size_t t) {
    Tile<R, decltype(T)::value>(x + t * ldx, ldx, w, ldw, n, y + t * ldy, ldy);
  });
}

// Rows shorter than a page (avx2::SpreadTiles): one token in 8-row tiles, 2-6 tokens (one
// token-tile) in 4-row tiles. Kernel bench (one Zen 4 core, from DRAM, 2048 x 1024, alternated):
// 1 / 2 / 4 tokens 10.1-11.2 / 6.9-7.9 / 6.3-6.9 -> 12.8-14.7 / 11.0-11.3 / 10.0-10.7 GB/s.
// Returns the rows done.
[[gnu::noinline]] size_t SpreadRows(const uint16_t* x, size_t ldx, size_t n_tok, const uint16_t* wb, size_t n_in,
                                    size_t n_rows, float* y, size_t ldy) {
  if (n_tok == 1) {
    return avx2::SpreadTiles<8, 1>(2 * n_in, n_rows, 1, y, ldy, [&](size_t first, size_t step, float* yt) {
      Tile<8, 1>(x, ldx, wb + first * n_in, step * n_in, n_in, yt, 8);
    });
  }
  return avx2::SpreadTiles<4, 6>(2 * n_in, n_rows, n_tok, y, ldy, [&](size_t first, size_t step, float* yt) {
    RowsAllTokens<4>(x, ldx, n_tok, wb + first * n_in, step * n_in, n_in, yt, 4);
  });
}

void QMatmulBf16Avx512(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                       size_t n_rows, float* y, size_t ldy) {
  const auto* x = static_cast<const uint16_t*>(xq);
  const auto* wb = static_cast<const uint16_t*>(w);
  const size_t ldx = xq_stride / 2;
  size_t r = 0;
  if (n_tok == 1) {  // decode: 8 rows in flight, bound by memory
    r = SpreadRows(x, ldx, 1, wb, n_in, n_rows, y, ldy);
    for (; r + 8 <= n_rows; r += 8) Tile<8, 1>(x, ldx, wb + r * n_in, n_in, n_in, y + r, ldy);
  } else {  // 4 rows × up to 6 tokens: 24 accumulators, 10 loads per 24 vdpbf16ps
    r = SpreadRows(x, ldx, n_tok, wb, n_in, n_rows, y, ldy);
    for (; r + 4 <= n_rows; r += 4) RowsAllTokens<4>(x, ldx, n_tok, wb + r * n_in, n_in, n_in, y + r, ldy);
  }
  for (; r < n_rows; ++r) RowsAllTokens<1>(x, ldx, n_tok, wb + r * n_in, n_in, n_in, y + r, ldy);
}

// BF16_R16 weights (DType::kBF16R16, 16 rows interleaved at load): a 64-byte line is 16 rows × one
// input pair, so one vdpbf16ps with the token's pair broadcast adds that pair to all 16 rows; no
// horizontal sums. Per (row, token): chain p % 2 takes pair p, the result is chain 0 + chain 1,
// whatever the tile (batch invariance). Up to 8 tokens per tile (16 accumulators); the first tile
// streams the group, prefetched kR16Ahead bytes ahead on Intel (as the f32 kernel, matmul_avx512.cc),
// the later ones find it in L2.
constexpr size_t kR16Ahead = 3072;

template <int T, bool kPf>
void TileR16(const uint8_t* xq, size_t xq_stride, const uint8_t* g, size_t n_pairs, float* y, size_t ldy) {
  __m512 acc[2][T];  // chain, token
  for (auto& c : acc) {
    for (auto& a : c) a = _mm512_setzero_ps();
  }
  avx2::PairsTwoChains(n_pairs, [&](size_t p, auto c) {
    __m512* a = acc[decltype(c)::value];
    const uint8_t* line = g + 64 * p;
    if constexpr (kPf) _mm_prefetch(reinterpret_cast<const char*>(line + kR16Ahead), _MM_HINT_T0);
    const __m512bh wv = reinterpret_cast<__m512bh>(_mm512_loadu_si512(line));
    for (int t = 0; t < T; ++t) {
      int32_t xp;
      std::memcpy(&xp, xq + t * xq_stride + 4 * p, 4);
      a[t] = _mm512_dpbf16_ps(a[t], wv, reinterpret_cast<__m512bh>(_mm512_set1_epi32(xp)));
    }
  });
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + t * ldy, _mm512_add_ps(acc[0][t], acc[1][t]));
}

// TileR16 for the token tiles of a group of 9+ tokens (avx2::R16Tiles) that also
// streams `next` into L2, one line every 2^shift pairs. Written out rather than through
// PairsTwoChains (with the prefetch in that lambda GCC 12 kept the accumulators on the stack: 95
// instead of 225 GFLOP/s) and inlined into the caller (out of line, model A BF16 prefill read 3 %
// less: 165-168 against 170-174 tok/s, alternated); TileR16 stays for 1-8 tokens, which this form
// streamed ~10 % slower from DRAM (kernel bench), and for a call's last group (no next). Same
// arithmetic per (row, token) as TileR16.
template <int T>
[[gnu::always_inline]] inline void TileR16Next(const uint8_t* xq, size_t xq_stride, const uint8_t* g, size_t n_pairs,
                                               float* y, size_t ldy, const uint8_t* next, int shift) {
  __m512 a0[T], a1[T];  // chain 0 (even pairs), chain 1 (odd pairs), per token
  for (int t = 0; t < T; ++t) a0[t] = a1[t] = _mm512_setzero_ps();
  const size_t mask = (size_t{1} << shift) - 1;
  size_t p = 0;
  for (; p + 2 <= n_pairs; p += 2) {
    const uint8_t* line = g + 64 * p;
    if ((p & mask) == 0) _mm_prefetch(reinterpret_cast<const char*>(next + 64 * (p >> shift)), _MM_HINT_T1);
    const __m512bh w0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(line));
    const __m512bh w1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(line + 64));
    for (int t = 0; t < T; ++t) {
      int32_t x0, x1;  // 4 bytes each: a broadcast from memory, not through a general register
      std::memcpy(&x0, xq + t * xq_stride + 4 * p, 4);
      std::memcpy(&x1, xq + t * xq_stride + 4 * p + 4, 4);
      a0[t] = _mm512_dpbf16_ps(a0[t], w0, reinterpret_cast<__m512bh>(_mm512_set1_epi32(x0)));
      a1[t] = _mm512_dpbf16_ps(a1[t], w1, reinterpret_cast<__m512bh>(_mm512_set1_epi32(x1)));
    }
  }
  if (p < n_pairs) {  // a last odd pair: chain 0
    const __m512bh w0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(g + 64 * p));
    for (int t = 0; t < T; ++t) {
      int32_t x0;
      std::memcpy(&x0, xq + t * xq_stride + 4 * p, 4);
      a0[t] = _mm512_dpbf16_ps(a0[t], w0, reinterpret_cast<__m512bh>(_mm512_set1_epi32(x0)));
    }
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + t * ldy, _mm512_add_ps(a0[t], a1[t]));
}

// Two groups at once (a far pair, avx2::kFarPairs, as the f32 kernel's TileR16Far), up to 4 tokens;
// per lane the arithmetic of TileR16, so the same bits. Kernel bench (Xeon with AMX, MOXIE_ISA=avx512,
// one core from DRAM, one group -> far pair): 1024 × 2048 1 / 2 / 4 tokens 13.9-14.2 -> 15.6-16.3,
// 12.2 -> 15.6-15.8, 10.9-11.1 -> 14.6-15.1 GB/s; 2048 × 1024 2 tokens 9.9-10.1 -> 14.5-15.5.
template <int T, bool kPf>
void TileR16Far(const uint8_t* xq, size_t xq_stride, const uint8_t* g0, const uint8_t* g1, size_t n_pairs,
                float* y0, float* y1, size_t ldy) {
  __m512 acc[2][2][T];  // group, chain, token
  for (auto& g : acc) {
    for (auto& c : g) {
      for (auto& a : c) a = _mm512_setzero_ps();
    }
  }
  avx2::PairsTwoChains(n_pairs, [&](size_t p, auto c) {
    const uint8_t* lines[2] = {g0 + 64 * p, g1 + 64 * p};
    for (int gi = 0; gi < 2; ++gi) {
      __m512* a = acc[gi][decltype(c)::value];
      if constexpr (kPf) _mm_prefetch(reinterpret_cast<const char*>(lines[gi] + kR16Ahead), _MM_HINT_T0);
      const __m512bh wv = reinterpret_cast<__m512bh>(_mm512_loadu_si512(lines[gi]));
      for (int t = 0; t < T; ++t) {
        int32_t xp;
        std::memcpy(&xp, xq + t * xq_stride + 4 * p, 4);
        a[t] = _mm512_dpbf16_ps(a[t], wv, reinterpret_cast<__m512bh>(_mm512_set1_epi32(xp)));
      }
    }
  });
  for (int t = 0; t < T; ++t) {
    _mm512_storeu_ps(y0 + t * ldy, _mm512_add_ps(acc[0][0][t], acc[0][1][t]));
    _mm512_storeu_ps(y1 + t * ldy, _mm512_add_ps(acc[1][0][t], acc[1][1][t]));
  }
}

template <bool kPf>
void QMatmulBf16R16Avx512(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
                          float* y, size_t ldy) {
  MOXIE_CHECK(n_rows % 16 == 0 && n_in % 2 == 0);  // the layout exists only in whole 16-row groups
  const auto* x = static_cast<const uint8_t*>(xq);
  const auto* wb = static_cast<const uint8_t*>(w);
  if (avx2::kFarPairs && n_tok <= 4) {
    const size_t group_bytes = 32 * n_in, groups = n_rows / 16;
    avx2::WithTile<4>(n_tok, [&](auto T) {
      avx2::ForGroupPairs(groups, [&](size_t a, size_t b) {
        TileR16Far<decltype(T)::value, kPf>(x, xq_stride, wb + a * group_bytes, wb + b * group_bytes, n_in / 2,
                                            y + 16 * a, y + 16 * b, ldy);
      });
      if (groups % 2 != 0) {
        const size_t g = groups - 1;
        TileR16<decltype(T)::value, kPf>(x, xq_stride, wb + g * group_bytes, n_in / 2, y + 16 * g, ldy);
      }
    });
    return;
  }
  avx2::R16Tiles<8>(wb, 32 * n_in, n_rows, n_tok,
                    [&](auto T, size_t t, size_t r, const uint8_t* next, int shift) {
    constexpr int kT = decltype(T)::value;
    const uint8_t* xt = x + t * xq_stride;
    const uint8_t* g = wb + r * 2 * n_in;
    float* yt = y + t * ldy + r;
    if (next != nullptr) {
      TileR16Next<kT>(xt, xq_stride, g, n_in / 2, yt, ldy, next, shift);
    } else {
      const bool pf = t == 0 && (kPf || n_tok >= avx2::kR16PrefetchTokens);
      (pf ? TileR16<kT, true> : TileR16<kT, false>)(xt, xq_stride, g, n_in / 2, yt, ldy);
    }
  });
}

}  // namespace

void AddBf16ActMatmulsAvx512(KernelTable* t) {
  t->SetQ(DType::kBF16, QuantizeActBf16, QMatmulBf16Avx512);
  if (avx2::kWeightPrefetch) {
    t->SetQ(DType::kBF16R16, QuantizeActBf16, QMatmulBf16R16Avx512<true>);
  } else {
    t->SetQ(DType::kBF16R16, QuantizeActBf16, QMatmulBf16R16Avx512<false>);
  }
}

}  // namespace moxie
