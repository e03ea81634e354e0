// AVX2 + FMA + F16C kernels of the 8-bit-activation path (KernelTable::qmatmul / quantize_act).
// The scalar references are QuantizeActivationRow and DotRowQ8 (kernels/ref/quant.h).
//
// Every block's integer dot is exact, as in the reference; only the f32 accumulation differs:
// each (row, token) keeps one 8-lane accumulator, adds d_w·d_x · (8 partial integer sums of the
// block) per block, and is reduced by one fixed horizontal sum at the end (K-quants: the
// dmin·Σmin·bsums term in a scalar, as the reference). That sequence of operations depends only
// on the row's and the token's bytes, so a result is bit-identical whatever other rows and tokens
// share the call (n_tok, row-range splits across threads, tile shapes).
//
// Tiling: weights are the memory traffic, so a call reads each weight block from memory once for
// all n_tok tokens. Q8_0-activation types work on tiles of R rows x T tokens (R independent rows
// hide the FMA latency of a mat-vec; the decoded |w| of a block is reused across the T tokens);
// K-quants decode one row's super-block once and dot it with T tokens. A tile's rows stay in L1
// while the remaining token groups pass over them.
//
// The activation quantizers produce the reference's bytes exactly (same scalar scale arithmetic,
// same rounding: round-half-away for Q8_0, round-half-even for Q8_K).
//
// Kernels rely on the Q8_K bsums (the format's per-16 sums of qs, as QuantizeActivationRow
// writes them) for the Q4_K/Q5_K minimums, as the reference does, and for Q6_K's -32 offset.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernel_table.h"
#include "kernels/cpu/avx2/avx2_util.h"
#include "kernels/ref/quant.h"

namespace moxie {
namespace {

constexpr size_t kQ8_0Bytes = 34;
constexpr size_t kQ8KBytes = kQ8KBlockBytes;  // f32 d @0, int8 qs[256] @4, int16 bsums[16] @260
// Software prefetch distance along a weight row (helps the mat-vec when weights come from DRAM:
// +10-20% on a Zen 1 EPYC; prefetches past the end of the weights are harmless). The 8-row tiles
// keep 8 rows in flight, so a shorter distance per row: single-thread streaming mat-vec on Zen 1,
// 256 B: 5.5-6.6 GB/s; 128 B: 5.3-6.4; 512 B: 4.7-6.1, the same as no prefetch. (Until 7a3c5bf
// GCC deleted PrefetchAhead's calls, see avx2::PrefetchT0: later tuning here measured no prefetch.
// With them back, on a Xeon core from DRAM: Q8_0_R8 1 / 4 tokens 12.9 -> 15.6 / 5.2 -> 10.5 GB/s.)
constexpr size_t kPrefetchBytes = 512;
constexpr size_t kPrefetchBytes8Rows = 256;

inline __m256i LoadU256(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
inline __m128i LoadU128(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
using avx2::LoadF16;
using avx2::LoadF32;

using avx2::HMax;
using avx2::MinsDotK4R8;
using avx2::MinsK4R8;
using avx2::ScalesK4R8;
using avx2::HSum;
inline int HSumI32(__m128i v) {
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(v);
}
inline int HSumI32(__m256i v) {
  return HSumI32(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}
// Prefetches the cache lines of the weight block kAhead bytes ahead of `blk`.
template <size_t kBytes, size_t kAhead = kPrefetchBytes>
inline void PrefetchAhead(const uint8_t* blk) {
  if (!avx2::kWeightPrefetch) return;
  for (size_t o = 0; o < kBytes; o += 64) {
    avx2::PrefetchT0(blk + kAhead + o);
  }
}

// GGML_E8M0_TO_FP32_HALF (same bits as the reference).
inline float E8M0Half(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<uint32_t>(e - 1) << 23);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// ---------------------------------------------------------------------------------------------
// Weights with Q8_0 activations: each 32-element block decodes to 32 signed bytes and an f32
// scale; its dot with an activation block is maddubs(|w|, sign(x, w)) summed to 8 int32 lanes.

// The f16 scales (first 2 bytes) of block b of 8 rows, as 8 floats.
template <size_t kBytes>
inline __m256 F16Scales8(const uint8_t* const rows[8], size_t b) {
  const size_t o = b * kBytes;
  uint16_t h[8];
  for (int r = 0; r < 8; ++r) std::memcpy(&h[r], rows[r] + o, 2);
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)));
}

struct WQ8_0 {
  static constexpr size_t kBytes = 34;
  static __m256i Quants(const uint8_t* b) { return LoadU256(b + 2); }
  static __m256 Scales8(const uint8_t* const rows[8], size_t b) { return F16Scales8<34>(rows, b); }
};

struct WQ4_0 {
  static constexpr size_t kBytes = 18;
  static __m256i Quants(const uint8_t* b) {
    const __m128i q = LoadU128(b + 2);  // element j: low nibble of q[j]; j + 16: high nibble
    const __m256i nib =
        _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
    return _mm256_sub_epi8(nib, _mm256_set1_epi8(8));
  }
  static __m256 Scales8(const uint8_t* const rows[8], size_t b) { return F16Scales8<18>(rows, b); }
};

struct WMxfp4 {
  static constexpr size_t kBytes = 17;
  static __m256i Quants(const uint8_t* b) {
    // kvalues_mxfp4 (E2M1 doubled), in both 128-bit lanes for the per-lane byte shuffle.
    const __m256i lut = _mm256_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12, 0,
                                         1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
    const __m128i q = LoadU128(b + 1);
    const __m256i nib =
        _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
    return _mm256_shuffle_epi8(lut, nib);
  }
  static __m256 Scales8(const uint8_t* const rows[8], size_t b) {
    const size_t o = b * kBytes;
    return _mm256_setr_ps(E8M0Half(rows[0][o]), E8M0Half(rows[1][o]), E8M0Half(rows[2][o]),
                          E8M0Half(rows[3][o]), E8M0Half(rows[4][o]), E8M0Half(rows[5][o]),
                          E8M0Half(rows[6][o]), E8M0Half(rows[7][o]));
  }
};

// Sums the 8 int32 lanes of each of q[0..7] into lane i of the result (exact: integer adds, so
// the grouping does not matter). Unpacks and adds only: Zen 1 runs vphaddd partly on the one pipe
// that also does the integer multiplies.
inline __m256i Reduce8(const __m256i q[8]) {
  __m256i a[4];
  for (int i = 0; i < 4; ++i) {  // [q0 lanes 0+2, q1 0+2, q0 1+3, q1 1+3] per 128-bit half
    a[i] = _mm256_add_epi32(_mm256_unpacklo_epi32(q[2 * i], q[2 * i + 1]),
                            _mm256_unpackhi_epi32(q[2 * i], q[2 * i + 1]));
  }
  const __m256i b0 = _mm256_add_epi32(_mm256_unpacklo_epi64(a[0], a[1]),
                                      _mm256_unpackhi_epi64(a[0], a[1]));  // [r0..r3] per half
  const __m256i b1 = _mm256_add_epi32(_mm256_unpacklo_epi64(a[2], a[3]),
                                      _mm256_unpackhi_epi64(a[2], a[3]));  // [r4..r7] per half
  const __m128i lo = _mm_add_epi32(_mm256_castsi256_si128(b0), _mm256_extracti128_si256(b0, 1));
  const __m128i hi = _mm_add_epi32(_mm256_castsi256_si128(b1), _mm256_extracti128_si256(b1, 1));
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// 8 rows (pointers; a tile past the last row repeats it) x T tokens. Per block and token the 8
// rows' exact integer dots land in the 8 lanes of one vector, and lane r accumulates
// acc_r = fma(f32(isum), d_w·d_x, acc_r) in block order: the same operations for a (row, token)
// whatever T, the tile's other rows or the call's other tokens are.
template <typename W, int T>
void Tile8xT(const uint8_t* const rows[8], const uint8_t* xq, size_t xq_stride, size_t nb,
             float* y, size_t ldy, int n_valid) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (size_t b = 0; b < nb; ++b) {
    __m256i wq[8], aw[8];
    for (int r = 0; r < 8; ++r) {
      const uint8_t* blk = rows[r] + b * W::kBytes;
      PrefetchAhead<1, kPrefetchBytes8Rows>(blk);  // one line per 34/18/17-byte block
      wq[r] = W::Quants(blk);
      aw[r] = _mm256_sign_epi8(wq[r], wq[r]);  // |w| as unsigned bytes (-128 -> 128)
    }
    const __m256 dw = W::Scales8(rows, b);
    for (int t = 0; t < T; ++t) {
      const uint8_t* yb = xq + t * xq_stride + b * kQ8_0Bytes;
      const __m256i yv = LoadU256(yb + 2);
      __m256i q[8];
      for (int r = 0; r < 8; ++r) {
        // |w|·(±x) pairs fit int16: |x| <= 127 (the quantizers' range), |w| <= 128.
        q[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(aw[r], _mm256_sign_epi8(yv, wq[r])), ones);
      }
      const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(LoadF16(yb)));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(Reduce8(q)), d, acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) {
    if (n_valid == 8) {
      _mm256_storeu_ps(y + t * ldy, acc[t]);
    } else {
      alignas(32) float tmp[8];
      _mm256_store_ps(tmp, acc[t]);
      for (int r = 0; r < n_valid; ++r) y[t * ldy + r] = tmp[r];
    }
  }
}

// Rows r0..r0+7 (clamped to the last row) against all tokens, kT at a time (the tail with fewer).
template <typename W, int kT>
void Rows8(const uint8_t* const rows[8], const uint8_t* xq, size_t xq_stride, size_t n_tok,
           size_t nb, float* y, size_t ldy, int n_valid) {
  size_t t = 0;
  for (; t + kT <= n_tok; t += kT) {
    Tile8xT<W, kT>(rows, xq + t * xq_stride, xq_stride, nb, y + t * ldy, ldy, n_valid);
  }
  if constexpr (kT > 1) {
    if (t < n_tok)
      Rows8<W, kT - 1>(rows, xq + t * xq_stride, xq_stride, n_tok - t, nb, y + t * ldy, ldy,
                       n_valid);
  }
}

// Row-interleaved tiles for many tokens (ik_llama.cpp's Q8_0_R8 idea, built on the fly): the 8
// rows of a group are transposed per block so that vector k holds bytes 4k..4k+3 of every row
// (row i in 32-bit lane i). A token's 4 activation bytes broadcast to all lanes then give each
// row's partial dot in its own lane: no horizontal sums, and the multiply unit (one pipe on Zen 1)
// is the bottleneck. Lane i ends with the same exact integer block dot as Tile8xT, followed by
// the same fma, so the two paths give the same bits.
struct alignas(32) R8Block {
  float d[8];       // the 8 rows' scales
  __m256i w[8];     // signed quants, vector k = bytes 4k..4k+3 of rows 0..7
  __m256i aw[8];    // |w| (unsigned)
};
constexpr size_t kR8ChunkBlocks = 32;  // 17 KiB of repacked weights: stays in L1
constexpr size_t kR8MinTokens = 4;     // below this, the repack costs more than it saves

template <typename W>
void RepackR8(const uint8_t* const rows[8], size_t b0, size_t n, R8Block* out) {
  for (size_t j = 0; j < n; ++j) {
    const size_t b = b0 + j;
    __m256i r[8];
    for (int i = 0; i < 8; ++i) {
      const uint8_t* blk = rows[i] + b * W::kBytes;
      PrefetchAhead<1, kPrefetchBytes8Rows>(blk);
      r[i] = W::Quants(blk);
    }
    _mm256_store_ps(out[j].d, W::Scales8(rows, b));
    // 8x8 transpose of 32-bit units.
    __m256i t[8], u[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);      // units 0,1 | 4,5
      t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);  // units 2,3 | 6,7
    }
    for (int h = 0; h < 2; ++h) {  // rows 0..3 (h = 0), 4..7 (h = 1)
      const __m256i* th = t + 4 * h;
      u[4 * h + 0] = _mm256_unpacklo_epi64(th[0], th[2]);  // unit 0 | 4 of 4 rows
      u[4 * h + 1] = _mm256_unpackhi_epi64(th[0], th[2]);  // unit 1 | 5
      u[4 * h + 2] = _mm256_unpacklo_epi64(th[1], th[3]);  // unit 2 | 6
      u[4 * h + 3] = _mm256_unpackhi_epi64(th[1], th[3]);  // unit 3 | 7
    }
    for (int k = 0; k < 4; ++k) {
      const __m256i wk = _mm256_permute2x128_si256(u[k], u[4 + k], 0x20);
      const __m256i wk4 = _mm256_permute2x128_si256(u[k], u[4 + k], 0x31);
      _mm256_store_si256(&out[j].w[k], wk);
      _mm256_store_si256(&out[j].w[k + 4], wk4);
      _mm256_store_si256(&out[j].aw[k], _mm256_sign_epi8(wk, wk));
      _mm256_store_si256(&out[j].aw[k + 4], _mm256_sign_epi8(wk4, wk4));
    }
  }
}

