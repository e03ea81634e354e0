// AVX2 + FMA + F16C matmuls. Built with ISA flags; reached only through Avx2Kernels() after a
// CPUID check, so the rest of the binary stays baseline x86-64.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/status.h"
#include "kernels/kernel_table.h"
#include "kernels/cpu/avx2/avx2_util.h"

namespace moxie {
namespace {

using avx2::HSum;
using avx2::HSum8;
using avx2::PermuteX16;

// Load16: 16 elements in two vectors, lanes in the order [0..3, 8..11] and [4..7, 12..15] (the
// order bf16 widens in cheaply, see LoadBf16); every float type uses it, so a bf16 weight and its
// f32 or f16 conversion give the same bits. The activations are loaded in the same order.
struct LoadF32 {
  static __m256 Load8(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
  static void Load16(const uint8_t* p, __m256* lo, __m256* hi) {
    const auto* f = reinterpret_cast<const float*>(p);
    *lo = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(f)), _mm_loadu_ps(f + 8), 1);
    *hi = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(f + 4)), _mm_loadu_ps(f + 12), 1);
  }
  static float Load1(const uint8_t* p) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  static constexpr size_t kBytes = 4;
};
struct LoadBf16 {
  static __m256 Load8(const uint8_t* p) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  // One in-lane unpack per 8 elements: half the work of two widening conversions (Zen 1:
  // BF16 mat-vec 12.7 -> ~24 GB/s from cache, one core).
  static void Load16(const uint8_t* p, __m256* lo, __m256* hi) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i z = _mm256_setzero_si256();
    *lo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, h));
    *hi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, h));
  }
  static float Load1(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return Bf16ToF32(h);
  }
  static constexpr size_t kBytes = 2;
};
struct LoadF16 {
  static __m256 Load8(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static void Load16(const uint8_t* p, __m256* lo, __m256* hi) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
    *lo = _mm256_cvtph_ps(_mm_unpacklo_epi64(a, b));
    *hi = _mm256_cvtph_ps(_mm_unpackhi_epi64(a, b));
  }
  static float Load1(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return F16ToF32(h);
  }
  static constexpr size_t kBytes = 2;
};

// Register tiles of R rows x T tokens. Every (row, token) result is the same sequence of
// operations whatever the tile: one 8-lane accumulator over the 16-element chunks in order (two
// fmas each, lanes as Load16 orders them), then an 8-element chunk, the lane sum, then the scalar
// tail with fma, so a row's output does not depend on which other rows and tokens share the call
// (batch invariance). A loaded weight vector serves T tokens and an activation vector R rows.
// kXp: x is pre-permuted to the weights' lane order (PermuteX16); otherwise each chunk of x is
// loaded in that order (two 128-bit halves per vector). Same values, same bits.
// kPf: software-prefetch each row kPrefetchFloat bytes ahead (the one-token mat-vec, which streams
// its rows from memory once: a 2048-element BF16 row is one 4 KiB page, where the hardware
// prefetchers stop). Model A BF16 decode on the Xeon, alternated: 9.1-9.2 -> 10.6-10.9 tok/s
// (1024 B ahead; 2048 B gave 8.4-9.6, 512 B about the same as 1024). On AMD Zen 4 the same
// prefetch halves the stream instead (kernel bench, one core, BF16 1 token from DRAM: 13-14 GB/s
// without, 8-9 with; model A BF16 decode, alternated: 6.95 / 7.93 -> 9.05 / 9.85 tok/s), so the
// table turns it on for Intel CPUs only (RowPrefetchWanted). Prefetching changes no result.
constexpr size_t kPrefetchFloat = 1024;

