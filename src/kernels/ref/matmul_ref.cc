// Scalar reference matmuls: the ground truth every ISA variant is tested against.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/ops.h"
#include "kernels/ref/bf16_act.h"
#include "kernels/ref/bf16_r16.h"
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

// The R8 layouts: each row is unpacked to plain blocks, then the kernels above run on it, so
// both layouts give the same bits by construction. The buffer only grows (no steady-state
// allocation).
template <QuantType Q>
const uint8_t* UnpackR8Row(const void* w, size_t n_in, size_t r) {
  thread_local std::vector<uint8_t> row;
  const size_t row_bytes = QuantRowBytes(Q, static_cast<int64_t>(n_in));
  const auto nb = static_cast<int64_t>(n_in) / GetQuantInfo(static_cast<uint32_t>(Q))->block;
  if (row.size() < row_bytes) row.resize(row_bytes);
  const uint8_t* group = static_cast<const uint8_t*>(w) + (r / 8) * 8 * row_bytes;
  if constexpr (Q == QuantType::kQ8_0) {
    UnpackQ8_0R8Row(group, static_cast<int>(r % 8), nb, row.data());
  } else if constexpr (Q == QuantType::kQ4_0) {
    UnpackQ4_0R8Row(group, static_cast<int>(r % 8), nb, row.data());
  } else if constexpr (Q == QuantType::kMXFP4) {
    UnpackMxfp4R8Row(group, static_cast<int>(r % 8), nb, row.data());
  } else if constexpr (Q == QuantType::kQ4_K) {
    UnpackQ4_KR8Row(group, static_cast<int>(r % 8), nb, row.data());
  } else if constexpr (Q == QuantType::kQ5_K) {
    UnpackQ5_KR8Row(group, static_cast<int>(r % 8), nb, row.data());
  } else {
    static_assert(Q == QuantType::kQ6_K);
    UnpackQ6_KR8Row(group, static_cast<int>(r % 8), nb, row.data());
  }
  return row.data();
}

template <QuantType Q>
void MatmulR8(const float* x, size_t ldx, size_t n_tok, const void* w, size_t n_in, size_t n_rows,
              float* y, size_t ldy) {
  MOXIE_CHECK(n_rows % 8 == 0);
  for (size_t r = 0; r < n_rows; ++r) {
    MatmulQuant<Q>(x, ldx, n_tok, UnpackR8Row<Q>(w, n_in, r), n_in, 1, y + r, ldy);
  }
}

template <QuantType Q>
void QMatmulR8Ref(const void* xq, size_t xq_stride, size_t n_tok, const void* w, size_t n_in,
                  size_t n_rows, float* y, size_t ldy) {
  MOXIE_CHECK(n_rows % 8 == 0);
  for (size_t r = 0; r < n_rows; ++r) {
    QMatmulRef<Q>(xq, xq_stride, n_tok, UnpackR8Row<Q>(w, n_in, r), n_in, 1, y + r, ldy);
  }
}

}  // namespace

void AddQuantActMatmulsRef(KernelTable* t) {
  t->SetQ(DType::kQ8_0R8, QuantizeActRef<QuantType::kQ8_0>, QMatmulR8Ref<QuantType::kQ8_0>);
  t->SetQ(DType::kQ4_0R8, QuantizeActRef<QuantType::kQ4_0>, QMatmulR8Ref<QuantType::kQ4_0>);
  t->SetQ(DType::kMXFP4R8, QuantizeActRef<QuantType::kMXFP4>, QMatmulR8Ref<QuantType::kMXFP4>);
  t->SetQ(DType::kQ4_KR8, QuantizeActRef<QuantType::kQ4_K>, QMatmulR8Ref<QuantType::kQ4_K>);
  t->SetQ(DType::kQ5_KR8, QuantizeActRef<QuantType::kQ5_K>, QMatmulR8Ref<QuantType::kQ5_K>);
  t->SetQ(DType::kQ6_KR8, QuantizeActRef<QuantType::kQ6_K>, QMatmulR8Ref<QuantType::kQ6_K>);
  t->SetQ(DType::kQ8_0, QuantizeActRef<QuantType::kQ8_0>, QMatmulRef<QuantType::kQ8_0>);
  t->SetQ(DType::kQ4_0, QuantizeActRef<QuantType::kQ4_0>, QMatmulRef<QuantType::kQ4_0>);
  t->SetQ(DType::kQ4_K, QuantizeActRef<QuantType::kQ4_K>, QMatmulRef<QuantType::kQ4_K>);
  t->SetQ(DType::kQ5_K, QuantizeActRef<QuantType::kQ5_K>, QMatmulRef<QuantType::kQ5_K>);
  t->SetQ(DType::kQ6_K, QuantizeActRef<QuantType::kQ6_K>, QMatmulRef<QuantType::kQ6_K>);
  t->SetQ(DType::kMXFP4, QuantizeActRef<QuantType::kMXFP4>, QMatmulRef<QuantType::kMXFP4>);
}

