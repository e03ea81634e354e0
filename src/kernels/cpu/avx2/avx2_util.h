// Helpers shared by the AVX2 translation units (included only by files built with -mavx2).
#pragma once

#include <immintrin.h>

namespace moxie::avx2 {

// Fixed-order horizontal sum of 8 floats (the one reduction of every accumulator, so results do
// not depend on how rows or tokens were grouped).
inline float HSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  const __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehdup_ps(lo);
  lo = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, lo);
  lo = _mm_add_ss(lo, sh);
  return _mm_cvtss_f32(lo);
}

}  // namespace moxie::avx2