template <typename L, int R, int T, bool kXp, bool kPf = false>
void Tile(const float* x, size_t ldx, const uint8_t* w, size_t row_bytes, size_t n, float* y,
          size_t ldy) {
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 xa[T], xb[T];  // the activations in the lane order of the weights
    for (int t = 0; t < T; ++t) {
      if constexpr (kXp) {
        xa[t] = _mm256_loadu_ps(x + t * ldx + i);
        xb[t] = _mm256_loadu_ps(x + t * ldx + i + 8);
      } else {
        LoadF32::Load16(reinterpret_cast<const uint8_t*>(x + t * ldx + i), &xa[t], &xb[t]);
      }
    }
    for (int r = 0; r < R; ++r) {
      if constexpr (kPf) {
        if ((i * L::kBytes) % 64 == 0) {
          _mm_prefetch(reinterpret_cast<const char*>(w + r * row_bytes + i * L::kBytes + kPrefetchFloat), _MM_HINT_T0);
        }
      }
      __m256 wa, wb;
      L::Load16(w + r * row_bytes + i * L::kBytes, &wa, &wb);
      for (int t = 0; t < T; ++t) {
        acc[r][t] = _mm256_fmadd_ps(xa[t], wa, acc[r][t]);
        acc[r][t] = _mm256_fmadd_ps(xb[t], wb, acc[r][t]);
      }
    }
  }
  for (; i + 8 <= n; i += 8) {
    __m256 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * ldx + i);
    for (int r = 0; r < R; ++r) {
      const __m256 wv = L::Load8(w + r * row_bytes + i * L::kBytes);
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(xv[t], wv, acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      float s = HSum(acc[r][t]);
      for (size_t j = i; j < n; ++j) s = std::fma(x[t * ldx + j], L::Load1(w + r * row_bytes + j * L::kBytes), s);
      y[t * ldy + r] = s;
    }
  }
}

// R rows against all tokens, kT at a time (the tail with fewer).
template <typename L, int R, int kT, bool kXp>
void RowsAllTokens(const float* x, size_t ldx, size_t n_tok, const uint8_t* w, size_t row_bytes, size_t n,
                   float* y, size_t ldy) {
  size_t t = 0;
  for (; t + kT <= n_tok; t += kT) Tile<L, R, kT, kXp>(x + t * ldx, ldx, w, row_bytes, n, y + t * ldy, ldy);
  if constexpr (kT > 1) {
    if (t < n_tok) RowsAllTokens<L, R, kT - 1, kXp>(x + t * ldx, ldx, n_tok - t, w, row_bytes, n, y + t * ldy, ldy);
  }
}

// One token against rows shorter than a page (avx2::SpreadTiles). Kernel bench (one Zen 4 core,
// from DRAM, 2048 x 1024, alternated): BF16 8.7-9.9 -> 13.7-15.1 GB/s, F16 7.6 -> 11.8-12.9.
template <typename L, bool kXp, bool kPf>
[[gnu::noinline]] size_t SpreadRows(const float* x, size_t ldx, const uint8_t* wb, size_t n_in, size_t n_rows,
                                    float* y) {
  const size_t row_bytes = n_in * L::kBytes;
  return avx2::SpreadTiles<8, 1>(row_bytes, n_rows, 1, y, 1, [&](size_t first, size_t step, float* yt) {
    Tile<L, 8, 1, kXp, kPf>(x, ldx, wb + first * row_bytes, step * row_bytes, n_in, yt, 8);
  });
}

template <typename L, bool kXp, bool kPf>
void MatmulRows(const float* x, size_t ldx, size_t n_tok, const uint8_t* wb, size_t n_in, size_t n_rows,
                float* y, size_t ldy) {
  const size_t row_bytes = n_in * L::kBytes;
  size_t r = 0;
  if (n_tok == 1) {  // decode: 8 rows in flight (8 independent FMA chains, 8 weight streams)
    r = SpreadRows<L, kXp, kPf>(x, ldx, wb, n_in, n_rows, y);
    for (; r + 8 <= n_rows; r += 8) Tile<L, 8, 1, kXp, kPf>(x, ldx, wb + r * row_bytes, row_bytes, n_in, y + r, ldy);
  } else {
    for (; r + 4 <= n_rows; r += 4) {
      RowsAllTokens<L, 4, 3, kXp>(x, ldx, n_tok, wb + r * row_bytes, row_bytes, n_in, y + r, ldy);
    }
  }
  for (; r < n_rows; ++r) RowsAllTokens<L, 1, 3, kXp>(x, ldx, n_tok, wb + r * row_bytes, row_bytes, n_in, y + r, ldy);
}

