// AVX-512 float matmuls (F32/F16/BF16 weights, f32 activations). Built with ISA flags; reached only
// through Avx512Kernels() after a CPUID check.
//
// Two rows share one 512-bit vector: row r in lanes 0-7, row r + 1 in lanes 8-15, each half doing
// exactly what one 8-lane AVX2 accumulator does (matmul_avx2.cc: 16-element chunks in the lane
// order [0..3, 8..11] / [4..7, 12..15], two fmas each, then an 8-element chunk, the fixed horizontal
// sum of the 8 lanes, the scalar fma tail). So every (row, token) gets the AVX2 table's bits, and
// results stay independent of the batch and of the row split.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/avx2/avx2_util.h"
#include "core/status.h"
#include "kernels/kernel_table.h"

namespace moxie {

const KernelTable* Avx2KernelsImpl();

namespace {

using avx2::HSum;
using avx2::PermuteX16;

inline __m512 Join(__m256 lo, __m256 hi) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}

// Lane indices of two 16-element rows r0, r1 (permutex2var): elements [0..3, 8..11] of r0 then of
// r1, and [4..7, 12..15] of each.
inline __m512i PairLo() {
  return _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
}
inline __m512i PairHi() {
  return _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
}

// Weights of rows p (low half) and p + row_bytes (high half): 16 elements each, in two vectors
// (elements [0..3, 8..11] and [4..7, 12..15] of each row), or 8 elements in one.
struct W2F32 {
  static constexpr size_t kBytes = 4;
  static void Load16(const uint8_t* p, size_t rb, __m512* a, __m512* b) {
    const __m512 r0 = _mm512_loadu_ps(reinterpret_cast<const float*>(p));
    const __m512 r1 = _mm512_loadu_ps(reinterpret_cast<const float*>(p + rb));
    *a = _mm512_permutex2var_ps(r0, PairLo(), r1);
    *b = _mm512_permutex2var_ps(r0, PairHi(), r1);
  }
  static __m512 Load8(const uint8_t* p, size_t rb) {
    return Join(_mm256_loadu_ps(reinterpret_cast<const float*>(p)),
                _mm256_loadu_ps(reinterpret_cast<const float*>(p + rb)));
  }
  static float Load1(const uint8_t* p) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
};
struct W2Bf16 {
  static constexpr size_t kBytes = 2;
  static void Load16(const uint8_t* p, size_t rb, __m512* a, __m512* b) {
    const __m512i h = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + rb)), 1);
    const __m512i z = _mm512_setzero_si512();
    *a = _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, h));
    *b = _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, h));
  }
  static __m512 Load8(const uint8_t* p, size_t rb) {
    const __m256i h = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + rb)), 1);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static float Load1(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return Bf16ToF32(h);
  }
};
struct W2F16 {
  static constexpr size_t kBytes = 2;
  // Each row's 16 halves widened in order, then one two-source permute per output vector (6
  // operations instead of 10 with 128-bit unpacks and inserts).
  static void Load16(const uint8_t* p, size_t rb, __m512* a, __m512* b) {
    const __m512 r0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    const __m512 r1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + rb)));
    *a = _mm512_permutex2var_ps(r0, PairLo(), r1);
    *b = _mm512_permutex2var_ps(r0, PairHi(), r1);
  }
  static __m512 Load8(const uint8_t* p, size_t rb) {
    return _mm512_cvtph_ps(_mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + rb)), 1));
  }
  static float Load1(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
  }
};

// A 16-element chunk of activations in the weights' lane order ([0..3, 8..11], [4..7, 12..15]),
// each half repeated in both halves of a vector. kXp: x is pre-permuted (PermuteX16), so two
// broadcast loads; otherwise permuted here.
template <bool kXp>
inline void LoadX16(const float* x, __m512* a, __m512* b) {
  if constexpr (kXp) {
    *a = _mm512_broadcast_f32x8(_mm256_loadu_ps(x));
    *b = _mm512_broadcast_f32x8(_mm256_loadu_ps(x + 8));
  } else {
    const __m256 lo = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(x)), _mm_loadu_ps(x + 8), 1);
    const __m256 hi = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(x + 4)), _mm_loadu_ps(x + 12), 1);
    *a = Join(lo, lo);
    *b = Join(hi, hi);
  }
}