// One repacked chunk (blocks b0..b0+n of the group) x T tokens; acc starts from y unless `first`.
template <int T>
void TileR8(const R8Block* blk, size_t n, const uint8_t* xq, size_t xq_stride, size_t b0,
            float* y, size_t ldy, bool first) {
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(y + t * ldy);
  const __m256i ones = _mm256_set1_epi16(1);
  for (size_t j = 0; j < n; ++j) {
    const R8Block& B = blk[j];
    const __m256 dw = _mm256_load_ps(B.d);
    for (int t = 0; t < T; ++t) {
      const uint8_t* yb = xq + t * xq_stride + (b0 + j) * kQ8_0Bytes;
      const __m256i yl = _mm256_broadcastsi128_si256(LoadU128(yb + 2));
      const __m256i yh = _mm256_broadcastsi128_si256(LoadU128(yb + 18));
      auto dot = [&](int k, __m256i yk) {
        return _mm256_madd_epi16(_mm256_maddubs_epi16(B.aw[k], _mm256_sign_epi8(yk, B.w[k])), ones);
      };
      const __m256i s0 = _mm256_add_epi32(dot(0, _mm256_shuffle_epi32(yl, 0x00)),
                                          dot(1, _mm256_shuffle_epi32(yl, 0x55)));
      const __m256i s1 = _mm256_add_epi32(dot(2, _mm256_shuffle_epi32(yl, 0xAA)),
                                          dot(3, _mm256_shuffle_epi32(yl, 0xFF)));
      const __m256i s2 = _mm256_add_epi32(dot(4, _mm256_shuffle_epi32(yh, 0x00)),
                                          dot(5, _mm256_shuffle_epi32(yh, 0x55)));
      const __m256i s3 = _mm256_add_epi32(dot(6, _mm256_shuffle_epi32(yh, 0xAA)),
                                          dot(7, _mm256_shuffle_epi32(yh, 0xFF)));
      const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(s0, s1), _mm256_add_epi32(s2, s3));
      const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(LoadF16(yb)));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), d, acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

template <int kT>
void RowsR8(const R8Block* blk, size_t n, const uint8_t* xq, size_t xq_stride, size_t n_tok,
            size_t b0, float* y, size_t ldy, bool first) {
  size_t t = 0;
  for (; t + kT <= n_tok; t += kT) {
    TileR8<kT>(blk, n, xq + t * xq_stride, xq_stride, b0, y + t * ldy, ldy, first);
  }
  if constexpr (kT > 1) {
    if (t < n_tok)
      RowsR8<kT - 1>(blk, n, xq + t * xq_stride, xq_stride, n_tok - t, b0, y + t * ldy, ldy,
                     first);
  }
}

template <typename W>
void QMatmulQ8_0Act(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                    size_t n_rows, float* y, size_t ldy) {
  constexpr int kT = 4;
  const size_t nb = n_in / 32;
  const size_t row_bytes = nb * W::kBytes;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(xq);
  size_t r = 0;
  if (n_tok >= kR8MinTokens) {
    R8Block buf[kR8ChunkBlocks];
    for (; r + 8 <= n_rows; r += 8) {
      const uint8_t* rows[8];
      for (size_t i = 0; i < 8; ++i) rows[i] = wb + (r + i) * row_bytes;
      for (size_t b0 = 0; b0 < nb; b0 += kR8ChunkBlocks) {
        const size_t n = std::min(kR8ChunkBlocks, nb - b0);
        RepackR8<W>(rows, b0, n, buf);
        RowsR8<kT>(buf, n, xb, xq_stride, n_tok, b0, y + r, ldy, b0 == 0);
      }
    }
  }
  for (; r < n_rows; r += 8) {
    const uint8_t* rows[8];
    for (size_t i = 0; i < 8; ++i) rows[i] = wb + std::min(r + i, n_rows - 1) * row_bytes;
    const int n_valid = static_cast<int>(std::min<size_t>(8, n_rows - r));
    Rows8<W, kT>(rows, xb, xq_stride, n_tok, nb, y + r, ldy, n_valid);
  }
}

// Q8_0_R8 weights (interleaved at load, DType::kQ8_0R8): the TileR8 arithmetic straight from
// memory, one sequential stream per 8-row group, no repack and no horizontal sums. Per block, lane
// i of the 8 int32 partial sums is row i's exact integer dot (integer adds in any order), then
// acc_i = fma(f32(isum), d_w·d_x, acc_i) in block order: the same bits as Tile8xT and TileR8, so a
// Q8_0 model gives the same logits repacked or not, alone or batched.
constexpr size_t kPrefetchR8 = 1024;