template <typename L, bool kPf>
void Matmul(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
            float* y, size_t ldy) {
  const auto* wb = static_cast<const uint8_t*>(w);
  // Few tokens (decode, small expert batches): permute x once into a stack buffer, so the tiles
  // load it with plain loads (BF16, 2 tokens: ~25 % faster from cache than permuting per tile).
  constexpr size_t kStackFloats = 8192;
  if (n_tok * n_in <= kStackFloats) {
    alignas(32) float xp[kStackFloats];
    PermuteX16(x, ldx, n_tok, n_in, xp);
    MatmulRows<L, true, kPf>(xp, n_in, n_tok, wb, n_in, n_rows, y, ldy);
  } else {
    MatmulRows<L, false, kPf>(x, ldx, n_tok, wb, n_in, n_rows, y, ldy);
  }
}

// BF16_R16 and F16_R16 weights (DType::kBF16R16 / kF16R16, 16 rows interleaved at load) × f32
// activations, in the arithmetic of MatmulBf16R16Ref / MatmulF16R16Ref (kernels/ref/bf16_r16.h, the
// same bits as every table): per lane (row) and token, chain p % 2 takes pair p as fma(w[2p], x[2p])
// then fma(w[2p+1], x[2p+1]); the result is chain 0 + chain 1. A 64-byte line is 16 rows x one pair:
// two halves of 8 rows, each widened by L to the rows' element 2p and 2p + 1. The outer-product
// form needs no horizontal sums and loads each weight once per tile; its tiles are 2 tokens of one
// group, or 1 token of two groups (8 accumulators: two chains x two halves x 2, enough for the
// FMA latency), bigger ones spill (3-token tiles re-broadcasting x per half did not, and ran slower
// in a loop on L1 data: 60-71 against 74-86 GFLOP/s; the FMA peak is ~101 per Zen 3 core). Kernel
// bench on the Zen 3 (one core, GFLOP/s, row-major -> R16): 1024 x 2048 from L3, 16 / 64 tokens
// 55-60 / 61 -> 68-75 / 79; from DRAM, 1 token 22.9 -> 23.4 GB/s, 2048 x 1024 19.5 -> 22.7 GB/s.
// Model A BF16 (alternated, 2 threads): prefill 256 41-45 -> 62-69 tok/s, decode 10.5 -> 13.6-14.8
// (77-82 -> 95-96 % of the probe's roofline), 8 distinct sequences 19-19.5 -> 25.4-28.1.
struct R16Bf16 {
  static void Widen(const uint8_t* line, int h, __m256* we, __m256* wo) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(line + 32 * h));
    *we = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    *wo = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
};
// F16_R16 (the 16 rows' element 2p, then 2p + 1): one vcvtph2ps per half of each, exact.
struct R16F16 {
  static void Widen(const uint8_t* line, int h, __m256* we, __m256* wo) {
    *we = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(line + 16 * h)));
    *wo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(line + 32 + 16 * h)));
  }
};

// a += we * x[0], then wo * x[1] (one input pair of 8 rows).
[[gnu::always_inline]] inline void PairFma(__m256 we, __m256 wo, const float* xp, __m256& a) {
  a = _mm256_fmadd_ps(we, _mm256_broadcast_ss(xp), a);
  a = _mm256_fmadd_ps(wo, _mm256_broadcast_ss(xp + 1), a);
}

