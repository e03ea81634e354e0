// AVX-512 (F, BW, VL, DQ) + VNNI kernels: the AVX2 table with the integer dot products of the
// 8-bit-activation path done by vpdpbusd (u8 × s8 products summed in int32 by one instruction,
// where AVX2 needs maddubs + madd). Built with ISA flags; reached only through Avx512Kernels()
// after a CPUID check. The scalar references stay the oracle (kernels/ref).
//
// Every kernel here keeps the arithmetic of its AVX2 counterpart per (row, token): the same exact
// integer block dot, the same f32 scale product and fma in block order. So results are
// bit-identical to the AVX2 table's, whatever the batch or the row split (tested).

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "kernels/cpu/avx2/avx2_util.h"
#include "kernels/kernel_table.h"
#include "kernels/ref/quant.h"

namespace moxie {

const KernelTable* Avx2KernelsImpl();
void AddFloatMatmulsAvx512(KernelTable* t);  // matmul_avx512.cc
void AddBf16ActMatmulsAvx512(KernelTable* t);  // bf16_avx512.cc
void AddAttentionAvx512(KernelTable* t);       // attention_avx512.cc

namespace {

using avx2::LoadF16;
using avx2::LoadF32;

// Prefetches the cache lines of two weight blocks (one per group of a pair) kAhead bytes ahead.
template <size_t kBytes, size_t kAhead>
inline void PrefetchPair(const uint8_t* o0, const uint8_t* o1) {
  if (!avx2::kWeightPrefetch) return;
  for (size_t c = 0; c < kBytes; c += 64) {
    avx2::PrefetchT0(o0 + kAhead + c);
    avx2::PrefetchT0(o1 + kAhead + c);
  }
}

// Where the in-stream prefetch is off (kWeightPrefetch: AMD Zen 4) and pairs are adjacent groups
// (not kFarPairs), the first token tile of a pair fetches the same block of the next pair, `next`
// bytes ahead (2 groups; 0: no next pair), into L2 while it computes, so the next pair's first tile
// does not wait on DRAM: a pair's groups are short (2048 inputs: 8 Q4_K blocks, 9 KiB per group),
// too short for the hardware prefetcher to ramp up within them. Kernel bench (one Zen 4 core, 8
// tokens, from DRAM, alternated): Q4_K_R8 gate/up 768 x 2048 and down 2048 x 768 ~224 / ~191 ->
// ~299 / ~287 GFLOP/s (from cache ~308 / ~290); see PairNext.
template <size_t kBytes>
inline void PrefetchNext(const uint8_t* o, size_t next) {
  if (next == 0) return;
  for (size_t c = 0; c < kBytes; c += 64) avx2::PrefetchT1(o + next + c);
}
template <size_t kBytes>
inline void PrefetchNextPair(const uint8_t* o0, const uint8_t* o1, size_t next) {
  PrefetchNext<kBytes>(o0, next);
  PrefetchNext<kBytes>(o1, next);
}
// `next` for the pair of groups (a, a + 1) of `groups` (group_bytes each): 2 groups ahead while a
// pair follows, else 0.
inline size_t PairNext(size_t a, size_t groups, size_t group_bytes) {
  if (avx2::kWeightPrefetch || avx2::kFarPairs || a + 3 >= groups) return 0;
  return 2 * group_bytes;
}

// Lanes 0-7 of v to y0, 8-15 to y1 (the two groups of a far pair).
inline void StoreHalves(float* y0, float* y1, __m512 v) {
  _mm512_mask_storeu_ps(y0, 0x00FF, v);  // lanes 0-7 (GCC 12 warns on _mm512_castps512_ps256 here)
  _mm256_storeu_ps(y1, _mm512_extractf32x8_ps(v, 1));
}

// ---------------------------------------------------------------------------------------------
// Q8_0_R8 (DType::kQ8_0R8, see core/dtype.h): a group of 8 rows stores per 32-element block the
// rows' 8 f16 scales (16 bytes) and 8 vectors of 32 bytes, vector k = bytes 4k..4k+3 of rows 0..7.
// Two consecutive groups fill one 512-bit vector (rows of group g in lanes 0-7, of g + 1 in lanes
// 8-15): a token's 4 activation bytes, broadcast, give 16 rows' partial dots per vpdpbusd.
//
// vpdpbusd multiplies unsigned by signed bytes. The weights are made unsigned by flipping their
// sign bit (w + 128, one xor per weight vector, shared by all tokens of a pass), and each
// (token, block) sum starts from −128·Σx of the block, so it ends at exactly Σ w·x: the integer
// dot of the reference. |Σ (w + 128)·x| ≤ 255·127·32, far inside int32.
//
// Q4_0_R8 (DType::kQ4_0R8) runs the same kernels: its quants are unsigned nibbles q (the weight is
// q − 8), vector k of a block the low nibbles of stored vector k for k < 4 and the high nibbles of
// vector k − 4 after (one AND, or a shift and an AND), and each (token, block) sum starts from
// −8·Σx: exactly Σ (q − 8)·x, the AVX2 kernel's integer, so the same bits after the same f32 steps.
// MXFP4_R8 (kMXFP4R8) likewise, each nibble looked up as its E2M1 value + 12, sums from −12·Σx.
constexpr size_t kQ8_0Bytes = 34;
constexpr size_t kPrefetchAhead = 1024;

// The weights of a group block pair (o0: lanes 0-7, o1: lanes 8-15; Vec8: one group) as unsigned
// bytes, vector k = elements 4k..4k+3 of the rows; kBias: the value that makes them the weights.
// Scales16 / Scales8: the rows' scales of the pair / of one group as f32.
inline __m512 F16Scales16(const uint8_t* o0, const uint8_t* o1) {
  return _mm512_cvtph_ps(_mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o0))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(o1)), 1));
}
inline __m256 F16Scales8(const uint8_t* o) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o)));
}
struct VQ8_0 {
  static constexpr size_t kGroupBlock = 8 * kQ8_0Bytes;  // 16 bytes of f16 scales + 256 of quants
  static constexpr int32_t kBias = 128;
  static constexpr DType kDType = DType::kQ8_0R8;
  static __m512 Scales16(const uint8_t* o0, const uint8_t* o1) { return F16Scales16(o0, o1); }
  static __m256 Scales8(const uint8_t* o) { return F16Scales8(o); }
  static __m512i Vec(const uint8_t* o0, const uint8_t* o1, int k) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o0 + 16 + 32 * k));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o1 + 16 + 32 * k));
    return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1),
                            _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  static __m256i Vec8(const uint8_t* o, int k) {
    return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + 16 + 32 * k)),
                            _mm256_set1_epi8(static_cast<char>(0x80)));
  }
};
// The nibbles of the 4-bit layouts (quants at q0 / q1): vector k < 4 the low nibbles of stored
// vector k, k >= 4 the high nibbles of vector k - 4.
inline __m512i Nibbles16(const uint8_t* q0, const uint8_t* q1, int k) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q0 + 32 * (k & 3)));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q1 + 32 * (k & 3)));
  const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  return _mm512_and_si512(k < 4 ? v : _mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
}
inline __m256i Nibbles8(const uint8_t* q, int k) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * (k & 3)));
  return _mm256_and_si256(k < 4 ? v : _mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));
}
struct VQ4_0 {
  static constexpr size_t kGroupBlock = 8 * 18;  // 16 bytes of f16 scales + 128 of quants
  static constexpr int32_t kBias = 8;
  static constexpr DType kDType = DType::kQ4_0R8;
  static __m512i Vec(const uint8_t* o0, const uint8_t* o1, int k) { return Nibbles16(o0 + 16, o1 + 16, k); }
  static __m256i Vec8(const uint8_t* o, int k) { return Nibbles8(o + 16, k); }
  static __m512 Scales16(const uint8_t* o0, const uint8_t* o1) { return F16Scales16(o0, o1); }
  static __m256 Scales8(const uint8_t* o) { return F16Scales8(o); }
};
// MXFP4_R8: the E2M1 values (doubled, as ggml's table) plus 12, unsigned, through a byte shuffle;
// the scales E8M0 bytes as GGML_E8M0_TO_FP32_HALF (2^(e - 128), subnormal below e = 2).
struct VMxfp4 {
  static constexpr size_t kGroupBlock = 8 * 17;  // 8 bytes of E8M0 scales + 128 of quants
  static constexpr int32_t kBias = 12;
  static constexpr DType kDType = DType::kMXFP4R8;
  static __m512i Lut() {
    return _mm512_broadcast_i32x4(_mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
  }
  static __m512i Vec(const uint8_t* o0, const uint8_t* o1, int k) {
    return _mm512_shuffle_epi8(Lut(), Nibbles16(o0 + 8, o1 + 8, k));
  }
  static __m256i Vec8(const uint8_t* o, int k) {
    return _mm256_shuffle_epi8(_mm512_castsi512_si256(Lut()), Nibbles8(o + 8, k));
  }
  static __m512 Scales16(const uint8_t* o0, const uint8_t* o1) {
    const __m128i e8 = _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(o0)),
                                          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(o1)));
    const __m512i e = _mm512_cvtepu8_epi32(e8);
    const __m512i big = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    const __m512i small = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(_mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(2)), big, small));
  }
  static __m256 Scales8(const uint8_t* o) {
    const __m256i e = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(o)));
    const __m256i big = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
    const __m256i small = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e);
    return _mm256_castsi256_ps(_mm256_mask_blend_epi32(_mm256_cmplt_epu32_mask(e, _mm256_set1_epi32(2)), big, small));
  }
};