// The weights of an 8-row group's block at o as 8 vectors of bytes, vector k = elements 4k..4k+3
// of the 8 rows (lane i = row i), and the rows' scales. Q8_0_R8: signed, stored so (kBias = 0).
// Q4_0_R8 and MXFP4_R8 (DType::kQ4_0R8, kMXFP4R8): unsigned, the weights plus kBias: the low
// nibbles of stored vector k for k < 4, the high nibbles of vector k - 4 after (R8Nibbles), as
// stored (Q4_0, bias 8) or through the E2M1 table plus 12 (MXFP4).
struct R8Q8_0 {
  static constexpr size_t kGroupBlock = 8 * kQ8_0Bytes;  // 16 bytes of f16 scales + 256 of quants
  static constexpr int32_t kBias = 0, kMaxU = 127;  // signed: kMaxU unused
  static __m256i Vec(const uint8_t* o, int k) { return LoadU256(o + 16 + 32 * k); }
  static __m256 Scales(const uint8_t* o) { return _mm256_cvtph_ps(LoadU128(o)); }
};
inline __m256i R8Nibbles(const uint8_t* q, int k) {
  const __m256i v = LoadU256(q + 32 * (k & 3));
  return _mm256_and_si256(k < 4 ? v : _mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));
}
struct R8Q4_0 {
  static constexpr size_t kGroupBlock = 8 * 18;  // 16 bytes of f16 scales + 128 of quants
  static constexpr int32_t kBias = 8, kMaxU = 15;
  static __m256i Vec(const uint8_t* o, int k) { return R8Nibbles(o + 16, k); }
  static __m256 Scales(const uint8_t* o) { return _mm256_cvtph_ps(LoadU128(o)); }
};
// 8 E8M0 bytes as GGML_E8M0_TO_FP32_HALF (E8M0Half) each: 2^(e - 128), subnormal below e = 2.
inline __m256 E8M0Half8(const uint8_t* e8) {
  const __m256i e = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(e8)));
  const __m256i big = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
  const __m256i small = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e);
  return _mm256_castsi256_ps(_mm256_blendv_epi8(big, small, _mm256_cmpgt_epi32(_mm256_set1_epi32(2), e)));
}
struct R8Mxfp4 {
  static constexpr size_t kGroupBlock = 8 * 17;  // 8 bytes of E8M0 scales + 128 of quants
  static constexpr int32_t kBias = 12, kMaxU = 24;
  static __m256i Vec(const uint8_t* o, int k) {  // ggml's doubled E2M1 values + 12
    const __m256i lut = _mm256_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0, 12, 13, 14, 15,
                                         16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
    return _mm256_shuffle_epi8(lut, R8Nibbles(o + 8, k));
  }
  static __m256 Scales(const uint8_t* o) { return E8M0Half8(o); }
};

using avx2::ActBlock;
using avx2::ActivationBlocks;

// One 8-row group's Q8_0_R8 / Q4_0_R8 / MXFP4_R8 block sums for T tokens, block by block;
// TileR8Stored runs one group, TileR8StoredFar two (a far pair).
template <typename W, int T>
struct Q8R8Sums {
  __m256 acc[T];
  Q8R8Sums() {
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  }
  // Block b of the group, at o; ab[t * nb + b] is token t's ActBlock. Two weight vectors at a
  // time, and each token's sum takes their two products in one add behind a compiler barrier: left
  // alone, GCC reassociated the 8 adds of a token into a tree and kept all 32 products of a 4-token
  // pass alive, spilling them to the stack (one store and one load per product). The integer sums
  // are exact in any order. Throwaway harness, AMD EPYC Zen 3, one core, 1024 x 2048 from L2/L3,
  // 32 tokens 4 per pass, alternated 40 times: 1.05-1.16x the previous loop.
  // Signed weights (kBias = 0): maddubs(|w|, sign(x, w)). Unsigned ones (w + kBias <= 24, so a
  // maddubs pair stays within int16) go into maddubs as they are, the sum starting from -kBias x
  // (the block's activation sum): two vector operations fewer per product (the sign of x, and
  // |w| and the bias per weight vector).
  void Block(const uint8_t* o, size_t b, const uint8_t* xq, size_t xq_stride, const ActBlock* ab, size_t nb) {
    __m256i sum[T];
    for (int t = 0; t < T; ++t) {
      sum[t] = W::kBias == 0 ? _mm256_setzero_si256() : _mm256_set1_epi32(ab[t * nb + b].off);
    }
    if constexpr (W::kBias != 0) {
      UnsignedBlock(o, b, xq, xq_stride, sum);
    } else {
      SignedBlock(o, b, xq, xq_stride, sum);
    }
    const __m256 dw = W::Scales(o);
    for (int t = 0; t < T; ++t) {
      const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(ab[t * nb + b].d));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[t]), d, acc[t]);
    }
  }
  // Unsigned weights (at most W::kMaxU): a maddubs pair is at most 2 x kMaxU x 127, so kRun of
  // them add up in int16 (Q4_0: 8, the whole block; MXFP4: 4) before one madd into the int32 sum,
  // as the Q4_K tiles do: one vector add per product instead of two, and a madd per run, not per
  // product. The same exact integers.
  static constexpr int kRun = 32767 / (2 * W::kMaxU * 127) >= 8 ? 8 : 4;
  static void UnsignedBlock(const uint8_t* o, size_t b, const uint8_t* xq, size_t xq_stride, __m256i sum[T]) {
    static_assert(32767 / (2 * W::kMaxU * 127) >= kRun, "a run of maddubs pairs must fit int16");
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i a16[T];
#pragma GCC unroll 4
    for (int k = 0; k < 8; k += 2) {
      const __m256i w0 = W::Vec(o, k), w1 = W::Vec(o, k + 1);
      for (int t = 0; t < T; ++t) {
        int32_t v0, v1;
        std::memcpy(&v0, xq + t * xq_stride + b * kQ8_0Bytes + 2 + 4 * k, 4);
        std::memcpy(&v1, xq + t * xq_stride + b * kQ8_0Bytes + 6 + 4 * k, 4);
        const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(w0, _mm256_set1_epi32(v0)),
                                           _mm256_maddubs_epi16(w1, _mm256_set1_epi32(v1)));
        a16[t] = k % kRun == 0 ? p : _mm256_add_epi16(a16[t], p);
        __asm__("" : "+x"(a16[t]));  // keeps the adds in this order (see Block)
        if ((k + 2) % kRun == 0) sum[t] = _mm256_add_epi32(sum[t], _mm256_madd_epi16(a16[t], ones));
      }
    }
  }
  // Signed weights (Q8_0): maddubs(|w|, sign(x, w)), madd per product.
  static void SignedBlock(const uint8_t* o, size_t b, const uint8_t* xq, size_t xq_stride, __m256i sum[T]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int k = 0; k < 8; k += 2) {
      const __m256i w0 = W::Vec(o, k), w1 = W::Vec(o, k + 1);
      const __m256i a0 = _mm256_sign_epi8(w0, w0), a1 = _mm256_sign_epi8(w1, w1);
      for (int t = 0; t < T; ++t) {
        int32_t v0, v1;
        std::memcpy(&v0, xq + t * xq_stride + b * kQ8_0Bytes + 2 + 4 * k, 4);
        std::memcpy(&v1, xq + t * xq_stride + b * kQ8_0Bytes + 6 + 4 * k, 4);
        const __m256i x0 = _mm256_sign_epi8(_mm256_set1_epi32(v0), w0);
        const __m256i x1 = _mm256_sign_epi8(_mm256_set1_epi32(v1), w1);
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(a0, x0), ones);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(a1, x1), ones);
        sum[t] = _mm256_add_epi32(sum[t], _mm256_add_epi32(p0, p1));
        __asm__("" : "+x"(sum[t]));  // keeps the adds in this order (see Block)
      }
    }
  }
  void Store(float* y, size_t ldy) const {
    for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
  }
};

template <typename W, int T>
void TileR8Stored(const uint8_t* g, size_t nb, const uint8_t* xq, size_t xq_stride, const ActBlock* ab, float* y,
                  size_t ldy, bool prefetch) {
  Q8R8Sums<W, T> sums;
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* o = g + b * W::kGroupBlock;
    if (prefetch) PrefetchAhead<W::kGroupBlock, kPrefetchR8>(o);  // later passes hit L1
    sums.Block(o, b, xq, xq_stride, ab, nb);
  }
  sums.Store(y, ldy);
}