// Pair p of G groups (g0, g1) x T tokens, G * T <= 2, into four accumulators of one chain: a0 / a1
// the first group's halves for token 0; a2 / a3 the second group's halves (G = 2) or the first
// group's for token 1 (T = 2). Named accumulators, not an array: GCC kept an array of them in
// memory (a load and a store per fma) for one of the two shapes.
template <typename L, int G, int T>
[[gnu::always_inline]] inline void PairR16(const float* x, size_t ldx, const uint8_t* g0, const uint8_t* g1,
                                           size_t p, __m256& a0, __m256& a1, __m256& a2, __m256& a3) {
  static_assert(G * T <= 2);
  const float* xp = x + 2 * p;
  for (int h = 0; h < 2; ++h) {
    __m256 we, wo;
    L::Widen(g0 + 64 * p, h, &we, &wo);
    PairFma(we, wo, xp, h == 0 ? a0 : a1);
    if constexpr (T == 2) PairFma(we, wo, xp + ldx, h == 0 ? a2 : a3);
    if constexpr (G == 2) {
      L::Widen(g1 + 64 * p, h, &we, &wo);
      PairFma(we, wo, xp, h == 0 ? a2 : a3);
    }
  }
}

// G groups (g0, g1; results to y0, y1 + t * ldy) against T tokens, G * T <= 2: chain 0 over the
// even pairs, chain 1 over the odd ones (avx2::PairsTwoChains' order), then their sum.
template <typename L, int G, int T>
[[gnu::noinline]] void TileR16(const float* x, size_t ldx, const uint8_t* g0, const uint8_t* g1, size_t n_pairs,
                               float* y0, float* y1, size_t ldy) {
  __m256 c0[4], c1[4];
  for (int i = 0; i < 4; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  size_t p = 0;
  for (; p + 2 <= n_pairs; p += 2) {
    PairR16<L, G, T>(x, ldx, g0, g1, p, c0[0], c0[1], c0[2], c0[3]);
    PairR16<L, G, T>(x, ldx, g0, g1, p + 1, c1[0], c1[1], c1[2], c1[3]);
  }
  if (p < n_pairs) PairR16<L, G, T>(x, ldx, g0, g1, p, c0[0], c0[1], c0[2], c0[3]);
  _mm256_storeu_ps(y0, _mm256_add_ps(c0[0], c1[0]));
  _mm256_storeu_ps(y0 + 8, _mm256_add_ps(c0[1], c1[1]));
  if constexpr (G * T == 2) {
    float* y2 = G == 2 ? y1 : y0 + ldy;
    _mm256_storeu_ps(y2, _mm256_add_ps(c0[2], c1[2]));
    _mm256_storeu_ps(y2 + 8, _mm256_add_ps(c0[3], c1[3]));
  }
}

// One token: two groups at once (far pairs, avx2::kFarPairs: a thread reads its rows as two long
// streams; else adjacent groups). More tokens: 2-token tiles (and a last single token) per group,
// the first streaming the group from memory and the later ones finding it in L2.
template <typename L>
void MatmulR16(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows, float* y,
               size_t ldy) {
  MOXIE_CHECK(n_rows % 16 == 0 && n_in % 2 == 0);  // the layout exists only in whole 16-row groups
  const auto* wb = static_cast<const uint8_t*>(w);
  const size_t group_bytes = 16 * 2 * n_in, groups = n_rows / 16, n_pairs = n_in / 2;
  if (n_tok == 1) {
    avx2::ForGroupPairs(groups, [&](size_t a, size_t b) {
      TileR16<L, 2, 1>(x, ldx, wb + a * group_bytes, wb + b * group_bytes, n_pairs, y + 16 * a, y + 16 * b, ldy);
    });
    if (groups % 2 != 0) {
      const size_t r = groups - 1;
      TileR16<L, 1, 1>(x, ldx, wb + r * group_bytes, nullptr, n_pairs, y + 16 * r, nullptr, ldy);
    }
    return;
  }
  // Tokens in blocks of about kR16XBlock bytes of activations (24 tokens of 2048 inputs), which
  // stay in L2 (512 KiB on the Zen 3) while every group passes over them; without blocks each
  // group re-read all tokens' activations (4 MiB for an attention projection of 512 tokens) from
  // L3. Model A BF16 prefill 512, alternated `moxie bench -p 512 -r 3` medians: no blocks 58.4 /
  // 58.7, 96 KiB 57.4 / 54.9, 192 KiB 61.3 / 63.4 / 65.9 / 66.5 tok/s. Changes no result.
  constexpr size_t kR16XBlock = size_t{192} << 10;
  const size_t tb = std::max<size_t>(2, kR16XBlock / (4 * n_in) / 2 * 2);
  for (size_t t0 = 0; t0 < n_tok; t0 += tb) {
    const size_t t1 = std::min(n_tok, t0 + tb);
    for (size_t r = 0; r < groups; ++r) {
      const uint8_t* g = wb + r * group_bytes;
      size_t t = t0;
      for (; t + 2 <= t1; t += 2) {
        TileR16<L, 1, 2>(x + t * ldx, ldx, g, nullptr, n_pairs, y + t * ldy + 16 * r, nullptr, ldy);
      }
      if (t < t1) TileR16<L, 1, 1>(x + t * ldx, ldx, g, nullptr, n_pairs, y + t * ldy + 16 * r, nullptr, ldy);
    }
  }
}

// K / V elements of the KV cache: f32, or f16 widened exactly (F16C), so an f16 cache gives the
// bits of an f32 cache holding the same (rounded) values.
inline __m256 LoadKv8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 LoadKv8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline float LoadKv1(const float* p) { return *p; }
inline float LoadKv1(const uint16_t* p) { return F16ToF32(*p); }

// The 8-lane accumulators of MQ x NK dots over d's whole 8-element chunks (the first c elements,
// returned), each key chunk loaded once for the MQ queries.
template <int MQ, int NK, typename K>
__attribute__((always_inline)) inline size_t DotChunks(const float* q, size_t ldq, const K* k, size_t ldk, size_t d,
                                                       __m256 (&acc)[MQ][NK]) {
  for (int a = 0; a < MQ; ++a)
    for (int b = 0; b < NK; ++b) acc[a][b] = _mm256_setzero_ps();
  size_t c = 0;
  for (; c + 8 <= d; c += 8) {
    __m256 kv[NK];
    for (int b = 0; b < NK; ++b) kv[b] = LoadKv8(k + b * ldk + c);
    for (int a = 0; a < MQ; ++a) {
      const __m256 qv = _mm256_loadu_ps(q + a * ldq + c);
      for (int b = 0; b < NK; ++b) acc[a][b] = _mm256_fmadd_ps(qv, kv[b], acc[a][b]);
    }
  }
  return c;
}

// Scores: each dot is one 8-lane accumulator over the 8-element chunks in order, a fixed
// horizontal sum, then an fma tail over the last d % 8 elements, times scale: a function of d
// only. Tiles of MQ queries x NK keys keep MQ·NK dots in flight (FMA latency) and load each key
// chunk once for MQ queries (the K rows come from L2/L3 in long prefills).
template <int MQ, int NK, typename K>
inline void ScoreTileEach(const float* q, size_t ldq, const K* k, size_t ldk, size_t d, float scale,
                          float* s, size_t lds) {
  __m256 acc[MQ][NK];
  const size_t c = DotChunks<MQ, NK>(q, ldq, k, ldk, d, acc);
  for (int a = 0; a < MQ; ++a) {
    for (int b = 0; b < NK; ++b) {
      float v = HSum(acc[a][b]);
      for (size_t t = c; t < d; ++t) v = std::fma(q[a * ldq + t], LoadKv1(k + b * ldk + t), v);
      s[a * lds + b] = v * scale;
    }
  }
}

// One query against NK <= 8 keys, the NK accumulators reduced together (HSum8, the bits of HSum).
// Kernel bench attn/*/ctx512/q1/hot/avx2 (min of 10, 3 alternated rounds, Zen 3): F32 7.9-9.2 ->
// 6.8-9.8 us, F16 6.2-6.9 -> 5.5-7.2 us. Tried for 4 queries x 2 keys (against ScoreTileEach's
// 4 x 3): a throwaway harness had it 15 % faster from L1, but model A Q8_0 prefill of 512 tokens
// after 1536 (K from L3 / DRAM), 3 alternated pairs: 62.6 / 57.1 / 52.8 -> 55.7 / 48.1 / 50.6
// tok/s, so 2 or more queries keep ScoreTileEach.
template <int NK, typename K>
inline void ScoreTile1(const float* q, const K* k, size_t ldk, size_t d, float scale, float* s) {
  static_assert(NK >= 1 && NK <= 8);
  __m256 acc[1][NK];
  const size_t c = DotChunks<1, NK>(q, 0, k, ldk, d, acc);
  // Accumulator I, zeros past NK (held in registers: an indexed array went through the stack).
  const auto at = [&]<int I>() {
    if constexpr (I < NK) {
      return acc[0][I];
    } else {
      return _mm256_setzero_ps();
    }
  };
  const __m256 sums = HSum8(at.template operator()<0>(), at.template operator()<1>(), at.template operator()<2>(),
                            at.template operator()<3>(), at.template operator()<4>(), at.template operator()<5>(),
                            at.template operator()<6>(), at.template operator()<7>());
  if (c == d && NK == 8) {
    _mm256_storeu_ps(s, _mm256_mul_ps(sums, _mm256_set1_ps(scale)));
    return;
  }
  alignas(32) float r[8];
  _mm256_store_ps(r, sums);
  for (int b = 0; b < NK; ++b) {
    float v = r[b];
    for (size_t t = c; t < d; ++t) v = std::fma(q[t], LoadKv1(k + b * ldk + t), v);
    s[b] = v * scale;
  }
}

// The last R (< 8) keys of a one-query row: one tile of R keys.
template <int R, typename K>
void ScoreTail1(size_t r, const float* q, const K* k, size_t ldk, size_t d, float scale, float* s) {
  if constexpr (R > 0) {
    if (r == R) {
      ScoreTile1<R>(q, k, ldk, d, scale, s);
    } else {
      ScoreTail1<R - 1>(r, q, k, ldk, d, scale, s);
    }
  }
}

// One query: keys in tiles of 8 reduced together; 2-4 queries: tiles of 3 keys.
template <int MQ, typename K>
void ScoreRows(const float* q, size_t ldq, const K* k, size_t ldk, size_t n, size_t d,
               float scale, float* s, size_t lds) {
  size_t j = 0;
  if constexpr (MQ == 1) {
    for (; j + 8 <= n; j += 8) ScoreTile1<8>(q, k + j * ldk, ldk, d, scale, s + j);
    ScoreTail1<7>(n - j, q, k + j * ldk, ldk, d, scale, s + j);
  } else {
    for (; j + 3 <= n; j += 3) ScoreTileEach<MQ, 3>(q, ldq, k + j * ldk, ldk, d, scale, s + j, lds);
    if (n - j == 2) ScoreTileEach<MQ, 2>(q, ldq, k + j * ldk, ldk, d, scale, s + j, lds);
    if (n - j == 1) ScoreTileEach<MQ, 1>(q, ldq, k + j * ldk, ldk, d, scale, s + j, lds);
  }
}

template <typename K>
void ScoreQueries(const float* q, size_t ldq, size_t m, const K* k, size_t ldk, size_t n, size_t d, float scale,
                  float* s, size_t lds) {
  size_t i = 0;
  for (; i + 4 <= m; i += 4) ScoreRows<4>(q + i * ldq, ldq, k, ldk, n, d, scale, s + i * lds, lds);
  switch (m - i) {
    case 3: ScoreRows<3>(q + i * ldq, ldq, k, ldk, n, d, scale, s + i * lds, lds); break;
    case 2: ScoreRows<2>(q + i * ldq, ldq, k, ldk, n, d, scale, s + i * lds, lds); break;
    case 1: ScoreRows<1>(q + i * ldq, ldq, k, ldk, n, d, scale, s + i * lds, lds); break;
    default: break;
  }
}

// More queries than one register tile (a GQA group of 8 heads, an attention tile of up to 32
// queries): keys in blocks of kScoreKeys (24 KiB of f32 rows at d = 128, a multiple of the 3- and
// 8-key tiles), every query over a block before the next, so each K row comes from memory once per
// call instead of once per 4 queries. (The model calls once per KV cache block, 32 positions for
// the benchmarked models, already one block; larger cache blocks and other callers get the
// blocking.) Each score is computed as without blocks: the same bits.
constexpr size_t kScoreKeys = 48;

template <typename K>
void AttnScoresAvx2(const float* q, size_t ldq, size_t m, const K* k, size_t ldk, size_t n,
                    size_t d, float scale, float* s, size_t lds) {
  if (m <= 4) {
    ScoreQueries(q, ldq, m, k, ldk, n, d, scale, s, lds);
    return;
  }
  for (size_t j = 0; j < n; j += kScoreKeys) {
    ScoreQueries(q, ldq, m, k + j * ldk, ldk, std::min(kScoreKeys, n - j), d, scale, s + j, lds);
  }
}

// Values: o[c] += Σ_j p[j]·V_j[c], j in order for every (query, column): MQ queries x 32 columns
// in registers, each V chunk loaded once for MQ queries. Keys go in blocks of kValueKeys, all
// columns of a block before the next, so a block's rows are read from memory once and from L1 for
// the other column chunks (a long context's V rows of one head do not fit in L2); the sums are
// stored and reloaded exactly between blocks, so the blocking does not change a bit.
constexpr size_t kValueKeys = 32;

template <int MQ, typename V>
void ValueRowsBlock(const float* p, size_t ldp, const V* v, size_t ldv, size_t n, size_t d, float* o,
                    size_t ldo) {
  size_t c = 0;
  for (; c + 32 <= d; c += 32) {
    __m256 acc[MQ][4];
    for (int a = 0; a < MQ; ++a)
      for (int b = 0; b < 4; ++b) acc[a][b] = _mm256_loadu_ps(o + a * ldo + c + 8 * b);
    for (size_t j = 0; j < n; ++j) {
      const V* vj = v + j * ldv + c;
      __m256 vv[4];
      for (int b = 0; b < 4; ++b) vv[b] = LoadKv8(vj + 8 * b);
      for (int a = 0; a < MQ; ++a) {
        const __m256 pj = _mm256_broadcast_ss(p + a * ldp + j);
        for (int b = 0; b < 4; ++b) acc[a][b] = _mm256_fmadd_ps(pj, vv[b], acc[a][b]);
      }
    }
    for (int a = 0; a < MQ; ++a)
      for (int b = 0; b < 4; ++b) _mm256_storeu_ps(o + a * ldo + c + 8 * b, acc[a][b]);
  }
  for (; c + 8 <= d; c += 8) {
    __m256 acc[MQ];
    for (int a = 0; a < MQ; ++a) acc[a] = _mm256_loadu_ps(o + a * ldo + c);
    for (size_t j = 0; j < n; ++j) {
      const __m256 vv = LoadKv8(v + j * ldv + c);
      for (int a = 0; a < MQ; ++a) acc[a] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + a * ldp + j), vv, acc[a]);
    }
    for (int a = 0; a < MQ; ++a) _mm256_storeu_ps(o + a * ldo + c, acc[a]);
  }
  for (; c < d; ++c) {
    for (int a = 0; a < MQ; ++a) {
      float acc = o[a * ldo + c];
      for (size_t j = 0; j < n; ++j) acc = std::fma(p[a * ldp + j], LoadKv1(v + j * ldv + c), acc);
      o[a * ldo + c] = acc;
    }
  }
}

