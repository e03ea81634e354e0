// Helpers shared by the AVX2 translation units (included only by files built with -mavx2). The
// functions are static: each unit keeps its own copy, compiled for its own ISA flags (an inline
// function left out of line would be one COMDAT copy for all units, maybe the AVX-512 one).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace moxie::avx2 {

// Software prefetch of weight streams in the kernels (the quantized kernels' blocks ahead of the
// first pass, the AVX-512 float kernels' lines): off on AMD CPUs with AVX-512, on elsewhere. On the
// Xeon it lifted BF16 decode 87 -> 99 % of the roofline; on AMD Zen 4 (AVX-512 kernels) the hardware
// prefetcher alone streams faster (kernel bench, one core, one token from DRAM: BF16 8-9 -> 13-14 GB/s,
// Q8_0_R8 12-21 -> 17-24; 3 alternated pairs each: Qwen3-30B-A3B-shape Q4_K decode 14.4-17.3 ->
// 16.8-18.6 tok/s, model A Q8_0 decode 16-24 -> 24-25, 8 sequences 45-46 -> 47-54; prefill 512
// unchanged); on AMD Zen 3 (AVX2 kernels) it helps the quantized kernels again, so it is off on
// AMD CPUs with AVX-512 only (matmul_avx2.cc's NotAmdAvx512; the AVX2 row-major float mat-vec has
// its own, Intel-only switch). MOXIE_WEIGHT_PREFETCH=0|1 (or its older name MOXIE_ROW_PREFETCH)
// overrides, for measuring a new CPU. Prefetching changes no result. Decided once (matmul_avx2.cc).
bool WeightPrefetchWanted();
inline const bool kWeightPrefetch = WeightPrefetchWanted();

// Far pairs: the AVX-512 kernels that read two 8-row (R8) or 16-row (BF16_R16) groups at once pair
// group p with p + half of the rows they were given, so a thread reads its rows as two long
// sequential streams, and do so from 1 token (else: adjacent groups, one group for 1-4 tokens, which
// AMD Zen 4 streamed faster). On for Intel CPUs, where two streams read faster than one (Xeon with
// AMX, one core from DRAM, 1-4 tokens: Q4_K_R8 +13-29 %, Q8_0_R8 up to +35 %, BF16_R16 2-4 tokens
// +19-38 %; the kernels' comments give the figures), and for AMD without AVX-512 (Zen 3, AVX2
// kernels: model A Q8_0 decode +10-20 %, matmul_avx2.cc); off on AMD with AVX-512. MOXIE_FAR_PAIRS=0|1
// overrides. Changes no result (a row's arithmetic does not depend on its partner).
bool FarPairsWanted();
inline const bool kFarPairs = FarPairsWanted();

// A software prefetch (T0) that the optimizer keeps. GCC 12 models __builtin_prefetch as free of
// side effects, so its IPA pure-const pass marked small helpers whose only effect is prefetching
// (qmatmul_avx2.cc's PrefetchAhead, qmatmul_avx512.cc's PrefetchPair) as pure and deleted every
// call: those kernels' weight prefetches were compiled out (0 of 192 prefetch instructions left in
// qmatmul_avx2.o; -fno-ipa-pure-const brought them back). A volatile asm stays where it is written.
static inline void PrefetchT0(const void* p) {
  __asm__ volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
}
// The same into L2 (prefetcht1).
static inline void PrefetchT1(const void* p) {
  __asm__ volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
}

// Fixed-order horizontal sum of 8 floats (the one reduction of every accumulator, so results do
// not depend on how rows or tokens were grouped).
static inline float HSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  const __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehdup_ps(lo);
  lo = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, lo);
  lo = _mm_add_ss(lo, sh);
  return _mm_cvtss_f32(lo);
}

