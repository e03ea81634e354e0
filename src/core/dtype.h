// Element types of weights and activations, and scalar conversions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace moxie {

// Storage formats of tensors. Activations are always F32; weights may be any of these.
// Quantized block formats (GGUF) are added by the formats issue; keep values stable.
// Block-quantized ggml formats (GGUF) store `DTypeBlock` elements in `DTypeBlockBytes` bytes.
enum class DType : uint8_t {
  kF32 = 0, kF16 = 1, kBF16 = 2, kI32 = 3, kI64 = 4, kU8 = 5,
  kQ8_0 = 16, kQ4_0 = 17, kQ4_K = 18, kQ5_K = 19, kQ6_K = 20, kMXFP4 = 21,
  // Q8_0 rows interleaved in groups of 8 (built at load, never stored in a file): per group and
  // block, the 8 rows' f16 scales (16 bytes), then 8 x 32 quant bytes where bytes 32k + 4i..+3 are
  // quants 4k..4k+3 of row i. Same 34 bytes per 32 weights; a group of 8 rows occupies the bytes
  // of 8 Q8_0 rows, so row(r) for r % 8 == 0 still points at its group. Only rows % 8 == 0.
  kQ8_0R8 = 22,
  // Q4_K rows interleaved in groups of 8 (built at load, never stored in a file): per group and
  // 256-element super-block, 1152 bytes = the bytes of the 8 rows' Q4_K blocks:
  //   [0, 16) the 8 rows' d (f16), [16, 32) their dmin (f16),
  //   [32, 128) the 6-bit scales sc_s and mins mn_s (sub-block s = elements 32s..32s+31) as three
  //             vectors A, B, C of 8 little-endian u32, lane i = row i, laid out so that the
  //             AVX2 kernel gets (mn_2p | mn_2p+1 << 16) and (sc_2p | sc_2p+1 << 16) per lane
  //             with one or two shifts and ANDs:
  //     A = mn0 | sc0 << 6 | lo4(mn6) << 12 | mn1 << 16 | sc1 << 22 | lo4(mn7) << 28,
  //     B = mn2 | sc2 << 6 | hi2(mn6) << 12 | hi2(sc6) << 14 | mn3 << 16 | sc3 << 22 |
  //         hi2(mn7) << 28 | hi2(sc7) << 30,
  //     C = mn4 | sc4 << 6 | lo4(sc6) << 12 | mn5 << 16 | sc5 << 22 | lo4(sc7) << 28;
  //   [128, 1152) 32 units of 32 bytes: unit 4s + m holds, in bytes 4i..4i+3, elements
  //   32s + 4m + e (low nibble) and 32s + 4m + 16 + e (high nibble), e = 0..3, of row i.
  // Only rows % 8 == 0.
  kQ4_KR8 = 23,
  // Q6_K rows interleaved in groups of 8 (built at load, never stored in a file): per group and
  // 256-element super-block, 1680 bytes = the bytes of the 8 rows' Q6_K blocks:
  //   [0, 16) the 8 rows' d (f16),
  //   [16, 144) scales: byte 8g + i = the int8 scale of group g (elements 16g..16g+15) of row i,
  //   [144, 1680) 16 groups of 3 vectors of 32 bytes, group g at 144 + 96g. With u_m the stored
  //               6-bit q of element 16g + 4m + e of row i, byte 4i + e of the vectors holds
  //               V0 = u_0 | hi2(u_1) << 6, V1 = u_2 | hi2(u_3) << 6, V2 = lo4(u_1) | lo4(u_3) << 4,
  //               so u_0 and u_2 are one AND each.
  // The weight is d * scale * (q - 32). Only rows % 8 == 0.
  kQ6_KR8 = 24,
  // Q5_K rows interleaved in groups of 8: per group and super-block, 1408 bytes = the Q4_K_R8
  // layout of the low 4 bits (1152 bytes, the same offsets), then [1152, 1408) the fifth bits: 8
  // vectors of 32 bytes; in vector s, bit 2m + h of byte 4i + e is that of element
  // 32s + 4m + 16h + e of row i (the element whose nibble is in unit 4s + m, low h = 0 / high h = 1).
  kQ5_KR8 = 25,
  // BF16 rows interleaved in groups of 16 (built at load, never stored in a file): per group and
  // input pair p (elements 2p, 2p + 1), 64 bytes = 16 little-endian u32, lane i = row i's element
  // 2p (low half) and 2p + 1 (high half). One 64-byte line is 16 rows x 1 pair: a broadcast pair of
  // activations gives 16 rows' partial dots per vdpbf16ps, and 16 consecutive lines (1 KiB) are
  // the B tile of AMX TDPBF16PS, so a group streams as one contiguous run. Same 2 bytes per weight;
  // row(r) for r % 16 == 0 points at its group. Only rows % 16 == 0 and an even n_in.
  kBF16R16 = 26,
  // F16 rows interleaved in groups of 16 (built at load, never stored in a file): per group and
  // input pair p, 64 bytes = the 16 rows' element 2p (16 f16, lane i = row i), then their element
  // 2p + 1. One vcvtph2ps per half widens a line into the 16 rows' two weights, in the lane order
  // of BF16_R16's, so the f32-activation kernels and their order are BF16_R16's (kernels/ref/bf16_r16.h).
  // Same 2 bytes per weight; only rows % 16 == 0 and an even n_in.
  kF16R16 = 27,
  // Q4_0 rows interleaved in groups of 8 (built at load, never stored in a file): per group and
  // block, the 8 rows' f16 scales (16 bytes), then 4 x 32 quant bytes where byte 32k + 4i + e is
  // quant byte 4k + e of row i (low nibble: element 4k + e, high nibble: element 16 + 4k + e), so
  // the low and high nibbles of vector k are elements 4k..4k+3 and 16 + 4k..+3 of the 8 rows. Same
  // 18 bytes per 32 weights, addressed as Q8_0_R8. Only rows % 8 == 0.
  kQ4_0R8 = 28,
  // MXFP4 rows interleaved in groups of 8 (built at load, never stored in a file): per group and
  // block, the 8 rows' E8M0 scales (8 bytes), then the 4 x 32 quant bytes of Q4_0_R8's layout (4-bit
  // E2M1 codes). Same 17 bytes per 32 weights. Only rows % 8 == 0.
  kMXFP4R8 = 29,
};

