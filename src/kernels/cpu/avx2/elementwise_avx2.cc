// AVX2 elementwise kernels: SiLU·up (the SwiGLU expert activation) and the attention softmax,
// with an 8-lane e^x in place of libm's scalar expf. References: SwiGlu and SoftmaxInPlace
// (kernels/ops.cc), which these match within a few ulp (tested).
//
// Every element goes through the same vector arithmetic, the tail included (it is computed in a
// padded 8-lane buffer), so an element's result never depends on where it sits in a call: rows
// split into any ranges give the same bits, and a softmax row depends only on its values.

#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstring>

#include "kernels/cpu/avx2/avx2_util.h"
#include "kernels/kernel_table.h"

namespace moxie {

namespace {

using avx2::HMax;

// e^x in 8 lanes: x = n·ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact n·ln2), e^r by
// Cephes' expf polynomial (degree 7 with the leading 1 + r; relative error ~1e-7), 2^n put in the
// exponent bits. Edges: x above ln(FLT_MAX) ≈ 88.72 gives +inf, x in (88.37, 88.72] gives e^88.37
// (the largest x whose 2^n is a normal float); x below −87.3365 (e^x below the smallest normal)
// gives 0, −inf gives 0; NaN gives NaN.
inline __m256 Exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  const __m256 over = _mm256_cmp_ps(x, _mm256_set1_ps(88.72283f), _CMP_GT_OQ);
  // min/max return their second operand when either is NaN, so a NaN x passes through.
  x = _mm256_max_ps(lo, _mm256_min_ps(_mm256_set1_ps(88.37f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // n in [−126, 127] after the clamp: 2^n is a normal float.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 y = _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
  return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
}

inline __m256 SiluMul8(__m256 g, __m256 u) {
  const __m256 e = Exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

void SiluMulAvx2(const float* g, const float* u, float* h, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(h + i, SiluMul8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
  if (i < n) {
    alignas(32) float gb[8] = {}, ub[8] = {}, hb[8];
    std::memcpy(gb, g + i, (n - i) * sizeof(float));
    std::memcpy(ub, u + i, (n - i) * sizeof(float));
    _mm256_store_ps(hb, SiluMul8(_mm256_load_ps(gb), _mm256_load_ps(ub)));
    std::memcpy(h + i, hb, (n - i) * sizeof(float));
  }
}

void SoftmaxAvx2(float* x, size_t n) {
  if (n == 0) return;
  const size_t full = n / 8 * 8, tail = n - full;
  alignas(32) float tb[8];
  auto load_tail = [&] {  // the last n % 8 values, padded with −inf (e^−inf = 0)
    for (int j = 0; j < 8; ++j) tb[j] = -INFINITY;
    std::memcpy(tb, x + full, tail * sizeof(float));
    return _mm256_load_ps(tb);
  };
  __m256 vm = _mm256_set1_ps(-INFINITY);
  for (size_t i = 0; i < full; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
  if (tail > 0) vm = _mm256_max_ps(vm, load_tail());
  const __m256 m = _mm256_set1_ps(HMax(vm));
  __m256 vs = _mm256_setzero_ps();
  for (size_t i = 0; i < full; i += 8) {
    const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
    _mm256_storeu_ps(x + i, e);
    vs = _mm256_add_ps(vs, e);
  }
  if (tail > 0) {
    const __m256 e = Exp8(_mm256_sub_ps(load_tail(), m));
    _mm256_store_ps(tb, e);
    std::memcpy(x + full, tb, tail * sizeof(float));
    vs = _mm256_add_ps(vs, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / avx2::HSum(vs));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; ++i) x[i] *= _mm_cvtss_f32(_mm256_castps256_ps128(inv));
}

}  // namespace

void AddElementwiseAvx2(KernelTable* t) {
  t->silu_mul = SiluMulAvx2;
  t->softmax = SoftmaxAvx2;
}

}  // namespace moxie
