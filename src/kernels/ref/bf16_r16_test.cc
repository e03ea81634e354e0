// BF16_R16 and F16_R16 (16 BF16 / F16 rows interleaved at load): the layouts, the f32-activation
// order every table follows (bit-identical to the reference), the bf16-activation kernels against
// the reference, and results independent of the batch, the row split and the thread count.
#include "kernels/ref/bf16_r16.h"

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/ops.h"
#include "kernels/ref/bf16_act.h"
#include "tests/test_util.h"

namespace moxie {
namespace {

// rows × n bf16 (or f16: `f16`) values of a normal distribution, rows of different magnitudes (the
// 3e-3 rows give f16 subnormals).
std::vector<uint16_t> Bf16Rows(size_t rows, size_t n, std::mt19937* rng, bool f16 = false) {
  std::normal_distribution<float> nd;
  const float kScales[] = {1.f, 3e-3f, 2e3f, 0.05f, 40.f};
  std::vector<uint16_t> w(rows * n);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t i = 0; i < n; ++i) {
      const float f = nd(*rng) * kScales[r % 5];
      w[r * n + i] = f16 ? F32ToF16(f) : F32ToBf16(f);
    }
  }
  return w;
}
float Widen(uint16_t h, bool f16) { return f16 ? F16ToF32(h) : Bf16ToF32(h); }

// The R16 copy of `plain`, at 2 bytes past an aligned address (the kernels read it unaligned).
struct R16Weights {
  std::vector<uint8_t> storage;
  const uint8_t* data() const { return storage.data() + 2; }
};
R16Weights Repack(const std::vector<uint16_t>& plain, size_t rows, size_t n, bool f16 = false) {
  R16Weights r;
  r.storage.assign(rows * n * 2 + 2, 0);
  (f16 ? RepackF16ToR16 : RepackBf16ToR16)(plain.data(), static_cast<int64_t>(rows),
                                           static_cast<int64_t>(n), r.storage.data() + 2);
  return r;
}

std::vector<float> Activations(size_t n_tok, size_t ld, std::mt19937* rng) {
  std::normal_distribution<float> nd;
  std::vector<float> x(n_tok * ld);
  for (size_t t = 0; t < n_tok; ++t) {
    for (size_t i = 0; i < ld; ++i) x[t * ld + i] = nd(*rng) * (t % 3 == 1 ? 1e3f : 1.f);
  }
  return x;
}

TEST(Bf16R16, LayoutIsPairsOf16RowsAndRoundTrips) {
  std::mt19937 rng(1);
  for (size_t n : {size_t{2}, size_t{6}, size_t{34}}) {
    const size_t rows = 32;
    const auto w = Bf16Rows(rows, n, &rng);
    const auto r = Repack(w, rows, n);
    for (size_t g = 0; g < rows / 16; ++g) {
      for (size_t p = 0; p < n / 2; ++p) {
        for (size_t i = 0; i < 16; ++i) {
          uint16_t e[2];
          std::memcpy(e, r.data() + g * 32 * n + 64 * p + 4 * i, 4);
          ASSERT_EQ(e[0], w[(16 * g + i) * n + 2 * p])
              << "n " << n << " group " << g << " pair " << p << " lane " << i;
          ASSERT_EQ(e[1], w[(16 * g + i) * n + 2 * p + 1]);
        }
      }
      for (int i = 0; i < 16; ++i) {
        std::vector<uint16_t> row(n);
        UnpackBf16R16Row(r.data() + g * 32 * n, i, static_cast<int64_t>(n), row.data());
        ASSERT_EQ(std::memcmp(row.data(), &w[(16 * g + static_cast<size_t>(i)) * n], 2 * n), 0);
      }
    }
  }
}

// The documented order, written out for 6 inputs (pairs 0 and 2 in chain 0, pair 1 in chain 1).
TEST(Bf16R16, ReferenceSumsTwoChainsOfPairs) {
  std::mt19937 rng(2);
  const size_t n = 6, rows = 16;
  const auto w = Bf16Rows(rows, n, &rng);
  const auto r = Repack(w, rows, n);
  const auto x = Activations(1, n, &rng);
  std::vector<float> y(rows);
  MatmulBf16R16Ref(x.data(), n, 1, r.data(), n, rows, y.data(), rows);
  for (size_t i = 0; i < rows; ++i) {
    auto W = [&](size_t k) { return Bf16ToF32(w[i * n + k]); };
    float a0 = std::fma(W(1), x[1], std::fma(W(0), x[0], 0.f));
    a0 = std::fma(W(5), x[5], std::fma(W(4), x[4], a0));
    const float a1 = std::fma(W(3), x[3], std::fma(W(2), x[2], 0.f));
    const float want = a0 + a1;
    EXPECT_EQ(std::memcmp(&y[i], &want, 4), 0) << "row " << i << ": " << y[i] << " vs " << want;
  }
}