// Rows interleaved per group by a load-time layout (8 for the *_R8 types, 16 for BF16_R16 and
// F16_R16, else 1): such tensors are addressed in whole groups.
inline int RowInterleave(DType t) {
  if (t == DType::kBF16R16 || t == DType::kF16R16) return 16;
  return t == DType::kQ8_0R8 || t == DType::kQ4_0R8 || t == DType::kMXFP4R8 || t == DType::kQ4_KR8 ||
                 t == DType::kQ5_KR8 || t == DType::kQ6_KR8
             ? 8
             : 1;
}

const char* DTypeName(DType t);
size_t DTypeSize(DType t);  // bytes per element (scalar types only; 0 for block types)
int DTypeBlock(DType t);            // elements per block (1 for scalar types)
size_t DTypeBlockBytes(DType t);    // bytes per block
inline bool IsQuantized(DType t) { return DTypeBlock(t) > 1; }
// Bytes of a row of n elements (n a multiple of the block size).
inline size_t RowBytes(DType t, int64_t n) {
  return static_cast<size_t>(n / DTypeBlock(t)) * DTypeBlockBytes(t);
}
// True for dtypes the float kernels can read as weights.
inline bool IsFloatWeight(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }
// The ggml type id of a dtype, and back (-1 / false if none).
int GgmlTypeOf(DType t);
bool DTypeFromGgml(uint32_t ggml_type, DType* out);

inline float Bf16ToF32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round-to-nearest-even; NaN stays NaN.
inline uint16_t F32ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);

// Converts n elements of `src` (dtype t) to f32.
void ConvertToF32(DType t, const void* src, float* dst, size_t n);

}  // namespace moxie
