// AVX2 + FMA + F16C matmuls. Built with ISA flags; reached only through Avx2Kernels() after a
// CPUID check, so the rest of the binary stays baseline x86-64.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/kernel_table.h"
#include "kernels/cpu/avx2/avx2_util.h"

namespace moxie {
namespace {

using avx2::HSum;

struct LoadF32 {
  static __m256 Load8(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
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
  static float Load1(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return F16ToF32(h);
  }
  static constexpr size_t kBytes = 2;
};

// Register tiles of R rows x T tokens. Every (row, token) result is the same sequence of
// operations whatever the tile: one 8-lane accumulator over the 8-element chunks in order, the
// lane sum, then the scalar tail with fma, so a row's output does not depend on which other rows
// and tokens share the call (batch invariance). A loaded weight vector (one bf16/f16 conversion)
// serves T tokens and an activation vector R rows: FMA-bound instead of load/convert-bound.
template <typename L, int R, int T>
void Tile(const float* x, size_t ldx, const uint8_t* w, size_t row_bytes, size_t n, float* y,
          size_t ldy) {
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  size_t i = 0;
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
template <typename L, int R, int kT>
void RowsAllTokens(const float* x, size_t ldx, size_t n_tok, const uint8_t* w, size_t row_bytes, size_t n,
                   float* y, size_t ldy) {
  size_t t = 0;
  for (; t + kT <= n_tok; t += kT) Tile<L, R, kT>(x + t * ldx, ldx, w, row_bytes, n, y + t * ldy, ldy);
  if constexpr (kT > 1) {
    if (t < n_tok) RowsAllTokens<L, R, kT - 1>(x + t * ldx, ldx, n_tok - t, w, row_bytes, n, y + t * ldy, ldy);
  }
}

template <typename L>
void Matmul(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
            float* y, size_t ldy) {
  const auto* wb = static_cast<const uint8_t*>(w);
  const size_t row_bytes = n_in * L::kBytes;
  size_t r = 0;
  if (n_tok == 1) {  // decode: 8 rows in flight (8 independent FMA chains, 8 weight streams)
    for (; r + 8 <= n_rows; r += 8) Tile<L, 8, 1>(x, ldx, wb + r * row_bytes, row_bytes, n_in, y + r, ldy);
  } else {
    for (; r + 4 <= n_rows; r += 4) {
      RowsAllTokens<L, 4, 3>(x, ldx, n_tok, wb + r * row_bytes, row_bytes, n_in, y + r, ldy);
    }
  }
  for (; r < n_rows; ++r) RowsAllTokens<L, 1, 3>(x, ldx, n_tok, wb + r * row_bytes, row_bytes, n_in, y + r, ldy);
}

// s[j] = scale · dot(q, K_j): 4 x 8 lanes over 32-element chunks, then 8 lanes, then a scalar
// tail, each in a fixed order (a function of d only). Four keys at a time for the FMA latency.
inline float DotF32(const float* a, const float* b, size_t d) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    for (int c = 0; c < 4; ++c) {
      acc[c] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * c), _mm256_loadu_ps(b + i + 8 * c),
                               acc[c]);
    }
  }
  for (; i + 8 <= d; i += 8) {
    acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc[0]);
  }
  float s = HSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < d; ++i) s += a[i] * b[i];
  return s;
}

void AttnScoresAvx2(const float* q, const float* k, size_t ldk, size_t n, size_t d, float scale,
                    float* s) {
  for (size_t j = 0; j < n; ++j) s[j] = DotF32(q, k + j * ldk, d) * scale;
}

// o[i] += Σ_j p[j]·V_j[i], j in order for every i (32 columns at a time in registers).
void AttnValuesAvx2(const float* p, const float* v, size_t ldv, size_t n, size_t d, float* o) {
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    __m256 acc[4];
    for (int c = 0; c < 4; ++c) acc[c] = _mm256_loadu_ps(o + i + 8 * c);
    for (size_t j = 0; j < n; ++j) {
      const __m256 pj = _mm256_set1_ps(p[j]);
      const float* vj = v + j * ldv + i;
      for (int c = 0; c < 4; ++c) acc[c] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * c), acc[c]);
    }
    for (int c = 0; c < 4; ++c) _mm256_storeu_ps(o + i + 8 * c, acc[c]);
  }
  for (; i + 8 <= d; i += 8) {
    __m256 acc = _mm256_loadu_ps(o + i);
    for (size_t j = 0; j < n; ++j) {
      acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + j * ldv + i), acc);
    }
    _mm256_storeu_ps(o + i, acc);
  }
  for (; i < d; ++i) {
    float acc = o[i];
    for (size_t j = 0; j < n; ++j) acc = std::fma(p[j], v[j * ldv + i], acc);
    o[i] = acc;
  }
}

}  // namespace

void AddQuantMatmuls(KernelTable* t);         // f32-activation quantized matmuls (kernels/ref)
void AddQuantActMatmulsRef(KernelTable* t);   // 8-bit-activation reference (fast ones replace them)
void AddQuantActMatmulsAvx2(KernelTable* t);  // qmatmul_avx2.cc

const KernelTable* Avx2KernelsImpl() {
  static const KernelTable table = [] {
    KernelTable t;
    t.isa = "avx2";
    t.attn_scores = AttnScoresAvx2;
    t.attn_values = AttnValuesAvx2;
    t.Set(DType::kF32, Matmul<LoadF32>);
    t.Set(DType::kF16, Matmul<LoadF16>);
    t.Set(DType::kBF16, Matmul<LoadBf16>);
    AddQuantMatmuls(&t);
    AddQuantActMatmulsRef(&t);
    AddQuantActMatmulsAvx2(&t);
    return t;
  }();
  return &table;
}

}  // namespace moxie