// R2 row pairs (2·R2 rows) x T tokens.
template <typename L, int R2, int T, bool kXp>
void Tile2(const float* x, size_t ldx, const uint8_t* w, size_t row_bytes, size_t n, float* y, size_t ldy) {
  __m512 acc[R2][T];
  for (int r = 0; r < R2; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    // The weights are widened once per pair and chunk for all T tokens; the activations are
    // loaded at each use (with x pre-permuted, two broadcast loads), so the registers hold the
    // R2·T accumulators and the R2 pairs' weights. Kernel bench (one Xeon core, from cache, 16
    // tokens): 3 pairs x 6 tokens BF16 93 -> 109 GFLOP/s, F16 70 -> 78, against 2 pairs x 6 with
    // the activations held in registers (2 x 12: 96 / 81; 4 x 4: 112 / 71); F16 then 78 -> 95 with
    // the permute-based Load16 above.
    __m512 wa[R2], wb[R2];
    for (int r = 0; r < R2; ++r) L::Load16(w + 2 * r * row_bytes + i * L::kBytes, row_bytes, &wa[r], &wb[r]);
    for (int t = 0; t < T; ++t) {
      __m512 xa, xb;
      LoadX16<kXp>(x + t * ldx + i, &xa, &xb);
      for (int r = 0; r < R2; ++r) {
        acc[r][t] = _mm512_fmadd_ps(xa, wa[r], acc[r][t]);
        acc[r][t] = _mm512_fmadd_ps(xb, wb[r], acc[r][t]);
      }
    }
  }
  for (; i + 8 <= n; i += 8) {
    __m512 xv[T];
    for (int t = 0; t < T; ++t) {
      const __m256 v = _mm256_loadu_ps(x + t * ldx + i);
      xv[t] = Join(v, v);
    }
    for (int r = 0; r < R2; ++r) {
      const __m512 wv = L::Load8(w + 2 * r * row_bytes + i * L::kBytes, row_bytes);
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_fmadd_ps(xv[t], wv, acc[r][t]);
    }
  }
  for (int r = 0; r < R2; ++r) {
    for (int t = 0; t < T; ++t) {
      for (int h = 0; h < 2; ++h) {
        const uint8_t* wr = w + (2 * r + h) * row_bytes;
        float s = HSum(h == 0 ? _mm512_castps512_ps256(acc[r][t]) : _mm512_extractf32x8_ps(acc[r][t], 1));
        for (size_t j = i; j < n; ++j) s = std::fma(x[t * ldx + j], L::Load1(wr + j * L::kBytes), s);
        y[t * ldy + 2 * r + h] = s;
      }
    }
  }
}

// R2 pairs against all tokens, in balanced tiles of up to 6 (8 tokens: 4 + 4, not 6 + 2; 4 pairs:
// up to 2, all their registers allow). Kernel bench (one Zen 4 core, from cache, 8 tokens): BF16 82
// -> 85-87 GFLOP/s, F16 66 -> 70.5.
template <typename L, int R2, bool kXp>
void PairsAllTokens(const float* x, size_t ldx, size_t n_tok, const uint8_t* w, size_t row_bytes, size_t n,
                    float* y, size_t ldy) {
  static_assert(R2 <= 4);
  avx2::BalancedTiles<R2 == 4 ? 2 : 6>(n_tok, [&](auto T, size_t t) {
    Tile2<L, R2, decltype(T)::value, kXp>(x + t * ldx, ldx, w, row_bytes, n, y + t * ldy, ldy);
  });
}

// One token-tile (each weight read once) against rows shorter than a page (avx2::SpreadTiles).
// Kernel bench (one Zen 4 core, from DRAM, 2048 x 1024, alternated): BF16 2 / 4 tokens 7.3-7.9 /
// 7.2-7.7 -> 12.3-13.7 / 10.1-11.2 GB/s, F16 7.3-8.3 / 7.8-8.3 -> 11.7-12.9 / 10.2-11.1. Returns
// the rows done.
template <typename L, int R2, bool kXp>
[[gnu::noinline]] size_t SpreadPairs(const float* x, size_t ldx, size_t n_tok, const uint8_t* wb, size_t n_in,
                                     size_t n_rows, float* y, size_t ldy) {
  constexpr size_t kRows = 2 * R2, kMaxTok = R2 == 4 ? 2 : 6;
  const size_t row_bytes = n_in * L::kBytes;
  return avx2::SpreadTiles<kRows, kMaxTok>(row_bytes, n_rows, n_tok, y, ldy, [&](size_t first, size_t step, float* yt) {
    PairsAllTokens<L, R2, kXp>(x, ldx, n_tok, wb + first * row_bytes, step * row_bytes, n_in, yt, kRows);
  });
}

