// AVX-512 attention over the KV cache (KernelTable::attn_scores / attn_values and their f16-cache
// forms), with the AVX2 kernels' bits (matmul_avx2.cc; tested):
// - scores: each (query, key) dot is the AVX2 one, an 8-lane accumulator over the 8-element chunks
//   in order, the fixed horizontal sum, an fma tail over the last d % 8 elements, times scale. Two
//   keys share one 512-bit accumulator (key b in lanes 0-7, key b + 1 in lanes 8-15, the query's
//   chunk in both halves), so each half does exactly the AVX2 accumulator's work with half the
//   instructions; a last odd key goes to the AVX2 kernel.
// - values: o[c] += Σ_j p[j]·V_j[c] with one fma per (query, column, key), keys in order within
//   blocks of 32 (sums stored and reloaded exactly between blocks): element-wise, so 16 lanes give
//   the bits of 8 and of the scalar tail.
// Built with ISA flags; reached only through Avx512KernelsImpl() after a CPUID check.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/avx2/avx2_util.h"
#include "kernels/kernel_table.h"

namespace moxie {

const KernelTable* Avx2KernelsImpl();

namespace {

using avx2::HSum;

// Keys b (lanes 0-7) and b + 1 (lanes 8-15), elements [c, c + 8) of each, as f32 (an f16 cache is
// widened exactly).
inline __m512 LoadKeyPair(const float* k0, const float* k1) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(k0)), _mm256_loadu_ps(k1), 1);
}
inline __m512 LoadKeyPair(const uint16_t* k0, const uint16_t* k1) {
  const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(k0));
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(k1));
  return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1));
}
inline float LoadKv1(const float* p) { return *p; }
inline float LoadKv1(const uint16_t* p) { return _cvtsh_ss(*p); }

// The AVX2 horizontal sum (avx2::HSum: ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))) of the
// four dots in x (keys 0, 1: lanes 0-7, 8-15) and y (keys 2, 3), the same additions in the same
// order for all four at once: halves, then neighbours, then the two partial sums.
inline __m128 HSum4(__m512 x, __m512 y) {
  const __m512 b = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 c = _mm512_add_ps(b, _mm512_movehdup_ps(b));
  const __m512 d = _mm512_add_ps(c, _mm512_permute_ps(c, 2));
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), d));
}

// Software prefetch of the K and V rows kAheadKeys keys ahead (Intel only, avx2::kWeightPrefetch).
// Kernel bench, context 4096, one Xeon core from DRAM, f32 / f16 cache: 8 queries 6.4 / 7.3 GB/s
// without, 8.4-9.2 / 7.3-7.7 with 4-32 keys ahead (16: 9.2 / 7.7); one query 14.9 / 13.4 -> 15.2 /
// 14.7.
constexpr size_t kAheadKeys = 16;