// Lane i = HSum(v[i]) bit for bit (the same tree: lanes j and j + 4 added, then pairs, then the two
// pair sums), for 8 accumulators at once: 8 lane permutes, 4 adds and 3 horizontal adds instead
// of 8 x 6 operations.
static inline __m256 HSum8(__m256 v0, __m256 v1, __m256 v2, __m256 v3, __m256 v4, __m256 v5, __m256 v6, __m256 v7) {
  // [lanes 0-3 + lanes 4-7 of a | the same of b]
  const __m256 x04 = _mm256_add_ps(_mm256_permute2f128_ps(v0, v4, 0x20), _mm256_permute2f128_ps(v0, v4, 0x31));
  const __m256 x15 = _mm256_add_ps(_mm256_permute2f128_ps(v1, v5, 0x20), _mm256_permute2f128_ps(v1, v5, 0x31));
  const __m256 x26 = _mm256_add_ps(_mm256_permute2f128_ps(v2, v6, 0x20), _mm256_permute2f128_ps(v2, v6, 0x31));
  const __m256 x37 = _mm256_add_ps(_mm256_permute2f128_ps(v3, v7, 0x20), _mm256_permute2f128_ps(v3, v7, 0x31));
  return _mm256_hadd_ps(_mm256_hadd_ps(x04, x15), _mm256_hadd_ps(x26, x37));
}

// Maximum of 8 floats.
static inline float HMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// Scalars at unaligned byte addresses (f16 widened exactly by F16C).
static inline float LoadF16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
static inline float LoadF32(const uint8_t* p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}

// Per (token, block) of Q8_0 activations (34-byte blocks: f16 scale, 32 int8): the start of the
// block's integer sums for weights stored unsigned with a bias, -bias x (the sum of the 32
// activation bytes; 0 for signed weights, bias 0), and the block's scale as f32. The AVX2 and
// AVX-512 R8 kernels compute these once per call instead of per row group.
struct ActBlock {
  int32_t off;
  float d;
};
static inline void ActivationBlocks(const uint8_t* xq, size_t xq_stride, size_t n_tok, size_t nb, int32_t bias,
                                    ActBlock* out) {
  constexpr size_t kBlockBytes = 34;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (size_t t = 0; t < n_tok; ++t) {
    for (size_t b = 0; b < nb; ++b) {
      const uint8_t* q = xq + t * xq_stride + b * kBlockBytes + 2;
      int64_t sum = 0;
      if (bias != 0) {  // sum (x + 128) by sums of absolute differences against 0, then - 32 x 128
        const __m256i v = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)), flip);
        const __m256i s = _mm256_sad_epu8(v, _mm256_setzero_si256());
        const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        sum = _mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1) - 32 * 128;
      }
      out[t * nb + b] = {static_cast<int32_t>(-bias * sum), LoadF16(q - 2)};
    }
  }
}

// x rows (ldx apart) into out (n apart) in the float kernels' lane order: each 16-element chunk
// as [0..3, 8..11, 4..7, 12..15], the last n % 16 elements as they are.
static inline void PermuteX16(const float* x, size_t ldx, size_t n_tok, size_t n, float* out) {
  for (size_t t = 0; t < n_tok; ++t) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const float* s = x + t * ldx + i;
      float* d = out + t * n + i;
      std::memcpy(d, s, 16);
      std::memcpy(d + 4, s + 8, 16);
      std::memcpy(d + 8, s + 4, 16);
      std::memcpy(d + 12, s + 12, 16);
    }
    for (; i < n; ++i) out[t * n + i] = x[t * ldx + i];
  }
}

// f(std::integral_constant<int, T>{}) for the run-time tile height T in [1, kT].
template <int kT, typename F>
static inline void WithTile(size_t T, F&& f) {
  if (T == static_cast<size_t>(kT)) {
    f(std::integral_constant<int, kT>{});
    return;
  }
  if constexpr (kT > 1) WithTile<kT - 1>(T, f);
}

// Covers tokens [0, n) with ceil(n / kMax) tiles of balanced sizes (9 tokens, kMax 8: 5 + 4, not
// 8 + 1, so each weight load serves more tokens), calling f(std::integral_constant<int, T>{}, t)
// for the tile [t, t + T). A (row, token) result never depends on its tile, so neither do the bits.
template <int kMax, typename F>
static inline void BalancedTiles(size_t n, F&& f) {
  const size_t tiles = (n + kMax - 1) / kMax;
  size_t t = 0;
  for (size_t i = 0; i < tiles; ++i) {
    const size_t T = n / tiles + (i < n % tiles ? 1 : 0);
    WithTile<kMax>(T, [&](auto c) { f(c, t); });
    t += T;
  }
}

