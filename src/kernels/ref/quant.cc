// Scalar reference implementations of the ggml weight block formats. See quant.h.
#include "kernels/ref/quant.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/dtype.h"

namespace moxie {
namespace {

constexpr int kQK = 256;  // elements per K-quant super-block (QK_K)

// ---- block layouts (byte offsets; §4.4) ----
// Q8_0  (34): d f16 @0, qs int8[32] @2
// Q4_0  (18): d f16 @0, qs u8[16] @2
// MXFP4 (17): e u8 @0, qs u8[16] @1
// Q4_K (144): d f16 @0, dmin f16 @2, scales[12] @4, qs[128] @16
// Q5_K (176): d f16 @0, dmin f16 @2, scales[12] @4, qh[32] @16, qs[128] @48
// Q6_K (210): ql[128] @0, qh[64] @128, scales int8[16] @192, d f16 @208
// Q8_K (292): d f32 @0, qs int8[256] @4, bsums int16[16] @260
constexpr QuantInfo kInfoQ4_0{32, 18, "Q4_0"};
constexpr QuantInfo kInfoQ8_0{32, 34, "Q8_0"};
constexpr QuantInfo kInfoQ4_K{256, 144, "Q4_K"};
constexpr QuantInfo kInfoQ5_K{256, 176, "Q5_K"};
constexpr QuantInfo kInfoQ6_K{256, 210, "Q6_K"};
constexpr QuantInfo kInfoMXFP4{32, 17, "MXFP4"};

// ggml's kvalues_mxfp4: E2M1 values doubled (scaled by the "half" E8M0 exponent below).
constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

const QuantInfo& InfoOf(QuantType t) {
  const QuantInfo* info = GetQuantInfo(static_cast<uint32_t>(t));
  MOXIE_CHECK(info != nullptr);
  return *info;
}

int64_t BlocksOf(QuantType t, int64_t n) {
  const QuantInfo& info = InfoOf(t);
  MOXIE_CHECK(n >= 0 && n % info.block == 0);
  return n / info.block;
}

uint16_t LoadU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
void StoreU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xff);
  p[1] = static_cast<uint8_t>(v >> 8);
}
float LoadF16(const uint8_t* p) { return F16ToF32(LoadU16(p)); }
float LoadF32(const uint8_t* p) {
  const uint32_t u = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                     (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
void StoreF32(uint8_t* p, float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(u >> (8 * i));
}
int16_t LoadI16(const uint8_t* p) { return static_cast<int16_t>(LoadU16(p)); }

// GGML_E8M0_TO_FP32_HALF: 2^(e-128), built bit by bit so that e < 2 gives the exact subnormal.
float E8M0Half(uint8_t e) {
  const uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<uint32_t>(e - 1) << 23);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round half to even (ggml's nearest_int, without its range limit).
int NearestInt(float f) { return static_cast<int>(std::nearbyint(f)); }

// 6-bit scale / min j (0..7) of a Q4_K/Q5_K scales[12] field (get_scale_min_k4).
void ScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    *mn = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// ---- integer views of the K-quant blocks (shared by dequantization and the Q8_K dot) ----

struct KBlockInts {
  float d = 0.f, dmin = 0.f;
  uint8_t sc[16] = {};  // Q4_K/Q5_K: 8 scales (32 elements each); Q6_K: unused
  uint8_t mn[8] = {};
  int8_t sc6[16] = {};  // Q6_K: 16 signed scales (16 elements each)
  int8_t q[kQK] = {};   // Q4_K: 0..15, Q5_K: 0..31, Q6_K: -32..31, in element order
};

void DecodeQ4K(const uint8_t* b, KBlockInts* k) {
  k->d = LoadF16(b);
  k->dmin = LoadF16(b + 2);
  for (int j = 0; j < 8; ++j) ScaleMinK4(j, b + 4, &k->sc[j], &k->mn[j]);
  const uint8_t* qs = b + 16;
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      k->q[64 * c + l] = static_cast<int8_t>(qs[32 * c + l] & 0x0F);
      k->q[64 * c + 32 + l] = static_cast<int8_t>(qs[32 * c + l] >> 4);
    }
  }
}

void DecodeQ5K(const uint8_t* b, KBlockInts* k) {
  k->d = LoadF16(b);
  k->dmin = LoadF16(b + 2);
  for (int j = 0; j < 8; ++j) ScaleMinK4(j, b + 4, &k->sc[j], &k->mn[j]);
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int c = 0; c < 4; ++c) {
    const uint8_t u1 = static_cast<uint8_t>(1u << (2 * c)),
                  u2 = static_cast<uint8_t>(2u << (2 * c));
    for (int l = 0; l < 32; ++l) {
      k->q[64 * c + l] = static_cast<int8_t>((qs[32 * c + l] & 0x0F) + ((qh[l] & u1) ? 16 : 0));
      k->q[64 * c + 32 + l] = static_cast<int8_t>((qs[32 * c + l] >> 4) + ((qh[l] & u2) ? 16 : 0));
    }
  }
}

