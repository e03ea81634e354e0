// Scalar reference matmuls: the ground truth every ISA variant is tested against.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/kernel_table.h"
#include "kernels/ref/quant.h"

namespace moxie {
namespace {

template <typename LoadW>
void MatmulRef(const float* x, size_t ldx, size_t n_tok, const uint8_t* w, size_t row_bytes,
               size_t n_in, size_t n_rows, float* y, size_t ldy, LoadW load) {
  for (size_t r = 0; r < n_rows; ++r) {
    const uint8_t* wr = w + r * row_bytes;
    for (size_t t = 0; t < n_tok; ++t) {
      const float* xt = x + t * ldx;
      float acc = 0.f;
      for (size_t i = 0; i < n_in; ++i) acc += xt[i] * load(wr, i);
      y[t * ldy + r] = acc;
    }
  }
}

void MatmulF32(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
               float* y, size_t ldy) {
  MatmulRef(x, ldx, n_tok, static_cast<const uint8_t*>(w), n_in * 4, n_in, n_rows, y, ldy,
            [](const uint8_t* p, size_t i) {
              float f;
              std::memcpy(&f, p + 4 * i, 4);
              return f;
            });
}

void MatmulF16(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
               float* y, size_t ldy) {
  MatmulRef(x, ldx, n_tok, static_cast<const uint8_t*>(w), n_in * 2, n_in, n_rows, y, ldy,
            [](const uint8_t* p, size_t i) {
              uint16_t h;
              std::memcpy(&h, p + 2 * i, 2);
              return F16ToF32(h);
            });
}

void MatmulBf16(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in,
                size_t n_rows, float* y, size_t ldy) {
  MatmulRef(x, ldx, n_tok, static_cast<const uint8_t*>(w), n_in * 2, n_in, n_rows, y, ldy,
            [](const uint8_t* p, size_t i) {
              uint16_t h;
              std::memcpy(&h, p + 2 * i, 2);
              return Bf16ToF32(h);
            });
}

// Quantized weights: each row is dequantized once, a chunk at a time into a stack buffer, and
// its dot with every token accumulates directly in y (no allocation).
template <QuantType Q>
void MatmulQuant(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in,
                 size_t n_rows, float* y, size_t ldy) {
  constexpr size_t kChunk = 1024;  // a multiple of every block size (32, 256)
  float buf[kChunk];
  const size_t row_bytes = QuantRowBytes(Q, static_cast<int64_t>(n_in));
  const size_t block = static_cast<size_t>(GetQuantInfo(static_cast<uint32_t>(Q))->block);
  const size_t block_bytes = static_cast<size_t>(GetQuantInfo(static_cast<uint32_t>(Q))->type_size);
  for (size_t r = 0; r < n_rows; ++r) {
    const uint8_t* wr = static_cast<const uint8_t*>(w) + r * row_bytes;
    for (size_t t = 0; t < n_tok; ++t) y[t * ldy + r] = 0.f;
    for (size_t c = 0; c < n_in; c += kChunk) {
      const size_t n = std::min(kChunk, n_in - c);
      DequantizeRow(Q, wr + c / block * block_bytes, buf, static_cast<int64_t>(n));
      for (size_t t = 0; t < n_tok; ++t) {
        const float* xt = x + t * ldx + c;
        float acc = 0.f;
        for (size_t i = 0; i < n; ++i) acc += xt[i] * buf[i];
        y[t * ldy + r] += acc;
      }
    }
  }
}

// 8-bit activations: ggml's generic dot per (row, token), bit-identical to DotRowQ8.
template <QuantType Q>
void QuantizeActRef(const float* x, void* xq, size_t n_in) {
  QuantizeActivationRow(Q, x, xq, static_cast<int64_t>(n_in));
}

template <QuantType Q>
void QMatmulRef(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                size_t n_rows, float* y, size_t ldy) {
  const size_t row_bytes = QuantRowBytes(Q, static_cast<int64_t>(n_in));
  for (size_t r = 0; r < n_rows; ++r) {
    const uint8_t* wr = static_cast<const uint8_t*>(w) + r * row_bytes;
    for (size_t t = 0; t < n_tok; ++t) {
      y[t * ldy + r] = DotRowQ8(Q, wr, static_cast<const uint8_t*>(xq) + t * xq_stride, static_cast<int64_t>(n_in));
    }
  }
}

// Q8_0_R8: each row is unpacked to plain Q8_0 blocks a chunk at a time, then exactly the Q8_0
// arithmetic above, so both layouts give the same bits.
constexpr size_t kR8Chunk = 1024;  // elements per unpacked chunk (a multiple of 32)

void MatmulQ8_0R8(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in,
                  size_t n_rows, float* y, size_t ldy) {
  uint8_t q[kR8Chunk / 32 * 34];
  float buf[kR8Chunk];
  const size_t nb = n_in / 32, row_bytes = nb * 34;
  for (size_t r = 0; r < n_rows; ++r) {
    const uint8_t* g = static_cast<const uint8_t*>(w) + (r / 8) * 8 * row_bytes;
    for (size_t t = 0; t < n_tok; ++t) y[t * ldy + r] = 0.f;
    for (size_t c = 0; c < n_in; c += kR8Chunk) {
      const size_t n = std::min(kR8Chunk, n_in - c);
      UnpackQ8_0R8Row(g + c / 32 * 8 * 34, static_cast<int>(r % 8), static_cast<int64_t>(n / 32), q);
      DequantizeRow(QuantType::kQ8_0, q, buf, static_cast<int64_t>(n));
      for (size_t t = 0; t < n_tok; ++t) {
        const float* xt = x + t * ldx + c;
        float acc = 0.f;
        for (size_t i = 0; i < n; ++i) acc += xt[i] * buf[i];
        y[t * ldy + r] += acc;
      }
    }
  }
}

void QMatmulQ8_0R8Ref(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                      size_t n_rows, float* y, size_t ldy) {
  // Per (row, token): sumf += sumi * (d_w * d_x) over blocks in order, as DotRowQ8 for Q8_0.
  const size_t nb = n_in / 32, row_bytes = nb * 34;
  for (size_t r = 0; r < n_rows; ++r) {
    const uint8_t* g = static_cast<const uint8_t*>(w) + (r / 8) * 8 * row_bytes;
    const size_t i = r % 8;
    for (size_t t = 0; t < n_tok; ++t) {
      const uint8_t* a = static_cast<const uint8_t*>(xq) + t * xq_stride;
      float sumf = 0.f;
      for (size_t b = 0; b < nb; ++b) {
        const uint8_t* o = g + b * 8 * 34;
        const uint8_t* yb = a + b * 34;
        uint16_t dw, dx;
        std::memcpy(&dw, o + 2 * i, 2);
        std::memcpy(&dx, yb, 2);
        int sumi = 0;
        for (int k = 0; k < 8; ++k) {
          for (int j = 0; j < 4; ++j) {
            sumi += static_cast<int8_t>(o[16 + 32 * k + 4 * i + j]) * static_cast<int8_t>(yb[2 + 4 * k + j]);
          }
        }
        sumf += static_cast<float>(sumi) * (F16ToF32(dw) * F16ToF32(dx));
      }
      y[t * ldy + r] = sumf;
    }
  }
}

}  // namespace

void AddQuantActMatmulsRef(KernelTable* t) {
  t->SetQ(DType::kQ8_0R8, QuantizeActRef<QuantType::kQ8_0>, QMatmulQ8_0R8Ref);
  t->SetQ(DType::kQ8_0, QuantizeActRef<QuantType::kQ8_0>, QMatmulRef<QuantType::kQ8_0>);
  t->SetQ(DType::kQ4_0, QuantizeActRef<QuantType::kQ4_0>, QMatmulRef<QuantType::kQ4_0>);
  t->SetQ(DType::kQ4_K, QuantizeActRef<QuantType::kQ4_K>, QMatmulRef<QuantType::kQ4_K>);
  t->SetQ(DType::kQ5_K, QuantizeActRef<QuantType::kQ5_K>, QMatmulRef<QuantType::kQ5_K>);
  t->SetQ(DType::kQ6_K, QuantizeActRef<QuantType::kQ6_K>, QMatmulRef<QuantType::kQ6_K>);
  t->SetQ(DType::kMXFP4, QuantizeActRef<QuantType::kMXFP4>, QMatmulRef<QuantType::kMXFP4>);
}

void AddQuantMatmuls(KernelTable* t) {
  t->Set(DType::kQ8_0, MatmulQuant<QuantType::kQ8_0>);
  t->Set(DType::kQ8_0R8, MatmulQ8_0R8);
  t->Set(DType::kQ4_0, MatmulQuant<QuantType::kQ4_0>);
  t->Set(DType::kQ4_K, MatmulQuant<QuantType::kQ4_K>);
  t->Set(DType::kQ5_K, MatmulQuant<QuantType::kQ5_K>);
  t->Set(DType::kQ6_K, MatmulQuant<QuantType::kQ6_K>);
  t->Set(DType::kMXFP4, MatmulQuant<QuantType::kMXFP4>);
}

void RowToF32(DType t, const void* src, float* dst, int64_t n) {
  if (!IsQuantized(t)) {
    ConvertToF32(t, src, dst, static_cast<size_t>(n));
    return;
  }
  MOXIE_CHECK(t != DType::kQ8_0R8);  // rows of an interleaved group are not contiguous
  DequantizeRow(static_cast<QuantType>(GgmlTypeOf(t)), src, dst, n);
}

namespace {

void AttnScoresRef(const float* q, const float* k, size_t ldk, size_t n, size_t d, float scale,
                   float* s) {
  for (size_t j = 0; j < n; ++j) {
    const float* kj = k + j * ldk;
    float acc = 0.f;
    for (size_t i = 0; i < d; ++i) acc += q[i] * kj[i];
    s[j] = acc * scale;
  }
}

void AttnValuesRef(const float* p, const float* v, size_t ldv, size_t n, size_t d, float* o) {
  for (size_t j = 0; j < n; ++j) {
    const float* vj = v + j * ldv;
    for (size_t i = 0; i < d; ++i) o[i] += p[j] * vj[i];
  }
}

}  // namespace

void AddAttentionRef(KernelTable* t) {
  t->attn_scores = AttnScoresRef;
  t->attn_values = AttnValuesRef;
}

const KernelTable& RefKernels() {
  static const KernelTable table = [] {
    KernelTable t;
    t.isa = "ref";
    AddAttentionRef(&t);
    t.Set(DType::kF32, MatmulF32);
    t.Set(DType::kF16, MatmulF16);
    t.Set(DType::kBF16, MatmulBf16);
    AddQuantMatmuls(&t);
    AddQuantActMatmulsRef(&t);
    return t;
  }();
  return table;
}

}  // namespace moxie
