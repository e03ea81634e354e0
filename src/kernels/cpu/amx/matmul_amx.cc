// Intel AMX kernels: BF16 weights × bf16 activations (TDPBF16PS: a 16 × 32 bf16 tile times a
// 32 × 16 one into 16 × 16 f32 sums per instruction, 8192 multiply-adds where vdpbf16ps does 32)
// and Q8_0_R8 weights × Q8_0 activations (TDPBSSD, below). Built with ISA flags in its own unit;
// its table (the AVX-512 one with these kernels) is used only after CPUID, the OS's XCR0 and
// Linux's per-process permission for the tile data (arch_prctl(ARCH_REQ_XCOMP_PERM)) all say yes
// (AmxKernels in kernel_table.cc).
//
// BF16:
// The weights stay as stored, row-major: a tile of 16 weight rows × 32 inputs is the A operand
// (one 64-byte line of each row, rows n_in·2 bytes apart), the activations of up to 16 tokens,
// re-laid as bf16 pairs (B[p][t] = x_t[2p], x_t[2p+1]), the B operand, so C = W·Xᵀ comes out with
// rows as rows and tokens as columns. Each (row, token) sum is one accumulator taking the 32-input
// steps in order, whatever the rows and tokens around it in the tile (an element of C depends only
// on its row of A and column of B), so a row's bits are the same alone, in any row split and in any
// batch (batch invariance, tested). Weights whose n_in is not a multiple of 32 go to the AVX-512
// kernel as a whole (the choice depends on the weight only, never on the batch).
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cpuid.h>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/cpu/avx2/avx2_util.h"
#include "core/status.h"
#include "kernels/kernel_table.h"

namespace moxie {

const KernelTable* Avx512KernelsImpl();

namespace {

// The 64-byte tile configuration of LDTILECFG (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

// Tiles: 0-3 the sums C[i][j] (row block i, token block j), 4-5 the weights A[i], 6-7 the
// activations B[j]. rb[i] rows of block i (0: unused), tb[j] tokens of block j (0: unused).
struct Shape {
  int rb[2], tb[2];
  bool operator==(const Shape&) const = default;
};

// LDTILECFG of c. GCC 12 models the intrinsic as reading less than the 64 bytes: without the
// barrier it dropped the rows / colsb stores of a configuration filled in a loop (the tile loads
// then raised #UD; seen on a trial AMX kernel for Q4_K, which lost to the AVX-512 one: a K-quant's
// per-32 scales force a tile store per 32 inputs, kernel bench 32 tokens 348 -> 320 GFLOP/s).
inline void LoadConfig(const TileConfig& c) {
  __asm__ volatile("" : : "r"(&c) : "memory");
  _tile_loadconfig(&c);
}

thread_local Shape loaded_shape{{-1, -1}, {-1, -1}};  // the BF16 kernel's last configuration
thread_local int loaded_r16 = -1;                       // the BF16_R16 kernel's (ConfigureR16's key)

// Another kernel is about to load its own configuration.
void InvalidateConfig() {
  loaded_shape = Shape{{-1, -1}, {-1, -1}};
  loaded_r16 = -1;
}

void Configure(const Shape& s) {
  Shape& loaded = loaded_shape;
  if (loaded == s) return;
  loaded_r16 = -1;
  TileConfig c;
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      if (s.rb[i] > 0 && s.tb[j] > 0) {
        c.rows[2 * i + j] = static_cast<uint8_t>(s.rb[i]);
        c.colsb[2 * i + j] = static_cast<uint16_t>(4 * s.tb[j]);
      }
    }
    if (s.rb[i] > 0) {
      c.rows[4 + i] = static_cast<uint8_t>(s.rb[i]);
      c.colsb[4 + i] = 64;
    }
    if (s.tb[i] > 0) {
      c.rows[6 + i] = 16;
      c.colsb[6 + i] = static_cast<uint16_t>(4 * s.tb[i]);
    }
  }
  LoadConfig(c);
  loaded = s;
}