void DecodeQ6K(const uint8_t* b, KBlockInts* k) {
  k->d = LoadF16(b + 208);
  std::memcpy(k->sc6, b + 192, 16);
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b + 64 * n;
    const uint8_t* qh = b + 128 + 32 * n;
    int8_t* q = k->q + 128 * n;
    for (int l = 0; l < 32; ++l) {
      q[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
      q[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
      q[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
      q[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
    }
  }
}

// ---- block dequantizers (same float operations, in the same order, as ggml) ----

void DequantBlock(QuantType t, const uint8_t* b, float* y) {
  switch (t) {
    case QuantType::kQ8_0: {
      const float d = LoadF16(b);
      for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
      return;
    }
    case QuantType::kQ4_0: {
      const float d = LoadF16(b);
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((b[2 + j] & 0x0F) - 8) * d;
        y[j + 16] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
      }
      return;
    }
    case QuantType::kMXFP4: {
      const float d = E8M0Half(b[0]);
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(kMxfp4Values[b[1 + j] & 0x0F]) * d;
        y[j + 16] = static_cast<float>(kMxfp4Values[b[1 + j] >> 4]) * d;
      }
      return;
    }
    case QuantType::kQ4_K:
    case QuantType::kQ5_K: {
      KBlockInts k;
      if (t == QuantType::kQ4_K)
        DecodeQ4K(b, &k);
      else
        DecodeQ5K(b, &k);
      for (int j = 0; j < 8; ++j) {
        const float d1 = k.d * static_cast<float>(k.sc[j]);
        const float m1 = k.dmin * static_cast<float>(k.mn[j]);
        for (int l = 0; l < 32; ++l) y[32 * j + l] = d1 * static_cast<float>(k.q[32 * j + l]) - m1;
      }
      return;
    }
    case QuantType::kQ6_K: {
      KBlockInts k;
      DecodeQ6K(b, &k);
      // Element e belongs to 16-element sub-block e / 16 (the layout's sc'[is + 2i] for half n).
      for (int e = 0; e < kQK; ++e) {
        y[e] = k.d * static_cast<float>(k.sc6[e / 16]) * static_cast<float>(k.q[e]);
      }
      return;
    }
  }
  MOXIE_CHECK(false);
}

// ---- block quantizers ----
// Each writes one block to `out` and returns -1, or returns the index (within the block) of the
// element to blame when the block cannot be represented (fp16 scale overflow).

// Index of the first element of largest magnitude.
int ArgAbsMax(const float* x, int n) {
  int best = 0;
  float amax = 0.f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      best = j;
    }
  }
  return best;
}

bool IsFiniteF16(uint16_t h) { return (h & 0x7c00u) != 0x7c00u; }

// quantize_row_q8_0_ref.
int QuantQ8_0(const float* x, uint8_t* out) {
  float amax = 0.f;
  for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.f;
  float id = d != 0.f ? 1.0f / d : 0.0f;
  if (!std::isfinite(id)) id = 0.f;  // d subnormal in f32: fp16(d) is 0 anyway
  const uint16_t dh = F32ToF16(d);
  if (!IsFiniteF16(dh)) return ArgAbsMax(x, 32);
  StoreU16(out, dh);
  for (int j = 0; j < 32; ++j)
    out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
  return -1;
}