using avx2::ActBlock;
using avx2::ActivationBlocks;

// Groups g (lanes 0-7) and g + 1 (lanes 8-15; `g1` points at it) × T tokens; `ab` holds the
// tokens' ActivationBlocks rows (ab[t * nb + b]).
template <typename W, int T>
void Tile16Q8_0(const uint8_t* g0, const uint8_t* g1, size_t nb, const uint8_t* xq, size_t xq_stride,
                const ActBlock* ab, float* y0, float* y1, size_t ldy, bool prefetch, size_t next) {
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* o0 = g0 + b * W::kGroupBlock;
    const uint8_t* o1 = g1 + b * W::kGroupBlock;
    if (prefetch) {
      PrefetchPair<W::kGroupBlock, kPrefetchAhead>(o0, o1);
      PrefetchNextPair<W::kGroupBlock>(o0, o1, next);
    }
    __m512i sum[T];
    for (int t = 0; t < T; ++t) sum[t] = _mm512_set1_epi32(ab[t * nb + b].off);
    for (int k = 0; k < 8; ++k) {
      const __m512i wu = W::Vec(o0, o1, k);
      for (int t = 0; t < T; ++t) {
        int32_t v;
        std::memcpy(&v, xq + t * xq_stride + b * kQ8_0Bytes + 2 + 4 * k, 4);
        sum[t] = _mm512_dpbusd_epi32(sum[t], wu, _mm512_set1_epi32(v));
      }
    }
    const __m512 dw = W::Scales16(o0, o1);
    for (int t = 0; t < T; ++t) {
      const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(ab[t * nb + b].d));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[t]), d, acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) StoreHalves(y0 + t * ldy, y1 + t * ldy, acc[t]);
}