// out[c] = column c of the 16 × 16 matrix of 32-bit elements whose row k is r[k]: 32-bit and 64-bit
// unpacks, then two rounds of 128-bit lane shuffles.
inline void Transpose16(const __m512i* r, __m512i* out) {
  __m512i t[16], u[16];
  for (int k = 0; k < 16; k += 2) {  // lane L: (c 4L, 4L+1) and (4L+2, 4L+3) of rows k, k+1
    t[k] = _mm512_unpacklo_epi32(r[k], r[k + 1]);
    t[k + 1] = _mm512_unpackhi_epi32(r[k], r[k + 1]);
  }
  for (int k = 0; k < 16; k += 4) {  // u[k + j], lane L: column 4L + j of rows k..k+3
    u[k] = _mm512_unpacklo_epi64(t[k], t[k + 2]);
    u[k + 1] = _mm512_unpackhi_epi64(t[k], t[k + 2]);
    u[k + 2] = _mm512_unpacklo_epi64(t[k + 1], t[k + 3]);
    u[k + 3] = _mm512_unpackhi_epi64(t[k + 1], t[k + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88);  // lanes 0, 2 of each
    const __m512i v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);  // lanes 1, 3
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
    const __m512i v3 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
    out[j] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    out[8 + j] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
    out[4 + j] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    out[12 + j] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
  }
}

// Activations of tokens [t0, t0 + tb) as bf16 pairs: xt[p * 16 + t] = the 32-bit pair (x_t[2p],
// x_t[2p + 1]); 16 token slots per pair row (64 bytes), of which the B tile reads tb.
// (n_in is a multiple of 32, so the pairs come in whole blocks of 16.) Per 16 pairs, the tokens'
// 16 dwords are transposed in registers (tokens past tb are zero).
void PairRows(const uint16_t* x, size_t ldx, size_t tb, size_t n_in, uint32_t* xt) {
  const size_t np = n_in / 2;
  for (size_t p0 = 0; p0 < np; p0 += 16) {
    __m512i r[16], c[16];
    for (size_t k = 0; k < 16; ++k) {
      r[k] = k < tb ? _mm512_loadu_si512(x + k * ldx + 2 * p0) : _mm512_setzero_si512();
    }
    Transpose16(r, c);
    for (int k = 0; k < 16; ++k) _mm512_storeu_si512(xt + (p0 + static_cast<size_t>(k)) * 16, c[k]);
  }
}

// A tile of sums (rb rows × tb tokens, row n at ct + 16n) into y (tokens × rows): transposed in
// registers, each token's rb values stored at once (masked below 16).
void StoreTransposed(const float* ct, int rb, int tb, float* y, size_t ldy) {
  __m512i r[16], c[16];
  for (int n = 0; n < 16; ++n) r[n] = n < rb ? _mm512_load_si512(ct + 16 * n) : _mm512_setzero_si512();
  Transpose16(r, c);
  const __mmask16 m = static_cast<__mmask16>((1u << rb) - 1);
  for (int t = 0; t < tb; ++t) {
    _mm512_mask_storeu_ps(y + static_cast<size_t>(t) * ldy, m, _mm512_castsi512_ps(c[t]));
  }
}