// quantize_row_q4_0_ref.
int QuantQ4_0(const float* x, uint8_t* out) {
  float amax = 0.f, max = 0.f;
  for (int j = 0; j < 32; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.f;
  float id = d != 0.f ? 1.0f / d : 0.0f;
  if (!std::isfinite(id)) id = 0.f;
  const uint16_t dh = F32ToF16(d);
  if (!IsFiniteF16(dh)) return ArgAbsMax(x, 32);
  StoreU16(out, dh);
  for (int j = 0; j < 16; ++j) {
    // x*id is in [-8, 8]: the truncation is a floor and the result is in [0, 16].
    const int xi0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
    const int xi1 = std::min(15, static_cast<int>(x[j + 16] * id + 8.5f));
    out[2 + j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
  }
  return -1;
}

// quantize_row_mxfp4_ref (with the exponent clamped to [0, 254] instead of wrapping).
int QuantMxfp4(const float* x, uint8_t* out) {
  float amax = 0.f;
  for (int j = 0; j < 32; ++j) {
    if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
  }
  uint8_t e = 0;
  if (amax > 0.f) {
    const float ef = std::floor(std::log2(amax)) - 2.f + 127.f;
    e = static_cast<uint8_t>(std::fmin(254.f, std::fmax(0.f, ef)));
  }
  const float d = E8M0Half(e);
  out[0] = e;
  auto best = [d](float v) {
    int bi = 0;
    float be = std::fabs(static_cast<float>(kMxfp4Values[0]) * d - v);
    for (int i = 1; i < 16; ++i) {
      const float err = std::fabs(static_cast<float>(kMxfp4Values[i]) * d - v);
      if (err < be) {
        bi = i;
        be = err;
      }
    }
    return bi;
  };
  for (int j = 0; j < 16; ++j)
    out[1 + j] = static_cast<uint8_t>(best(x[j]) | (best(x[j + 16]) << 4));
  return -1;
}

// Smallest fp16 h with F16ToF32(h) * levels >= maxv (maxv >= 0, finite); 0x7c00 (inf) if none.
uint16_t F16ScaleFor(float maxv, int levels) {
  if (maxv <= 0.f) return 0;
  uint16_t h = F32ToF16(maxv / static_cast<float>(levels));
  while (h < 0x7c00u && F16ToF32(h) * static_cast<float>(levels) < maxv) ++h;
  return h;
}

// Q4_K (nmax 15) / Q5_K (nmax 31): per 32-element sub-block, offset m_j = -min(0, min x) and
// step s_j covering max x + m_j in nmax steps; both rounded up to their 6-bit grids (d, dmin:
// fp16, chosen so the largest rounds up to at most 63) so that no element is clipped.
int QuantQxK(const float* x, int nmax, uint8_t* out, bool five_bit) {
  float m[8], mx[8];
  float max_m = 0.f;
  int arg_min = 0;
  for (int j = 0; j < 8; ++j) {
    float lo = 0.f, hi = x[32 * j];
    for (int l = 0; l < 32; ++l) {
      lo = std::fmin(lo, x[32 * j + l]);
      hi = std::fmax(hi, x[32 * j + l]);
    }
    m[j] = -lo;
    mx[j] = hi;
    if (m[j] > max_m) {
      max_m = m[j];
      arg_min = 32 * j;
      for (int l = 0; l < 32; ++l) {
        if (x[32 * j + l] == lo) {
          arg_min = 32 * j + l;
          break;
        }
      }
    }
  }
  const uint16_t dmin_h = F16ScaleFor(max_m, 63);
  if (!IsFiniteF16(dmin_h)) return arg_min;
  const float dmin = F16ToF32(dmin_h);
  uint8_t lm[8], ls[8];
  float eff_min[8], s[8];
  float max_s = 0.f;
  for (int j = 0; j < 8; ++j) {
    lm[j] = dmin > 0.f ? static_cast<uint8_t>(std::fmin(63.f, std::ceil(m[j] / dmin))) : 0;
    eff_min[j] = dmin * static_cast<float>(lm[j]);
    s[j] = std::fmax(0.f, (mx[j] + eff_min[j]) / static_cast<float>(nmax));
    max_s = std::fmax(max_s, s[j]);
  }
  const uint16_t d_h = F16ScaleFor(max_s, 63);
  if (!IsFiniteF16(d_h)) return ArgAbsMax(x, kQK);
  const float d = F16ToF32(d_h);
  uint8_t L[kQK];
  for (int j = 0; j < 8; ++j) {
    ls[j] = d > 0.f ? static_cast<uint8_t>(std::fmin(63.f, std::ceil(s[j] / d))) : 0;
    const float eff_scale = d * static_cast<float>(ls[j]);
    for (int l = 0; l < 32; ++l) {
      int q = 0;
      if (eff_scale > 0.f) q = NearestInt((x[32 * j + l] + eff_min[j]) / eff_scale);
      L[32 * j + l] = static_cast<uint8_t>(std::max(0, std::min(nmax, q)));
    }
  }
  StoreU16(out, d_h);
  StoreU16(out + 2, dmin_h);
  uint8_t* scales = out + 4;
  std::memset(scales, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales[j] |= ls[j];
      scales[j + 4] |= lm[j];
    } else {
      scales[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      scales[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      scales[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
  }
  if (!five_bit) {
    uint8_t* qs = out + 16;
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l)
        qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
  } else {
    uint8_t* qh = out + 16;
    uint8_t* qs = out + 48;
    std::memset(qh, 0, 32);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
        if (l1 > 15) qh[l] |= static_cast<uint8_t>(1u << (2 * c));
        if (l2 > 15) qh[l] |= static_cast<uint8_t>(2u << (2 * c));
        qs[32 * c + l] = static_cast<uint8_t>((l1 & 0xF) | ((l2 & 0xF) << 4));
      }
    }
  }
  return -1;
}

// Q6_K: symmetric per 16-element sub-block, step s_j = max|x| / 31 (levels -31..31 of -32..31),
// int8 scales rounded up on a grid of d = fp16 >= max s_j / 127.
int QuantQ6K(const float* x, uint8_t* out) {
  float s[16];
  float max_s = 0.f;
  for (int j = 0; j < 16; ++j) {
    float a = 0.f;
    for (int l = 0; l < 16; ++l) a = std::fmax(a, std::fabs(x[16 * j + l]));
    s[j] = a / 31.f;
    max_s = std::fmax(max_s, s[j]);
  }
  const uint16_t d_h = F16ScaleFor(max_s, 127);
  if (!IsFiniteF16(d_h)) return ArgAbsMax(x, kQK);
  const float d = F16ToF32(d_h);
  int8_t sc[16];
  uint8_t L[kQK];  // q + 32
  for (int j = 0; j < 16; ++j) {
    sc[j] = d > 0.f ? static_cast<int8_t>(std::fmin(127.f, std::ceil(s[j] / d))) : 0;
    const float eff = d * static_cast<float>(sc[j]);
    for (int l = 0; l < 16; ++l) {
      int q = 0;
      if (eff > 0.f) q = NearestInt(x[16 * j + l] / eff);
      L[16 * j + l] = static_cast<uint8_t>(std::max(-32, std::min(31, q)) + 32);
    }
  }
  for (int n = 0; n < 2; ++n) {
    uint8_t* ql = out + 64 * n;
    uint8_t* qh = out + 128 + 32 * n;
    const uint8_t* Ln = L + 128 * n;
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((Ln[l] & 0xF) | ((Ln[l + 64] & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((Ln[l + 32] & 0xF) | ((Ln[l + 96] & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((Ln[l] >> 4) | ((Ln[l + 32] >> 4) << 2) |
                                   ((Ln[l + 64] >> 4) << 4) | ((Ln[l + 96] >> 4) << 6));
    }
  }
  std::memcpy(out + 192, sc, 16);
  StoreU16(out + 208, d_h);
  return -1;
}

int QuantBlock(QuantType t, const float* x, uint8_t* out) {
  switch (t) {
    case QuantType::kQ8_0:
      return QuantQ8_0(x, out);
    case QuantType::kQ4_0:
      return QuantQ4_0(x, out);
    case QuantType::kMXFP4:
      return QuantMxfp4(x, out);
    case QuantType::kQ4_K:
      return QuantQxK(x, 15, out, false);
    case QuantType::kQ5_K:
      return QuantQxK(x, 31, out, true);
    case QuantType::kQ6_K:
      return QuantQ6K(x, out);
  }
  MOXIE_CHECK(false);
  return -1;
}

// ---- activation formats ----

bool UsesQ8K(QuantType t) {
  return t == QuantType::kQ4_K || t == QuantType::kQ5_K || t == QuantType::kQ6_K;
}

bool AllFinite(const float* x, int n) {
  for (int j = 0; j < n; ++j) {
    if (!std::isfinite(x[j])) return false;
  }
  return true;
}

// quantize_row_q8_0 (= _ref); a non-finite block gets a NaN scale.
void QuantActQ8_0(const float* x, uint8_t* out) {
  if (!AllFinite(x, 32)) {
    StoreU16(out, 0x7e00);
    std::memset(out + 2, 0, 32);
    return;
  }
  float amax = 0.f;
  for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.f;
  float id = d != 0.f ? 1.0f / d : 0.0f;
  if (!std::isfinite(id)) id = 0.f;
  StoreU16(out, F32ToF16(d));  // may be +inf for max|x| >~ 8.3e6, as in ggml
  for (int j = 0; j < 32; ++j)
    out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
}

// quantize_row_q8_K_ref; a non-finite block gets a NaN scale, a block too small for -127/max to
// be finite is stored as zeros.
void QuantActQ8K(const float* x, uint8_t* out) {
  std::memset(out, 0, kQ8KBlockBytes);
  if (!AllFinite(x, kQK)) {
    StoreF32(out, NAN);
    return;
  }
  float max = 0.f, amax = 0.f;
  for (int j = 0; j < kQK; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  const float iscale = amax != 0.f ? -127.f / max : 0.f;
  if (amax == 0.f || !std::isfinite(iscale)) return;  // d = 0, qs = 0, bsums = 0
  int8_t qs[kQK];
  for (int j = 0; j < kQK; ++j)
    qs[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * x[j])));
  std::memcpy(out + 4, qs, kQK);
  for (int g = 0; g < 16; ++g) {
    int sum = 0;
    for (int l = 0; l < 16; ++l) sum += qs[16 * g + l];
    StoreU16(out + 260 + 2 * g, static_cast<uint16_t>(static_cast<int16_t>(sum)));
  }
  StoreF32(out, 1.f / iscale);
}

}  // namespace

const QuantInfo* GetQuantInfo(uint32_t ggml_type) {
  switch (ggml_type) {
    case 2:
      return &kInfoQ4_0;
    case 8:
      return &kInfoQ8_0;
    case 12:
      return &kInfoQ4_K;
    case 13:
      return &kInfoQ5_K;
    case 14:
      return &kInfoQ6_K;
    case 39:
      return &kInfoMXFP4;
    default:
      return nullptr;
  }
}

const char* QuantTypeName(QuantType t) {
  const QuantInfo* info = GetQuantInfo(static_cast<uint32_t>(t));
  return info ? info->name : "?";
}

size_t QuantRowBytes(QuantType t, int64_t n) {
  return static_cast<size_t>(BlocksOf(t, n)) * static_cast<size_t>(InfoOf(t).type_size);
}

void DequantizeRow(QuantType t, const void* src, float* dst, int64_t n) {
  const int64_t nb = BlocksOf(t, n);
  const QuantInfo& info = InfoOf(t);
  const auto* s = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < nb; ++b) DequantBlock(t, s + b * info.type_size, dst + b * info.block);
}

Status QuantizeRow(QuantType t, const float* src, void* dst, int64_t n) {
  const QuantInfo* info = GetQuantInfo(static_cast<uint32_t>(t));
  if (info == nullptr) {
    return Unsupported("QuantizeRow: unsupported ggml type " +
                       std::to_string(static_cast<uint32_t>(t)));
  }
  const std::string what = std::string("quantizing a row to ") + info->name + ": ";
  if (n < 0 || n % info->block != 0) {
    return InvalidArgument(what + "row length " + std::to_string(n) +
                           " is not a multiple of the block size " + std::to_string(info->block));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(src[i])) {
      return InvalidArgument(what + "element " + std::to_string(i) + " is " +
                             (std::isnan(src[i]) ? "NaN" : (src[i] > 0 ? "+inf" : "-inf")) +
                             " (only finite values can be quantized)");
    }
  }
  // Validate every block before writing any, so dst is untouched on error.
  const int64_t nb = n / info->block;
  uint8_t scratch[256];
  for (int64_t b = 0; b < nb; ++b) {
    const float* x = src + b * info->block;
    const int bad = QuantBlock(t, x, scratch);
    if (bad >= 0) {
      const int64_t i = b * info->block + bad;
      char val[32];
      std::snprintf(val, sizeof(val), "%g", static_cast<double>(src[i]));
      return InvalidArgument(what + "element " + std::to_string(i) + " = " + val +
                             " is out of range: the fp16 scale of block " + std::to_string(b) +
                             " would overflow");
    }
  }
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nb; ++b) {
    const int bad = QuantBlock(t, src + b * info->block, out + b * info->type_size);
    MOXIE_CHECK(bad < 0);
  }
  return Status::Ok();
}

float DotRowF32(QuantType t, const void* row, const float* x, int64_t n) {
  const int64_t nb = BlocksOf(t, n);
  const QuantInfo& info = InfoOf(t);
  const auto* r = static_cast<const uint8_t*>(row);
  float w[kQK];
  float acc = 0.f;
  for (int64_t b = 0; b < nb; ++b) {
    DequantBlock(t, r + b * info.type_size, w);
    const float* xb = x + b * info.block;
    for (int j = 0; j < info.block; ++j) acc += w[j] * xb[j];
  }
  return acc;
}

uint32_t ActivationGgmlType(QuantType weight_type) {
  (void)InfoOf(weight_type);
  return UsesQ8K(weight_type) ? kGgmlTypeQ8_K : kGgmlTypeQ8_0;
}

size_t ActivationRowBytes(QuantType weight_type, int64_t n) {
  const int64_t nb = BlocksOf(weight_type, n);
  return static_cast<size_t>(nb) * (UsesQ8K(weight_type) ? kQ8KBlockBytes : 34u);
}

void QuantizeActivationRow(QuantType weight_type, const float* x, void* dst, int64_t n) {
  const int64_t nb = BlocksOf(weight_type, n);
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nb; ++b) {
    if (UsesQ8K(weight_type)) {
      QuantActQ8K(x + b * kQK, out + b * kQ8KBlockBytes);
    } else {
      QuantActQ8_0(x + b * 32, out + b * 34);
    }
  }
}

void DequantizeActivationRow(QuantType weight_type, const void* xq, float* dst, int64_t n) {
  const int64_t nb = BlocksOf(weight_type, n);
  const auto* in = static_cast<const uint8_t*>(xq);
  for (int64_t b = 0; b < nb; ++b) {
    if (UsesQ8K(weight_type)) {
      const uint8_t* blk = in + b * kQ8KBlockBytes;
      const float d = LoadF32(blk);
      for (int j = 0; j < kQK; ++j)
        dst[b * kQK + j] = d * static_cast<float>(static_cast<int8_t>(blk[4 + j]));
    } else {
      DequantBlock(QuantType::kQ8_0, in + b * 34, dst + b * 32);
    }
  }
}

float DotRowQ8(QuantType t, const void* row, const void* xq, int64_t n) {
  const int64_t nb = BlocksOf(t, n);
  const QuantInfo& info = InfoOf(t);
  const auto* w = static_cast<const uint8_t*>(row);
  const auto* a = static_cast<const uint8_t*>(xq);
  float sumf = 0.f;
  float lanes[8] = {};  // K types only
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* x = w + b * info.type_size;
    if (!UsesQ8K(t)) {  // Q8_0 activations: ggml_vec_dot_{q8_0,q4_0,mxfp4}_q8_0_generic
      const uint8_t* y = a + b * 34;
      const auto* yq = reinterpret_cast<const int8_t*>(y + 2);
      const float yd = LoadF16(y);
      if (t == QuantType::kQ8_0) {
        int sumi = 0;
        for (int j = 0; j < 32; ++j) sumi += static_cast<int8_t>(x[2 + j]) * yq[j];
        sumf += static_cast<float>(sumi) * (LoadF16(x) * yd);
      } else if (t == QuantType::kQ4_0) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < 16; ++j) {
          sumi0 += ((x[2 + j] & 0x0F) - 8) * yq[j];
          sumi1 += ((x[2 + j] >> 4) - 8) * yq[j + 16];
        }
        sumf += static_cast<float>(sumi0 + sumi1) * LoadF16(x) * yd;
      } else {  // MXFP4
        const float d = yd * E8M0Half(x[0]);
        int sumi1 = 0, sumi2 = 0;
        for (int j = 0; j < 16; ++j) {
          sumi1 += yq[j] * kMxfp4Values[x[1 + j] & 0xF];
          sumi2 += yq[j + 16] * kMxfp4Values[x[1 + j] >> 4];
        }
        sumf += d * static_cast<float>(sumi1 + sumi2);
      }
      continue;
    }
    // Q8_K activations: ggml_vec_dot_{q4_K,q5_K,q6_K}_q8_K_generic, including its 8 f32 lanes
    // (lane l holds the elements at positions ≡ l mod 8), so the result is bit-identical.
    const uint8_t* y = a + b * kQ8KBlockBytes;
    const float yd = LoadF32(y);
    const auto* yq = reinterpret_cast<const int8_t*>(y + 4);
    KBlockInts k;
    int32_t aux32[8] = {};
    if (t == QuantType::kQ6_K) {
      DecodeQ6K(x, &k);
      for (int e = 0; e < kQK; ++e) aux32[e % 8] += k.sc6[e / 16] * (yq[e] * k.q[e]);
    } else {
      if (t == QuantType::kQ4_K) {
        DecodeQ4K(x, &k);
      } else {
        DecodeQ5K(x, &k);
      }
      for (int e = 0; e < kQK; ++e) aux32[e % 8] += k.sc[e / 32] * (yq[e] * k.q[e]);
      int32_t summ = 0;  // Σ over 16-groups of bsums · min of the group's 32-element sub-block
      for (int g = 0; g < 16; ++g) summ += LoadI16(y + 260 + 2 * g) * k.mn[g / 2];
      sumf -= (k.dmin * yd) * static_cast<float>(summ);
    }
    const float d = k.d * yd;
    for (int l = 0; l < 8; ++l) lanes[l] += d * static_cast<float>(aux32[l]);
  }
  for (int l = 0; l < 8; ++l) sumf += lanes[l];
  return sumf;
}