// 1-2 tokens: 8 rows per tile (4 pairs), 8 weight streams in flight as the one-token mat-vec;
// more tokens: 6 (3 pairs x 6 tokens fill the registers). Kernel bench (one Zen 4 core, from DRAM,
// 1024 x 2048, 2 tokens, alternated): BF16 11.6-13.9 -> 15.4-16.0 GB/s, F16 12.7-13.4 -> 13.5-14.5.
template <typename L, int R2, bool kXp>
size_t PlainPairs(const float* x, size_t ldx, size_t n_tok, const uint8_t* wb, size_t n_in, size_t n_rows,
                  float* y, size_t ldy) {
  const size_t row_bytes = n_in * L::kBytes;
  size_t r = SpreadPairs<L, R2, kXp>(x, ldx, n_tok, wb, n_in, n_rows, y, ldy);
  for (; r + 2 * R2 <= n_rows; r += 2 * R2) {
    PairsAllTokens<L, R2, kXp>(x, ldx, n_tok, wb + r * row_bytes, row_bytes, n_in, y + r, ldy);
  }
  return r;
}

template <typename L, bool kXp>
void MatmulRows(const float* x, size_t ldx, size_t n_tok, const uint8_t* wb, size_t n_in, size_t n_rows,
                float* y, size_t ldy) {
  const size_t row_bytes = n_in * L::kBytes;
  size_t r = n_tok <= 2 ? PlainPairs<L, 4, kXp>(x, ldx, n_tok, wb, n_in, n_rows, y, ldy)
                        : PlainPairs<L, 3, kXp>(x, ldx, n_tok, wb, n_in, n_rows, y, ldy);
  for (; r + 2 <= n_rows; r += 2) PairsAllTokens<L, 1, kXp>(x, ldx, n_tok, wb + r * row_bytes, row_bytes, n_in, y + r, ldy);
}

template <typename L>
void Matmul(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
            float* y, size_t ldy) {
  const DType dt = L::kBytes == 4 ? DType::kF32 : (std::is_same_v<L, W2Bf16> ? DType::kBF16 : DType::kF16);
  // One token (decode) is bound by memory, and the AVX2 mat-vec reads as fast or faster (F16:
  // 24 vs 19 GB/s from cache on one core, the 512-bit conversion costing two operations): same bits.
  if (n_tok == 1) {
    Avx2KernelsImpl()->Matmul(dt)(x, ldx, n_tok, w, n_in, n_rows, y, ldy);
    return;
  }
  const auto* wb = static_cast<const uint8_t*>(w);
  const size_t pairs = n_rows / 2 * 2;
  // Few tokens: x permuted once into a stack buffer, so the tiles broadcast it with plain loads.
  constexpr size_t kStackFloats = 8192;
  if (n_tok * n_in <= kStackFloats) {
    alignas(64) float xp[kStackFloats];
    PermuteX16(x, ldx, n_tok, n_in, xp);
    MatmulRows<L, true>(xp, n_in, n_tok, wb, n_in, pairs, y, ldy);
  } else {
    MatmulRows<L, false>(x, ldx, n_tok, wb, n_in, pairs, y, ldy);
  }
  if (pairs < n_rows) {  // a last odd row: the AVX2 kernel (the same bits)
    Avx2KernelsImpl()->Matmul(dt)(x, ldx, n_tok, wb + pairs * n_in * L::kBytes, n_in, 1, y + pairs, ldy);
  }
}

// BF16_R16 and F16_R16 weights (DType::kBF16R16 / kF16R16, 16 rows interleaved at load) × f32
// activations, in the arithmetic of MatmulBf16R16Ref / MatmulF16R16Ref (kernels/ref/bf16_r16.h, so
// the same bits): per lane (row) and token, chain p % 2 takes pair p as fma(w[2p], x[2p]) then
// fma(w[2p+1], x[2p+1]); the result is chain 0 + chain 1. A 64-byte line is 16 rows × one pair,
// widened by L (R16Bf16, R16F16). Up to 8 tokens per tile (16 accumulators); the first
// tile streams the group, prefetched kR16Ahead bytes ahead on Intel (one Xeon core, 1 GiB of
// 2048-input groups streamed, alternated: 1024 B ahead 15.3-17.0 GB/s, 2048 B 17.5-17.9, 3072 B
// 18.2-18.4, 4096 B 17.9-18.1; the row-major BF16 kernels 14.1-14.6), the later ones find it in L2.
// The AVX2 table has its own (matmul_avx2.cc: 2-token or 2-group tiles of 8-lane halves).
constexpr size_t kR16Ahead = 3072;