// Key blocks outermost, then the queries in groups of 3: a block's V rows come from memory once
// per call and from L1 for the other groups (see kScoreKeys for the model's calls).
template <typename V>
void AttnValuesAvx2(const float* p, size_t ldp, size_t m, const V* v, size_t ldv, size_t n,
                    size_t d, float* o, size_t ldo) {
  for (size_t j = 0; j < n; j += kValueKeys) {
    const size_t len = std::min(kValueKeys, n - j);
    const V* vb = v + j * ldv;
    size_t i = 0;
    for (; i + 3 <= m; i += 3) ValueRowsBlock<3>(p + i * ldp + j, ldp, vb, ldv, len, d, o + i * ldo, ldo);
    if (m - i == 2) ValueRowsBlock<2>(p + i * ldp + j, ldp, vb, ldv, len, d, o + i * ldo, ldo);
    if (m - i == 1) ValueRowsBlock<1>(p + i * ldp + j, ldp, vb, ldv, len, d, o + i * ldo, ldo);
  }
}

}  // namespace

void AddQuantMatmuls(KernelTable* t);         // f32-activation quantized matmuls (kernels/ref)
void AddQuantActMatmulsRef(KernelTable* t);   // 8-bit-activation reference (fast ones replace them)
void AddQuantActMatmulsAvx2(KernelTable* t);  // qmatmul_avx2.cc
void AddElementwiseAvx2(KernelTable* t);      // elementwise_avx2.cc

