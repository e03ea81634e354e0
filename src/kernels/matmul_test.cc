// Every ISA variant against the scalar reference, on shapes with tails; dtype conversions.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

namespace moxie {
namespace {

std::vector<uint8_t> MakeWeights(DType dt, const std::vector<float>& w) {
  std::vector<uint8_t> out(w.size() * DTypeSize(dt));
  for (size_t i = 0; i < w.size(); ++i) {
    if (dt == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &w[i], 4);
    } else {
      const uint16_t h = dt == DType::kBF16 ? F32ToBf16(w[i]) : F32ToF16(w[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

class MatmulIsaTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulIsaTest, Avx2MatchesReference) {
  const KernelTable* avx2 = Avx2Kernels();
  if (avx2 == nullptr) GTEST_SKIP() << "CPU or build without AVX2+FMA+F16C";
  const DType dt = GetParam();
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  for (size_t n_in : {1, 7, 8, 31, 32, 33, 100, 257}) {
    const size_t rows = 5, toks = 3;
    std::vector<float> x(toks * n_in), wf(rows * n_in);
    for (auto& v : x) v = nd(rng);
    for (auto& v : wf) v = nd(rng);
    auto w = MakeWeights(dt, wf);
    // +1 byte offset: kernels must accept unaligned weights (safetensors gives no alignment).
    std::vector<uint8_t> wu(w.size() + 1);
    std::memcpy(wu.data() + 1, w.data(), w.size());
    std::vector<float> yr(toks * rows), ya(toks * rows);
    RefKernels().Matmul(dt)(x.data(), n_in, toks, wu.data() + 1, n_in, rows, yr.data(), rows);
    avx2->Matmul(dt)(x.data(), n_in, toks, wu.data() + 1, n_in, rows, ya.data(), rows);
    // Tolerance from the math: reordered f32 sums differ by at most ~n·eps·Σ|x·w|.
    for (size_t t = 0; t < toks; ++t) {
      for (size_t r = 0; r < rows; ++r) {
        float wabs[1];
        double mag = 0;
        for (size_t i = 0; i < n_in; ++i) {
          ConvertToF32(dt, w.data() + (r * n_in + i) * DTypeSize(dt), wabs, 1);
          mag += std::fabs(x[t * n_in + i] * wabs[0]);
        }
        const double tol = 2.0 * n_in * 1.2e-7 * mag + 1e-30;
        EXPECT_NEAR(ya[t * rows + r], yr[t * rows + r], tol) << "n_in " << n_in << " row " << r;
      }
    }
  }
}

// A (row, token) result is the same bits whatever the other rows and tokens of the call (the
// AVX2 float kernels tile rows and tokens in registers; Linear splits rows across threads).
TEST_P(MatmulIsaTest, Avx2IsBatchInvariant) {
  const KernelTable* avx2 = Avx2Kernels();
  if (avx2 == nullptr) GTEST_SKIP() << "CPU or build without AVX2+FMA+F16C";
  const DType dt = GetParam();
  std::mt19937 rng(8);
  std::normal_distribution<float> nd;
  // 2064: all 7 tokens take the large-batch path, 1 and 2 tokens the small one.
  for (size_t n_in : {8, 33, 264, 2064}) {
    const size_t rows = 40, toks = 7;  // 40: the one-token path's page-spread tiles (rows < 4 KiB)
    std::vector<float> x(toks * n_in), wf(rows * n_in);
    for (auto& v : x) v = nd(rng);
    for (auto& v : wf) v = nd(rng);
    const auto w = MakeWeights(dt, wf);
    std::vector<float> all(toks * rows);
    avx2->Matmul(dt)(x.data(), n_in, toks, w.data(), n_in, rows, all.data(), rows);
    const size_t row_bytes = n_in * DTypeSize(dt);
    for (size_t t = 0; t < toks; ++t) {  // one token against all rows (the decode mat-vec)
      std::vector<float> dec(rows);
      avx2->Matmul(dt)(x.data() + t * n_in, n_in, 1, w.data(), n_in, rows, dec.data(), rows);
      ASSERT_EQ(std::memcmp(dec.data(), &all[t * rows], rows * 4), 0)
          << DTypeName(dt) << " n_in " << n_in << " token " << t;
    }
    for (size_t r0 = 0; r0 < rows; r0 += 5) {
      const size_t nr = std::min<size_t>(5, rows - r0);
      for (size_t t0 = 0; t0 < toks; ++t0) {
        for (size_t nt : {size_t{1}, size_t{2}, toks - t0}) {
          if (t0 + nt > toks) continue;
          std::vector<float> part(nt * nr);
          avx2->Matmul(dt)(x.data() + t0 * n_in, n_in, nt, w.data() + r0 * row_bytes, n_in, nr, part.data(), nr);
          for (size_t t = 0; t < nt; ++t) {
            for (size_t r = 0; r < nr; ++r) {
              ASSERT_EQ(part[t * nr + r], all[(t0 + t) * rows + r0 + r])
                  << DTypeName(dt) << " n_in " << n_in << " row " << r0 + r << " token " << t0 + t << " of " << nt;
            }
          }
        }
      }
    }
  }
}

// Attention scores and value sums for m queries sharing K/V: AVX2 against the reference over
// head sizes with 8- and 1-element tails, strided queries and K/V rows, key counts across the
// kernels' key blocks (48 scores, 32 values); every score and output
// column bit-identical whatever the number of queries or keys sharing the call, and a key range
// split over two value calls equal to one call.
TEST(AttentionIsa, Avx2MatchesReferenceAndIsTilingInvariant) {
  const KernelTable* avx2 = Avx2Kernels();
  if (avx2 == nullptr) GTEST_SKIP() << "CPU or build without AVX2+FMA+F16C";
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  for (size_t d : {1, 7, 8, 33, 64, 100, 128, 192}) {
    for (size_t n : {1, 2, 5, 37, 100}) {
      for (size_t m : {1, 2, 3, 4, 5, 9}) {
        const size_t ld = d + 3, ldq = d + 5, lds = n + 2, ldo = d + 1;
        std::vector<float> q(m * ldq), k(n * ld), v(n * ld), p(m * lds);
        for (auto& e : q) e = nd(rng);
        for (auto& e : k) e = nd(rng);
        for (auto& e : v) e = nd(rng);
        for (auto& e : p) e = std::fabs(nd(rng));
        std::vector<float> sr(m * lds), sa(m * lds);
        RefKernels().attn_scores(q.data(), ldq, m, k.data(), ld, n, d, 0.125f, sr.data(), lds);
        avx2->attn_scores(q.data(), ldq, m, k.data(), ld, n, d, 0.125f, sa.data(), lds);
        for (size_t i = 0; i < m; ++i) {
          for (size_t j = 0; j < n; ++j) {
            double mag = 0;
            for (size_t c = 0; c < d; ++c) mag += std::fabs(static_cast<double>(q[i * ldq + c]) * k[j * ld + c]);
            ASSERT_NEAR(sa[i * lds + j], sr[i * lds + j], 1e-6 * mag * 0.125 + 1e-30)
                << "d " << d << " n " << n << " query " << i << " key " << j;
            float one;
            avx2->attn_scores(q.data() + i * ldq, ldq, 1, k.data() + j * ld, ld, 1, d, 0.125f, &one, 1);
            EXPECT_EQ(std::memcmp(&one, &sa[i * lds + j], 4), 0) << "d " << d << " m " << m << " alone";
          }
        }
        std::vector<float> orf(m * ldo, 0.5f), oa(m * ldo, 0.5f), o1(m * ldo, 0.5f);
        RefKernels().attn_values(p.data(), lds, m, v.data(), ld, n, d, orf.data(), ldo);
        avx2->attn_values(p.data(), lds, m, v.data(), ld, n, d, oa.data(), ldo);
        const size_t split = n / 2;
        for (size_t i = 0; i < m; ++i) {  // each query alone, keys in two calls
          avx2->attn_values(p.data() + i * lds, lds, 1, v.data(), ld, split, d, o1.data() + i * ldo, ldo);
          avx2->attn_values(p.data() + i * lds + split, lds, 1, v.data() + split * ld, ld, n - split, d,
                            o1.data() + i * ldo, ldo);
        }
        for (size_t i = 0; i < m; ++i) {
          for (size_t c = 0; c < d; ++c) {
            double mag = 0.5;
            for (size_t j = 0; j < n; ++j) mag += std::fabs(static_cast<double>(p[i * lds + j]) * v[j * ld + c]);
            ASSERT_NEAR(oa[i * ldo + c], orf[i * ldo + c], 1e-6 * mag) << "d " << d << " n " << n << " column " << c;
          }
          EXPECT_EQ(std::memcmp(oa.data() + i * ldo, o1.data() + i * ldo, d * 4), 0)
              << "d " << d << " n " << n << " m " << m << " query " << i << " tiled != alone";
        }
      }
    }
  }
}

// An f16 KV cache: the f16 kernels give, bit for bit, what the f32 kernels give on the widened
// values (reference and AVX2), so every property tested above carries over; over head sizes with
// 8- and 1-element tails and strided rows, values including f16 subnormals and large magnitudes.
// The AVX-512 attention kernels give the AVX2 ones' bits (f32 and f16 caches): two keys per
// 512-bit accumulator for the scores (a last odd key by the AVX2 kernel), 16-lane values.
TEST(AttentionIsa, Avx512MatchesAvx2Bits) {
  const KernelTable* avx2 = Avx2Kernels();
  const KernelTable* avx512 = Avx512Kernels();
  if (avx2 == nullptr || avx512 == nullptr) GTEST_SKIP() << "CPU or build without AVX-512";
  std::mt19937 rng(23);
  std::normal_distribution<float> nd;
  for (size_t d : {1, 7, 8, 15, 33, 64, 100, 128, 192}) {
    for (size_t n : {1, 2, 3, 5, 6, 7, 13, 37, 70}) {
      for (size_t m : {1, 2, 3, 4, 5, 9}) {
        const size_t ld = d + 3, ldq = d + 5, lds = n + 2, ldo = d + 1;
        std::vector<float> q(m * ldq), k(n * ld), v(n * ld), p(m * lds);
        std::vector<uint16_t> kh(n * ld), vh(n * ld);
        for (auto& e : q) e = nd(rng);
        for (size_t i = 0; i < k.size(); ++i) {
          kh[i] = F32ToF16(nd(rng));
          vh[i] = F32ToF16(nd(rng));
          k[i] = F16ToF32(kh[i]);
          v[i] = F16ToF32(vh[i]);
        }
        for (auto& e : p) e = std::fabs(nd(rng));
        std::vector<float> s2(m * lds, -1.f), s5(m * lds, -1.f);
        avx2->attn_scores(q.data(), ldq, m, k.data(), ld, n, d, 0.125f, s2.data(), lds);
        avx512->attn_scores(q.data(), ldq, m, k.data(), ld, n, d, 0.125f, s5.data(), lds);
        ASSERT_EQ(std::memcmp(s2.data(), s5.data(), s2.size() * 4), 0) << "f32 scores d " << d << " n " << n << " m " << m;
        avx512->attn_scores_f16(q.data(), ldq, m, kh.data(), ld, n, d, 0.125f, s5.data(), lds);
        ASSERT_EQ(std::memcmp(s2.data(), s5.data(), s2.size() * 4), 0) << "f16 scores d " << d << " n " << n << " m " << m;
        std::vector<float> o2(m * ldo, 0.5f), o5(m * ldo, 0.5f), o5h(m * ldo, 0.5f);
        avx2->attn_values(p.data(), lds, m, v.data(), ld, n, d, o2.data(), ldo);
        avx512->attn_values(p.data(), lds, m, v.data(), ld, n, d, o5.data(), ldo);
        avx512->attn_values_f16(p.data(), lds, m, vh.data(), ld, n, d, o5h.data(), ldo);
        ASSERT_EQ(std::memcmp(o2.data(), o5.data(), o2.size() * 4), 0) << "f32 values d " << d << " n " << n << " m " << m;
        ASSERT_EQ(std::memcmp(o2.data(), o5h.data(), o2.size() * 4), 0) << "f16 values d " << d << " n " << n << " m " << m;
      }
    }
  }
}

TEST(AttentionIsa, F16CacheEqualsF32KernelsOnWidenedValues) {
  std::vector<const KernelTable*> tables = {&RefKernels()};
  if (Avx2Kernels() != nullptr) tables.push_back(Avx2Kernels());
  std::mt19937 rng(17);
  std::normal_distribution<float> nd;
  for (const KernelTable* kt : tables) {
    ASSERT_NE(kt->attn_scores_f16, nullptr) << kt->isa;
    ASSERT_NE(kt->attn_values_f16, nullptr) << kt->isa;
    for (size_t d : {1, 7, 8, 33, 128}) {
      for (size_t n : {1, 4, 37}) {
        for (size_t m : {1, 3, 4, 9}) {
          const size_t ld = d + 3, ldq = d + 5, lds = n + 2, ldo = d + 1;
          std::vector<float> q(m * ldq), kf(n * ld), vf(n * ld), p(m * lds);
          std::vector<uint16_t> kh(n * ld), vh(n * ld);
          for (auto& e : q) e = nd(rng);
          for (auto& e : p) e = std::fabs(nd(rng));
          for (size_t i = 0; i < n * ld; ++i) {
            const float scale = i % 11 == 0 ? 1e-6f : (i % 13 == 0 ? 3000.f : 1.f);  // subnormal, large
            kh[i] = F32ToF16(nd(rng) * scale);
            vh[i] = F32ToF16(nd(rng) * scale);
            kf[i] = F16ToF32(kh[i]);
            vf[i] = F16ToF32(vh[i]);
          }
          std::vector<float> s32(m * lds), s16(m * lds);
          kt->attn_scores(q.data(), ldq, m, kf.data(), ld, n, d, 0.125f, s32.data(), lds);
          kt->attn_scores_f16(q.data(), ldq, m, kh.data(), ld, n, d, 0.125f, s16.data(), lds);
          for (size_t i = 0; i < m; ++i) {
            EXPECT_EQ(std::memcmp(s32.data() + i * lds, s16.data() + i * lds, n * 4), 0)
                << kt->isa << " scores d " << d << " n " << n << " m " << m << " query " << i;
          }
          std::vector<float> o32(m * ldo, 0.5f), o16(m * ldo, 0.5f);
          kt->attn_values(p.data(), lds, m, vf.data(), ld, n, d, o32.data(), ldo);
          kt->attn_values_f16(p.data(), lds, m, vh.data(), ld, n, d, o16.data(), ldo);
          for (size_t i = 0; i < m; ++i) {
            EXPECT_EQ(std::memcmp(o32.data() + i * ldo, o16.data() + i * ldo, d * 4), 0)
                << kt->isa << " values d " << d << " n " << n << " m " << m << " query " << i;
          }
        }
      }
    }
  }
}

// A bf16 or f16 weight gives the same bits as its exact f32 conversion (one reduction order for
// every float type), so a checkpoint and its converted copy give the same logits.
TEST(MatmulIsa, Avx2SameBitsAsF32Conversion) {
  const KernelTable* avx2 = Avx2Kernels();
  if (avx2 == nullptr) GTEST_SKIP() << "CPU or build without AVX2+FMA+F16C";
  std::mt19937 rng(12);
  std::normal_distribution<float> nd;
  for (DType dt : {DType::kBF16, DType::kF16}) {
    for (size_t n_in : {16, 40, 264, 2048}) {
      for (size_t toks : {1, 2, 5}) {
        const size_t rows = 11;
        std::vector<float> x(toks * n_in), wf(rows * n_in);
        for (auto& v : x) v = nd(rng);
        for (auto& v : wf) v = nd(rng);
        const auto w = MakeWeights(dt, wf);
        std::vector<float> w32(rows * n_in);
        ConvertToF32(dt, w.data(), w32.data(), w32.size());
        std::vector<float> a(toks * rows), b(toks * rows);
        avx2->Matmul(dt)(x.data(), n_in, toks, w.data(), n_in, rows, a.data(), rows);
        avx2->Matmul(DType::kF32)(x.data(), n_in, toks, w32.data(), n_in, rows, b.data(), rows);
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0)
            << DTypeName(dt) << " n_in " << n_in << " toks " << toks;
      }
    }
  }
}

// The AVX-512 float kernels (two rows per vector) give the AVX2 kernels' bits: row counts around
// their 16-row decode tiles, 8-row prefill tiles and a lone last row; inputs with 16-, 8- and
// scalar tails; unaligned weights.
TEST_P(MatmulIsaTest, Avx512MatchesAvx2Bits) {
  const KernelTable* avx2 = Avx2Kernels();
  const KernelTable* avx512 = Avx512Kernels();
  if (avx2 == nullptr || avx512 == nullptr) GTEST_SKIP() << "CPU or build without AVX-512";
  const DType dt = GetParam();
  std::mt19937 rng(17);
  std::normal_distribution<float> nd;
  for (size_t n_in : {1, 8, 16, 27, 264, 2048}) {
    for (size_t rows : {1, 2, 3, 9, 16, 17, 35}) {
      std::vector<float> wf(rows * n_in);
      for (auto& v : wf) v = nd(rng);
      const auto w = MakeWeights(dt, wf);
      std::vector<uint8_t> wu(w.size() + 1);
      std::memcpy(wu.data() + 1, w.data(), w.size());
      for (size_t toks : {1, 2, 4, 7, 8, 13}) {
        std::vector<float> x(toks * n_in);
        for (auto& v : x) v = nd(rng);
        std::vector<float> a(toks * rows), b(toks * rows);
        avx2->Matmul(dt)(x.data(), n_in, toks, wu.data() + 1, n_in, rows, a.data(), rows);
        avx512->Matmul(dt)(x.data(), n_in, toks, wu.data() + 1, n_in, rows, b.data(), rows);
        ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0)
            << DTypeName(dt) << " n_in " << n_in << " rows " << rows << " toks " << toks;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, MatmulIsaTest,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& i) { return std::string(DTypeName(i.param)); });

TEST(Linear, ThreadedEqualsSingleThreadedAndAddsBias) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  const int64_t out = 37, in = 19;
  std::vector<float> w(out * in), x(2 * in), b(out);
  for (auto& v : w) v = nd(rng);
  for (auto& v : x) v = nd(rng);
  for (auto& v : b) v = nd(rng);
  TensorView tv{w.data(), DType::kF32, Shape{{out, in}}};
  ThreadPool pool(3);
  ExecContext one{nullptr, &RefKernels()}, many{&pool, &RefKernels()};
  std::vector<float> y1(2 * out), y3(2 * out);
  Linear(one, x.data(), in, 2, tv, b.data(), y1.data(), out);
  Linear(many, x.data(), in, 2, tv, b.data(), y3.data(), out);
  EXPECT_EQ(y1, y3);  // same kernel, same per-row order: bit-identical
  float ref = b[5];
  for (int i = 0; i < in; ++i) ref += x[in + i] * w[5 * in + i];
  EXPECT_NEAR(y1[out + 5], ref, 1e-5);
}

TEST(DType, HalfConversionsRoundTripAndRound) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(f))));
      continue;
    }
    EXPECT_EQ(F32ToF16(f), h) << h;  // every f16 value survives the round trip exactly
  }
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F32ToF16(65520.f), 0x7c00);  // rounds to inf
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(Bf16ToF32(F32ToBf16(1.00390625f)), 1.0f);         // tie -> even
  EXPECT_EQ(Bf16ToF32(F32ToBf16(-3.5f)), -3.5f);
}

}  // namespace
}  // namespace moxie