// A 64-byte line of a 16-row group widened to f32: we = the 16 rows' element 2p, wo = 2p + 1.
// BF16_R16 (a u32 per row): the low half shifted up, the high half masked (one operation each).
struct R16Bf16 {
  static void Widen(const uint8_t* line, __m512* we, __m512* wo) {
    const __m512i v = _mm512_loadu_si512(line);
    *we = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    *wo = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }
};
// F16_R16 (the rows' element 2p, then 2p + 1): one vcvtph2ps per half, exact.
struct R16F16 {
  static void Widen(const uint8_t* line, __m512* we, __m512* wo) {
    *we = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(line)));
    *wo = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(line + 32)));
  }
};

template <typename L, int T, bool kPf>
void TileR16(const float* x, size_t ldx, const uint8_t* g, size_t n_pairs, float* y, size_t ldy) {
  __m512 acc[2][T];  // chain, token
  for (auto& c : acc) {
    for (auto& a : c) a = _mm512_setzero_ps();
  }
  avx2::PairsTwoChains(n_pairs, [&](size_t p, auto c) {
    __m512* a = acc[decltype(c)::value];
    const uint8_t* line = g + 64 * p;
    if constexpr (kPf) _mm_prefetch(reinterpret_cast<const char*>(line + kR16Ahead), _MM_HINT_T0);
    __m512 we, wo;
    L::Widen(line, &we, &wo);
    for (int t = 0; t < T; ++t) {
      a[t] = _mm512_fmadd_ps(we, _mm512_set1_ps(x[t * ldx + 2 * p]), a[t]);
      a[t] = _mm512_fmadd_ps(wo, _mm512_set1_ps(x[t * ldx + 2 * p + 1]), a[t]);
    }
  });
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + t * ldy, _mm512_add_ps(acc[0][t], acc[1][t]));
}