// All tokens over one pair of groups, in balanced tiles of up to kT (avx2::BalancedTiles; for
// these tiles the split is within the noise of the kernel bench at 12 tokens, unlike the float
// tiles'); the first tile prefetches, later ones find the pair (2 × 17 KiB for 2048 inputs) in L1/L2.
template <typename W, int kT>
void Pair16Q8_0(const uint8_t* g0, const uint8_t* g1, size_t nb, const uint8_t* xq, size_t xq_stride,
                const ActBlock* ab, size_t n_tok, float* y0, float* y1, size_t ldy, bool prefetch, size_t next) {
  avx2::BalancedTiles<kT>(n_tok, [&](auto T, size_t t) {
    Tile16Q8_0<W, decltype(T)::value>(g0, g1, nb, xq + t * xq_stride, xq_stride, ab + t * nb, y0 + t * ldy,
                                   y1 + t * ldy, ldy, prefetch && t == 0, next);
  });
}

// One 8-row group × T tokens with 256-bit vpdpbusd (AVX-512 VL): the arithmetic of Tile16Q8_0 per
// lane, on one group, for 1-4 tokens (decode, small expert batches) without far pairs (off Intel):
// one sequential stream per thread streams faster there than the two of a pair of adjacent
// groups. Kernel bench (one AMD Zen 4 core, from DRAM, adjacent pair -> one group): 1 token
// 12-16 -> 20-22 GB/s, 2 tokens 13-14.5 -> 17-20; model A Q8_0 decode of 8 distinct sequences
// 36 -> 50 tok/s. On Intel the pairs are far ones (group p with p + half, two long streams per
// thread, QMatmulQ8_0R8Avx512) and beat one group at every token count (Xeon with AMX, one core
// from DRAM, gate/up 1024 × 2048, one group -> far pair: 1 token 14.6-15.0 -> 15.1-16.1 GB/s, 2
// 13.5-14.0 -> 15.1-15.8, 4 11.7 -> 15.7-16.2; down 2048 × 1024 4 tokens 11.9-12.1 -> 14.6-15.4);
// far pairs were not measured on Zen 4.
const size_t kOneGroupTokens = avx2::kFarPairs ? 0 : 4;

// At 4 tokens a group's tile is no longer bound by memory, and from DRAM it ran at ~55 % of its
// rate from cache on gate/up 1024 × 2048: so, where the in-stream prefetch is off, it prefetches the
// same block of the next group (`next` bytes ahead, 0: none; Groups8Q8_0 decides) into L2, as the
// pair tiles do (PrefetchNextPair). Kernel bench (one Zen 4 core, from DRAM, 4 tokens, alternated, 2 rounds):
// gate/up 1024 × 2048 122 / 115 -> 218 / 230 GFLOP/s, 768 × 2048 121 / 125 -> 205 / 215, down 2048 ×
// 768 174 / 167 -> 213 / 214, 2048 × 1024 level (213-222). At 1-2 tokens (bound by memory) it cost
// up to a third of the read rate, at 3 it was level: 4 only.
template <typename W, int T>
void Tile8Q8_0(const uint8_t* g, size_t nb, const uint8_t* xq, size_t xq_stride, const ActBlock* ab, float* y,
               size_t ldy, size_t next) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* o = g + b * W::kGroupBlock;
    if (avx2::kWeightPrefetch) {
      for (size_t c = 0; c < W::kGroupBlock; c += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(o + kPrefetchAhead + c), _MM_HINT_T0);
      }
    }
    PrefetchNext<W::kGroupBlock>(o, next);
    __m256i sum[T];
    for (int t = 0; t < T; ++t) sum[t] = _mm256_set1_epi32(ab[t * nb + b].off);
    for (int k = 0; k < 8; ++k) {
      const __m256i wu = W::Vec8(o, k);
      for (int t = 0; t < T; ++t) {
        int32_t v;
        std::memcpy(&v, xq + t * xq_stride + b * kQ8_0Bytes + 2 + 4 * k, 4);
        sum[t] = _mm256_dpbusd_epi32(sum[t], wu, _mm256_set1_epi32(v));
      }
    }
    const __m256 dw = W::Scales8(o);
    for (int t = 0; t < T; ++t) {
      const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(ab[t * nb + b].d));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[t]), d, acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

template <typename W, int T>
void Groups8Q8_0(const uint8_t* wb, size_t group_bytes, size_t nb, const uint8_t* xb, size_t xq_stride,
                 const ActBlock* ab, size_t n_rows, float* y, size_t ldy) {
  const bool next = T == 4 && !avx2::kWeightPrefetch;  // see Tile8Q8_0
  for (size_t r = 0; r < n_rows; r += 8) {
    Tile8Q8_0<W, T>(wb + (r / 8) * group_bytes, nb, xb, xq_stride, ab, y + r, ldy,
                    next && r + 8 < n_rows ? group_bytes : 0);
  }
}