TEST(F16R16, LayoutIsTheRowsHalvesPerPairAndRoundTrips) {
  std::mt19937 rng(11);
  for (size_t n : {size_t{2}, size_t{6}, size_t{34}}) {
    const size_t rows = 32;
    const auto w = Bf16Rows(rows, n, &rng, true);
    const auto r = Repack(w, rows, n, true);
    for (size_t g = 0; g < rows / 16; ++g) {
      for (size_t p = 0; p < n / 2; ++p) {
        for (size_t i = 0; i < 16; ++i) {
          uint16_t e0, e1;
          std::memcpy(&e0, r.data() + g * 32 * n + 64 * p + 2 * i, 2);
          std::memcpy(&e1, r.data() + g * 32 * n + 64 * p + 32 + 2 * i, 2);
          ASSERT_EQ(e0, w[(16 * g + i) * n + 2 * p])
              << "n " << n << " group " << g << " pair " << p << " lane " << i;
          ASSERT_EQ(e1, w[(16 * g + i) * n + 2 * p + 1]);
        }
      }
      for (int i = 0; i < 16; ++i) {
        std::vector<uint16_t> row(n);
        UnpackF16R16Row(r.data() + g * 32 * n, i, static_cast<int64_t>(n), row.data());
        ASSERT_EQ(std::memcmp(row.data(), &w[(16 * g + static_cast<size_t>(i)) * n], 2 * n), 0);
      }
    }
  }
}

TEST(F16R16, ReferenceSumsTwoChainsOfPairs) {
  std::mt19937 rng(12);
  const size_t n = 6, rows = 16;
  const auto w = Bf16Rows(rows, n, &rng, true);
  const auto r = Repack(w, rows, n, true);
  const auto x = Activations(1, n, &rng);
  std::vector<float> y(rows);
  MatmulF16R16Ref(x.data(), n, 1, r.data(), n, rows, y.data(), rows);
  for (size_t i = 0; i < rows; ++i) {
    auto W = [&](size_t k) { return F16ToF32(w[i * n + k]); };
    float a0 = std::fma(W(1), x[1], std::fma(W(0), x[0], 0.f));
    a0 = std::fma(W(5), x[5], std::fma(W(4), x[4], a0));
    const float a1 = std::fma(W(3), x[3], std::fma(W(2), x[2], 0.f));
    const float want = a0 + a1;
    EXPECT_EQ(std::memcmp(&y[i], &want, 4), 0) << "row " << i << ": " << y[i] << " vs " << want;
  }
}

// Every SIMD table's f32-activation kernel gives the reference's bits, for any token count (tiles
// of 1, 2 and up to 8 tokens; n 8194 splits the AVX2 kernel's tokens in blocks of 4), odd pair
// counts, strides wider than the rows. (F16_R16 too: the same kernels with another widening.)
TEST(Bf16R16, EveryTableGivesTheReferenceBits) {
  std::mt19937 rng(3);
  int tables = 0;
  for (const bool f16 : {false, true}) {
    const DType dt = f16 ? DType::kF16R16 : DType::kBF16R16;
    const MatmulFn ref = f16 ? MatmulF16R16Ref : MatmulBf16R16Ref;
    for (const KernelTable* t : SimdKernels()) {
      if (t->Matmul(dt) == nullptr) continue;
      ++tables;
      for (size_t n : {size_t{2}, size_t{6}, size_t{32}, size_t{34}, size_t{100}, size_t{2050}, size_t{8194}}) {
        for (size_t rows : {size_t{16}, size_t{48}}) {
          const auto w = Bf16Rows(rows, n, &rng, f16);
          const auto r = Repack(w, rows, n, f16);
          // The plain reference agrees within the f32 reordering (a check of the layout's meaning).
          for (size_t toks : {size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{5}, size_t{8},
                              size_t{9}, size_t{13}, size_t{17}}) {
            const size_t ldx = n + 3, ldy = rows + 5;
            const auto x = Activations(toks, ldx, &rng);
            std::vector<float> want(toks * ldy, -1.f), got(toks * ldy, -1.f),
                plain(toks * ldy, -1.f);
            ref(x.data(), ldx, toks, r.data(), n, rows, want.data(), ldy);
            t->Matmul(dt)(x.data(), ldx, toks, r.data(), n, rows, got.data(), ldy);
            ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * 4), 0)
                << t->isa << " " << DTypeName(dt) << " n " << n << " rows " << rows << " toks "
                << toks;
            RefKernels().Matmul(f16 ? DType::kF16 : DType::kBF16)(x.data(), ldx, toks, w.data(), n,
                                                                  rows, plain.data(), ldy);
            for (size_t k = 0; k < toks; ++k) {
              for (size_t i = 0; i < rows; ++i) {
                double mag = 0;
                for (size_t j = 0; j < n; ++j)
                  mag += std::fabs(double{Widen(w[i * n + j], f16)} * x[k * ldx + j]);
                ASSERT_NEAR(want[k * ldy + i], plain[k * ldy + i], 1e-6 * mag + 1e-30)
                    << DTypeName(dt) << " n " << n << " row " << i;
              }
            }
          }
        }
      }
    }
  }
  if (tables == 0) GTEST_SKIP() << "no SIMD table with BF16_R16 / F16_R16 kernels on this CPU";
}