// Two adjacent 8-row groups of Q8_0_R8 x 4 tokens, block by block: each token's 4 activation bytes
// are broadcast once for both groups (the sign form's broadcast is one of its five vector
// operations per 32 products; AMD Zen 3 runs these tiles at ~4 instructions per cycle), |w| per
// weight vector as before. f32 sums in L1 (16 int32 sums, 2 x 2 weight vectors and the broadcast
// leave no room). Per lane the arithmetic of Q8R8Sums: the same bits. Throwaway harness, Zen 3, one
// core, two groups x 4 tokens x 2048 inputs in L1, 12 alternated runs: 54-60 -> 58-65 products/ns;
// kernel bench (`qmatmul/Q8_0_R8/*/tok{4,8,32}/hot/avx2`, 3 alternated rounds): +4 % summed, 5 of
// the 6 medians up; model A prefill +3 % mean over 5 alternated pairs (the host's noise is ~10 %).
struct Q8R8PairSums4 {
  static constexpr int T = 4;
  alignas(32) float acc[2][T][8];
  Q8R8PairSums4() {
    for (int t = 0; t < T; ++t) {
      _mm256_store_ps(acc[0][t], _mm256_setzero_ps());
      _mm256_store_ps(acc[1][t], _mm256_setzero_ps());
    }
  }
  void Block(const uint8_t* oa, const uint8_t* ob, size_t b, const uint8_t* xq, size_t xq_stride, const ActBlock* ab,
             size_t nb) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i sa[T], sb[T];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m256i wa = R8Q8_0::Vec(oa, k), wb = R8Q8_0::Vec(ob, k);
      const __m256i ua = _mm256_sign_epi8(wa, wa), ub = _mm256_sign_epi8(wb, wb);
      for (int t = 0; t < T; ++t) {
        int32_t v;
        std::memcpy(&v, xq + t * xq_stride + b * kQ8_0Bytes + 2 + 4 * k, 4);
        const __m256i x = _mm256_set1_epi32(v);
        const __m256i pa = _mm256_madd_epi16(_mm256_maddubs_epi16(ua, _mm256_sign_epi8(x, wa)), ones);
        const __m256i pb = _mm256_madd_epi16(_mm256_maddubs_epi16(ub, _mm256_sign_epi8(x, wb)), ones);
        sa[t] = k == 0 ? pa : _mm256_add_epi32(sa[t], pa);
        sb[t] = k == 0 ? pb : _mm256_add_epi32(sb[t], pb);
        __asm__("" : "+x"(sa[t]), "+x"(sb[t]));  // keeps the adds in this order (see Q8R8Sums::Block)
      }
    }
    const __m256 dwa = R8Q8_0::Scales(oa), dwb = R8Q8_0::Scales(ob);
    for (int t = 0; t < T; ++t) {
      const __m256 dx = _mm256_set1_ps(ab[t * nb + b].d);
      _mm256_store_ps(acc[0][t],
                      _mm256_fmadd_ps(_mm256_cvtepi32_ps(sa[t]), _mm256_mul_ps(dwa, dx), _mm256_load_ps(acc[0][t])));
      _mm256_store_ps(acc[1][t],
                      _mm256_fmadd_ps(_mm256_cvtepi32_ps(sb[t]), _mm256_mul_ps(dwb, dx), _mm256_load_ps(acc[1][t])));
    }
  }
  void Store(float* ya, float* yb, size_t ldy) const {
    for (int t = 0; t < T; ++t) {
      _mm256_storeu_ps(ya + t * ldy, _mm256_load_ps(acc[0][t]));
      _mm256_storeu_ps(yb + t * ldy, _mm256_load_ps(acc[1][t]));
    }
  }
};

// Groups ga and gb (adjacent) x 4 tokens through Q8R8PairSums4; the first pass prefetches both.
inline void TileQ8R8Pair4(const uint8_t* ga, const uint8_t* gb, size_t nb, const uint8_t* xq, size_t xq_stride,
                          const ActBlock* ab, float* ya, float* yb, size_t ldy, bool prefetch) {
  Q8R8PairSums4 sums;
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* oa = ga + b * R8Q8_0::kGroupBlock;
    const uint8_t* ob = gb + b * R8Q8_0::kGroupBlock;
    if (prefetch) {
      PrefetchAhead<R8Q8_0::kGroupBlock, kPrefetchR8>(oa);
      PrefetchAhead<R8Q8_0::kGroupBlock, kPrefetchR8>(ob);
    }
    sums.Block(oa, ob, b, xq, xq_stride, ab, nb);
  }
  sums.Store(ya, yb, ldy);
}

// Groups ga and gb block by block (a far pair, avx2::kFarPairs: each thread reads its rows as two
// long sequential streams); per lane the arithmetic of TileR8Stored, so the same bits.
template <typename W, int T>
void TileR8StoredFar(const uint8_t* ga, const uint8_t* gb, size_t nb, const uint8_t* xq, size_t xq_stride,
                     const ActBlock* ab, float* ya, float* yb, size_t ldy) {
  Q8R8Sums<W, T> sa, sb;
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* oa = ga + b * W::kGroupBlock;
    const uint8_t* ob = gb + b * W::kGroupBlock;
    PrefetchAhead<W::kGroupBlock, kPrefetchR8>(oa);
    PrefetchAhead<W::kGroupBlock, kPrefetchR8>(ob);
    sa.Block(oa, b, xq, xq_stride, ab, nb);
    sb.Block(ob, b, xq, xq_stride, ab, nb);
  }
  sa.Store(ya, ldy);
  sb.Store(yb, ldy);
}

// All tokens over one 8-row group, kT at a time (the tail with fewer); the group's first pass
// prefetches, later passes find it in L1. K::Tile<T> is the tile kernel of the layout; `ab` the
// tokens' ActBlock rows (ab[t * nb + b]) where the layout has them (K::Prepare), else null.
template <typename K, int kT>
void GroupR8(const uint8_t* g, size_t nb, const uint8_t* xq, size_t xq_stride, const ActBlock* ab, size_t n_tok,
             float* y, size_t ldy, bool prefetch = true) {
  size_t t = 0;
  const auto ab_at = [&](size_t t0) { return ab != nullptr ? ab + t0 * nb : nullptr; };
  for (; t + kT <= n_tok; t += kT) {
    K::template Tile<kT>(g, nb, xq + t * xq_stride, xq_stride, ab_at(t), y + t * ldy, ldy, prefetch && t == 0);
  }
  if constexpr (kT > 1) {
    if (t < n_tok) {
      // The tail of 8-token tiles in tiles of 4 and fewer (no 5-7 token tiles to compile).
      GroupR8<K, (kT > 4 ? 4 : kT - 1)>(g, nb, xq + t * xq_stride, xq_stride, ab_at(t), n_tok - t, y + t * ldy,
                                        ldy, prefetch && t == 0);
    }
  }
}

// Q8_0_R8 (W = R8Q8_0), Q4_0_R8 (R8Q4_0) and MXFP4_R8 (R8Mxfp4).
template <typename W>
struct Q8_0R8Tiles {
  static constexpr int kTileT = 4;
  static constexpr size_t kBlock = 32, kBytes = W::kGroupBlock / 8;  // elements and bytes per row-block
  // Every (token, block)'s ActBlock, in a per-thread buffer that only grows (steady-state calls do
  // not allocate).
  static const ActBlock* Prepare(const uint8_t* xq, size_t s, size_t n_tok, size_t nb) {
    thread_local std::vector<ActBlock> ab;
    if (ab.size() < n_tok * nb) ab.resize(n_tok * nb);
    ActivationBlocks(xq, s, n_tok, nb, W::kBias, ab.data());
    return ab.data();
  }
  template <int T>
  static void Tile(const uint8_t* g, size_t nb, const uint8_t* xq, size_t s, const ActBlock* ab, float* y, size_t l,
                   bool pf) {
    TileR8Stored<W, T>(g, nb, xq, s, ab, y, l, pf);
  }
  static constexpr bool kHasFar = true;
  template <int T>
  static void Far(const uint8_t* ga, const uint8_t* gb, size_t nb, const uint8_t* xq, size_t s, const ActBlock* ab,
                  float* ya, float* yb, size_t l) {
    TileR8StoredFar<W, T>(ga, gb, nb, xq, s, ab, ya, yb, l);
  }
  // Q8_0_R8: two adjacent groups x 4 tokens at a time (TileQ8R8Pair4) from 4 tokens up.
  static constexpr bool kPair4 = W::kBias == 0;
  static void Pair4(const uint8_t* ga, const uint8_t* gb, size_t nb, const uint8_t* xq, size_t s, const ActBlock* ab,
                    float* ya, float* yb, size_t l, bool pf) {
    TileQ8R8Pair4(ga, gb, nb, xq, s, ab, ya, yb, l, pf);
  }
};