// The quantized kernels' weight prefetch and far pairs are off only on AMD CPUs with AVX-512 (Zen 4
// and later), where they were measured to slow the AVX-512 kernels; on Intel and on AMD without
// AVX-512, where the AVX2 kernels run, they help (AMD EPYC Zen 3, model A Q8_0 decode alternated,
// 2 threads: both off 19.9-22.0, both on 24.4-25.7 tok/s, read 25-28 -> 31-32 GB/s; prefetch alone
// 22.2-22.9, far pairs alone 23.8-24.5). The row-major float mat-vec's prefetch (RowPrefetchWanted)
// stays Intel-only: on the Zen 3 it slowed model A BF16 decode (alternated: 10.8-11.1 without,
// 8.9-9.0 tok/s with). The caller has run __builtin_cpu_init.
static bool NotAmdAvx512() { return !__builtin_cpu_is("amd") || !__builtin_cpu_supports("avx512f"); }

// MOXIE_WEIGHT_PREFETCH=0|1 (or its older name MOXIE_ROW_PREFETCH) as 0 or 1; -1 when neither is set.
static int PrefetchOverride() {
  for (const char* name : {"MOXIE_WEIGHT_PREFETCH", "MOXIE_ROW_PREFETCH"}) {
    if (const char* e = std::getenv(name); e != nullptr && (e[0] == '0' || e[0] == '1')) return e[0] - '0';
  }
  return -1;
}