QuantType WeightQuantType(DType t) {
  if (t == DType::kQ8_0R8) return QuantType::kQ8_0;
  if (t == DType::kQ4_0R8) return QuantType::kQ4_0;
  if (t == DType::kMXFP4R8) return QuantType::kMXFP4;
  if (t == DType::kQ4_KR8) return QuantType::kQ4_K;
  if (t == DType::kQ5_KR8) return QuantType::kQ5_K;
  if (t == DType::kQ6_KR8) return QuantType::kQ6_K;
  const int g = GgmlTypeOf(t);
  MOXIE_CHECK(g >= 0 && GetQuantInfo(static_cast<uint32_t>(g)) != nullptr);
  return static_cast<QuantType>(g);
}

namespace {

// Calls f(blk, o) for every 8-row group and block of a plain layout: blk[i] = block b of row i of
// the group in src, o = the group's block b in dst (8 blocks' bytes, the rows interleaved).
template <typename F>
void ForEachR8GroupBlock(const void* src, int64_t n_rows, int64_t nb, int64_t block_bytes, void* dst, F f) {
  const int64_t row_bytes = nb * block_bytes;
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  for (int64_t g = 0; g < n_rows / 8; ++g) {
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk[8];
      for (int i = 0; i < 8; ++i) blk[i] = s + (g * 8 + i) * row_bytes + b * block_bytes;
      f(blk, d + g * 8 * row_bytes + b * 8 * block_bytes);
    }
  }
}
}  // namespace