// Matmul on an R8 layout K (Q8_0R8Tiles, Q4_KR8Tiles). Where K has kPair4 set (Q8_0_R8), two
// adjacent groups x 4 tokens per pass from 4 tokens up (K::Pair4). One pass over a group per K::kTileT tokens
// (4; Q4_K 8, see Q4_KR8Tiles): the group (8 x 34 bytes per 32 inputs for Q8_0, 17 KiB for 2048
// inputs) stays in L1 across the passes. Q8_0: 15-25 % faster at 4-32 tokens than expanding chunks to R8Block (|w|
// precomputed); Q4_K: 2, 3 and 4 tokens per pass within noise of each other (moxie_kernels_bench,
// Zen 1). With far pairs (avx2::kFarPairs, Intel) 1-2 tokens take two groups at once, p and p + half
// (K::Far): two long streams per thread (Xeon with AMX, MOXIE_ISA=avx2, one core from DRAM, one
// group -> far pair: Q8_0_R8 1024 × 2048 1 / 2 tokens 14.6 -> 15.6, 13.5-13.7 -> 15.4-15.9 GB/s;
// Q4_K_R8 768 × 2048 13.8-14.0 -> 15.8-16.7, 12.4-12.5 -> 14.0-14.3; 2048 × 768 12.9-13.4 ->
// 16.5-16.9, 12.1-12.3 -> 13.9-14.0). Q6_K keeps one group.
template <typename K>
void QMatmulR8Act(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                  size_t n_rows, float* y, size_t ldy) {
  constexpr int kT = K::kTileT;
  MOXIE_CHECK(n_rows % 8 == 0);  // the layouts exist only in whole 8-row groups
  const size_t nb = n_in / K::kBlock;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(xq);
  const size_t group_bytes = 8 * nb * K::kBytes, groups = n_rows / 8;
  const ActBlock* ab = K::Prepare(xb, xq_stride, n_tok, nb);
  if constexpr (K::kHasFar) {
    if (avx2::kFarPairs && n_tok <= 2) {
      avx2::ForGroupPairs(groups, [&](size_t a, size_t b) {
        const uint8_t* ga = wb + a * group_bytes;
        const uint8_t* gb = wb + b * group_bytes;
        if (n_tok == 1) {
          K::template Far<1>(ga, gb, nb, xb, xq_stride, ab, y + 8 * a, y + 8 * b, ldy);
        } else {
          K::template Far<2>(ga, gb, nb, xb, xq_stride, ab, y + 8 * a, y + 8 * b, ldy);
        }
      });
      if (groups % 2 != 0) {
        GroupR8<K, kT>(wb + (groups - 1) * group_bytes, nb, xb, xq_stride, ab, n_tok, y + 8 * (groups - 1), ldy);
      }
      return;
    }
  }
  const auto ab_at = [&](size_t t0) { return ab != nullptr ? ab + t0 * nb : nullptr; };
  size_t g = 0;
  if constexpr (requires { K::kPair4; }) {
    if (K::kPair4 && n_tok >= 4) {
      // Adjacent groups in pairs, 4 tokens at a time; the tokens after the last 4 and a last odd
      // group as below.
      for (; g + 2 <= groups; g += 2) {
        const uint8_t* ga = wb + g * group_bytes;
        size_t t = 0;
        for (; t + 4 <= n_tok; t += 4) {
          K::Pair4(ga, ga + group_bytes, nb, xb + t * xq_stride, xq_stride, ab_at(t), y + t * ldy + 8 * g,
                   y + t * ldy + 8 * (g + 1), ldy, t == 0);
        }
        for (size_t h = 0; h < 2 && t < n_tok; ++h) {
          GroupR8<K, kT>(ga + h * group_bytes, nb, xb + t * xq_stride, xq_stride, ab_at(t), n_tok - t,
                         y + t * ldy + 8 * (g + h), ldy, false);
        }
      }
    }
  }
  for (; g < groups; ++g) {
    GroupR8<K, kT>(wb + g * group_bytes, nb, xb, xq_stride, ab, n_tok, y + 8 * g, ldy);
  }
}

// ---------------------------------------------------------------------------------------------
// K-quants with Q8_K activations. One row x T tokens: a super-block is decoded once (unsigned
// bytes per 32 elements, int16 scales) and dotted with each token's 256 activations.

// Unpacks the 12-byte 6-bit scales/mins of Q4_K/Q5_K: bytes 0..7 scales, 8..15 mins.
inline void UnpackScalesK4(const uint8_t* s12, uint32_t utmp[4]) {
  constexpr uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
  std::memcpy(utmp, s12, 12);
  utmp[3] = ((utmp[2] >> 4) & kmask2) | (((utmp[1] >> 6) & kmask3) << 4);
  const uint32_t uaux = utmp[1] & kmask1;
  utmp[1] = (utmp[2] & kmask2) | (((utmp[0] >> 6) & kmask3) << 4);
  utmp[2] = uaux;
  utmp[0] &= kmask1;
}

// Q4_K (kFive = false) / Q5_K (true). A block's integer sums are exact; per block and token,
// acc = fma(d·dy, f32(Σ sc·q·x), acc) and macc = fma(-(dmin·dy), f32(Σ mn·bsum), macc), result
// macc + acc: the sequence of TileQ4KR8's lanes, so Q4_K gives the same bits re-laid out or not.
template <bool kFive, int T>
void RowQxK(const uint8_t* w, size_t nb, const uint8_t* xq, size_t xq_stride, float* y,
            size_t ldy) {
  constexpr size_t kBytes = kFive ? 176 : 144;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m1 = _mm256_set1_epi8(1);
  float acc[T], macc[T];
  for (int t = 0; t < T; ++t) acc[t] = macc[t] = 0.f;
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + b * kBytes;
    PrefetchAhead<kBytes>(blk);
    const float d = LoadF16(blk);
    const float dmin = LoadF16(blk + 2);
    uint32_t utmp[4];
    UnpackScalesK4(blk + 4, utmp);
    const auto* sc = reinterpret_cast<const uint8_t*>(utmp);
    const __m128i mins =
        _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc + 8)));
    const uint8_t* qs = blk + (kFive ? 48 : 16);
    __m256i hbits = kFive ? LoadU256(blk + 16) : _mm256_setzero_si256();
    __m256i sumi[T];
    for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {  // 64 elements: low nibbles of qs[32c..], then high nibbles
      const __m256i q4 = LoadU256(qs + 32 * c);
      __m256i lo = _mm256_and_si256(q4, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
      if constexpr (kFive) {
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hbits, m1), 4));
        hi = _mm256_or_si256(
            hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 1), m1), 4));
        hbits = _mm256_srli_epi16(hbits, 2);
      }
      const __m256i sc_lo = _mm256_set1_epi16(sc[2 * c]);
      const __m256i sc_hi = _mm256_set1_epi16(sc[2 * c + 1]);
      for (int t = 0; t < T; ++t) {
        const uint8_t* yq = xq + t * xq_stride + b * kQ8KBytes + 4 + 64 * c;
        const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, LoadU256(yq)), sc_lo);
        const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, LoadU256(yq + 32)), sc_hi);
        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p_lo, p_hi));
      }
    }
    for (int t = 0; t < T; ++t) {
      const uint8_t* yb = xq + t * xq_stride + b * kQ8KBytes;
      const float dy = LoadF32(yb);
      const __m256i bs = LoadU256(yb + 260);  // 16 sums of 16 -> 8 sums of 32 (one per min)
      const __m128i bs32 =
          _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
      const int summ = HSumI32(_mm_madd_epi16(mins, bs32));
      // Per block, in this order and rounding (the Q4_K_R8 kernel does the same per lane).
      macc[t] = std::fma(-(dmin * dy), static_cast<float>(summ), macc[t]);
      acc[t] = std::fma(d * dy, static_cast<float>(HSumI32(sumi[t])), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) y[t * ldy] = macc[t] + acc[t];
}

template <int T>
void RowQ6K(const uint8_t* w, size_t nb, const uint8_t* xq, size_t xq_stride, float* y,
            size_t ldy) {
  constexpr size_t kBytes = 210;  // ql[128] @0, qh[64] @128, scales int8[16] @192, d f16 @208
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m3 = _mm256_set1_epi8(0x03);
  const __m256i m12 = _mm256_set1_epi8(0x0C);
  const __m256i m48 = _mm256_set1_epi8(0x30);
  const __m256i m192 = _mm256_set1_epi8(static_cast<char>(0xC0));
  float acc[T];
  for (int t = 0; t < T; ++t) acc[t] = 0.f;
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + b * kBytes;
    PrefetchAhead<kBytes>(blk);
    const float d = LoadF16(blk + 208);
    const __m128i sc8 = LoadU128(blk + 192);
    __m256i sumi[T];
    for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
    for (int n = 0; n < 2; ++n) {  // 128 elements each
      const __m256i ql0 = LoadU256(blk + 64 * n);
      const __m256i ql1 = LoadU256(blk + 64 * n + 32);
      const __m256i qh = LoadU256(blk + 128 + 32 * n);
      // Unsigned 6-bit values (q + 32) of elements 128n + 32k + l, k = 0..3.
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                             _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                             _mm256_slli_epi16(_mm256_and_si256(qh, m12), 2));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                             _mm256_and_si256(qh, m48));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                             _mm256_srli_epi16(_mm256_and_si256(qh, m192), 2));
      for (int k = 0; k < 4; ++k) {
        // int16 scales: sub-block 8n+2k in the low 128-bit lane, 8n+2k+1 in the high one.
        const long long s = 8 * n + 2 * k;
        const __m128i shuf =
            _mm_set_epi64x((s + 1) * 0x0101010101010101LL, s * 0x0101010101010101LL);
        const __m256i scale = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, shuf));
        for (int t = 0; t < T; ++t) {
          const __m256i yv = LoadU256(xq + t * xq_stride + b * kQ8KBytes + 4 + 128 * n + 32 * k);
          sumi[t] =
              _mm256_add_epi32(sumi[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yv), scale));
        }
      }
    }
    // q holds q6 + 32: Σ sc·x·q6 = Σ sc·x·q - 32·Σ_g sc_g·bsum_g (bsums: x's sums over the
    // 16-element groups, which are exactly Q6_K's scale groups).
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    for (int t = 0; t < T; ++t) {
      const uint8_t* yb = xq + t * xq_stride + b * kQ8KBytes;
      const __m256i off = _mm256_madd_epi16(sc16, LoadU256(yb + 260));
      const __m256i s = _mm256_sub_epi32(sumi[t], _mm256_slli_epi32(off, 5));
      // Per block, one exact integer sum and one fma: the sequence of TileQ6KR8's lanes, so Q6_K
      // gives the same bits re-laid out or not.
      acc[t] = std::fma(d * LoadF32(yb), static_cast<float>(HSumI32(s)), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) y[t * ldy] = acc[t];
}

