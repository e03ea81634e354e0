#include "core/dtype.h"

#include <cmath>

namespace moxie {

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
    case DType::kU8: return "U8";
    case DType::kQ8_0: return "Q8_0";
    case DType::kQ8_0R8: return "Q8_0_R8";
    case DType::kQ4_0: return "Q4_0";
    case DType::kQ4_K: return "Q4_K";
    case DType::kQ4_KR8: return "Q4_K_R8";
    case DType::kQ5_K: return "Q5_K";
    case DType::kQ5_KR8: return "Q5_K_R8";
    case DType::kQ6_K: return "Q6_K";
    case DType::kQ6_KR8: return "Q6_K_R8";
    case DType::kMXFP4: return "MXFP4";
    case DType::kBF16R16: return "BF16_R16";
    case DType::kF16R16: return "F16_R16";
    case DType::kQ4_0R8: return "Q4_0_R8";
    case DType::kMXFP4R8: return "MXFP4_R8";
  }
  return "?";
}

int DTypeBlock(DType t) {
  switch (t) {
    case DType::kQ8_0: case DType::kQ8_0R8: case DType::kQ4_0: case DType::kQ4_0R8: case DType::kMXFP4:
    case DType::kMXFP4R8: return 32;
    case DType::kQ4_K: case DType::kQ4_KR8: case DType::kQ5_K: case DType::kQ6_K:
    case DType::kQ5_KR8: case DType::kQ6_KR8: return 256;
    default: return 1;
  }
}

size_t DTypeBlockBytes(DType t) {
  switch (t) {
    case DType::kQ8_0: case DType::kQ8_0R8: return 34;
    case DType::kQ4_0: case DType::kQ4_0R8: return 18;
    case DType::kMXFP4: case DType::kMXFP4R8: return 17;
    case DType::kQ4_K: case DType::kQ4_KR8: return 144;
    case DType::kQ5_K: case DType::kQ5_KR8: return 176;
    case DType::kQ6_K: case DType::kQ6_KR8: return 210;
    default: return DTypeSize(t);
  }
}

int GgmlTypeOf(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ8_0: return 8;
    case DType::kQ4_K: return 12;
    case DType::kQ5_K: return 13;
    case DType::kQ6_K: return 14;
    case DType::kI32: return 26;
    case DType::kBF16: return 30;
    case DType::kMXFP4: return 39;
    default: return -1;
  }
}

bool DTypeFromGgml(uint32_t g, DType* out) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ8_0, DType::kQ4_K,
                  DType::kQ5_K, DType::kQ6_K, DType::kMXFP4, DType::kI32}) {
    if (GgmlTypeOf(t) == static_cast<int>(g)) {
      *out = t;
      return true;
    }
  }
  return false;
}

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF16: case DType::kF16R16: return 2;
    case DType::kBF16: case DType::kBF16R16: return 2;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kU8: return 1;
    default: return 0;
  }
}

float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: value = man * 2^-24
      float f = std::ldexp(static_cast<float>(man), -24);
      std::memcpy(&u, &f, 4);
      u |= sign;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t F32ToF16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // overflow (incl. rounding up) -> inf
  if (abs < 0x38800000u) {                        // subnormal or zero in f16
    // value / 2^-24, rounded to nearest even
    float a;
    std::memcpy(&a, &abs, 4);
    float scaled = a * 16777216.0f;  // 2^24
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  uint32_t mant = abs & 0x7fffffu;
  uint32_t exp = (abs >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h += 1;  // may carry into exponent: correct
  return sign | static_cast<uint16_t>(h);
}

void ConvertToF32(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::kBF16:
    case DType::kF16: {
      // Weights in files may be unaligned: read through memcpy.
      const auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = t == DType::kBF16 ? Bf16ToF32(h) : F16ToF32(h);
      }
      return;
    }
    default:
      for (size_t i = 0; i < n; ++i) dst[i] = NAN;
  }
}

}  // namespace moxie