namespace {

// The R8 layouts of one-scale blocks (Q8_0_R8, Q4_0_R8, MXFP4_R8): per group block the 8 rows'
// scales (sb bytes each), then quant byte 4k + e (of qb per block) of row i at 8·sb + 32k + 4i + e.
void RepackScaledToR8(const void* src, int64_t n_rows, int64_t n_in, size_t sb, size_t qb, void* dst) {
  MOXIE_CHECK(n_rows % 8 == 0 && n_in % 32 == 0);
  const auto block = static_cast<int64_t>(sb + qb);
  ForEachR8GroupBlock(src, n_rows, n_in / 32, block, dst, [sb, qb](const uint8_t* const* blk, uint8_t* o) {
    for (size_t i = 0; i < 8; ++i) {
      std::memcpy(o + sb * i, blk[i], sb);
      for (size_t k = 0; k < qb / 4; ++k) std::memcpy(o + 8 * sb + 32 * k + 4 * i, blk[i] + sb + 4 * k, 4);
    }
  });
}

void UnpackScaledR8Row(const void* group, int i, int64_t nb, size_t sb, size_t qb, void* dst) {
  const auto* g = static_cast<const uint8_t*>(group);
  auto* d = static_cast<uint8_t*>(dst);
  const size_t block = sb + qb, lane = static_cast<size_t>(i);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* o = g + static_cast<size_t>(b) * 8 * block;
    uint8_t* blk = d + static_cast<size_t>(b) * block;
    std::memcpy(blk, o + sb * lane, sb);
    for (size_t k = 0; k < qb / 4; ++k) std::memcpy(blk + sb + 4 * k, o + 8 * sb + 32 * k + 4 * lane, 4);
  }
}

}  // namespace