// Rows [r0, r0 + rb0 + rb1) × the paired tokens of xt0 (tb0) and xt1 (tb1) over all of n_in.
template <bool kTwoRowBlocks, bool kTwoTokBlocks>
void Block(const uint8_t* w, size_t row_bytes, const uint32_t* xt0, const uint32_t* xt1, size_t n_in,
           float* c_out /* 4 tiles of 16 × 16 */) {
  _tile_zero(0);
  if constexpr (kTwoTokBlocks) _tile_zero(1);
  if constexpr (kTwoRowBlocks) _tile_zero(2);
  if constexpr (kTwoRowBlocks && kTwoTokBlocks) _tile_zero(3);
  const uint8_t* w1 = w + 16 * row_bytes;
  for (size_t k = 0; k < n_in; k += 32) {
    _tile_loadd(4, w + 2 * k, row_bytes);
    _tile_loadd(6, xt0 + (k / 2) * 16, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (kTwoTokBlocks) {
      _tile_loadd(7, xt1 + (k / 2) * 16, 64);
      _tile_dpbf16ps(1, 4, 7);
    }
    if constexpr (kTwoRowBlocks) {
      _tile_loadd(5, w1 + 2 * k, row_bytes);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (kTwoTokBlocks) _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c_out, 64);
  if constexpr (kTwoTokBlocks) _tile_stored(1, c_out + 256, 64);
  if constexpr (kTwoRowBlocks) _tile_stored(2, c_out + 512, 64);
  if constexpr (kTwoRowBlocks && kTwoTokBlocks) _tile_stored(3, c_out + 768, 64);
}

void QMatmulBf16Amx(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
                    float* y, size_t ldy) {
  if (n_in % 32 != 0 || n_in == 0) {
    Avx512KernelsImpl()->QMatmul(DType::kBF16)(xq, xq_stride, n_tok, w, n_in, n_rows, y, ldy);
    return;
  }
  const auto* x = static_cast<const uint16_t*>(xq);
  const auto* wb = static_cast<const uint8_t*>(w);
  const size_t ldx = xq_stride / 2, row_bytes = 2 * n_in;
  // The paired activations of up to 32 tokens; grows only, so steady-state calls do not allocate.
  thread_local std::vector<uint32_t> xt;
  if (xt.size() < n_in * 16) xt.resize(n_in * 16);
  uint32_t* const xt0 = xt.data();
  uint32_t* const xt1 = xt0 + n_in * 8;
  alignas(64) float c[4 * 256];
  for (size_t t0 = 0; t0 < n_tok; t0 += 32) {
    const int tb0 = static_cast<int>(std::min<size_t>(16, n_tok - t0));
    const int tb1 = static_cast<int>(std::min<size_t>(16, n_tok - t0 - static_cast<size_t>(tb0)));
    PairRows(x + t0 * ldx, ldx, static_cast<size_t>(tb0), n_in, xt0);
    if (tb1 > 0) PairRows(x + (t0 + 16) * ldx, ldx, static_cast<size_t>(tb1), n_in, xt1);
    for (size_t r0 = 0; r0 < n_rows; r0 += 32) {
      const int rb0 = static_cast<int>(std::min<size_t>(16, n_rows - r0));
      const int rb1 = static_cast<int>(std::min<size_t>(16, n_rows - r0 - static_cast<size_t>(rb0)));
      Configure(Shape{{rb0, rb1}, {tb0, tb1}});
      const uint8_t* wr = wb + r0 * row_bytes;
      if (rb1 > 0 && tb1 > 0) {
        Block<true, true>(wr, row_bytes, xt0, xt1, n_in, c);
      } else if (rb1 > 0) {
        Block<true, false>(wr, row_bytes, xt0, xt1, n_in, c);
      } else if (tb1 > 0) {
        Block<false, true>(wr, row_bytes, xt0, xt1, n_in, c);
      } else {
        Block<false, false>(wr, row_bytes, xt0, xt1, n_in, c);
      }
      // C[i][j] is rows × tokens; y is tokens × rows.
      for (int i = 0; i < 2; ++i) {
        const int rb = i == 0 ? rb0 : rb1;
        for (int j = 0; j < 2; ++j) {
          const int tb = j == 0 ? tb0 : tb1;
          if (rb > 0 && tb > 0) {
            StoreTransposed(c + (2 * i + j) * 256, rb, tb, y + (t0 + 16 * static_cast<size_t>(j)) * ldy + r0 + 16 * i,
                            ldy);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// BF16_R16 weights (DType::kBF16R16, 16 rows interleaved at load) × bf16 activations. The layout is
// the B operand as it stands: 16 consecutive pair lines of a group (1 KiB, 64 bytes apart) are a
// tile of 16 input pairs × 16 rows, and the activation rows themselves are the A operand (tokens ×
// 32 inputs, xq_stride apart), so C = X·Wᵀ comes out tokens × rows and is stored straight into y:
// no re-laying of either operand. Each (row, token) sum is one accumulator taking the 32-input
// steps in order, whatever else shares the tiles (an element of C depends only on its row of A and
// column of B), so a row's bits are the same alone, in any row split and in any batch. Weights whose
// n_in is not a multiple of 32 go to the AVX-512 kernel as a whole (a choice by the weight only).
//
// Tiles: 0-3 the sums C[i][j] (group i, token block j), 4-5 the weights B[i], 6-7 the activations
// A[j]; tb0, tb1 tokens per block (tb1 = 0: one block), two: two groups.
void ConfigureR16(int tb0, int tb1, bool two) {
  const int key = tb0 | tb1 << 8 | (two ? 1 << 16 : 0);
  if (loaded_r16 == key) return;
  loaded_shape = Shape{{-1, -1}, {-1, -1}};
  TileConfig c;
  const int tb[2] = {tb0, tb1};
  for (int i = 0; i < (two ? 2 : 1); ++i) {
    for (int j = 0; j < 2; ++j) {
      if (tb[j] > 0) {
        c.rows[2 * i + j] = static_cast<uint8_t>(tb[j]);
        c.colsb[2 * i + j] = 64;
      }
    }
    c.rows[4 + i] = 16;
    c.colsb[4 + i] = 64;
  }
  for (int j = 0; j < 2; ++j) {
    if (tb[j] > 0) {
      c.rows[6 + j] = static_cast<uint8_t>(tb[j]);
      c.colsb[6 + j] = 64;
    }
  }
  LoadConfig(c);
  loaded_r16 = key;
}

// Software prefetch distance of a tile's 16 lines: kernel bench, one Xeon core, one token from DRAM,
// 1024 x 2048 and 2048 x 1024: 1024-2048 B ahead 15.1-15.7 GB/s (the AVX-512 kernel 14.7-15.5 in
// the same runs), 4096 B 11.2-11.9, 6144 B 13.7, none 13.0-14.0.
constexpr size_t kR16Ahead = 2048;

// Group g0 (and group g1) × the token blocks at x0 (and x1), all of n_in; the sums of token block j
// go to yj (group g0's 16 outputs of each token, ldy_bytes apart) and, for g1, to yj + g1_out.
template <bool kTwoGroups, bool kTwoTokBlocks, bool kPf>
void BlockR16(const uint8_t* g0, const uint8_t* g1, const uint8_t* x0, const uint8_t* x1, size_t xq_stride,
              size_t n_in, float* y0, float* y1, size_t g1_out, size_t ldy_bytes) {
  _tile_zero(0);
  if constexpr (kTwoTokBlocks) _tile_zero(1);
  if constexpr (kTwoGroups) _tile_zero(2);
  if constexpr (kTwoGroups && kTwoTokBlocks) _tile_zero(3);
  for (size_t k = 0; k < n_in; k += 32) {
    const uint8_t* b0 = g0 + 32 * k;  // pair k / 2 of the group, 64 bytes per pair
    if constexpr (kPf) {
      for (size_t l = 0; l < 1024; l += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(b0 + kR16Ahead + l), _MM_HINT_T0);
        if constexpr (kTwoGroups) _mm_prefetch(reinterpret_cast<const char*>(g1 + 32 * k + kR16Ahead + l), _MM_HINT_T0);
      }
    }
    _tile_loadd(4, b0, 64);
    _tile_loadd(6, x0 + 2 * k, xq_stride);
    _tile_dpbf16ps(0, 6, 4);
    if constexpr (kTwoTokBlocks) {
      _tile_loadd(7, x1 + 2 * k, xq_stride);
      _tile_dpbf16ps(1, 7, 4);
    }
    if constexpr (kTwoGroups) {
      _tile_loadd(5, g1 + 32 * k, 64);
      _tile_dpbf16ps(2, 6, 5);
      if constexpr (kTwoTokBlocks) _tile_dpbf16ps(3, 7, 5);
    }
  }
  _tile_stored(0, y0, ldy_bytes);
  if constexpr (kTwoTokBlocks) _tile_stored(1, y1, ldy_bytes);
  if constexpr (kTwoGroups) _tile_stored(2, y0 + g1_out, ldy_bytes);
  if constexpr (kTwoGroups && kTwoTokBlocks) _tile_stored(3, y1 + g1_out, ldy_bytes);
}

template <bool kPf>
void BlockR16Any(bool two, bool two_tok, const uint8_t* g0, const uint8_t* g1, const uint8_t* x0, const uint8_t* x1,
                 size_t xq_stride, size_t n_in, float* y0, float* y1, size_t g1_out, size_t ldy_bytes) {
  if (two && two_tok) {
    BlockR16<true, true, kPf>(g0, g1, x0, x1, xq_stride, n_in, y0, y1, g1_out, ldy_bytes);
  } else if (two) {
    BlockR16<true, false, kPf>(g0, g1, x0, x1, xq_stride, n_in, y0, y1, g1_out, ldy_bytes);
  } else if (two_tok) {
    BlockR16<false, true, kPf>(g0, g1, x0, x1, xq_stride, n_in, y0, y1, g1_out, ldy_bytes);
  } else {
    BlockR16<false, false, kPf>(g0, g1, x0, x1, xq_stride, n_in, y0, y1, g1_out, ldy_bytes);
  }
}

void QMatmulBf16R16Amx(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
                       float* y, size_t ldy) {
  MOXIE_CHECK(n_rows % 16 == 0);  // the layout exists only in whole 16-row groups
  if (n_in % 32 != 0 || n_in == 0) {
    Avx512KernelsImpl()->QMatmul(DType::kBF16R16)(xq, xq_stride, n_tok, w, n_in, n_rows, y, ldy);
    return;
  }
  const auto* x = static_cast<const uint8_t*>(xq);
  const auto* wb = static_cast<const uint8_t*>(w);
  const size_t group_bytes = 32 * n_in, n_groups = n_rows / 16;
  for (size_t t0 = 0; t0 < n_tok; t0 += 32) {
    const int tb0 = static_cast<int>(std::min<size_t>(16, n_tok - t0));
    const int tb1 = static_cast<int>(std::min<size_t>(16, n_tok - t0 - static_cast<size_t>(tb0)));
    const uint8_t* x0 = x + t0 * xq_stride;
    const uint8_t* x1 = tb1 > 0 ? x0 + 16 * xq_stride : x0;
    float* y0 = y + t0 * ldy;
    float* y1 = tb1 > 0 ? y0 + 16 * ldy : y0;
    // The first token blocks stream the weights (prefetched on Intel); later ones re-read them.
    const bool pf = t0 == 0 && avx2::kWeightPrefetch;
    const auto block = pf ? BlockR16Any<true> : BlockR16Any<false>;
    // Up to 16 tokens: one group per pass, one weight stream (two adjacent groups per pass streamed
    // slower: one token from DRAM, kernel bench, 14.2-14.4 -> 14.9-15.1 GB/s with one); from 8
    // tokens on Intel, two far-apart groups per pass (two long streams, as the AVX-512 kernels' far
    // pairs; kernel bench, one core from DRAM, 3 alternated pairs: 8 tokens 12.0-12.9 -> 12.8-13.6
    // GB/s, 12 tokens 11.4-11.7 -> 12.9-13.7; 1 token 14.2-14.6 -> 12.0-13.9, 3 tokens the same).
    if (tb1 == 0 && tb0 >= 8 && avx2::kFarPairs && n_groups >= 2) {
      ConfigureR16(tb0, 0, true);
      avx2::ForGroupPairs(n_groups, [&](size_t a, size_t b) {
        block(true, false, wb + a * group_bytes, wb + b * group_bytes, x0, x1, xq_stride, n_in, y0 + 16 * a,
              y1 + 16 * a, 16 * (b - a), 4 * ldy);
      });
      if (n_groups % 2 != 0) {
        const size_t g = n_groups - 1;
        ConfigureR16(tb0, 0, false);
        block(false, false, wb + g * group_bytes, nullptr, x0, x1, xq_stride, n_in, y0 + 16 * g, y1 + 16 * g, 0,
              4 * ldy);
      }
      continue;
    }
    const bool two_groups = tb1 > 0;
    for (size_t g = 0; g < n_groups; g += two_groups ? 2 : 1) {
      const bool two = two_groups && g + 1 < n_groups;
      ConfigureR16(tb0, tb1, two);
      const uint8_t* gw = wb + g * group_bytes;
      block(two, tb1 > 0, gw, gw + group_bytes, x0, x1, xq_stride, n_in, y0 + 16 * g, y1 + 16 * g, 16, 4 * ldy);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Q8_0_R8 weights × Q8_0 activations on AMX-INT8 (TDPBSSD: signed bytes, exact int32 sums). The
// load-time layout needs no change: an 8-row group stores per 32-input block its 8 f16 scales and 8
// vectors of 32 bytes, vector k = bytes 4k..4k+3 of rows 0..7, which is exactly a B tile of 8 rows
// (k) × 8 columns (rows of W) × 4 bytes. The A tile is up to 16 tokens' 32 quant bytes of the
// block, straight from the activation rows. Each block's 16 × 8 int32 dots (Σ w·x, exact) leave the tiles
// and take the f32 steps of the AVX-512 and AVX2 kernels, acc += f32(dot) · (d_w · d_x) per block
// in order, so every (row, token) gets the same bits as there (tested), and which tokens go to the
// tiles does not matter: blocks of 16 tokens and a last one of at least kQ8MinTileTokens take
// them, the rest and a lone 8-row group the AVX-512 kernel.
constexpr size_t kQ8Bytes = 34, kQ8GroupBlock = 8 * kQ8Bytes;

// m tokens per block (1-16).
void ConfigureQ8(int m) {
  TileConfig c;
  // 0, 1 and 5, 6: sums (m tokens × 8 rows of int32); 2 and 7: activations (m tokens × 32 bytes);
  // 3, 4: weights (8 rows of 4-byte groups × 8 columns). Two sets of sums and activations: IssueQ8.
  const auto mr = static_cast<uint8_t>(m);
  c.rows[0] = c.rows[1] = c.rows[5] = c.rows[6] = mr;
  c.colsb[0] = c.colsb[1] = c.colsb[5] = c.colsb[6] = 32;
  c.rows[2] = c.rows[7] = mr;
  c.colsb[2] = c.colsb[7] = 32;
  c.rows[3] = c.rows[4] = 8;
  c.colsb[3] = c.colsb[4] = 32;
  LoadConfig(c);
}

// One block's dots into cb (token t: cb[16t + 0..7] the rows of group g0, cb[16t + 8..15] of g1),
// in tile set S: sums in tiles 0-1 (S = 0) or 5-6 (S = 1), activations in tile 2 or 7, weights in
// 3-4.
template <int S>
void IssueQ8(const uint8_t* xa, size_t xq_stride, const uint8_t* o0, const uint8_t* o1, int32_t* cb) {
  // (GCC's tile intrinsics paste the tile number into the instruction: literals only.)
  if constexpr (S == 0) {
    _tile_loadd(2, xa, xq_stride);
    _tile_loadd(3, o0 + 16, 32);
    _tile_loadd(4, o1 + 16, 32);
    _tile_zero(0);
    _tile_zero(1);
    _tile_dpbssd(0, 2, 3);
    _tile_dpbssd(1, 2, 4);
    _tile_stored(0, cb, 64);
    _tile_stored(1, cb + 8, 64);
  } else {
    _tile_loadd(7, xa, xq_stride);
    _tile_loadd(3, o0 + 16, 32);
    _tile_loadd(4, o1 + 16, 32);
    _tile_zero(5);
    _tile_zero(6);
    _tile_dpbssd(5, 7, 3);
    _tile_dpbssd(6, 7, 4);
    _tile_stored(5, cb, 64);
    _tile_stored(6, cb + 8, 64);
  }
}

// A last block of fewer tokens than this goes to the AVX-512 kernel (the same bits), whose far pairs
// read up to 8 tokens in one pass of 8-token tiles: Xeon with AMX, one core from DRAM, gate/up
// 1024 × 2048, AVX-512 -> tiles: 4 tokens 15.9-16.1 -> 8.1-14.3 GB/s, 8 14.1-15.1 -> 11.7-13.3, 12
// (two AVX-512 passes) 7.3-8.8 -> 12.1-12.3.
constexpr size_t kQ8MinTileTokens = 9;
// Software prefetch of both groups' blocks this far ahead (Intel, avx2::kWeightPrefetch): 12 tokens
// 11.5-11.6 -> 12.3 GB/s (gate/up, as above).
constexpr size_t kQ8PrefetchAhead = 1024;

// One pass over all row pairs for the m (1-16) tokens at xa (quant bytes) with scales dxt.
template <int M>
void Q8Pass(const uint8_t* xa, size_t xq_stride, const float* dxt, size_t nb, const uint8_t* wb,
            size_t group_bytes, size_t pairs, float* y, size_t ldy) {
  alignas(64) int32_t cbuf[2][16 * 16];
  for (size_t p = 0; p < pairs; ++p) {
    // Group p with p + pairs: two long sequential streams (as the AVX-512 kernel's far pairs).
    const uint8_t* g0 = wb + p * group_bytes;
    const uint8_t* g1 = wb + (p + pairs) * group_bytes;
    __m512 acc[M];
    for (int t = 0; t < M; ++t) acc[t] = _mm512_setzero_ps();
    // Software-pipelined: block b + 1's tile work is issued before block b's f32 steps, in the
    // other set of sum and activation tiles (tiles are not renamed: reusing one set would make
    // every block wait for the last one's store).
    IssueQ8<0>(xa, xq_stride, g0, g1, cbuf[0]);
    for (size_t b = 0; b < nb; ++b) {
      if (b + 1 < nb) {
        const size_t n = b + 1;
        if (n & 1) {
          IssueQ8<1>(xa + n * kQ8Bytes, xq_stride, g0 + n * kQ8GroupBlock, g1 + n * kQ8GroupBlock, cbuf[1]);
        } else {
          IssueQ8<0>(xa + n * kQ8Bytes, xq_stride, g0 + n * kQ8GroupBlock, g1 + n * kQ8GroupBlock, cbuf[0]);
        }
      }
      const uint8_t* o0 = g0 + b * kQ8GroupBlock;
      const uint8_t* o1 = g1 + b * kQ8GroupBlock;
      if (avx2::kWeightPrefetch) {
        for (size_t c = 0; c < kQ8GroupBlock; c += 64) {
          avx2::PrefetchT0(o0 + kQ8PrefetchAhead + c);
          avx2::PrefetchT0(o1 + kQ8PrefetchAhead + c);
        }
      }
      const int32_t* cb = cbuf[b & 1];
      const __m512 dw = _mm512_cvtph_ps(_mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o0))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(o1)), 1));
      for (int t = 0; t < M; ++t) {
        const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(dxt[static_cast<size_t>(t) * nb + b]));
        const __m512i sum = _mm512_load_si512(cb + 16 * t);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), d, acc[t]);
      }
    }
    for (int t = 0; t < M; ++t) {
      float* yt = y + static_cast<size_t>(t) * ldy;
      _mm256_storeu_ps(yt + 8 * p, _mm512_castps512_ps256(acc[t]));
      _mm256_storeu_ps(yt + 8 * (p + pairs), _mm512_extractf32x8_ps(acc[t], 1));
    }
  }
}

template <size_t... I>
void Q8PassAny(int m, std::index_sequence<I...>, const uint8_t* xa, size_t xq_stride, const float* dxt, size_t nb,
               const uint8_t* wb, size_t group_bytes, size_t pairs, float* y, size_t ldy) {
  constexpr int kFirst = static_cast<int>(kQ8MinTileTokens);  // the only block sizes that run
  ((m == kFirst + static_cast<int>(I)
        ? Q8Pass<kFirst + static_cast<int>(I)>(xa, xq_stride, dxt, nb, wb, group_bytes, pairs, y, ldy)
        : void()),
   ...);
}

void QMatmulQ8_0R8Amx(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
                      float* y, size_t ldy) {
  const QMatmulFn avx512 = Avx512KernelsImpl()->QMatmul(DType::kQ8_0R8);
  // Tokens for the tiles: whole blocks of 16, and a last block of at least kQ8MinTileTokens.
  size_t tiled = n_tok / 16 * 16;
  if (n_tok - tiled >= kQ8MinTileTokens) tiled = n_tok;
  const size_t pairs = n_rows / 16;
  if (tiled == 0 || pairs == 0) {
    avx512(xq, xq_stride, n_tok, w, n_in, n_rows, y, ldy);
    return;
  }
  const size_t nb = n_in / 32, group_bytes = nb * kQ8GroupBlock;
  const auto* x = static_cast<const uint8_t*>(xq);
  const auto* wb = static_cast<const uint8_t*>(w);
  // The activation scales as f32, dx[t * nb + b]; grows only.
  thread_local std::vector<float> dx;
  if (dx.size() < tiled * nb) dx.resize(tiled * nb);
  for (size_t t = 0; t < tiled; ++t) {
    for (size_t b = 0; b < nb; ++b) {
      uint16_t h;
      std::memcpy(&h, x + t * xq_stride + b * kQ8Bytes, 2);
      dx[t * nb + b] = _cvtsh_ss(h);
    }
  }
  InvalidateConfig();
  for (size_t t0 = 0; t0 < tiled; t0 += 16) {
    const int m = static_cast<int>(std::min<size_t>(16, tiled - t0));
    if (t0 == 0 || m != 16) ConfigureQ8(m);
    Q8PassAny(m, std::make_index_sequence<17 - kQ8MinTileTokens>{}, x + t0 * xq_stride + 2, xq_stride,
              dx.data() + t0 * nb, nb, wb, group_bytes, pairs, y + t0 * ldy, ldy);
  }
  if (tiled < n_tok) {
    avx512(x + tiled * xq_stride, xq_stride, n_tok - tiled, w, n_in, n_rows, y + tiled * ldy, ldy);
  }
  if (pairs * 16 < n_rows) {  // a lone 8-row group, for the tokens done above
    avx512(xq, xq_stride, tiled, wb + 2 * pairs * group_bytes, n_in, n_rows - 16 * pairs, y + 16 * pairs, ldy);
  }
}

}  // namespace

// CPUID (AMX-TILE, AMX-BF16), the OS's XCR0 (tile config and data state) and Linux's permission
// to use the tile data (requested once for the process; refused e.g. when an alternate signal
// stack is too small for the larger signal frame).
bool AmxBf16Usable() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
    constexpr unsigned kAmxBf16 = 1u << 22, kAmxTile = 1u << 24;
    if ((d & kAmxBf16) == 0 || (d & kAmxTile) == 0) return false;
    if (__get_cpuid(1, &a, &b, &c, &d) == 0 || (c & (1u << 27)) == 0) return false;  // OSXSAVE
    uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    const uint64_t xcr0 = (uint64_t{hi} << 32) | lo;
    constexpr uint64_t kTileState = (uint64_t{1} << 17) | (uint64_t{1} << 18);
    if ((xcr0 & kTileState) != kTileState) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return ::syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

const KernelTable* AmxKernelsImpl() {
  static const KernelTable table = [] {
    KernelTable t = *Avx512KernelsImpl();
    t.isa = "avx512+amx";
    t.SetQ(DType::kBF16, t.QuantizeAct(DType::kBF16), QMatmulBf16Amx);
    t.SetQ(DType::kBF16R16, t.QuantizeAct(DType::kBF16R16), QMatmulBf16R16Amx);
    unsigned a = 0, b = 0, c = 0, d = 0;
    constexpr unsigned kAmxInt8 = 1u << 25;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 && (d & kAmxInt8) != 0) {
      t.SetQ(DType::kQ8_0R8, t.QuantizeAct(DType::kQ8_0R8), QMatmulQ8_0R8Amx);
    }
    return t;
  }();
  return &table;
}

}  // namespace moxie
