// BF16 weights x bf16 activations: the AVX512_BF16 and AMX kernels against the scalar reference, and
// their independence of the batch (a row's bits alone and among other tokens and rows).
#include "kernels/ref/bf16_act.h"

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernel_table.h"
#include "tests/test_util.h"

namespace moxie {
namespace {

std::vector<uint8_t> Bf16Rows(size_t rows, size_t n, std::mt19937* rng) {
  std::normal_distribution<float> nd;
  std::vector<uint8_t> w(rows * n * 2 + 2);  // +2: the kernels read it unaligned
  for (size_t i = 0; i < rows * n; ++i) {
    const uint16_t h = F32ToBf16(nd(*rng));
    std::memcpy(w.data() + 2 + 2 * i, &h, 2);
  }
  return w;
}

TEST(Bf16Activations, QuantizeRoundsToNearestEven) {
  const float x[] = {1.0f, 1.00390625f /* halfway 1 + 2^-8: to even (1) */, 1.01171875f /* 1 + 3·2^-8: up */,
                     -2.5f, 0.0f, INFINITY};
  uint16_t q[6];
  QuantizeActBf16(x, q, 6);
  EXPECT_EQ(q[0], 0x3f80);
  EXPECT_EQ(q[1], 0x3f80);
  EXPECT_EQ(q[2], 0x3f82);
  EXPECT_EQ(Bf16ToF32(q[3]), -2.5f);
  EXPECT_EQ(q[4], 0);
  EXPECT_EQ(q[5], 0x7f80);
}

void CheckMatchesReference(const KernelTable* t, std::initializer_list<size_t> n_ins,
                           std::initializer_list<size_t> row_counts, std::initializer_list<size_t> tok_counts) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  for (size_t n_in : n_ins) {
    for (size_t rows : row_counts) {
      const auto w = Bf16Rows(rows, n_in, &rng);
      for (size_t toks : tok_counts) {
        std::vector<float> x(toks * n_in);
        for (auto& v : x) v = nd(rng);
        const size_t stride = ActRowBytes(DType::kBF16, n_in);
        std::vector<uint8_t> xq(toks * stride);
        for (size_t k = 0; k < toks; ++k) t->QuantizeAct(DType::kBF16)(x.data() + k * n_in, xq.data() + k * stride, n_in);
        std::vector<float> want(toks * rows), got(toks * rows);
        QMatmulBf16ActRef(xq.data(), stride, toks, w.data() + 2, n_in, rows, want.data(), rows);
        t->QMatmul(DType::kBF16)(xq.data(), stride, toks, w.data() + 2, n_in, rows, got.data(), rows);
        // Products of bf16 values are exact in f32; only the summation order differs.
        for (size_t i = 0; i < want.size(); ++i) {
          const float scale = std::sqrt(static_cast<float>(n_in));
          EXPECT_NEAR(got[i], want[i], 2e-5f * scale * (1 + std::fabs(want[i])))
              << t->isa << " n_in " << n_in << " rows " << rows << " toks " << toks << " i " << i;
        }
      }
    }
  }
}

// A (row, token) result is the same bits alone (one token, one row) and in any batch and row split.
void CheckBatchInvariance(const KernelTable* t, std::initializer_list<size_t> n_ins, size_t toks) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (size_t n_in : n_ins) {
    const size_t rows = 37;
    const auto w = Bf16Rows(rows, n_in, &rng);
    const size_t stride = ActRowBytes(DType::kBF16, n_in);
    std::vector<float> x(toks * n_in);
    for (auto& v : x) v = nd(rng);
    std::vector<uint8_t> xq(toks * stride);
    for (size_t k = 0; k < toks; ++k) QuantizeActBf16(x.data() + k * n_in, xq.data() + k * stride, n_in);
    std::vector<float> all(toks * rows);
    t->QMatmul(DType::kBF16)(xq.data(), stride, toks, w.data() + 2, n_in, rows, all.data(), rows);
    for (size_t k = 0; k < toks; ++k) {
      for (size_t r = 0; r < rows; ++r) {
        float one;
        t->QMatmul(DType::kBF16)(xq.data() + k * stride, stride, 1, w.data() + 2 + r * n_in * 2, n_in, 1, &one, 1);
        ASSERT_EQ(std::memcmp(&one, &all[k * rows + r], 4), 0) << t->isa << " token " << k << " row " << r;
      }
      // One token against all rows (the decode path: 8 rows in flight).
      std::vector<float> dec(rows);
      t->QMatmul(DType::kBF16)(xq.data() + k * stride, stride, 1, w.data() + 2, n_in, rows, dec.data(), rows);
      ASSERT_EQ(std::memcmp(dec.data(), &all[k * rows], rows * 4), 0) << t->isa << " n_in " << n_in << " token " << k;
      // Two and three tokens against all rows (small expert batches: one token-tile).
      for (size_t nt : {size_t{2}, size_t{3}}) {
        if (k + nt > toks) continue;
        std::vector<float> few(nt * rows);
        t->QMatmul(DType::kBF16)(xq.data() + k * stride, stride, nt, w.data() + 2, n_in, rows, few.data(), rows);
        ASSERT_EQ(std::memcmp(few.data(), &all[k * rows], nt * rows * 4), 0)
            << t->isa << " n_in " << n_in << " tokens " << k << "+" << nt;
      }
    }
  }
}

TEST(Bf16Activations, FastKernelMatchesReference) {
  const KernelTable* t = Avx512Kernels();
  if (t == nullptr || t->QMatmul(DType::kBF16) == nullptr) GTEST_SKIP() << "CPU or build without AVX512_BF16";
  CheckMatchesReference(t, {1, 2, 31, 32, 33, 64, 100, 2048}, {1, 3, 8, 13, 37}, {1, 2, 5, 7, 13});
}

TEST(Bf16Activations, ResultIndependentOfBatchAndRows) {
  const KernelTable* t = Avx512Kernels();
  if (t == nullptr || t->QMatmul(DType::kBF16) == nullptr) GTEST_SKIP() << "CPU or build without AVX512_BF16";
  // 2065: rows over a page; 1017 and 100: the one-token path's page-spread tiles.
  CheckBatchInvariance(t, {size_t{2048 + 17}, size_t{1017}, size_t{100}}, 11);
}

// AMX: n_in a multiple of 32 takes the tiles (row blocks of 16 with a tail, token blocks of 16 with
// a tail, one and two of each per pass); other n_in the AVX-512 kernel.
TEST(Bf16Activations, AmxMatchesReference) {
  const KernelTable* t = AmxKernels();
  if (t == nullptr) GTEST_SKIP() << "CPU, OS or build without AMX-BF16";
  CheckMatchesReference(t, {32, 64, 96, 2048, 33, 100}, {1, 13, 16, 17, 37, 64}, {1, 2, 13, 16, 17, 33, 40});
}

TEST(Bf16Activations, AmxResultIndependentOfBatchAndRows) {
  const KernelTable* t = AmxKernels();
  if (t == nullptr) GTEST_SKIP() << "CPU, OS or build without AMX-BF16";
  CheckBatchInvariance(t, {size_t{2048}, size_t{1024}, size_t{96}, size_t{1017}}, 37);
}

}  // namespace
}  // namespace moxie