void RepackQ8_0ToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  RepackScaledToR8(src, n_rows, n_in, 2, 32, dst);
}
void UnpackQ8_0R8Row(const void* group, int i, int64_t nb, void* dst) { UnpackScaledR8Row(group, i, nb, 2, 32, dst); }
void RepackQ4_0ToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  RepackScaledToR8(src, n_rows, n_in, 2, 16, dst);
}
void UnpackQ4_0R8Row(const void* group, int i, int64_t nb, void* dst) { UnpackScaledR8Row(group, i, nb, 2, 16, dst); }
void RepackMxfp4ToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  RepackScaledToR8(src, n_rows, n_in, 1, 16, dst);
}
void UnpackMxfp4R8Row(const void* group, int i, int64_t nb, void* dst) { UnpackScaledR8Row(group, i, nb, 1, 16, dst); }

namespace {
constexpr int64_t kQ4KBytes = 144;

// A row's 8 six-bit scales and mins as the three u32 of the Q4_K_R8 layout (see DType::kQ4_KR8).
void EncodeScalesR8(const uint8_t sc[8], const uint8_t mn[8], uint32_t w[3]) {
  auto u = [](uint8_t v) { return static_cast<uint32_t>(v & 63); };
  w[0] = u(mn[0]) | u(sc[0]) << 6 | (u(mn[6]) & 15) << 12 | u(mn[1]) << 16 | u(sc[1]) << 22 | (u(mn[7]) & 15) << 28;
  w[1] = u(mn[2]) | u(sc[2]) << 6 | (u(mn[6]) >> 4) << 12 | (u(sc[6]) >> 4) << 14 | u(mn[3]) << 16 | u(sc[3]) << 22 |
         (u(mn[7]) >> 4) << 28 | (u(sc[7]) >> 4) << 30;
  w[2] = u(mn[4]) | u(sc[4]) << 6 | (u(sc[6]) & 15) << 12 | u(mn[5]) << 16 | u(sc[5]) << 22 | (u(sc[7]) & 15) << 28;
}

void DecodeScalesR8(const uint32_t w[3], uint8_t sc[8], uint8_t mn[8]) {
  auto f = [](uint32_t v, int sh, uint32_t mask) { return static_cast<uint8_t>((v >> sh) & mask); };
  for (int p = 0; p < 3; ++p) {
    mn[2 * p] = f(w[p], 0, 63);
    sc[2 * p] = f(w[p], 6, 63);
    mn[2 * p + 1] = f(w[p], 16, 63);
    sc[2 * p + 1] = f(w[p], 22, 63);
  }
  mn[6] = static_cast<uint8_t>(f(w[0], 12, 15) | f(w[1], 12, 3) << 4);
  mn[7] = static_cast<uint8_t>(f(w[0], 28, 15) | f(w[1], 28, 3) << 4);
  sc[6] = static_cast<uint8_t>(f(w[2], 12, 15) | f(w[1], 14, 3) << 4);
  sc[7] = static_cast<uint8_t>(f(w[2], 28, 15) | f(w[1], 30, 3) << 4);
}

// Q4_K_R8 / Q5_K_R8 (kFive): the same header and nibble units; Q5_K adds 256 bytes of fifth bits.
template <bool kFive>
void RepackQxKToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  constexpr int64_t kBytes = kFive ? 176 : kQ4KBytes, kQs = kFive ? 48 : 16;
  MOXIE_CHECK(n_rows % 8 == 0 && n_in % kQK == 0);
  ForEachR8GroupBlock(src, n_rows, n_in / kQK, kBytes, dst, [](const uint8_t* const* blks, uint8_t* o) {
    if constexpr (kFive) std::memset(o + 1152, 0, 256);
    for (int i = 0; i < 8; ++i) {
      const uint8_t* blk = blks[i];
      std::memcpy(o + 2 * i, blk, 2);
      std::memcpy(o + 16 + 2 * i, blk + 2, 2);
      uint8_t sc[8], mn[8];
      for (int j = 0; j < 8; ++j) ScaleMinK4(j, blk + 4, &sc[j], &mn[j]);
      uint32_t w[3];
      EncodeScalesR8(sc, mn, w);
      for (int v = 0; v < 3; ++v) std::memcpy(o + 32 + 32 * v + 4 * i, &w[v], 4);
      // Sub-block s (elements 32s..32s+31) is nibble s % 2 of qs[32 (s / 2) ..+31].
      for (int s0 = 0; s0 < 8; ++s0) {
        const uint8_t* src8 = blk + kQs + 32 * (s0 / 2);
        uint8_t u[16];  // byte 4m + e of unit (s, m)
        if (s0 % 2 == 0) {
          for (int x = 0; x < 16; ++x) u[x] = static_cast<uint8_t>((src8[x] & 15) | (src8[x + 16] << 4));
        } else {
          for (int x = 0; x < 16; ++x) u[x] = static_cast<uint8_t>((src8[x] >> 4) | (src8[x + 16] & 0xF0));
        }
        for (int m = 0; m < 4; ++m) std::memcpy(o + 128 + 32 * (4 * s0 + m) + 4 * i, u + 4 * m, 4);
        if constexpr (kFive) {  // fifth bit of element 32 s0 + w: bit s0 of qh[w]
          const uint8_t* qh = blk + 16;
          for (int w = 0; w < 32; ++w) {
            const int m = (w % 16) / 4, h = w / 16, e = w % 4;
            o[1152 + 32 * s0 + 4 * i + e] |= static_cast<uint8_t>(((qh[w] >> s0) & 1) << (2 * m + h));
          }
        }
      }
    }
  });
}