struct KQ4 {
  static constexpr size_t kBytes = 144;
  template <int T>
  static void Row(const uint8_t* w, size_t nb, const uint8_t* xq, size_t s, float* y, size_t l) {
    RowQxK<false, T>(w, nb, xq, s, y, l);
  }
};
struct KQ5 {
  static constexpr size_t kBytes = 176;
  template <int T>
  static void Row(const uint8_t* w, size_t nb, const uint8_t* xq, size_t s, float* y, size_t l) {
    RowQxK<true, T>(w, nb, xq, s, y, l);
  }
};
struct KQ6 {
  static constexpr size_t kBytes = 210;
  template <int T>
  static void Row(const uint8_t* w, size_t nb, const uint8_t* xq, size_t s, float* y, size_t l) {
    RowQ6K<T>(w, nb, xq, s, y, l);
  }
};

template <typename K>
void QMatmulQ8KAct(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                   size_t n_rows, float* y, size_t ldy) {
  constexpr int kT = 4;
  const size_t nb = n_in / kQ8KBlock;
  const size_t row_bytes = nb * K::kBytes;
  const auto* xb = static_cast<const uint8_t*>(xq);
  for (size_t r = 0; r < n_rows; ++r) {
    const uint8_t* wr = static_cast<const uint8_t*>(w) + r * row_bytes;
    size_t t = 0;
    for (; t + kT <= n_tok; t += kT) {
      K::template Row<kT>(wr, nb, xb + t * xq_stride, xq_stride, y + t * ldy + r, ldy);
    }
    const uint8_t* xt = xb + t * xq_stride;
    float* yt = y + t * ldy + r;
    switch (n_tok - t) {
      case 3:
        K::template Row<3>(wr, nb, xt, xq_stride, yt, ldy);
        break;
      case 2:
        K::template Row<2>(wr, nb, xt, xq_stride, yt, ldy);
        break;
      case 1:
        K::template Row<1>(wr, nb, xt, xq_stride, yt, ldy);
        break;
      default:
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Q4_K_R8 weights (interleaved at load, DType::kQ4_KR8): lane i is row i of an 8-row group, so the
// sub-block scales multiply lanes directly. A token's 4 activation bytes are broadcast; maddubs
// of 8 rows x 4 nibbles gives int16 pairs, and because a nibble is at most 15 the 8 maddubs of a
// 32-element sub-block (|sum| <= 8 * 2 * 15 * 127 = 30480) accumulate in int16 before one madd by
// the per-row scale: 9 multiplies per 256 products instead of 16 for the plain layout.
//
// Q5_K_R8 (kFive): the fifth bit (vector s at byte 1152 of the group block) joins each nibble; a
// 5-bit value is at most 31, so 4 maddubs (|sum| <= 4 * 2 * 31 * 127 = 31496) add up in int16
// per madd: 10 multiplies per 256 products instead of 16.
// One 8-row group's Q4_K_R8 / Q5_K_R8 (kFive) block sums for T tokens, accumulated block by block
// (acc, macc per token); TileQ4KR8 runs one group, TileQ4KR8Far two (a far pair).
template <bool kFive, int T>
struct Q4KR8Sums {
  static constexpr size_t kGroupBlock = 8 * (kFive ? 176 : 144);
  // The f32 accumulators live in memory (L1; touched once per block): the 16 registers go to the
  // integer sums. Held in registers, GCC spilled and reloaded the int16 sums inside the sub-block
  // loop at 4 tokens (llvm-mca -mcpu=znver3: 35 stack accesses per sub-block, the load/store
  // pipes the bound).
  alignas(32) float acc[T][8], macc[T][8];
  Q4KR8Sums() {
    for (int t = 0; t < T; ++t) {
      _mm256_store_ps(acc[t], _mm256_setzero_ps());
      _mm256_store_ps(macc[t], _mm256_setzero_ps());
    }
  }
  // Block b of the group, at o.
  void Block(const uint8_t* o, size_t b, const uint8_t* xq, size_t xq_stride) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    [[maybe_unused]] const __m256i m16 = _mm256_set1_epi8(0x10);
    const __m256i wa = LoadU256(o + 32), wb = LoadU256(o + 64), wc = LoadU256(o + 96);
    __m256i scp[4];  // avx2::ScalesK4R8
    ScalesK4R8(wa, wb, wc, scp);
    // The int32 sums: in registers up to 4 tokens, in memory (L1) beyond, the registers going to
    // the int16 ones (8 tokens: 8 int16 sums, the two nibble vectors, a broadcast, the mask).
    constexpr bool kMemSum = T > 4;
    __m256i sumi[kMemSum ? 1 : T];
    alignas(32) int32_t summ_mem[kMemSum ? T : 1][8];
    for (int t = 0; t < T; ++t) {
      if constexpr (kMemSum) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(summ_mem[t]), _mm256_setzero_si256());
      } else {
        sumi[t] = _mm256_setzero_si256();
      }
    }
    const auto add_sum = [&](int t, __m256i v) __attribute__((always_inline)) {
      if constexpr (kMemSum) {
        auto* m = reinterpret_cast<__m256i*>(summ_mem[t]);
        _mm256_store_si256(m, _mm256_add_epi32(_mm256_load_si256(m), v));
      } else {
        sumi[t] = _mm256_add_epi32(sumi[t], v);
      }
    };
    const auto get_sum = [&](int t) __attribute__((always_inline)) {
      if constexpr (kMemSum) {
        return _mm256_load_si256(reinterpret_cast<const __m256i*>(summ_mem[t]));
      } else {
        return sumi[t];
      }
    };
    for (int s = 0; s < 8; ++s) {
      __m256i a16[T];
      for (int t = 0; t < T; ++t) a16[t] = _mm256_setzero_si256();
      const uint8_t* u = o + 128 + 128 * s;
      // Row i's sub-block scale in both int16 halves of lane i.
      auto scale = [&] {
        const __m256i p = scp[s / 2];
        return s % 2 == 0 ? _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(p, 0xA0), 0xA0)
                          : _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(p, 0xF5), 0xF5);
      };
      [[maybe_unused]] const __m256i hb = kFive ? LoadU256(o + 1152 + 32 * s) : _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int m = 0; m < 4; ++m) {
        const __m256i q = LoadU256(u + 32 * m);
        __m256i lo = _mm256_and_si256(q, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if constexpr (kFive) {
          // Bit j of each byte of hb moved to bit 4 by one shift of the 16-bit words and a mask
          // (bits crossing between the two bytes of a word land outside bit 4).
          const auto bit4 = [&](int j) {
            return _mm256_and_si256(j <= 4 ? _mm256_slli_epi16(hb, 4 - j) : _mm256_srli_epi16(hb, j - 4), m16);
          };
          lo = _mm256_or_si256(lo, bit4(2 * m));
          hi = _mm256_or_si256(hi, bit4(2 * m + 1));
        }
        for (int t = 0; t < T; ++t) {
          const uint8_t* xs = xq + t * xq_stride + b * kQ8KBytes + 4 + 32 * s + 4 * m;
          int32_t v0, v1;
          std::memcpy(&v0, xs, 4);
          std::memcpy(&v1, xs + 16, 4);
          a16[t] = _mm256_add_epi16(
              a16[t], _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_set1_epi32(v0)),
                                       _mm256_maddubs_epi16(hi, _mm256_set1_epi32(v1))));
          __asm__("" : "+x"(a16[t]));  // keeps the adds in order (the integer sums are exact in any)
        }
        if (kFive && m == 1) {  // 4 maddubs of 5-bit values: the int16 headroom is used up
          const __m256i scv = scale();
          for (int t = 0; t < T; ++t) {
            add_sum(t, _mm256_madd_epi16(a16[t], scv));
            a16[t] = _mm256_setzero_si256();
          }
        }
      }
      const __m256i scv = scale();
      for (int t = 0; t < T; ++t) add_sum(t, _mm256_madd_epi16(a16[t], scv));
    }
    __m256i mnv[4];  // the minimums (avx2::MinsK4R8, MinsDotK4R8)
    MinsK4R8(wa, wb, wc, mnv);
    const __m256 d8 = _mm256_cvtph_ps(LoadU128(o));
    const __m256 dm8 = _mm256_cvtph_ps(LoadU128(o + 16));
    for (int t = 0; t < T; ++t) {
      const uint8_t* yb = xq + t * xq_stride + b * kQ8KBytes;
      const __m256i summ = MinsDotK4R8(mnv, yb);
      const __m256 vdy = _mm256_set1_ps(LoadF32(yb));
      _mm256_store_ps(macc[t],
                      _mm256_fnmadd_ps(_mm256_mul_ps(dm8, vdy), _mm256_cvtepi32_ps(summ), _mm256_load_ps(macc[t])));
      _mm256_store_ps(acc[t],
                      _mm256_fmadd_ps(_mm256_mul_ps(d8, vdy), _mm256_cvtepi32_ps(get_sum(t)), _mm256_load_ps(acc[t])));
    }
  }
  void Store(float* y, size_t ldy) const {
    for (int t = 0; t < T; ++t) {
      _mm256_storeu_ps(y + t * ldy, _mm256_add_ps(_mm256_load_ps(macc[t]), _mm256_load_ps(acc[t])));
    }
  }
};