template <typename W>
void QMatmulQ8_0R8Avx512(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                         size_t n_rows, float* y, size_t ldy) {
  constexpr int kT = 8;
  MOXIE_CHECK(n_rows % 8 == 0);  // the layout exists only in whole 8-row groups
  const size_t nb = n_in / 32;
  const size_t group_bytes = nb * W::kGroupBlock;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(xq);
  // Every (token, block)'s offset and scale; the buffer only grows, so steady-state calls do not
  // allocate.
  thread_local std::vector<ActBlock> ab;
  if (ab.size() < n_tok * nb) ab.resize(n_tok * nb);
  ActivationBlocks(xb, xq_stride, n_tok, nb, W::kBias, ab.data());
  if (n_tok <= kOneGroupTokens) {
    switch (n_tok) {
      case 1: Groups8Q8_0<W, 1>(wb, group_bytes, nb, xb, xq_stride, ab.data(), n_rows, y, ldy); return;
      case 2: Groups8Q8_0<W, 2>(wb, group_bytes, nb, xb, xq_stride, ab.data(), n_rows, y, ldy); return;
      case 3: Groups8Q8_0<W, 3>(wb, group_bytes, nb, xb, xq_stride, ab.data(), n_rows, y, ldy); return;
      case 4: Groups8Q8_0<W, 4>(wb, group_bytes, nb, xb, xq_stride, ab.data(), n_rows, y, ldy); return;
      default: break;
    }
  }
  // With far pairs group p goes with p + half: each thread reads its rows as two long sequential
  // streams (adjacent groups, one stream that jumps ahead after every pair -> far: Xeon with AMX,
  // one core from DRAM, down 2048 × 1024, 8 tokens 10.1-10.6 -> 13.8-13.9 GB/s, 12 tokens 8.1-8.3
  // -> 10.0-10.3).
  const size_t groups = n_rows / 8;
  avx2::ForGroupPairs(groups, [&](size_t a, size_t b) {
    Pair16Q8_0<W, kT>(wb + a * group_bytes, wb + b * group_bytes, nb, xb, xq_stride, ab.data(), n_tok, y + 8 * a,
                   y + 8 * b, ldy, true, PairNext(a, groups, group_bytes));
  });
  if (groups % 2 != 0) {  // a last lone group: the AVX2 kernel (the same bits)
    const size_t r = 8 * (groups - 1);
    Avx2KernelsImpl()->QMatmul(W::kDType)(xq, xq_stride, n_tok, wb + (r / 8) * group_bytes, n_in,
                                               n_rows - r, y + r, ldy);
  }
}

// ---------------------------------------------------------------------------------------------
// Q4_K_R8 / Q5_K_R8 (kFive) with Q8_K activations, two 8-row groups per 512-bit vector. Per
// 32-element sub-block, vpdpbusd sums a row's unsigned 4/5-bit values times the token's bytes
// into an exact int32 (|Σ| ≤ 32·31·127), which is multiplied by the row's 6-bit sub-block scale
// (vpmulld) and added up: the same integer as the AVX2 kernel's int16 partial sums and madd, so the
// same bits after the same f32 steps. Minimums as there: lane i of madd(mins pair, bsums pair).
constexpr size_t kQ8KBytes = kQ8KBlockBytes;  // f32 d @0, int8 qs[256] @4, int16 bsums[16] @260

inline __m512i Load2x256(const uint8_t* lo, const uint8_t* hi) {
  return _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi)), 1);
}
inline __m256i Load2x128(const uint8_t* lo, const uint8_t* hi) {
  return _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(hi)), 1);
}

template <int T, bool kFive>
void Tile16QxK(const uint8_t* g0, const uint8_t* g1, size_t nb, const uint8_t* xq, size_t xq_stride,
               float* y0, float* y1, size_t ldy, bool prefetch, size_t next) {
  constexpr size_t kGroupBlockK = 8 * (kFive ? 176 : 144);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i m1 = _mm512_set1_epi8(0x01);
  const __m512i m6p = _mm512_set1_epi32(0x003F003F), m4p = _mm512_set1_epi32(0x000F000F),
                m2p = _mm512_set1_epi32(0x00300030), lo16 = _mm512_set1_epi32(0xFFFF);
  // The f32 accumulators live in memory (L1): registers go to the T integer sums.
  alignas(64) float acc[T][16] = {}, macc[T][16] = {};
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* o0 = g0 + b * kGroupBlockK;
    const uint8_t* o1 = g1 + b * kGroupBlockK;
    if (prefetch) {
      PrefetchPair<kGroupBlockK, 2 * kGroupBlockK>(o0, o1);
      PrefetchNextPair<kGroupBlockK>(o0, o1, next);
    }
    // Words A, B, C of the scales and mins (DType::kQ4_KR8): lane i of scp[p] = sc_2p | sc_2p+1
    // << 16 of row i, of mnv[p] the same with the mins.
    const __m512i wa = Load2x256(o0 + 32, o1 + 32), wb = Load2x256(o0 + 64, o1 + 64),
                  wc = Load2x256(o0 + 96, o1 + 96);
    const __m512i scp[4] = {
        _mm512_and_si512(_mm512_srli_epi32(wa, 6), m6p), _mm512_and_si512(_mm512_srli_epi32(wb, 6), m6p),
        _mm512_and_si512(_mm512_srli_epi32(wc, 6), m6p),
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(wc, 12), m4p),
                        _mm512_and_si512(_mm512_srli_epi32(wb, 10), m2p))};
    __m512i sumi[T];
    for (int t = 0; t < T; ++t) sumi[t] = _mm512_setzero_si512();
    for (int s = 0; s < 8; ++s) {
      const uint8_t* u0 = o0 + 128 + 128 * s;
      const uint8_t* u1 = o1 + 128 + 128 * s;
      [[maybe_unused]] const __m512i hb =
          kFive ? Load2x256(o0 + 1152 + 32 * s, o1 + 1152 + 32 * s) : _mm512_setzero_si512();
      __m512i a32[T];
      for (int t = 0; t < T; ++t) a32[t] = _mm512_setzero_si512();
      for (int m = 0; m < 4; ++m) {
        const __m512i q = Load2x256(u0 + 32 * m, u1 + 32 * m);
        __m512i lo = _mm512_and_si512(q, m4);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
        if constexpr (kFive) {
          lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 2 * m), m1), 4));
          hi = _mm512_or_si512(hi, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(hb, 2 * m + 1), m1), 4));
        }
        for (int t = 0; t < T; ++t) {
          const uint8_t* xs = xq + t * xq_stride + b * kQ8KBytes + 4 + 32 * s + 4 * m;
          int32_t v0, v1;
          std::memcpy(&v0, xs, 4);
          std::memcpy(&v1, xs + 16, 4);
          a32[t] = _mm512_dpbusd_epi32(a32[t], lo, _mm512_set1_epi32(v0));
          a32[t] = _mm512_dpbusd_epi32(a32[t], hi, _mm512_set1_epi32(v1));
        }
      }
      // Row i's scale of sub-block s in lane i.
      const __m512i sc = s % 2 == 0 ? _mm512_and_si512(scp[s / 2], lo16) : _mm512_srli_epi32(scp[s / 2], 16);
      for (int t = 0; t < T; ++t) sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(a32[t], sc));
    }
    const __m512i mnv[4] = {
        _mm512_and_si512(wa, m6p), _mm512_and_si512(wb, m6p), _mm512_and_si512(wc, m6p),
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(wa, 12), m4p),
                        _mm512_and_si512(_mm512_srli_epi32(wb, 8), m2p))};
    const __m512 d16 = _mm512_cvtph_ps(Load2x128(o0, o1));
    const __m512 dm16 = _mm512_cvtph_ps(Load2x128(o0 + 16, o1 + 16));
    for (int t = 0; t < T; ++t) {
      const uint8_t* yb = xq + t * xq_stride + b * kQ8KBytes;
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb + 260));
      const __m128i bsub = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
      __m512i summ = _mm512_madd_epi16(mnv[0], _mm512_broadcastd_epi32(bsub));
      summ = _mm512_add_epi32(summ, _mm512_madd_epi16(mnv[1], _mm512_broadcastd_epi32(_mm_shuffle_epi32(bsub, 0x55))));
      summ = _mm512_add_epi32(summ, _mm512_madd_epi16(mnv[2], _mm512_broadcastd_epi32(_mm_shuffle_epi32(bsub, 0xAA))));
      summ = _mm512_add_epi32(summ, _mm512_madd_epi16(mnv[3], _mm512_broadcastd_epi32(_mm_shuffle_epi32(bsub, 0xFF))));
      const __m512 vdy = _mm512_set1_ps(LoadF32(yb));
      _mm512_store_ps(macc[t], _mm512_fnmadd_ps(_mm512_mul_ps(dm16, vdy), _mm512_cvtepi32_ps(summ),
                                                _mm512_load_ps(macc[t])));
      _mm512_store_ps(acc[t], _mm512_fmadd_ps(_mm512_mul_ps(d16, vdy), _mm512_cvtepi32_ps(sumi[t]),
                                              _mm512_load_ps(acc[t])));
    }
  }
  for (int t = 0; t < T; ++t) {
    StoreHalves(y0 + t * ldy, y1 + t * ldy, _mm512_add_ps(_mm512_load_ps(macc[t]), _mm512_load_ps(acc[t])));
  }
}