std::vector<uint8_t> Bf16Act(const std::vector<float>& x, size_t toks, size_t n) {
  std::vector<uint8_t> xq(toks * ActRowBytes(DType::kBF16R16, n));
  for (size_t t = 0; t < toks; ++t) QuantizeActBf16(x.data() + t * n, xq.data() + t * 2 * n, n);
  return xq;
}

// The bf16-activation kernels (AVX512_BF16, AMX) against the reference within the f32 reordering,
// and each (row, token) the same bits alone, in any batch and any split by groups.
TEST(Bf16R16, Bf16ActivationKernelsMatchReferenceAndBatches) {
  std::mt19937 rng(4);
  int tables = 0;
  for (const KernelTable* t : SimdKernels()) {
    const QMatmulFn qmm = t->QMatmul(DType::kBF16R16);
    if (qmm == nullptr) continue;
    ++tables;
    for (size_t n :
         {size_t{2}, size_t{30}, size_t{32}, size_t{64}, size_t{96}, size_t{100}, size_t{2048}}) {
      for (size_t rows : {size_t{16}, size_t{32}, size_t{48}}) {
        const auto w = Bf16Rows(rows, n, &rng);
        const auto r = Repack(w, rows, n);
        const size_t toks = 40;
        const auto x = Activations(toks, n, &rng);
        const auto xq = Bf16Act(x, toks, n);
        const size_t stride = 2 * n;
        std::vector<float> want(toks * rows), all(toks * rows);
        QMatmulBf16R16ActRef(xq.data(), stride, toks, r.data(), n, rows, want.data(), rows);
        qmm(xq.data(), stride, toks, r.data(), n, rows, all.data(), rows);
        // Products of bf16 values are exact in f32; only the summation order differs: within a few
        // f32 roundings of Σ |w·x| (rows and tokens of very different magnitudes cancel).
        for (size_t k = 0; k < toks; ++k) {
          for (size_t i = 0; i < rows; ++i) {
            double mag = 0;
            for (size_t j = 0; j < n; ++j) {
              uint16_t xb;
              std::memcpy(&xb, xq.data() + k * stride + 2 * j, 2);
              mag += std::fabs(double{Bf16ToF32(w[i * n + j])} * Bf16ToF32(xb));
            }
            ASSERT_NEAR(all[k * rows + i], want[k * rows + i],
                        1e-6 * std::sqrt(static_cast<double>(n)) * mag)
                << t->isa << " n " << n << " rows " << rows << " token " << k << " row " << i;
          }
        }
        for (size_t k : {size_t{0}, size_t{7}, size_t{16}, size_t{39}}) {
          for (size_t nt : {size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{5}, size_t{17}}) {
            if (k + nt > toks) continue;
            std::vector<float> few(nt * rows);
            qmm(xq.data() + k * stride, stride, nt, r.data(), n, rows, few.data(), rows);
            ASSERT_EQ(std::memcmp(few.data(), &all[k * rows], few.size() * 4), 0)
                << t->isa << " n " << n << " tokens " << k << "+" << nt;
          }
          for (size_t g = 0; g < rows / 16; ++g) {  // one group alone
            float one[16];
            qmm(xq.data() + k * stride, stride, 1, r.data() + g * 32 * n, n, 16, one, 16);
            ASSERT_EQ(std::memcmp(one, &all[k * rows + 16 * g], sizeof one), 0)
                << t->isa << " n " << n << " token " << k << " group " << g;
          }
        }
      }
    }
  }
  if (tables == 0)
    GTEST_SKIP() << "no table with a bf16-activation BF16_R16 kernel (needs AVX512_BF16)";
}