template <int T, bool kFive = false>
void TileQ4KR8(const uint8_t* g, size_t nb, const uint8_t* xq, size_t xq_stride, float* y,
               size_t ldy, bool prefetch) {
  constexpr size_t kGroupBlock = Q4KR8Sums<kFive, T>::kGroupBlock;
  Q4KR8Sums<kFive, T> sums;
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* o = g + b * kGroupBlock;
    if (prefetch) PrefetchAhead<kGroupBlock, 2 * kGroupBlock>(o);  // later passes hit L1
    sums.Block(o, b, xq, xq_stride);
  }
  sums.Store(y, ldy);
}

// Groups ga and gb block by block (a far pair, avx2::kFarPairs: two long sequential streams per
// thread); per lane the arithmetic of TileQ4KR8, so the same bits.
template <int T, bool kFive = false>
void TileQ4KR8Far(const uint8_t* ga, const uint8_t* gb, size_t nb, const uint8_t* xq, size_t xq_stride,
                  float* ya, float* yb, size_t ldy) {
  constexpr size_t kGroupBlock = Q4KR8Sums<kFive, T>::kGroupBlock;
  Q4KR8Sums<kFive, T> sa, sb;
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* oa = ga + b * kGroupBlock;
    const uint8_t* ob = gb + b * kGroupBlock;
    PrefetchAhead<kGroupBlock, 2 * kGroupBlock>(oa);
    PrefetchAhead<kGroupBlock, 2 * kGroupBlock>(ob);
    sa.Block(oa, b, xq, xq_stride);
    sb.Block(ob, b, xq, xq_stride);
  }
  sa.Store(ya, ldy);
  sb.Store(yb, ldy);
}

struct Q4_KR8Tiles {
  // Tiles of 8 tokens: the nibble unpacking, the scales and the loop's own work of a sub-block are
  // shared by 8 tokens instead of 4 (objdump: 4.4 instead of 4.9 instructions per 32 products; the
  // AVX2 tiles run at ~4 instructions per cycle on Zen 3). The int32 sums go to L1 (Q4KR8Sums).
  // Alternated `moxie bench -p 512 -n 32 -b 8` on the Qwen3-30B-A3B shape at Q4_K (AMD EPYC Zen 3,
  // 3 pairs): 8 distinct sequences 23.27 / 22.07 / 24.30 -> 26.09 / 28.29 / 26.21 tok/s (their
  // attention projections are 8-token matmuls, compute-bound on AVX2); prefill 512 within the
  // noise (47.5 / 41.9 / 37.8 -> 43.1 / 41.4 / 39.8). Kernel bench in a quiet spell, 2 alternated
  // rounds, `qmatmul/Q4_K_R8/*/tok{8,32}/hot/avx2`: 182-189 -> 187-200 GFLOP/s (4 tokens unchanged).
  static constexpr int kTileT = 8;
  static constexpr size_t kBlock = 256, kBytes = 144;
  static const ActBlock* Prepare(const uint8_t*, size_t, size_t, size_t) { return nullptr; }
  template <int T>
  static void Tile(const uint8_t* g, size_t nb, const uint8_t* xq, size_t s, const ActBlock*, float* y, size_t l,
                   bool pf) {
    TileQ4KR8<T>(g, nb, xq, s, y, l, pf);
  }
  static constexpr bool kHasFar = true;
  template <int T>
  static void Far(const uint8_t* ga, const uint8_t* gb, size_t nb, const uint8_t* xq, size_t s, const ActBlock*,
                  float* ya, float* yb, size_t l) {
    TileQ4KR8Far<T, false>(ga, gb, nb, xq, s, ya, yb, l);
  }
};
struct Q5_KR8Tiles {
  // 8-token tiles as Q4_K's (the fifth bits' unpacking is shared by 8 tokens too): kernel bench,
  // 3 alternated rounds, `qmatmul/Q5_K_R8/*/tok{8,32}/hot/avx2`: 137-153 -> 152-172 GFLOP/s.
  static constexpr int kTileT = 8;
  static constexpr size_t kBlock = 256, kBytes = 176;
  static const ActBlock* Prepare(const uint8_t*, size_t, size_t, size_t) { return nullptr; }
  template <int T>
  static void Tile(const uint8_t* g, size_t nb, const uint8_t* xq, size_t s, const ActBlock*, float* y, size_t l,
                   bool pf) {
    TileQ4KR8<T, true>(g, nb, xq, s, y, l, pf);
  }
  static constexpr bool kHasFar = true;
  template <int T>
  static void Far(const uint8_t* ga, const uint8_t* gb, size_t nb, const uint8_t* xq, size_t s, const ActBlock*,
                  float* ya, float* yb, size_t l) {
    TileQ4KR8Far<T, true>(ga, gb, nb, xq, s, ya, yb, l);
  }
};

// ---------------------------------------------------------------------------------------------
// Q6_K_R8 weights (DType::kQ6_KR8): lane i is row i of an 8-row group. The stored q is unsigned
// (<= 63), so maddubs of 8 rows x 4 values gives int16 pairs, and two of them (|sum| <= 2 * 2 *
// 63 * 127 = 32004) add up in int16 before one madd by the per-row scale of the 16-element group:
// 6 multiplies per 128 products instead of 8. The -32 offset is subtracted per block as
// 32 * Σ_g scale_g * bsum_g (bsums: the activation's sums over 16 elements, Q6_K's groups).
constexpr size_t kQ6KR8GroupBlock = 8 * 210;
constexpr size_t kPrefetchQ6KR8 = 1680;