template <bool kFive>
void UnpackQxKR8Row(const void* group, int i, int64_t nb, void* dst) {
  constexpr int64_t kBytes = kFive ? 176 : kQ4KBytes, kQs = kFive ? 48 : 16;
  const auto* g = static_cast<const uint8_t*>(group);
  auto* d = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* o = g + b * 8 * kBytes;
    uint8_t* blk = d + b * kBytes;
    std::memcpy(blk, o + 2 * i, 2);
    std::memcpy(blk + 2, o + 16 + 2 * i, 2);
    uint32_t w[3];
    for (int v = 0; v < 3; ++v) std::memcpy(&w[v], o + 32 + 32 * v + 4 * i, 4);
    uint8_t sc[8], mn[8];
    DecodeScalesR8(w, sc, mn);
    uint8_t* q = blk + 4;  // the inverse of ScaleMinK4
    for (int j = 0; j < 4; ++j) {
      q[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
      q[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
      q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
    uint8_t* qs = blk + kQs;
    if constexpr (kFive) std::memset(blk + 16, 0, 32);
    for (int e = 0; e < kQK; ++e) {
      const int s0 = e / 32, w = e % 32, m = (w % 16) / 4, hi = w / 16, k = w % 4;
      const uint8_t nib = (o[128 + 32 * (4 * s0 + m) + 4 * i + k] >> (4 * hi)) & 15;
      uint8_t& byte = qs[32 * (e / 64) + e % 32];
      if ((e % 64) < 32) {
        byte = static_cast<uint8_t>((byte & 0xF0) | nib);
      } else {
        byte = static_cast<uint8_t>((byte & 0x0F) | (nib << 4));
      }
      if constexpr (kFive) {
        const int bit = (o[1152 + 32 * s0 + 4 * i + k] >> (2 * m + hi)) & 1;
        blk[16 + w] = static_cast<uint8_t>(blk[16 + w] | (bit << s0));
      }
    }
  }
}
}  // namespace

void RepackQ4_KToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  RepackQxKToR8<false>(src, n_rows, n_in, dst);
}
void UnpackQ4_KR8Row(const void* group, int i, int64_t nb, void* dst) { UnpackQxKR8Row<false>(group, i, nb, dst); }
void RepackQ5_KToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  RepackQxKToR8<true>(src, n_rows, n_in, dst);
}
void UnpackQ5_KR8Row(const void* group, int i, int64_t nb, void* dst) { UnpackQxKR8Row<true>(group, i, nb, dst); }