// MQ queries × NP key pairs (keys k, k + ldk, ..., 2·NP of them).
template <int MQ, int NP, typename K>
void ScoreTilePairs(const float* q, size_t ldq, const K* k, size_t ldk, size_t d, float scale, float* s,
                    size_t lds) {
  __m512 acc[MQ][NP];
  for (int a = 0; a < MQ; ++a)
    for (int b = 0; b < NP; ++b) acc[a][b] = _mm512_setzero_ps();
  size_t c = 0;
  for (; c + 8 <= d; c += 8) {
    // The same line kAheadKeys keys on. _mm_prefetch, not avx2::PrefetchT0, and the epilogue's loops
    // unrolled: with that volatile asm in this loop, or with acc indexed at run time in the
    // epilogue, GCC 12 kept acc in memory too and stored all MQ·NP accumulators on every pass (16
    // 512-bit stores per 16 fmas in the 8-query tile, ~1/3 of its fma rate; perf annotate), even
    // where kWeightPrefetch is off and the asm never runs.
    if (avx2::kWeightPrefetch && (c * sizeof(K)) % 64 == 0) {
      for (int b = 0; b < 2 * NP; ++b) {
        _mm_prefetch(reinterpret_cast<const char*>(k + (static_cast<size_t>(b) + kAheadKeys) * ldk + c), _MM_HINT_T0);
      }
    }
    __m512 kv[NP];
    for (int b = 0; b < NP; ++b) kv[b] = LoadKeyPair(k + 2 * b * ldk + c, k + (2 * b + 1) * ldk + c);
    for (int a = 0; a < MQ; ++a) {
      const __m512 qv = _mm512_broadcast_f32x8(_mm256_loadu_ps(q + a * ldq + c));
      for (int b = 0; b < NP; ++b) acc[a][b] = _mm512_fmadd_ps(qv, kv[b], acc[a][b]);
    }
  }
  if (c == d) {  // no tail: the dots' sums four at a time
    const __m128 sv = _mm_set1_ps(scale);
#pragma GCC unroll 16
    for (int a = 0; a < MQ; ++a) {
      int b = 0;
#pragma GCC unroll 8
      for (; b + 2 <= NP; b += 2) _mm_storeu_ps(s + a * lds + 2 * b, _mm_mul_ps(HSum4(acc[a][b], acc[a][b + 1]), sv));
      if (b < NP) {
        const __m128 r = _mm_mul_ps(HSum4(acc[a][b], acc[a][b]), sv);
        _mm_storel_pi(reinterpret_cast<__m64*>(s + a * lds + 2 * b), r);
      }
    }
    return;
  }
#pragma GCC unroll 16
  for (int a = 0; a < MQ; ++a) {
#pragma GCC unroll 8
    for (int b = 0; b < NP; ++b) {
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const size_t key = static_cast<size_t>(2 * b + h);
        float v = HSum(h == 0 ? _mm512_castps512_ps256(acc[a][b]) : _mm512_extractf32x8_ps(acc[a][b], 1));
        for (size_t t = c; t < d; ++t) v = std::fma(q[a * ldq + t], LoadKv1(k + key * ldk + t), v);
        s[a * lds + key] = v * scale;
      }
    }
  }
}

// Up to 4 queries: tiles of 3 key pairs (12 accumulators); 5-8 queries (the heads of a GQA group,
// each key read once): 2 pairs (16).
template <int MQ, typename K>
size_t ScoreRowsPairs(const float* q, size_t ldq, const K* k, size_t ldk, size_t n, size_t d, float scale, float* s,
                      size_t lds) {
  size_t j = 0;
  if constexpr (MQ <= 4) {
    for (; j + 6 <= n; j += 6) ScoreTilePairs<MQ, 3>(q, ldq, k + j * ldk, ldk, d, scale, s + j, lds);
  } else {
    for (; j + 4 <= n; j += 4) ScoreTilePairs<MQ, 2>(q, ldq, k + j * ldk, ldk, d, scale, s + j, lds);
  }
  if (n - j >= 4) {
    ScoreTilePairs<MQ, 2>(q, ldq, k + j * ldk, ldk, d, scale, s + j, lds);
    j += 4;
  } else if (n - j >= 2) {
    ScoreTilePairs<MQ, 1>(q, ldq, k + j * ldk, ldk, d, scale, s + j, lds);
    j += 2;
  }
  return j;  // keys done (all but a last odd one)
}

template <typename K>
void AttnScores(const float* q, size_t ldq, size_t m, const K* k, size_t ldk, size_t n, size_t d, float scale,
                float* s, size_t lds) {
  size_t i = 0, done = 0;
  for (; i + 8 <= m; i += 8) done = ScoreRowsPairs<8>(q + i * ldq, ldq, k, ldk, n, d, scale, s + i * lds, lds);
  for (; i + 4 <= m; i += 4) done = ScoreRowsPairs<4>(q + i * ldq, ldq, k, ldk, n, d, scale, s + i * lds, lds);
  switch (m - i) {
    case 3: done = ScoreRowsPairs<3>(q + i * ldq, ldq, k, ldk, n, d, scale, s + i * lds, lds); break;
    case 2: done = ScoreRowsPairs<2>(q + i * ldq, ldq, k, ldk, n, d, scale, s + i * lds, lds); break;
    case 1: done = ScoreRowsPairs<1>(q + i * ldq, ldq, k, ldk, n, d, scale, s + i * lds, lds); break;
    default: break;
  }
  if (m > 0 && done < n) {  // a last odd key: the AVX2 kernel (the same bits)
    if constexpr (sizeof(K) == 4) {
      Avx2KernelsImpl()->attn_scores(q, ldq, m, k + done * ldk, ldk, n - done, d, scale, s + done, lds);
    } else {
      Avx2KernelsImpl()->attn_scores_f16(q, ldq, m, k + done * ldk, ldk, n - done, d, scale, s + done, lds);
    }
  }
}