// The BF16_R16 kernels' order (matmul_avx512.cc, bf16_avx512.cc; DType::kBF16R16): pair(p, c) for
// the input pairs p < n in order, into chain c = p % 2 (a last odd pair into chain 0), c as a
// std::integral_constant so that each chain keeps its own registers.
template <typename F>
static inline void PairsTwoChains(size_t n, F&& pair) {
  size_t p = 0;
  for (; p + 2 <= n; p += 2) {
    pair(p, std::integral_constant<int, 0>{});
    pair(p + 1, std::integral_constant<int, 1>{});
  }
  if (p < n) pair(p, std::integral_constant<int, 0>{});
}

// Pairs of row groups for the kernels that read two at once: (p, p + half) with far pairs
// (kFarPairs), else (2p, 2p + 1); f(first group, second group) for each pair. A last lone group
// (an odd count: group groups - 1 either way) is left to the caller.
template <typename F>
static inline void ForGroupPairs(size_t groups, F&& f) {
  const size_t half = groups / 2;
  for (size_t p = 0; p < half; ++p) {
    if (kFarPairs) {
      f(p, p + half);
    } else {
      f(2 * p, 2 * p + 1);
    }
  }
}

// From this many tokens, a group's first tile streams it with the in-stream prefetch (the kernels'
// kPf) even where kWeightPrefetch is off, when the group has no later tiles to spread the next
// group over (R16Tiles): at 4-8 tokens the tile computes long enough per line that the hardware
// prefetcher alone leaves it waiting. Kernel bench, one Zen 4 core from DRAM: BF16_R16 bf16
// activations 4 / 8 tokens 86-103 / 105-140 -> 110-114 / 157-168 GFLOP/s, f32 activations 54-59 /
// 72-75 -> 71-77 / 101-103; at 1-2 tokens (decode) it read level or up to 10 % slower, so not there.
// Model A BF16 with 8 identical sequences (bf16 activations, three alternated pairs, the same host
// mode): 78-83 -> 98 tok/s.
constexpr size_t kR16PrefetchTokens = 4;

// tile(std::integral_constant<int, T>{}, t, r, next, shift) for each 16-row group r < n_rows of a
// BF16_R16 / F16_R16 weight w (groups of group_bytes, a 64-byte line per input pair) against tokens
// [t, t + T), in balanced tiles of up to kMaxTok. With next == nullptr the tile t == 0 streams the
// group from memory and the later ones find it in L2. Where kWeightPrefetch is off (the first tile's
// in-stream prefetch is the Intel path) and a group has 2+ tiles, its tiles also stream the next
// group into L2 between them: each prefetches one line of `next` every 2^shift pairs, tile i of n
// from line i·lines/n, 2^shift the largest power of two <= n, so together they cover it (the last
// group: nullptr). Before, the first tile of a group read it from DRAM alone, its 8 tokens too few
// to hide the reads (64 KiB is too short for the hardware prefetcher to ramp up): kernel bench, one
// Zen 4 core from DRAM, BF16_R16 bf16 activations 32 tokens 179-195 -> 216-224 GFLOP/s (225-229 from
// cache), f32 activations 16 tokens 83-89 -> 111-112 (113-116).
template <int kMaxTok, typename F>
static inline void R16Tiles(const uint8_t* w, size_t group_bytes, size_t n_rows, size_t n_tok, F&& tile) {
  const size_t tiles = (n_tok + kMaxTok - 1) / kMaxTok, lines = group_bytes / 64;
  const bool spread = !kWeightPrefetch && tiles >= 2;
  const int shift = std::bit_width(tiles) - 1;
  for (size_t r = 0; r + 16 <= n_rows; r += 16) {
    const uint8_t* next = spread && r + 32 <= n_rows ? w + (r / 16 + 1) * group_bytes : nullptr;
    size_t i = 0;
    BalancedTiles<kMaxTok>(n_tok, [&](auto T, size_t t) {
      tile(T, t, r, next != nullptr ? next + 64 * (i * lines / tiles) : nullptr, shift);
      ++i;
    });
  }
}