namespace {
constexpr int64_t kQ6KBytes = 210;
constexpr int64_t kQ6KR8GroupBlockBytes = 8 * kQ6KBytes;
}  // namespace

void RepackQ6_KToR8(const void* src, int64_t n_rows, int64_t n_in, void* dst) {
  MOXIE_CHECK(n_rows % 8 == 0 && n_in % kQK == 0);
  // Bytes in little-endian 64/32-bit words (4-8 elements at once); every value is masked before
  // it is shifted, so no bits cross from one byte into another.
  auto ld64 = [](const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; };
  auto ld32 = [](const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; };
  ForEachR8GroupBlock(src, n_rows, n_in / kQK, kQ6KBytes, dst, [&](const uint8_t* const* blks, uint8_t* o) {
    constexpr uint64_t k0F = 0x0F0F0F0F0F0F0F0FULL, k03 = 0x0303030303030303ULL;
    for (int i = 0; i < 8; ++i) {
      const uint8_t* b = blks[i];
      std::memcpy(o + 2 * i, b + 208, 2);
      for (int g = 0; g < 16; ++g) o[16 + 8 * g + i] = b[192 + g];
      uint8_t u[kQK];  // the stored 6-bit values in element order (as DecodeQ6K, unsigned)
      for (int n = 0; n < 2; ++n) {
        const uint8_t* ql = b + 64 * n;
        const uint8_t* qh = b + 128 + 32 * n;
        uint8_t* q = u + 128 * n;
        for (int l = 0; l < 32; l += 8) {
          const uint64_t l0 = ld64(ql + l), l1 = ld64(ql + l + 32), h = ld64(qh + l);
          const uint64_t w[4] = {(l0 & k0F) | (h & k03) << 4, (l1 & k0F) | (h >> 2 & k03) << 4,
                                 (l0 >> 4 & k0F) | (h >> 4 & k03) << 4, (l1 >> 4 & k0F) | (h >> 6 & k03) << 4};
          for (int j = 0; j < 4; ++j) std::memcpy(q + l + 32 * j, &w[j], 8);
        }
      }
      for (int g = 0; g < 16; ++g) {
        constexpr uint32_t m0F = 0x0F0F0F0F, m03 = 0x03030303;
        const uint8_t* v = u + 16 * g;
        const uint32_t v0 = ld32(v), v1 = ld32(v + 4), v2 = ld32(v + 8), v3 = ld32(v + 12);
        const uint32_t w0 = v0 | (v1 >> 4 & m03) << 6, w1 = v2 | (v3 >> 4 & m03) << 6;
        const uint32_t w2 = (v1 & m0F) | (v3 & m0F) << 4;
        std::memcpy(o + 144 + 96 * g + 4 * i, &w0, 4);
        std::memcpy(o + 144 + 96 * g + 32 + 4 * i, &w1, 4);
        std::memcpy(o + 144 + 96 * g + 64 + 4 * i, &w2, 4);
      }
    }
  });
}

void UnpackQ6_KR8Row(const void* group, int i, int64_t nb, void* dst) {
  const auto* g8 = static_cast<const uint8_t*>(group);
  auto* d = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* o = g8 + b * kQ6KR8GroupBlockBytes;
    uint8_t* blk = d + b * kQ6KBytes;
    std::memset(blk, 0, 192);
    std::memcpy(blk + 208, o + 2 * i, 2);
    for (int g = 0; g < 16; ++g) blk[192 + g] = o[16 + 8 * g + i];
    for (int e = 0; e < kQK; ++e) {
      const int g = e / 16, m = (e % 16) / 4, byte = 4 * i + e % 4;
      const uint8_t* v = o + 144 + 96 * g + byte;  // V0 at v[0], V1 at v[32], V2 at v[64]
      const int u = m == 0   ? v[0] & 63
                    : m == 2 ? v[32] & 63
                    : m == 1 ? (v[64] & 15) | (v[0] >> 6) << 4
                             : (v[64] >> 4) | (v[32] >> 6) << 4;
      const int lo = u & 15, hi = u >> 4;
      // The plain layout (DecodeQ6K): half n = e / 128, l = e % 32, quarter j = (e % 128) / 32.
      const int n = e / 128, j = (e % 128) / 32, l = e % 32;
      blk[64 * n + l + 32 * (j % 2)] |= static_cast<uint8_t>(lo << (4 * (j / 2)));
      blk[128 + 32 * n + l] |= static_cast<uint8_t>(hi << (2 * j));
    }
  }
}

}  // namespace moxie