void AddQuantMatmuls(KernelTable* t) {
  t->Set(DType::kQ8_0, MatmulQuant<QuantType::kQ8_0>);
  t->Set(DType::kQ8_0R8, MatmulR8<QuantType::kQ8_0>);
  t->Set(DType::kQ4_0R8, MatmulR8<QuantType::kQ4_0>);
  t->Set(DType::kMXFP4R8, MatmulR8<QuantType::kMXFP4>);
  t->Set(DType::kQ4_KR8, MatmulR8<QuantType::kQ4_K>);
  t->Set(DType::kQ5_KR8, MatmulR8<QuantType::kQ5_K>);
  t->Set(DType::kQ6_KR8, MatmulR8<QuantType::kQ6_K>);
  t->Set(DType::kQ4_0, MatmulQuant<QuantType::kQ4_0>);
  t->Set(DType::kQ4_K, MatmulQuant<QuantType::kQ4_K>);
  t->Set(DType::kQ5_K, MatmulQuant<QuantType::kQ5_K>);
  t->Set(DType::kQ6_K, MatmulQuant<QuantType::kQ6_K>);
  t->Set(DType::kMXFP4, MatmulQuant<QuantType::kMXFP4>);
}

void RowToF32(DType t, const void* src, float* dst, int64_t n) {
  MOXIE_CHECK(RowInterleave(t) == 1);  // rows of an interleaved group are not contiguous
  if (!IsQuantized(t)) {
    ConvertToF32(t, src, dst, static_cast<size_t>(n));
    return;
  }
  DequantizeRow(static_cast<QuantType>(GgmlTypeOf(t)), src, dst, n);
}

namespace {

inline float KvElem(const float* p) { return *p; }
inline float KvElem(const uint16_t* p) { return F16ToF32(*p); }

template <typename K>
void AttnScoresRef(const float* q, size_t ldq, size_t m, const K* k, size_t ldk, size_t n,
                   size_t d, float scale, float* s, size_t lds) {
  for (size_t i = 0; i < m; ++i) {
    const float* qi = q + i * ldq;
    for (size_t j = 0; j < n; ++j) {
      const K* kj = k + j * ldk;
      float acc = 0.f;
      for (size_t c = 0; c < d; ++c) acc += qi[c] * KvElem(kj + c);
      s[i * lds + j] = acc * scale;
    }
  }
}

template <typename V>
void AttnValuesRef(const float* p, size_t ldp, size_t m, const V* v, size_t ldv, size_t n,
                   size_t d, float* o, size_t ldo) {
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      const V* vj = v + j * ldv;
      for (size_t c = 0; c < d; ++c) o[i * ldo + c] += p[i * ldp + j] * KvElem(vj + c);
    }
  }
}

}  // namespace

void AddAttentionRef(KernelTable* t) {
  t->attn_scores = AttnScoresRef<float>;
  t->attn_values = AttnValuesRef<float>;
  t->attn_scores_f16 = AttnScoresRef<uint16_t>;
  t->attn_values_f16 = AttnValuesRef<uint16_t>;
  t->silu_mul = SwiGlu;  // kernels/ops.cc
  t->softmax = SoftmaxInPlace;
}

const KernelTable& RefKernels() {
  static const KernelTable table = [] {
    KernelTable t;
    t.isa = "ref";
    AddAttentionRef(&t);
    t.Set(DType::kF32, MatmulF32);
    t.Set(DType::kF16, MatmulF16);
    t.Set(DType::kBF16, MatmulBf16);
    t.Set(DType::kBF16R16, MatmulBf16R16Ref);
    t.Set(DType::kF16R16, MatmulF16R16Ref);
    t.SetQ(DType::kBF16R16, QuantizeActBf16, QMatmulBf16R16ActRef);
    AddQuantMatmuls(&t);
    AddQuantActMatmulsRef(&t);
    return t;
  }();
  return table;
}

}  // namespace moxie