// Q4_K_R8 / Q5_K_R8 group blocks (DType::kQ4_KR8): the 6-bit scales and mins of the 8 rows in the
// words A, B, C at bytes 32, 64, 96. ScalesK4R8: lane i of sc[p] = scale 2p | scale 2p + 1 << 16 of
// row i; MinsK4R8: the same with the mins (registers only: a byte table stored and re-read per block
// cost ~10 % at one token, store forwarding).
static inline void ScalesK4R8(__m256i wa, __m256i wb, __m256i wc, __m256i sc[4]) {
  const __m256i m6p = _mm256_set1_epi32(0x003F003F), m4p = _mm256_set1_epi32(0x000F000F),
                m2p = _mm256_set1_epi32(0x00300030);
  sc[0] = _mm256_and_si256(_mm256_srli_epi32(wa, 6), m6p);
  sc[1] = _mm256_and_si256(_mm256_srli_epi32(wb, 6), m6p);
  sc[2] = _mm256_and_si256(_mm256_srli_epi32(wc, 6), m6p);
  sc[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(wc, 12), m4p),
                          _mm256_and_si256(_mm256_srli_epi32(wb, 10), m2p));
}
static inline void MinsK4R8(__m256i wa, __m256i wb, __m256i wc, __m256i mn[4]) {
  const __m256i m6p = _mm256_set1_epi32(0x003F003F), m4p = _mm256_set1_epi32(0x000F000F),
                m2p = _mm256_set1_epi32(0x00300030);
  mn[0] = _mm256_and_si256(wa, m6p);
  mn[1] = _mm256_and_si256(wb, m6p);
  mn[2] = _mm256_and_si256(wc, m6p);
  mn[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(wa, 12), m4p),
                          _mm256_and_si256(_mm256_srli_epi32(wb, 8), m2p));
}
// Lane i: Σ_s mn_s · B_s of row i, B_s = the token's sum over sub-block s (two int16 bsums of its
// Q8_K block yb, at byte 260): madd(mn[p], (B_2p, B_2p+1)) summed over p. Exact.
static inline __m256i MinsDotK4R8(const __m256i mn[4], const uint8_t* yb) {
  const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb + 260));
  const __m128i bsub = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
  __m256i summ = _mm256_madd_epi16(mn[0], _mm256_broadcastd_epi32(bsub));
  summ = _mm256_add_epi32(summ, _mm256_madd_epi16(mn[1], _mm256_broadcastd_epi32(_mm_shuffle_epi32(bsub, 0x55))));
  summ = _mm256_add_epi32(summ, _mm256_madd_epi16(mn[2], _mm256_broadcastd_epi32(_mm_shuffle_epi32(bsub, 0xAA))));
  return _mm256_add_epi32(summ, _mm256_madd_epi16(mn[3], _mm256_broadcastd_epi32(_mm_shuffle_epi32(bsub, 0xFF))));
}

// Weight rows shorter than a 4 KiB page (model A's expert down projections: 1024 inputs, a 2 KiB
// BF16 row): a tile over rows r, r + 1, ... puts two or more weight streams in one page, and AMD
// Zen 4 streams those at 55-65 % of the rate of one stream per page (kernel bench, one core, from
// DRAM, one token, BF16 2048 x 1024 vs 1024 x 2048: 8.7-10.4 vs 14-18 GB/s). SpreadTiles covers
// rows [0, returned) with tiles of kRows rows S = 4096 / row_bytes (at most 4) apart, S tiles per
// kRows·S consecutive rows: tile(first, S, yt) computes rows first + S·k (k < kRows) for the n_tok
// (<= kMaxTok) tokens into yt[t * kRows + k], which lands in y[t * ldy + row]. A row's arithmetic is
// its tile's own, so the bits are those of the plain tiles. Returns 0 (nothing done) for rows of a
// page or more, or for more tokens than kMaxTok. Callers keep it out of line: inlined next to their
// plain loop it slowed that loop's streams (one-token BF16 1024 x 2048, 16-17 -> 14-15 GB/s).
template <size_t kRows, size_t kMaxTok, typename Tile>
static inline size_t SpreadTiles(size_t row_bytes, size_t n_rows, size_t n_tok, float* y, size_t ldy, Tile&& tile) {
  constexpr size_t kPage = 4096;
  if (row_bytes == 0 || row_bytes >= kPage || n_tok == 0 || n_tok > kMaxTok) return 0;
  const size_t S = std::min<size_t>(4, kPage / row_bytes);
  size_t r = 0;
  for (; r + kRows * S <= n_rows; r += kRows * S) {
    for (size_t j = 0; j < S; ++j) {
      float yt[kMaxTok * kRows];
      tile(r + j, S, yt);
      for (size_t t = 0; t < n_tok; ++t) {
        for (size_t k = 0; k < kRows; ++k) y[t * ldy + r + j + S * k] = yt[t * kRows + k];
      }
    }
  }
  return r;
}

}  // namespace moxie::avx2