// One 8-row group × T tokens (1-4: decode, small expert batches), one sequential stream per
// thread as Tile8Q8_0 (a pair's two streams read slower from DRAM on AMD Zen 4), yet 512-bit
// vpdpbusd: the 64 bytes of chunks m, m + 1 of a sub-block (rows 0-7 each) are interleaved by
// one permute shared by all tokens (lanes 2i, 2i + 1 = row i's chunk m, m + 1), so a token's 8
// activation bytes for both chunks are one broadcast quadword. Lanes 2i and 2i + 1 are summed
// exactly at the end of the block: the same integers as Tile16QxK and the AVX2 kernel, the same
// f32 steps, the same bits.
template <int T, bool kFive>
void Tile8QxK(const uint8_t* g, size_t nb, const uint8_t* xq, size_t xq_stride, float* y, size_t ldy) {
  constexpr size_t kGroupBlockK = 8 * (kFive ? 176 : 144);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i m1 = _mm512_set1_epi8(0x01);
  const __m512i inter = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m256i lo16 = _mm256_set1_epi32(0xFFFF);
  // Word w (128-bit lane k = w / 8, dword j = w % 8 / 2) of the Q4_K scales: word 2·row + (j >> 1)
  // of scp[p] (row 2k + (j & 1); its scale of sub-block 2p + (j >> 1)).
  alignas(64) static constexpr int16_t kScIdx[32] = {0, 0, 2,  2,  1, 1, 3,  3,  4,  4,  6,  6,  5,  5,  7,  7,
                                                     8, 8, 10, 10, 9, 9, 11, 11, 12, 12, 14, 14, 13, 13, 15, 15};
  const __m512i scidx = _mm512_load_si512(kScIdx);
  const __m512i rowidx = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 0, 1, 4, 5, 8, 9, 12, 13);
  __m256 acc[T], macc[T];
  for (int t = 0; t < T; ++t) acc[t] = macc[t] = _mm256_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* o = g + b * kGroupBlockK;
    if (avx2::kWeightPrefetch) {
      for (size_t c = 0; c < kGroupBlockK; c += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(o + 2 * kGroupBlockK + c), _MM_HINT_T0);
      }
    }
    const __m256i wa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + 32));
    const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + 64));
    const __m256i wc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + 96));
    __m256i scp[4];
    avx2::ScalesK4R8(wa, wb, wc, scp);
    // Parts of row i's block sum: Q5_K lanes 2i, 2i + 1; Q4_K dwords j, j + 2 of 128-bit lane k for
    // row 2k + j (j < 2).
    __m512i sumi[T];
    for (int t = 0; t < T; ++t) sumi[t] = _mm512_setzero_si512();
    for (int s2 = 0; s2 < 8; s2 += 2) {
      __m512i a32s[2][T];  // sub-blocks s2, s2 + 1
      for (int s = s2; s < s2 + 2; ++s) {
        const uint8_t* u = o + 128 + 128 * s;
        [[maybe_unused]] const __m512i hb =
            kFive ? _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + 1152 + 32 * s)))
                  : _mm512_setzero_si512();
        __m512i* a32 = a32s[s - s2];
        for (int t = 0; t < T; ++t) a32[t] = _mm512_setzero_si512();
        for (int m = 0; m < 4; m += 2) {
          const __m512i q = _mm512_loadu_si512(u + 32 * m);  // chunk m in lanes 0-7, m + 1 in 8-15
          // Q4_K: interleave before splitting the nibbles (one permute; the masks and the 16-bit shift
          // act within dwords, so they commute with a dword permute).
          const __m512i qi = kFive ? q : _mm512_permutexvar_epi32(inter, q);
          __m512i lo = _mm512_and_si512(qi, m4);
          __m512i hi = _mm512_and_si512(_mm512_srli_epi16(qi, 4), m4);
          if constexpr (kFive) {  // fifth bits 2m, 2m + 1 of chunk m; 2m + 2, 2m + 3 of chunk m + 1
            const __m512i cnt = _mm512_inserti64x4(_mm512_set1_epi16(static_cast<short>(2 * m)),
                                                   _mm256_set1_epi16(static_cast<short>(2 * m + 2)), 1);
            lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, cnt), m1), 4));
            const __m512i cnt1 = _mm512_add_epi16(cnt, _mm512_set1_epi16(1));
            hi = _mm512_or_si512(hi, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, cnt1), m1), 4));
            lo = _mm512_permutexvar_epi32(inter, lo);
            hi = _mm512_permutexvar_epi32(inter, hi);
          }
          for (int t = 0; t < T; ++t) {
            const uint8_t* xs = xq + t * xq_stride + b * kQ8KBytes + 4 + 32 * s + 4 * m;
            int64_t v0, v1;  // the token's bytes of chunks m and m + 1
            std::memcpy(&v0, xs, 8);
            std::memcpy(&v1, xs + 16, 8);
            a32[t] = _mm512_dpbusd_epi32(a32[t], lo, _mm512_set1_epi64(v0));
            a32[t] = _mm512_dpbusd_epi32(a32[t], hi, _mm512_set1_epi64(v1));
          }
        }
        if constexpr (kFive) {
          // Row i's scale of sub-block s in lanes 2i and 2i + 1.
          const __m256i sc8 = s % 2 == 0 ? _mm256_and_si256(scp[s / 2], lo16) : _mm256_srli_epi32(scp[s / 2], 16);
          const __m512i sc = _mm512_permutexvar_epi32(dup, _mm512_castsi256_si512(sc8));
          for (int t = 0; t < T; ++t) sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(a32[t], sc));
        }
      }
      if constexpr (!kFive) {
        // Q4_K: a lane's sum has 16 products of a 4-bit value and an int8 (|Σ| <= 16·15·128 < 2^15),
        // so both sub-blocks' sums pack into int16 exactly, and vpdpwssd applies the scales and
        // accumulates: 128-bit lane k holds words (row 2k, 2k, row 2k + 1, 2k + 1) of sub-block s2,
        // then the same of s2 + 1; dword j of the sum is row 2k + (j & 1) of sub-block s2 + (j >> 1),
        // both words times that scale (scw). The same integers as the vpmulld form.
        const __m512i scw = _mm512_permutexvar_epi16(scidx, _mm512_castsi256_si512(scp[s2 / 2]));
        for (int t = 0; t < T; ++t) {
          sumi[t] = _mm512_dpwssd_epi32(sumi[t], _mm512_packs_epi32(a32s[0][t], a32s[1][t]), scw);
        }
      }
    }
    __m256i mnv[4];
    avx2::MinsK4R8(wa, wb, wc, mnv);
    const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o)));
    const __m256 dm8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o + 16)));
    for (int t = 0; t < T; ++t) {
      // Row i's block sum: lane 2i + lane 2i + 1 (the low dword of each quadword after the add);
      // Q4_K: dwords j and j + 2 of each 128-bit lane (rows 2k, 2k + 1 in dwords 0, 1 after the add).
      const __m256i rows =
          kFive ? _mm512_cvtepi64_epi32(_mm512_add_epi32(sumi[t], _mm512_srli_epi64(sumi[t], 32)))
                : _mm512_castsi512_si256(_mm512_permutexvar_epi32(
                      rowidx, _mm512_add_epi32(sumi[t], _mm512_shuffle_epi32(sumi[t], _MM_PERM_BADC))));
      const uint8_t* yb = xq + t * xq_stride + b * kQ8KBytes;
      const __m256i summ = avx2::MinsDotK4R8(mnv, yb);
      const __m256 vdy = _mm256_set1_ps(LoadF32(yb));
      macc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dm8, vdy), _mm256_cvtepi32_ps(summ), macc[t]);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d8, vdy), _mm256_cvtepi32_ps(rows), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + t * ldy, _mm256_add_ps(macc[t], acc[t]));
}