// Linear on BF16_R16 with threads (whole 16-row groups per range): the bits of one thread, on both
// activation paths.
TEST(Bf16R16, LinearThreadedEqualsSingleThreaded) {
  std::mt19937 rng(5);
  const size_t n_out = 80, n_in = 512;
  const auto w = Bf16Rows(n_out, n_in, &rng);
  const auto r = Repack(w, n_out, n_in);
  const TensorView view{r.data(), DType::kBF16R16,
                        Shape{{static_cast<int64_t>(n_out), static_cast<int64_t>(n_in)}}};
  ThreadPool pool(3);
  // The table models run with where it has the layout (AVX-512), else the reference.
  const KernelTable* kt =
      BestKernels().Matmul(DType::kBF16R16) != nullptr ? &BestKernels() : &RefKernels();
  for (bool bf16_act : {false, true}) {
    for (size_t n_tok : {size_t{1}, size_t{6}}) {
      const auto x = Activations(n_tok, n_in, &rng);
      ExecContext one{nullptr, kt}, many{&pool, kt};
      one.bf16_activations = many.bf16_activations = bf16_act;
      many.chunks_per_thread = 2;
      std::vector<float> y1(n_tok * n_out), y3(n_tok * n_out);
      Linear(one, x.data(), n_in, n_tok, view, nullptr, y1.data(), n_out);
      Linear(many, x.data(), n_in, n_tok, view, nullptr, y3.data(), n_out);
      EXPECT_EQ(std::memcmp(y1.data(), y3.data(), y1.size() * 4), 0)
          << kt->isa << " bf16 act " << bf16_act << " n_tok " << n_tok;
      // Against the f32 reference: bf16 activations move each product by up to 2^-9 of itself.
      std::vector<float> want(n_tok * n_out);
      MatmulBf16R16Ref(x.data(), n_in, n_tok, r.data(), n_in, n_out, want.data(), n_out);
      for (size_t t = 0; t < n_tok; ++t) {
        for (size_t i = 0; i < n_out; ++i) {
          double mag = 0;
          for (size_t j = 0; j < n_in; ++j)
            mag += std::fabs(double{Bf16ToF32(w[i * n_in + j])} * x[t * n_in + j]);
          EXPECT_NEAR(y1[t * n_out + i], want[t * n_out + i], (bf16_act ? 4e-3 : 1e-6) * mag)
              << "bf16 act " << bf16_act << " token " << t << " row " << i;
        }
      }
    }
  }
}

// Linear on F16_R16 with threads: the bits of one thread, near the row-major F16 reference.
TEST(F16R16, LinearThreadedEqualsSingleThreaded) {
  std::mt19937 rng(13);
  const size_t n_out = 80, n_in = 512;
  const auto w = Bf16Rows(n_out, n_in, &rng, true);
  const auto r = Repack(w, n_out, n_in, true);
  const TensorView view{r.data(), DType::kF16R16,
                        Shape{{static_cast<int64_t>(n_out), static_cast<int64_t>(n_in)}}};
  ThreadPool pool(3);
  const KernelTable* kt =
      BestKernels().Matmul(DType::kF16R16) != nullptr ? &BestKernels() : &RefKernels();
  for (size_t n_tok : {size_t{1}, size_t{6}}) {
    const auto x = Activations(n_tok, n_in, &rng);
    ExecContext one{nullptr, kt}, many{&pool, kt};
    many.chunks_per_thread = 2;
    std::vector<float> y1(n_tok * n_out), y3(n_tok * n_out), plain(n_tok * n_out);
    Linear(one, x.data(), n_in, n_tok, view, nullptr, y1.data(), n_out);
    Linear(many, x.data(), n_in, n_tok, view, nullptr, y3.data(), n_out);
    EXPECT_EQ(std::memcmp(y1.data(), y3.data(), y1.size() * 4), 0) << kt->isa << " n_tok " << n_tok;
    RefKernels().Matmul(DType::kF16)(x.data(), n_in, n_tok, w.data(), n_in, n_out, plain.data(),
                                     n_out);
    for (size_t t = 0; t < n_tok; ++t) {
      for (size_t i = 0; i < n_out; ++i) {
        double mag = 0;
        for (size_t j = 0; j < n_in; ++j)
          mag += std::fabs(double{F16ToF32(w[i * n_in + j])} * x[t * n_in + j]);
        EXPECT_NEAR(y1[t * n_out + i], plain[t * n_out + i], 1e-6 * mag)
            << "token " << t << " row " << i;
      }
    }
  }
}

}  // namespace
}  // namespace moxie