template <int T>
void TileQ6KR8(const uint8_t* g, size_t nb, const uint8_t* xq, size_t xq_stride, float* y,
               size_t ldy, bool prefetch) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m48 = _mm256_set1_epi8(0x30);
  const __m256i m63 = _mm256_set1_epi8(0x3F);
  const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    const uint8_t* o = g + b * kQ6KR8GroupBlock;
    if (prefetch) PrefetchAhead<kQ6KR8GroupBlock, kPrefetchQ6KR8>(o);  // later passes hit L1
    const uint8_t* sc = o + 16;  // int8, byte 8g + i
    __m256i sumi[T];
    for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
    for (int gr = 0; gr < 16; ++gr) {
      const __m256i v0 = LoadU256(o + 144 + 96 * gr);
      const __m256i v1 = LoadU256(o + 144 + 96 * gr + 32);
      const __m256i v2 = LoadU256(o + 144 + 96 * gr + 64);
      // Unit m: elements 16gr + 4m + e of row i in bytes 4i + e (layout in core/dtype.h; the
      // 16-bit shifts bring in bits of the neighbouring byte, which the masks clear).
      const __m256i u0 = _mm256_and_si256(v0, m63);
      const __m256i u2 = _mm256_and_si256(v1, m63);
      const __m256i u1 = _mm256_or_si256(_mm256_and_si256(v2, m4),
                                         _mm256_and_si256(_mm256_srli_epi16(v0, 2), m48));
      const __m256i u3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v2, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(v1, 2), m48));
      // Row i's scale in both int16 halves of lane i.
      const __m256i scv = _mm256_cvtepi8_epi16(
          _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc + 8 * gr)), dup));
      for (int t = 0; t < T; ++t) {
        const uint8_t* xs = xq + t * xq_stride + b * kQ8KBytes + 4 + 16 * gr;
        int32_t v[4];
        std::memcpy(v, xs, 16);
        const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(u0, _mm256_set1_epi32(v[0])),
                                             _mm256_maddubs_epi16(u1, _mm256_set1_epi32(v[1])));
        const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(u2, _mm256_set1_epi32(v[2])),
                                             _mm256_maddubs_epi16(u3, _mm256_set1_epi32(v[3])));
        sumi[t] = _mm256_add_epi32(
            sumi[t], _mm256_add_epi32(_mm256_madd_epi16(p01, scv), _mm256_madd_epi16(p23, scv)));
      }
    }
    // Lane i of scp[p] = (scale of group 2p, of group 2p + 1) of row i, as int16.
    __m256i scp[8];
    for (int p = 0; p < 8; ++p) {
      const __m128i a = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc + 16 * p));
      const __m128i c = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc + 16 * p + 8));
      scp[p] = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, c));
    }
    const __m256 d8 = _mm256_cvtph_ps(LoadU128(o));
    for (int t = 0; t < T; ++t) {
      const uint8_t* yb = xq + t * xq_stride + b * kQ8KBytes;
      int32_t bs[8];  // int16 pairs of bsums
      std::memcpy(bs, yb + 260, 32);
      __m256i off = _mm256_madd_epi16(scp[0], _mm256_set1_epi32(bs[0]));
      for (int p = 1; p < 8; ++p) off = _mm256_add_epi32(off, _mm256_madd_epi16(scp[p], _mm256_set1_epi32(bs[p])));
      const __m256i s = _mm256_sub_epi32(sumi[t], _mm256_slli_epi32(off, 5));
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d8, _mm256_set1_ps(LoadF32(yb))), _mm256_cvtepi32_ps(s), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

struct Q6_KR8Tiles {
  static constexpr int kTileT = 4;
  static constexpr size_t kBlock = 256, kBytes = 210;
  static const ActBlock* Prepare(const uint8_t*, size_t, size_t, size_t) { return nullptr; }
  template <int T>
  static void Tile(const uint8_t* g, size_t nb, const uint8_t* xq, size_t s, const ActBlock*, float* y, size_t l,
                   bool pf) {
    TileQ6KR8<T>(g, nb, xq, s, y, l, pf);
  }
  static constexpr bool kHasFar = false;
};

// ---------------------------------------------------------------------------------------------
// Activation quantizers (the reference's bytes).

inline bool AnyNonFinite(const __m256* v, int n) {
  const __m256i exp = _mm256_set1_epi32(0x7f800000);
  __m256i bad = _mm256_setzero_si256();
  for (int i = 0; i < n; ++i) {
    const __m256i e = _mm256_and_si256(_mm256_castps_si256(v[i]), exp);
    bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(e, exp));
  }
  return !_mm256_testz_si256(bad, bad);
}

inline __m256 Abs(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// roundf: round half away from zero (exact: v - trunc(v) is exact for |v| < 2^23).
inline __m256 RoundHalfAway(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = Abs(_mm256_sub_ps(v, t));
  const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 one = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
  return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

// Four vectors of int32 in [-128, 127] -> 32 bytes in element order.
inline __m256i PackI32ToI8(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b);
  const __m256i cd = _mm256_packs_epi32(c, d);
  const __m256i p = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

void QuantizeActQ8_0Avx2(const float* x, void* xq, size_t n_in) {
  auto* out = static_cast<uint8_t*>(xq);
  for (size_t b = 0; b < n_in / 32; ++b) {
    const float* xb = x + 32 * b;
    uint8_t* o = out + kQ8_0Bytes * b;
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
    if (AnyNonFinite(v, 4)) {  // NaN scale, zero quants (as the reference)
      o[0] = 0x00;
      o[1] = 0x7e;
      std::memset(o + 2, 0, 32);
      continue;
    }
    const float amax = HMax(
        _mm256_max_ps(_mm256_max_ps(Abs(v[0]), Abs(v[1])), _mm256_max_ps(Abs(v[2]), Abs(v[3]))));
    const float d = amax / 127.f;
    float id = d != 0.f ? 1.0f / d : 0.0f;
    if (!std::isfinite(id)) id = 0.f;
    const uint16_t dh = F32ToF16(d);
    std::memcpy(o, &dh, 2);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; ++i) q[i] = _mm256_cvttps_epi32(RoundHalfAway(_mm256_mul_ps(v[i], vid)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 2), PackI32ToI8(q[0], q[1], q[2], q[3]));
  }
}

void QuantizeActQ8KAvx2(const float* x, void* xq, size_t n_in) {
  auto* out = static_cast<uint8_t*>(xq);
  for (size_t b = 0; b < n_in / kQ8KBlock; ++b) {
    const float* xb = x + kQ8KBlock * b;
    uint8_t* o = out + kQ8KBytes * b;
    std::memset(o, 0, kQ8KBytes);
    __m256 v[32];
    for (int i = 0; i < 32; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
    if (AnyNonFinite(v, 32)) {
      const float nan = NAN;
      std::memcpy(o, &nan, 4);
      continue;
    }
    __m256 m = Abs(v[0]);
    for (int i = 1; i < 32; ++i) m = _mm256_max_ps(m, Abs(v[i]));
    const float amax = HMax(m);
    if (amax == 0.f) continue;
    // The reference's max is the first element of largest magnitude, with its sign.
    const __m256 vamax = _mm256_set1_ps(amax);
    float max = 0.f;
    for (int i = 0; i < 32; ++i) {
      const int mask = _mm256_movemask_ps(_mm256_cmp_ps(Abs(v[i]), vamax, _CMP_EQ_OQ));
      if (mask != 0) {
        max = xb[8 * i + __builtin_ctz(static_cast<unsigned>(mask))];
        break;
      }
    }
    const float iscale = -127.f / max;
    if (!std::isfinite(iscale)) continue;  // zeros, as the reference
    const __m256 vis = _mm256_set1_ps(iscale);
    const __m256i q127 = _mm256_set1_epi32(127);
    for (int g = 0; g < 8; ++g) {  // 32 elements = two bsums groups
      __m256i q[4];
      for (int i = 0; i < 4; ++i) {
        const __m256 s = _mm256_round_ps(_mm256_mul_ps(vis, v[4 * g + i]),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q[i] = _mm256_min_epi32(_mm256_cvtps_epi32(s), q127);
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 4 + 32 * g),
                          PackI32ToI8(q[0], q[1], q[2], q[3]));
      const int16_t s0 = static_cast<int16_t>(HSumI32(_mm256_add_epi32(q[0], q[1])));
      const int16_t s1 = static_cast<int16_t>(HSumI32(_mm256_add_epi32(q[2], q[3])));
      std::memcpy(o + 260 + 4 * g, &s0, 2);
      std::memcpy(o + 262 + 4 * g, &s1, 2);
    }
    const float dq = 1.f / iscale;
    std::memcpy(o, &dq, 4);
  }
}

}  // namespace

void AddQuantActMatmulsAvx2(KernelTable* t) {
  t->SetQ(DType::kQ8_0, QuantizeActQ8_0Avx2, QMatmulQ8_0Act<WQ8_0>);
  t->SetQ(DType::kQ8_0R8, QuantizeActQ8_0Avx2, QMatmulR8Act<Q8_0R8Tiles<R8Q8_0>>);
  t->SetQ(DType::kQ4_0R8, QuantizeActQ8_0Avx2, QMatmulR8Act<Q8_0R8Tiles<R8Q4_0>>);
  t->SetQ(DType::kMXFP4R8, QuantizeActQ8_0Avx2, QMatmulR8Act<Q8_0R8Tiles<R8Mxfp4>>);
  t->SetQ(DType::kQ4_0, QuantizeActQ8_0Avx2, QMatmulQ8_0Act<WQ4_0>);
  t->SetQ(DType::kMXFP4, QuantizeActQ8_0Avx2, QMatmulQ8_0Act<WMxfp4>);
  t->SetQ(DType::kQ4_K, QuantizeActQ8KAvx2, QMatmulQ8KAct<KQ4>);
  t->SetQ(DType::kQ4_KR8, QuantizeActQ8KAvx2, QMatmulR8Act<Q4_KR8Tiles>);
  t->SetQ(DType::kQ5_K, QuantizeActQ8KAvx2, QMatmulQ8KAct<KQ5>);
  t->SetQ(DType::kQ5_KR8, QuantizeActQ8KAvx2, QMatmulR8Act<Q5_KR8Tiles>);
  t->SetQ(DType::kQ6_K, QuantizeActQ8KAvx2, QMatmulQ8KAct<KQ6>);
  t->SetQ(DType::kQ6_KR8, QuantizeActQ8KAvx2, QMatmulR8Act<Q6_KR8Tiles>);
}

}  // namespace moxie