// Pairs of 8-row groups of an R8 layout K (K::Tile<T>(g0, g1, ...)) over all tokens, in balanced
// tiles of up to kT; a last lone group goes to the AVX2 kernel (the same bits).
template <typename K, int kT>
void Pair16(const uint8_t* g0, const uint8_t* g1, size_t nb, const uint8_t* xq, size_t xq_stride,
            size_t n_tok, float* y0, float* y1, size_t ldy, bool prefetch, size_t next) {
  avx2::BalancedTiles<kT>(n_tok, [&](auto T, size_t t) {
    K::template Tile<decltype(T)::value>(g0, g1, nb, xq + t * xq_stride, xq_stride, y0 + t * ldy, y1 + t * ldy,
                                         ldy, prefetch && t == 0, next);
  });
}

template <typename K>
void QMatmulR16(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                size_t n_rows, float* y, size_t ldy) {
  MOXIE_CHECK(n_rows % 8 == 0);  // the layouts exist only in whole 8-row groups
  // Off Intel (kOneGroupTokens), 1-4 tokens read each weight once from memory, and one stream per
  // 8-row group beats an adjacent pair's two on AMD Zen 4 (one core, from DRAM, 1 token: Q4_K_R8
  // 7-10 -> 18 GB/s, Q6_K_R8 7-8.5 -> 20; 4 tokens: 8.4 -> 9.6 and 6.3 -> 11; model A Q4_K_M decode
  // 17-24 -> 34-38 tok/s): Tile8QxK for Q4_K/Q5_K (against the AVX2 kernel, one Zen 4 core, from
  // cache: 4 tokens 10.5-11 -> 15-16.5 GB/s of weights; model A Q4_K_M aggregate decode of 4 / 8
  // distinct sequences, alternated: 53 / 67 -> 61-66 / 80-88 tok/s), the AVX2 kernel for Q6_K. On
  // the Xeon far pairs win from 1 token (one core, from DRAM, 768 × 2048, one group -> far pair:
  // Q4_K_R8 1 / 2 / 4 tokens 14.2-15.1 -> 16.7-16.9, 12.9-13.3 -> 16.9, 11.2-11.4 -> 14.3-14.5 GB/s;
  // Q6_K_R8 (the AVX2 kernel before) 14.7-15.0 -> 16.4-17.2, 12.9-13.0 -> 16.0-16.3, 10.0-10.2 ->
  // 11.2-13.3). Same bits either way.
  const size_t nb = n_in / K::kBlock;
  const size_t group_bytes = nb * 8 * K::kBytes;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(xq);
  if (n_tok <= kOneGroupTokens) {
    if constexpr (K::kHasTile8) {
      auto groups = [&](auto T) {
        for (size_t r = 0; r < n_rows; r += 8) {
          K::template Tile8<decltype(T)::value>(wb + (r / 8) * group_bytes, nb, xb, xq_stride, y + r, ldy);
        }
      };
      avx2::WithTile<4>(n_tok, groups);
    } else {
      Avx2KernelsImpl()->QMatmul(K::kDType)(xq, xq_stride, n_tok, w, n_in, n_rows, y, ldy);
    }
    return;
  }
  // Pairs as QMatmulQ8_0R8Avx512's (far ones: group p with p + half, two long streams per thread;
  // adjacent pairs -> far pairs, as above: Q4_K_R8 6 / 8 tokens 8.3-8.6 -> 11.7-11.9, 7.5 -> 9.8-9.9
  // GB/s; Q6_K_R8 9.2-9.3 -> 11.2-11.3, 7.8-8.0 -> 9.6-9.9).
  const size_t groups = n_rows / 8;
  avx2::ForGroupPairs(groups, [&](size_t a, size_t b) {
    Pair16<K, K::kT>(wb + a * group_bytes, wb + b * group_bytes, nb, xb, xq_stride, n_tok, y + 8 * a, y + 8 * b,
                     ldy, true, PairNext(a, groups, group_bytes));
  });
  if (groups % 2 != 0) {
    const size_t r = 8 * (groups - 1);
    Avx2KernelsImpl()->QMatmul(K::kDType)(xq, xq_stride, n_tok, wb + (r / 8) * group_bytes, n_in,
                                          n_rows - r, y + r, ldy);
  }
}