// TileR16 for the token tiles of a group of 9+ tokens (avx2::R16Tiles) that also
// streams `next` into L2, one line every 2^shift pairs; written out and inlined for the reasons of
// bf16_avx512.cc's TileR16Next (accumulators kept in registers). Same arithmetic per (row, token).
template <typename L, int T>
[[gnu::always_inline]] inline void TileR16Next(const float* x, size_t ldx, const uint8_t* g, size_t n_pairs, float* y,
                                               size_t ldy, const uint8_t* next, int shift) {
  __m512 a0[T], a1[T];  // chain 0 (even pairs), chain 1 (odd pairs), per token
  for (int t = 0; t < T; ++t) a0[t] = a1[t] = _mm512_setzero_ps();
  const size_t mask = (size_t{1} << shift) - 1;
  size_t p = 0;
  for (; p + 2 <= n_pairs; p += 2) {
    const uint8_t* line = g + 64 * p;
    if ((p & mask) == 0) _mm_prefetch(reinterpret_cast<const char*>(next + 64 * (p >> shift)), _MM_HINT_T1);
    __m512 we0, wo0, we1, wo1;
    L::Widen(line, &we0, &wo0);
    L::Widen(line + 64, &we1, &wo1);
    for (int t = 0; t < T; ++t) {
      const float* xt = x + t * ldx + 2 * p;
      a0[t] = _mm512_fmadd_ps(we0, _mm512_set1_ps(xt[0]), a0[t]);
      a0[t] = _mm512_fmadd_ps(wo0, _mm512_set1_ps(xt[1]), a0[t]);
      a1[t] = _mm512_fmadd_ps(we1, _mm512_set1_ps(xt[2]), a1[t]);
      a1[t] = _mm512_fmadd_ps(wo1, _mm512_set1_ps(xt[3]), a1[t]);
    }
  }
  if (p < n_pairs) {  // a last odd pair: chain 0
    __m512 we, wo;
    L::Widen(g + 64 * p, &we, &wo);
    for (int t = 0; t < T; ++t) {
      a0[t] = _mm512_fmadd_ps(we, _mm512_set1_ps(x[t * ldx + 2 * p]), a0[t]);
      a0[t] = _mm512_fmadd_ps(wo, _mm512_set1_ps(x[t * ldx + 2 * p + 1]), a0[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm512_storeu_ps(y + t * ldy, _mm512_add_ps(a0[t], a1[t]));
}

// Two groups at once (g0 and g1, a far pair: each thread then reads its rows as two long
// sequential streams, and each token has four independent chains), up to 4 tokens, with far pairs
// (avx2::kFarPairs); per lane the arithmetic of TileR16, so the same bits. Kernel bench (Xeon with
// AMX, one core from DRAM, one group -> far pair): 1024 × 2048 1 / 2 / 4 tokens 16.0-16.5 -> 15.8,
// 13.0-13.3 -> 15.6-15.8, 11.7-12.1 -> 15.4-15.5 GB/s; 2048 × 1024 14.6 -> 15.6-15.9, 11.2-11.4 ->
// 15.5-16.0, 12.1 -> 14.6-14.8.
template <typename L, int T, bool kPf>
void TileR16Far(const float* x, size_t ldx, const uint8_t* g0, const uint8_t* g1, size_t n_pairs, float* y0,
                float* y1, size_t ldy) {
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
      __m512 we, wo;
      L::Widen(lines[gi], &we, &wo);
      for (int t = 0; t < T; ++t) {
        a[t] = _mm512_fmadd_ps(we, _mm512_set1_ps(x[t * ldx + 2 * p]), a[t]);
        a[t] = _mm512_fmadd_ps(wo, _mm512_set1_ps(x[t * ldx + 2 * p + 1]), a[t]);
      }
    }
  });
  for (int t = 0; t < T; ++t) {
    _mm512_storeu_ps(y0 + t * ldy, _mm512_add_ps(acc[0][0][t], acc[0][1][t]));
    _mm512_storeu_ps(y1 + t * ldy, _mm512_add_ps(acc[1][0][t], acc[1][1][t]));
  }
}

template <typename L, bool kPf>
void MatmulR16(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows, float* y,
                   size_t ldy) {
  MOXIE_CHECK(n_rows % 16 == 0 && n_in % 2 == 0);  // the layout exists only in whole 16-row groups
  const auto* wb = static_cast<const uint8_t*>(w);
  const size_t group_bytes = 16 * 2 * n_in;
  if (avx2::kFarPairs && n_tok <= 4) {
    const size_t groups = n_rows / 16;
    avx2::WithTile<4>(n_tok, [&](auto T) {
      avx2::ForGroupPairs(groups, [&](size_t a, size_t b) {
        TileR16Far<L, decltype(T)::value, kPf>(x, ldx, wb + a * group_bytes, wb + b * group_bytes, n_in / 2, y + 16 * a,
                                            y + 16 * b, ldy);
      });
      if (groups % 2 != 0) {
        const size_t g = groups - 1;
        TileR16<L, decltype(T)::value, kPf>(x, ldx, wb + g * group_bytes, n_in / 2, y + 16 * g, ldy);
      }
    });
    return;
  }
  avx2::R16Tiles<8>(wb, group_bytes, n_rows, n_tok,
                    [&](auto T, size_t t, size_t r, const uint8_t* next, int shift) {
    constexpr int kT = decltype(T)::value;
    const float* xt = x + t * ldx;
    const uint8_t* g = wb + r * 2 * n_in;
    float* yt = y + t * ldy + r;
    if (next != nullptr) {
      TileR16Next<L, kT>(xt, ldx, g, n_in / 2, yt, ldy, next, shift);
    } else {
      const bool pf = t == 0 && (kPf || n_tok >= avx2::kR16PrefetchTokens);
      (pf ? TileR16<L, kT, true> : TileR16<L, kT, false>)(xt, ldx, g, n_in / 2, yt, ldy);
    }
  });
}

}  // namespace

void AddFloatMatmulsAvx512(KernelTable* t) {
  t->Set(DType::kF32, Matmul<W2F32>);
  t->Set(DType::kF16, Matmul<W2F16>);
  t->Set(DType::kBF16, Matmul<W2Bf16>);
  if (avx2::kWeightPrefetch) {
    t->Set(DType::kBF16R16, MatmulR16<R16Bf16, true>);
    t->Set(DType::kF16R16, MatmulR16<R16F16, true>);
  } else {
    t->Set(DType::kBF16R16, MatmulR16<R16Bf16, false>);
    t->Set(DType::kF16R16, MatmulR16<R16F16, false>);
  }
}

}  // namespace moxie