inline __m512 LoadV16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 LoadV16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512 LoadV16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 LoadV16(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

constexpr size_t kValueKeys = 32;  // as the AVX2 kernel (the blocking changes no bit either way)

// MQ queries over keys [0, n) (one block), all d columns: 16·NC at a time (NC = 4 vectors for up
// to 4 queries, 2 for 5-8: at most 16 accumulators, so a GQA group reads each V row once), then
// 16, then a masked tail.
template <int MQ, typename V>
void ValueRowsBlock(const float* p, size_t ldp, const V* v, size_t ldv, size_t n, size_t d, float* o, size_t ldo) {
  constexpr int NC = MQ <= 4 ? 4 : 2;
  size_t c = 0;
  for (; c + 16 * NC <= d; c += 16 * NC) {
    __m512 acc[MQ][NC];
    for (int a = 0; a < MQ; ++a)
      for (int b = 0; b < NC; ++b) acc[a][b] = _mm512_loadu_ps(o + a * ldo + c + 16 * b);
    for (size_t j = 0; j < n; ++j) {
      const V* vj = v + j * ldv + c;
      if (avx2::kWeightPrefetch) {
        for (int b = 0; b < NC; b += 64 / (16 * static_cast<int>(sizeof(V)))) {
          avx2::PrefetchT0(vj + kAheadKeys * ldv + 16 * b);
        }
      }
      __m512 vv[NC];
      for (int b = 0; b < NC; ++b) vv[b] = LoadV16(vj + 16 * b);
      for (int a = 0; a < MQ; ++a) {
        const __m512 pj = _mm512_set1_ps(p[a * ldp + j]);
        for (int b = 0; b < NC; ++b) acc[a][b] = _mm512_fmadd_ps(pj, vv[b], acc[a][b]);
      }
    }
    for (int a = 0; a < MQ; ++a)
      for (int b = 0; b < NC; ++b) _mm512_storeu_ps(o + a * ldo + c + 16 * b, acc[a][b]);
  }
  for (; c < d; c += 16) {
    const __mmask16 mk = d - c >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (d - c)) - 1);
    __m512 acc[MQ];
    for (int a = 0; a < MQ; ++a) acc[a] = _mm512_maskz_loadu_ps(mk, o + a * ldo + c);
    for (size_t j = 0; j < n; ++j) {
      const __m512 vv = LoadV16(v + j * ldv + c, mk);
      for (int a = 0; a < MQ; ++a) acc[a] = _mm512_fmadd_ps(_mm512_set1_ps(p[a * ldp + j]), vv, acc[a]);
    }
    for (int a = 0; a < MQ; ++a) _mm512_mask_storeu_ps(o + a * ldo + c, mk, acc[a]);
  }
}

template <int MQ, typename V>
void ValueRows(const float* p, size_t ldp, const V* v, size_t ldv, size_t n, size_t d, float* o, size_t ldo) {
  for (size_t j = 0; j < n; j += kValueKeys) {
    ValueRowsBlock<MQ>(p + j, ldp, v + j * ldv, ldv, std::min(kValueKeys, n - j), d, o, ldo);
  }
}

template <typename V>
void AttnValues(const float* p, size_t ldp, size_t m, const V* v, size_t ldv, size_t n, size_t d, float* o,
                size_t ldo) {
  size_t i = 0;
  for (; i + 8 <= m; i += 8) ValueRows<8>(p + i * ldp, ldp, v, ldv, n, d, o + i * ldo, ldo);
  for (; i + 4 <= m; i += 4) ValueRows<4>(p + i * ldp, ldp, v, ldv, n, d, o + i * ldo, ldo);
  switch (m - i) {
    case 3: ValueRows<3>(p + i * ldp, ldp, v, ldv, n, d, o + i * ldo, ldo); break;
    case 2: ValueRows<2>(p + i * ldp, ldp, v, ldv, n, d, o + i * ldo, ldo); break;
    case 1: ValueRows<1>(p + i * ldp, ldp, v, ldv, n, d, o + i * ldo, ldo); break;
    default: break;
  }
}

}  // namespace

void AddAttentionAvx512(KernelTable* t) {
  t->attn_scores = AttnScores<float>;
  t->attn_values = AttnValues<float>;
  t->attn_scores_f16 = AttnScores<uint16_t>;
  t->attn_values_f16 = AttnValues<uint16_t>;
}

}  // namespace moxie