template <bool kFive>
struct QxKR16 {
  static constexpr size_t kBlock = 256, kBytes = kFive ? 176 : 144;
  static constexpr int kT = 8;
  static constexpr DType kDType = kFive ? DType::kQ5_KR8 : DType::kQ4_KR8;
  template <int T>
  static void Tile(const uint8_t* g0, const uint8_t* g1, size_t nb, const uint8_t* xq, size_t s,
                   float* y0, float* y1, size_t l, bool pf, size_t next) {
    Tile16QxK<T, kFive>(g0, g1, nb, xq, s, y0, y1, l, pf, next);
  }
  static constexpr bool kHasTile8 = true;
  template <int T>
  static void Tile8(const uint8_t* g, size_t nb, const uint8_t* xq, size_t s, float* y, size_t l) {
    Tile8QxK<T, kFive>(g, nb, xq, s, y, l);
  }
};

// ---------------------------------------------------------------------------------------------
// Q6_K_R8 (DType::kQ6_KR8) with Q8_K activations, two 8-row groups per 512-bit vector: the AVX2
// kernel's arithmetic (two maddubs of unsigned 6-bit values add up in int16, |Σ| ≤ 2·2·63·127),
// with vpdpwssd applying the row's group scale and accumulating in one instruction. (vpdpbusd per
// group times the scale by vpmulld was slower: 4 dot products per multiply, which runs on one
// port.) The −32 offset is 32·Σ_g scale_g·bsum_g per block; same integers, same f32 steps.
constexpr size_t kQ6KGroupBlock = 8 * 210;