bool avx2::WeightPrefetchWanted() {
  if (const int o = PrefetchOverride(); o >= 0) return o == 1;
  __builtin_cpu_init();  // may run during static initialisation
  return NotAmdAvx512();
}

// The prefetch of the row-major float mat-vec (Tile's kPf): Intel only, see above.
static bool RowPrefetchWanted() {
  if (const int o = PrefetchOverride(); o >= 0) return o == 1;
  __builtin_cpu_init();
  return __builtin_cpu_is("intel");
}

bool avx2::FarPairsWanted() {
  if (const char* e = std::getenv("MOXIE_FAR_PAIRS"); e != nullptr && (e[0] == '0' || e[0] == '1')) {
    return e[0] == '1';
  }
  __builtin_cpu_init();
  return NotAmdAvx512();
}

const KernelTable* Avx2KernelsImpl() {
  static const KernelTable table = [] {
    KernelTable t;
    t.isa = "avx2";
    t.attn_scores = AttnScoresAvx2<float>;
    t.attn_values = AttnValuesAvx2<float>;
    t.attn_scores_f16 = AttnScoresAvx2<uint16_t>;
    t.attn_values_f16 = AttnValuesAvx2<uint16_t>;
    AddElementwiseAvx2(&t);
    if (RowPrefetchWanted()) {
      t.Set(DType::kF32, Matmul<LoadF32, true>);
      t.Set(DType::kF16, Matmul<LoadF16, true>);
      t.Set(DType::kBF16, Matmul<LoadBf16, true>);
    } else {
      t.Set(DType::kF32, Matmul<LoadF32, false>);
      t.Set(DType::kF16, Matmul<LoadF16, false>);
      t.Set(DType::kBF16, Matmul<LoadBf16, false>);
    }
    t.Set(DType::kBF16R16, MatmulR16<R16Bf16>);
    t.Set(DType::kF16R16, MatmulR16<R16F16>);
    AddQuantMatmuls(&t);
    AddQuantActMatmulsRef(&t);
    AddQuantActMatmulsAvx2(&t);
    return t;
  }();
  return &table;
}

}  // namespace moxie