template <int T>
void Tile16Q6K(const uint8_t* g0, const uint8_t* g1, size_t nb, const uint8_t* xq, size_t xq_stride,
               float* y0, float* y1, size_t ldy, bool prefetch, size_t next) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i m48 = _mm512_set1_epi8(0x30);
  const __m512i m63 = _mm512_set1_epi8(0x3F);
  const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  alignas(64) float acc[T][16] = {};  // in L1: registers go to the T integer sums
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* o0 = g0 + b * kQ6KGroupBlock;
    const uint8_t* o1 = g1 + b * kQ6KGroupBlock;
    if (prefetch) {
      PrefetchPair<kQ6KGroupBlock, kQ6KGroupBlock>(o0, o1);
      PrefetchNextPair<kQ6KGroupBlock>(o0, o1, next);
    }
    const uint8_t* sc0 = o0 + 16;  // int8, byte 8g + i: scale of group g of row i
    const uint8_t* sc1 = o1 + 16;
    __m512i sumi[T];
    for (int t = 0; t < T; ++t) sumi[t] = _mm512_setzero_si512();
    for (int gr = 0; gr < 16; ++gr) {
      const __m512i v0 = Load2x256(o0 + 144 + 96 * gr, o1 + 144 + 96 * gr);
      const __m512i v1 = Load2x256(o0 + 176 + 96 * gr, o1 + 176 + 96 * gr);
      const __m512i v2 = Load2x256(o0 + 208 + 96 * gr, o1 + 208 + 96 * gr);
      // Unit m: elements 16gr + 4m + e of row i in bytes 4i + e (layout in core/dtype.h).
      const __m512i u0 = _mm512_and_si512(v0, m63);
      const __m512i u2 = _mm512_and_si512(v1, m63);
      const __m512i u1 = _mm512_or_si512(_mm512_and_si512(v2, m4),
                                         _mm512_and_si512(_mm512_srli_epi16(v0, 2), m48));
      const __m512i u3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v2, 4), m4),
                                         _mm512_and_si512(_mm512_srli_epi16(v1, 2), m48));
      // Row i's scale of group gr in lane i.
      const __m512i scv = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc0 + 8 * gr)), dup)),
          _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc1 + 8 * gr)), dup), 1));
      for (int t = 0; t < T; ++t) {
        const uint8_t* xs = xq + t * xq_stride + b * kQ8KBytes + 4 + 16 * gr;
        int32_t v[4];
        std::memcpy(v, xs, 16);
        const __m512i p01 = _mm512_add_epi16(_mm512_maddubs_epi16(u0, _mm512_set1_epi32(v[0])),
                                             _mm512_maddubs_epi16(u1, _mm512_set1_epi32(v[1])));
        const __m512i p23 = _mm512_add_epi16(_mm512_maddubs_epi16(u2, _mm512_set1_epi32(v[2])),
                                             _mm512_maddubs_epi16(u3, _mm512_set1_epi32(v[3])));
        sumi[t] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(sumi[t], p01, scv), p23, scv);
      }
    }
    // Lane i of scp[p] = (scale of group 2p, of group 2p + 1) of row i, as int16.
    __m512i scp[8];
    for (int p = 0; p < 8; ++p) {
      auto pair = [&](const uint8_t* sc) {
        return _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc + 16 * p)),
                                 _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc + 16 * p + 8)));
      };
      scp[p] = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(_mm256_castsi128_si256(pair(sc0)), pair(sc1), 1));
    }
    const __m512 d16 = _mm512_cvtph_ps(Load2x128(o0, o1));
    for (int t = 0; t < T; ++t) {
      const uint8_t* yb = xq + t * xq_stride + b * kQ8KBytes;
      int32_t bs[8];  // int16 pairs of bsums
      std::memcpy(bs, yb + 260, 32);
      __m512i off = _mm512_madd_epi16(scp[0], _mm512_set1_epi32(bs[0]));
      for (int p = 1; p < 8; ++p) off = _mm512_add_epi32(off, _mm512_madd_epi16(scp[p], _mm512_set1_epi32(bs[p])));
      const __m512i sv = _mm512_sub_epi32(sumi[t], _mm512_slli_epi32(off, 5));
      _mm512_store_ps(acc[t], _mm512_fmadd_ps(_mm512_mul_ps(d16, _mm512_set1_ps(LoadF32(yb))),
                                              _mm512_cvtepi32_ps(sv), _mm512_load_ps(acc[t])));
    }
  }
  for (int t = 0; t < T; ++t) StoreHalves(y0 + t * ldy, y1 + t * ldy, _mm512_load_ps(acc[t]));
}

struct Q6KR16 {
  static constexpr size_t kBlock = 256, kBytes = 210;
  static constexpr int kT = 8;
  static constexpr DType kDType = DType::kQ6_KR8;
  template <int T>
  static void Tile(const uint8_t* g0, const uint8_t* g1, size_t nb, const uint8_t* xq, size_t s,
                   float* y0, float* y1, size_t l, bool pf, size_t next) {
    Tile16Q6K<T>(g0, g1, nb, xq, s, y0, y1, l, pf, next);
  }
  // 1-4 tokens: the AVX2 kernel. A one-group 512-bit form (units m, m + 1 interleaved as in Tile8QxK)
  // was slower: building the interleaved units costs more than the maddubs it saves (one Zen 4
  // core, from cache, 1 / 2 tokens: 41-43 -> 58-62 / 63 -> 76-79 us per 1024x2048).
  static constexpr bool kHasTile8 = false;
};

}  // namespace

const KernelTable* Avx512KernelsImpl() {
  static const KernelTable table = [] {
    KernelTable t = *Avx2KernelsImpl();
    t.isa = "avx512";
    AddFloatMatmulsAvx512(&t);
    AddAttentionAvx512(&t);
    t.SetQ(DType::kQ8_0R8, t.QuantizeAct(DType::kQ8_0R8), QMatmulQ8_0R8Avx512<VQ8_0>);
    t.SetQ(DType::kQ4_0R8, t.QuantizeAct(DType::kQ4_0R8), QMatmulQ8_0R8Avx512<VQ4_0>);
    t.SetQ(DType::kMXFP4R8, t.QuantizeAct(DType::kMXFP4R8), QMatmulQ8_0R8Avx512<VMxfp4>);
    t.SetQ(DType::kQ4_KR8, t.QuantizeAct(DType::kQ4_KR8), QMatmulR16<QxKR16<false>>);
    t.SetQ(DType::kQ5_KR8, t.QuantizeAct(DType::kQ5_KR8), QMatmulR16<QxKR16<true>>);
    t.SetQ(DType::kQ6_KR8, t.QuantizeAct(DType::kQ6_KR8), QMatmulR16<Q6KR16>);
    // libgcc's CPU model checks the OS state as for the rest of AVX-512.
    if (__builtin_cpu_supports("avx512bf16")) AddBf16ActMatmulsAvx512(&t);
    return t;
  }();
  return &table;
}

}  // namespace moxie
