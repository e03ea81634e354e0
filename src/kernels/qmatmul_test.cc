// The 8-bit-activation kernels of every ISA table against the scalar reference (DotRowQ8 /
// QuantizeActivationRow): activation bytes identical, dots within the f32-reordering tolerance,
// and each (row, token) result independent of which other rows and tokens share the call.
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/ops.h"
#include "kernels/ref/quant.h"
#include "tests/test_util.h"

namespace moxie {
namespace {

QuantType QuantOf(DType dt) { return static_cast<QuantType>(GgmlTypeOf(dt)); }

// n_rows x n_in weights quantized to dt, with rows of different magnitudes (including large
// ones) and an all-zero block; returned at 1 byte past an aligned address (`storage` owns it).
const uint8_t* MakeWeights(DType dt, size_t n_rows, size_t n_in, std::mt19937* rng,
                           std::vector<uint8_t>* storage) {
  const QuantType q = QuantOf(dt);
  const size_t row_bytes = QuantRowBytes(q, static_cast<int64_t>(n_in));
  const size_t block = static_cast<size_t>(DTypeBlock(dt));
  storage->assign(n_rows * row_bytes + 1, 0);
  std::normal_distribution<float> nd;
  const float kScales[] = {1.f, 3e-3f, 2e3f, 0.05f, 40.f, 1.f, 7e2f};
  std::vector<float> row(n_in);
  for (size_t r = 0; r < n_rows; ++r) {
    for (auto& v : row) v = nd(*rng) * kScales[r % 7];
    if (r % 3 == 2) std::fill(row.begin(), row.begin() + block, 0.f);  // an all-zero block
    if (r % 4 == 1) row[n_in - 1] = 9.f * kScales[r % 7];              // an outlier
    EXPECT_TRUE(
        QuantizeRow(q, row.data(), storage->data() + 1 + r * row_bytes, static_cast<int64_t>(n_in))
            .ok());
  }
  return storage->data() + 1;
}

// n_tok activation rows: varied magnitudes, a zero block, an outlier.
std::vector<float> MakeActivations(DType dt, size_t n_tok, size_t n_in, std::mt19937* rng) {
  std::normal_distribution<float> nd;
  const size_t block = static_cast<size_t>(DTypeBlock(dt));
  const float kScales[] = {1.f, 1e3f, 2e-4f, 30.f, 0.5f};
  std::vector<float> x(n_tok * n_in);
  for (size_t t = 0; t < n_tok; ++t) {
    float* xt = x.data() + t * n_in;
    for (size_t i = 0; i < n_in; ++i) xt[i] = nd(*rng) * kScales[t % 5];
    if (t % 2 == 1 && n_in > block) std::fill(xt + block, xt + 2 * block, 0.f);
    xt[t % n_in] = -11.f * kScales[t % 5];
  }
  return x;
}

// Activations quantized by the reference, at 1 byte past an aligned address.
const uint8_t* QuantizeRef(DType dt, const std::vector<float>& x, size_t n_tok, size_t n_in,
                           std::vector<uint8_t>* storage) {
  const size_t stride = ActivationRowBytes(QuantOf(dt), static_cast<int64_t>(n_in));
  storage->assign(n_tok * stride + 1, 0);
  for (size_t t = 0; t < n_tok; ++t) {
    RefKernels().QuantizeAct(dt)(x.data() + t * n_in, storage->data() + 1 + t * stride, n_in);
  }
  return storage->data() + 1;
}

// Σ_i |w_i · x_i| of the dequantized operands: the scale of the f32 rounding differences.
double DotMagnitude(DType dt, const uint8_t* wrow, const uint8_t* xq, size_t n_in) {
  std::vector<float> w(n_in), x(n_in);
  DequantizeRow(QuantOf(dt), wrow, w.data(), static_cast<int64_t>(n_in));
  DequantizeActivationRow(QuantOf(dt), xq, x.data(), static_cast<int64_t>(n_in));
  double m = 0;
  for (size_t i = 0; i < n_in; ++i) m += std::fabs(static_cast<double>(w[i]) * x[i]);
  return m;
}

class QMatmulIsaTest : public ::testing::TestWithParam<DType> {};

TEST_P(QMatmulIsaTest, Avx2MatchesReference) {
  const KernelTable* avx2 = Avx2Kernels();
  if (avx2 == nullptr) GTEST_SKIP() << "CPU or build without AVX2+FMA+F16C";
  const DType dt = GetParam();
  const size_t block = static_cast<size_t>(DTypeBlock(dt));
  std::mt19937 rng(11);
  for (size_t n_in : {block, 3 * block, 2048 + block}) {
    const size_t row_bytes = QuantRowBytes(QuantOf(dt), static_cast<int64_t>(n_in));
    const size_t stride = ActivationRowBytes(QuantOf(dt), static_cast<int64_t>(n_in));
    // Q8_0-activation kernels: row counts below, at and past their 8-row groups, token counts
    // below and past the switch to row-interleaved tiles. (The K-quant kernels keep the smaller
    // set: past it, Q6_K meets a row whose dequantized dot is exactly 0 while its kernel's
    // offset-form lanes are not, and the magnitude-relative tolerance has nothing to scale by.)
    const bool q8_0_act = block == 32;
    const std::vector<size_t> row_counts = q8_0_act
                                               ? std::vector<size_t>{1, 2, 3, 4, 5, 6, 7, 8, 13, 24}
                                               : std::vector<size_t>{1, 2, 3, 4, 5, 6, 7};
    const std::vector<size_t> tok_counts =
        q8_0_act ? std::vector<size_t>{1, 2, 5, 9} : std::vector<size_t>{1, 2, 5};
    for (size_t n_rows : row_counts) {
      std::vector<uint8_t> wst, xst;
      const uint8_t* w = MakeWeights(dt, n_rows, n_in, &rng, &wst);
      for (size_t n_tok : tok_counts) {
        const auto x = MakeActivations(dt, n_tok, n_in, &rng);
        const uint8_t* xq = QuantizeRef(dt, x, n_tok, n_in, &xst);
        std::vector<float> yr(n_tok * n_rows), ya(n_tok * n_rows);
        RefKernels().QMatmul(dt)(xq, stride, n_tok, w, n_in, n_rows, yr.data(), n_rows);
        avx2->QMatmul(dt)(xq, stride, n_tok, w, n_in, n_rows, ya.data(), n_rows);
        for (size_t t = 0; t < n_tok; ++t) {
          for (size_t r = 0; r < n_rows; ++r) {
            // Exact integer block sums; both sides round ~n_in/block f32 additions differently.
            const double mag = DotMagnitude(dt, w + r * row_bytes, xq + t * stride, n_in);
            const double tol = 1e-5 * mag + 1e-30;
            ASSERT_NEAR(ya[t * n_rows + r], yr[t * n_rows + r], tol)
                << DTypeName(dt) << " n_in " << n_in << " n_rows " << n_rows << " n_tok " << n_tok
                << " at token " << t << " row " << r;
          }
        }
      }
    }
  }
}

// A (row, token) result is the same bits whether computed alone, among 9 tokens, or in any row
// range (Linear splits rows across threads; batches vary in size).
TEST_P(QMatmulIsaTest, Avx2IsBatchInvariant) {
  const KernelTable* avx2 = Avx2Kernels();
  if (avx2 == nullptr) GTEST_SKIP() << "CPU or build without AVX2+FMA+F16C";
  const DType dt = GetParam();
  const size_t block = static_cast<size_t>(DTypeBlock(dt));
  const QMatmulFn mm = avx2->QMatmul(dt);
  std::mt19937 rng(5);
  for (size_t n_in : {block, 3 * block, 2048 + block}) {
    const size_t n_rows = 19, n_tok = 9;  // 8-row groups + a tail; small- and many-token paths
    const size_t row_bytes = QuantRowBytes(QuantOf(dt), static_cast<int64_t>(n_in));
    const size_t stride = ActivationRowBytes(QuantOf(dt), static_cast<int64_t>(n_in));
    std::vector<uint8_t> wst, xst;
    const uint8_t* w = MakeWeights(dt, n_rows, n_in, &rng, &wst);
    const auto x = MakeActivations(dt, n_tok, n_in, &rng);
    const uint8_t* xq = QuantizeRef(dt, x, n_tok, n_in, &xst);
    std::vector<float> all(n_tok * n_rows);
    mm(xq, stride, n_tok, w, n_in, n_rows, all.data(), n_rows);
    // One token at a time, all rows.
    for (size_t t = 0; t < n_tok; ++t) {
      std::vector<float> one(n_rows);
      mm(xq + t * stride, stride, 1, w, n_in, n_rows, one.data(), n_rows);
      for (size_t r = 0; r < n_rows; ++r) {
        EXPECT_EQ(std::memcmp(&one[r], &all[t * n_rows + r], 4), 0)
            << "n_in " << n_in << " token " << t << " row " << r << ": " << one[r] << " vs "
            << all[t * n_rows + r];
      }
    }
    // Row ranges [r0, r1) with tokens 1..nt, nt from 1 to 8 (other token groupings too).
    for (size_t r0 = 0; r0 < n_rows; ++r0) {
      for (size_t r1 = r0 + 1; r1 <= n_rows; ++r1) {
        const size_t nr = r1 - r0, nt = 1 + (r0 + r1) % 8;
        std::vector<float> part(nt * nr);
        mm(xq + stride, stride, nt, w + r0 * row_bytes, n_in, nr, part.data(), nr);
        for (size_t t = 0; t < nt; ++t) {
          for (size_t r = 0; r < nr; ++r) {
            EXPECT_EQ(std::memcmp(&part[t * nr + r], &all[(t + 1) * n_rows + r0 + r], 4), 0)
                << "n_in " << n_in << " rows [" << r0 << ", " << r1 << ") token " << t + 1
                << " row " << r0 + r;
          }
        }
      }
    }
  }
}

// Blocks that exercise the quantizers' edge cases: rounding ties (x·id exactly k + 0.5), the
// sign of the largest magnitude (first of ±max wins in Q8_K), zeros, subnormal and huge scales,
// non-finite elements.
std::vector<float> EdgeActivations(size_t n_blocks, size_t block, std::mt19937* rng) {
  std::normal_distribution<float> nd;
  std::vector<float> x(n_blocks * block);
  for (size_t b = 0; b < n_blocks; ++b) {
    float* xb = x.data() + b * block;
    for (size_t i = 0; i < block; ++i) xb[i] = nd(*rng);
    switch (b % 10) {
      case 0:  // scale 1 (amax 127): ties k + 0.5 of both signs
        for (size_t i = 0; i < block; ++i) xb[i] = (static_cast<float>(i % 41) - 20.f) + 0.5f;
        xb[block / 2] = -127.f;
        break;
      case 1:  // +127 and -127 both present; the first decides Q8_K's sign
        for (size_t i = 0; i < block; ++i) xb[i] = (static_cast<float>(i % 23) - 11.f) * 0.5f;
        xb[3] = 127.f;
        xb[block - 1] = -127.f;
        break;
      case 2:
        std::fill(xb, xb + block, 0.f);
        break;
      case 3:
        for (size_t i = 0; i < block; ++i) xb[i] *= 1e-40f;  // subnormal: scales flush
        break;
      case 4:
        for (size_t i = 0; i < block; ++i) xb[i] *= 1e7f;  // Q8_0 fp16 scale overflows to inf
        break;
      case 5:
        xb[block / 3] = NAN;
        break;
      case 6:
        xb[1] = -INFINITY;
        break;
      case 7:
        for (size_t i = 0; i < block; ++i) xb[i] *= 1e-6f;
        break;
      default:
        break;
    }
  }
  return x;
}

TEST(QuantizeActAvx2, SameBytesAsReference) {
  const KernelTable* avx2 = Avx2Kernels();
  if (avx2 == nullptr) GTEST_SKIP() << "CPU or build without AVX2+FMA+F16C";
  std::mt19937 rng(9);
  for (DType dt :
       {DType::kQ8_0, DType::kQ4_0, DType::kMXFP4, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    const size_t block = static_cast<size_t>(DTypeBlock(dt));
    for (int rep = 0; rep < 20; ++rep) {
      const size_t n_blocks = 10 + static_cast<size_t>(rep);
      const size_t n_in = n_blocks * block;
      auto x = EdgeActivations(n_blocks, block, &rng);
      if (rep % 2 == 1) {  // plain random rows, several magnitudes
        std::normal_distribution<float> nd;
        for (auto& v : x) v = nd(rng) * std::ldexp(1.f, rep - 10);
      }
      const size_t bytes = ActivationRowBytes(QuantOf(dt), static_cast<int64_t>(n_in));
      std::vector<uint8_t> ref(bytes + 1, 0xAA), got(bytes + 1, 0x55);
      RefKernels().QuantizeAct(dt)(x.data(), ref.data() + 1, n_in);
      avx2->QuantizeAct(dt)(x.data(), got.data() + 1, n_in);  // unaligned output
      for (size_t i = 1; i <= bytes; ++i) {
        ASSERT_EQ(got[i], ref[i]) << DTypeName(dt) << " rep " << rep << " byte " << i - 1
                                  << " (block " << (i - 1) / (bytes / n_blocks) << ")";
      }
    }
  }
}

// Linear over the AVX2 table: threads split rows, results bit-identical to one thread.
TEST(QMatmulIsa, LinearThreadedEqualsSingleThreaded) {
  const KernelTable* avx2 = Avx2Kernels();
  if (avx2 == nullptr) GTEST_SKIP() << "CPU or build without AVX2+FMA+F16C";
  std::mt19937 rng(4);
  for (DType dt : {DType::kQ8_0, DType::kQ4_K}) {
    const size_t n_out = 37, n_in = 512, n_tok = 3;
    std::vector<uint8_t> wst;
    const uint8_t* w = MakeWeights(dt, n_out, n_in, &rng, &wst);
    const auto x = MakeActivations(dt, n_tok, n_in, &rng);
    TensorView tv{w, dt, Shape{{static_cast<int64_t>(n_out), static_cast<int64_t>(n_in)}}};
    ThreadPool pool(3);
    ExecContext one{nullptr, avx2}, many{&pool, avx2};
    std::vector<float> y1(n_tok * n_out), y3(n_tok * n_out);
    Linear(one, x.data(), n_in, n_tok, tv, nullptr, y1.data(), n_out);
    Linear(many, x.data(), n_in, n_tok, tv, nullptr, y3.data(), n_out);
    EXPECT_EQ(std::memcmp(y1.data(), y3.data(), y1.size() * 4), 0) << DTypeName(dt);
  }
}

// The load-time layouts (8 rows interleaved): Q8_0, Q4_0, MXFP4, Q4_K, Q5_K, Q6_K -> *_R8.
struct R8Case {
  DType plain, r8;
  size_t block;
  void (*repack)(const void*, int64_t, int64_t, void*);
  void (*unpack)(const void*, int, int64_t, void*);
  size_t d_offset;     // of the scale d in a plain block
  size_t d_bytes = 2;  // f16 (MXFP4: one E8M0 byte)
};
const R8Case kR8Cases[] = {
    {DType::kQ8_0, DType::kQ8_0R8, 32, RepackQ8_0ToR8, UnpackQ8_0R8Row, 0},
    {DType::kQ4_0, DType::kQ4_0R8, 32, RepackQ4_0ToR8, UnpackQ4_0R8Row, 0},
    {DType::kMXFP4, DType::kMXFP4R8, 32, RepackMxfp4ToR8, UnpackMxfp4R8Row, 0, 1},
    {DType::kQ4_K, DType::kQ4_KR8, 256, RepackQ4_KToR8, UnpackQ4_KR8Row, 0},
    {DType::kQ5_K, DType::kQ5_KR8, 256, RepackQ5_KToR8, UnpackQ5_KR8Row, 0},
    {DType::kQ6_K, DType::kQ6_KR8, 256, RepackQ6_KToR8, UnpackQ6_KR8Row, 208}};

// The layout round-trips, and every kernel on it gives the same bits as the same kernel family on
// the plain rows (reference vs reference, AVX2 vs AVX2, 8-bit and f32 activations), for token
// counts on both sides of the many-token paths.
TEST(R8Layouts, RepackRoundTripsAndKernelsMatchPlain) {
  std::mt19937 rng(21);
  for (const R8Case& c : kR8Cases) {
    for (size_t n_in :
         {size_t{256}, size_t{768}, size_t{2048}, size_t{32}, size_t{96}, size_t{1056}}) {
      if (n_in % c.block != 0) continue;
      for (size_t n_rows : {size_t{8}, size_t{16}, size_t{40}}) {
        std::vector<uint8_t> wst;
        const uint8_t* w = MakeWeights(c.plain, n_rows, n_in, &rng, &wst);
        const size_t row_bytes = RowBytes(c.plain, static_cast<int64_t>(n_in)), nb = n_in / c.block;
        std::vector<uint8_t> r8(n_rows * row_bytes + 1);
        uint8_t* w8 = r8.data() + 1;  // unaligned on purpose
        c.repack(w, static_cast<int64_t>(n_rows), static_cast<int64_t>(n_in), w8);
        for (size_t r = 0; r < n_rows; ++r) {
          std::vector<uint8_t> back(row_bytes);
          c.unpack(w8 + (r / 8) * 8 * row_bytes, static_cast<int>(r % 8), static_cast<int64_t>(nb),
                   back.data());
          ASSERT_EQ(std::memcmp(back.data(), w + r * row_bytes, row_bytes), 0)
              << DTypeName(c.r8) << " row " << r;
          // An R8 group's block starts with the rows' scales d.
          ASSERT_EQ(std::memcmp(w8 + (r / 8) * 8 * row_bytes + c.d_bytes * (r % 8),
                                w + r * row_bytes + c.d_offset, c.d_bytes),
                    0);
        }
        const QuantType q = WeightQuantType(c.plain);
        for (size_t n_tok : {size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{7}, size_t{9}, size_t{17}}) {
          const auto x = MakeActivations(c.plain, n_tok, n_in, &rng);
          std::vector<uint8_t> xst;
          const uint8_t* xq = QuantizeRef(c.plain, x, n_tok, n_in, &xst);
          const size_t stride = ActivationRowBytes(q, static_cast<int64_t>(n_in));
          std::vector<const KernelTable*> tables{&RefKernels()};
          for (const KernelTable* t : SimdKernels()) tables.push_back(t);
          for (const KernelTable* kt : tables) {
            std::vector<float> a(n_tok * n_rows), b(n_tok * n_rows);
            kt->QMatmul(c.plain)(xq, stride, n_tok, w, n_in, n_rows, a.data(), n_rows);
            kt->QMatmul(c.r8)(xq, stride, n_tok, w8, n_in, n_rows, b.data(), n_rows);
            ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0)
                << DTypeName(c.r8) << " " << kt->isa << " 8-bit n_in " << n_in << " n_rows "
                << n_rows << " n_tok " << n_tok;
            kt->Matmul(c.plain)(x.data(), n_in, n_tok, w, n_in, n_rows, a.data(), n_rows);
            kt->Matmul(c.r8)(x.data(), n_in, n_tok, w8, n_in, n_rows, b.data(), n_rows);
            ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0)
                << DTypeName(c.r8) << " " << kt->isa << " f32 n_in " << n_in << " n_rows " << n_rows
                << " n_tok " << n_tok;
          }
        }
      }
    }
  }
}

// The K-quant R8 layouts from arbitrary bytes (every scales pattern, any f16 bits): Q4_K/Q5_K's
// 12-byte scales field is a bijection onto its 16 six-bit values and every other bit of a block
// has one place in its layout, so a file's blocks survive the re-layout exactly.
TEST(R8Layouts, KQuantsRoundTripArbitraryBytes) {
  std::mt19937 rng(8);
  for (const R8Case& c : kR8Cases) {
    if (c.block != 256) continue;
    const size_t n_rows = 16, n_in = 512, row_bytes = RowBytes(c.plain, n_in);
    std::vector<uint8_t> w(n_rows * row_bytes), r8(w.size()), back(row_bytes);
    for (auto& b : w) b = static_cast<uint8_t>(rng());
    c.repack(w.data(), n_rows, n_in, r8.data());
    for (size_t r = 0; r < n_rows; ++r) {
      c.unpack(r8.data() + (r / 8) * 8 * row_bytes, static_cast<int>(r % 8), 2, back.data());
      ASSERT_EQ(std::memcmp(back.data(), w.data() + r * row_bytes, row_bytes), 0)
          << DTypeName(c.r8) << " row " << r;
    }
  }
}

// MXFP4_R8 from arbitrary bytes: every E8M0 scale (the subnormal ones below 2 and the huge ones
// too) and every code, each table's kernel on the re-laid-out rows gives its bits on the plain ones.
TEST(R8Layouts, Mxfp4AnyScaleMatchesPlain) {
  std::mt19937 rng(9);
  const size_t n_rows = 32, n_in = 256, row_bytes = RowBytes(DType::kMXFP4, n_in), nb = n_in / 32;
  std::vector<uint8_t> w(n_rows * row_bytes), r8(w.size());
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  for (size_t i = 0; i < n_rows * nb; ++i) w[i * 17] = static_cast<uint8_t>(i);  // blocks' scales: 0..255
  RepackMxfp4ToR8(w.data(), n_rows, n_in, r8.data());
  std::vector<const KernelTable*> tables{&RefKernels()};
  for (const KernelTable* t : SimdKernels()) tables.push_back(t);
  for (size_t n_tok : {size_t{1}, size_t{3}, size_t{8}, size_t{17}}) {
    const auto x = MakeActivations(DType::kMXFP4, n_tok, n_in, &rng);
    std::vector<uint8_t> xst;
    const uint8_t* xq = QuantizeRef(DType::kMXFP4, x, n_tok, n_in, &xst);
    const size_t stride = ActivationRowBytes(QuantType::kMXFP4, static_cast<int64_t>(n_in));
    for (const KernelTable* kt : tables) {
      std::vector<float> a(n_tok * n_rows), b(n_tok * n_rows);
      kt->QMatmul(DType::kMXFP4)(xq, stride, n_tok, w.data(), n_in, n_rows, a.data(), n_rows);
      kt->QMatmul(DType::kMXFP4R8)(xq, stride, n_tok, r8.data(), n_in, n_rows, b.data(), n_rows);
      ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << kt->isa << " n_tok " << n_tok;
    }
  }
}

// The largest integer partial sums the unsigned 4-bit R8 kernels keep in int16 (runs of
// vpmaddubsw pairs before a vpmaddwd): every weight at its largest unsigned value (Q4_0 nibble 15,
// MXFP4 code 7 = 6.0, +12 in the kernels), and Q8_0 at +-127, against activations quantized to
// +127 or -127 throughout: a run too long for int16 would saturate and differ from the plain
// layout's kernel (which has the same bits otherwise).
TEST(R8Layouts, ExtremeValuesMatchPlain) {
  struct Extreme {
    DType plain, r8;
    void (*repack)(const void*, int64_t, int64_t, void*);
    std::vector<uint8_t> block;  // one block as stored
  };
  const Extreme cases[] = {
      {DType::kQ4_0, DType::kQ4_0R8, RepackQ4_0ToR8, {0x00, 0x3C}},  // d = 1 (f16), qs below
      {DType::kMXFP4, DType::kMXFP4R8, RepackMxfp4ToR8, {127}},      // E8M0 scale 2^0 (halved)
      {DType::kQ8_0, DType::kQ8_0R8, RepackQ8_0ToR8, {0x00, 0x3C}},
  };
  const size_t n_rows = 16, n_in = 256;
  std::vector<const KernelTable*> tables{&RefKernels()};
  for (const KernelTable* t : SimdKernels()) tables.push_back(t);
  for (const Extreme& c : cases) {
    const size_t row_bytes = RowBytes(c.plain, n_in), block_bytes = row_bytes / (n_in / 32);
    std::vector<uint8_t> w(n_rows * row_bytes), r8(w.size());
    for (size_t blk = 0; blk < w.size() / block_bytes; ++blk) {
      uint8_t* o = w.data() + blk * block_bytes;
      std::memcpy(o, c.block.data(), c.block.size());
      // Q4_0: nibbles 15; MXFP4: code 7 (6.0); Q8_0: +127, -127 and -128 block by block.
      const uint8_t q = c.plain == DType::kQ4_0    ? 0xFF
                        : c.plain == DType::kMXFP4 ? 0x77
                                                   : (blk % 3 == 0 ? 0x7F : blk % 3 == 1 ? 0x81 : 0x80);
      std::memset(o + c.block.size(), q, block_bytes - c.block.size());
    }
    c.repack(w.data(), n_rows, n_in, r8.data());
    for (size_t n_tok : {size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{5}, size_t{9}}) {
      std::vector<float> x(n_tok * n_in);
      for (size_t t = 0; t < n_tok; ++t) {  // +1 / -1 by token and by block: bytes +-127
        for (size_t i = 0; i < n_in; ++i) x[t * n_in + i] = ((t + i / 32) % 3 == 0) ? -1.f : 1.f;
      }
      std::vector<uint8_t> xst;
      const uint8_t* xq = QuantizeRef(c.plain, x, n_tok, n_in, &xst);
      const size_t stride = ActivationRowBytes(WeightQuantType(c.plain), static_cast<int64_t>(n_in));
      for (const KernelTable* kt : tables) {
        std::vector<float> a(n_tok * n_rows), b(n_tok * n_rows);
        kt->QMatmul(c.plain)(xq, stride, n_tok, w.data(), n_in, n_rows, a.data(), n_rows);
        kt->QMatmul(c.r8)(xq, stride, n_tok, r8.data(), n_in, n_rows, b.data(), n_rows);
        ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0)
            << DTypeName(c.r8) << " " << kt->isa << " n_tok " << n_tok << ": " << a[0] << " vs " << b[0];
      }
    }
  }
}

// Two tables' R8 kernels give the same bits on every R8 layout, for these row and token counts.
void ExpectR8TablesAgree(const KernelTable* a_table, const KernelTable* b_table,
                         std::initializer_list<size_t> row_counts,
                         std::initializer_list<size_t> tok_counts, uint32_t seed) {
  std::mt19937 rng(seed);
  for (const R8Case& c : kR8Cases) {
    for (size_t n_in : {size_t{256}, size_t{2048}, size_t{32 * 9}}) {
      if (n_in % c.block != 0) continue;
      for (size_t n_rows : row_counts) {
        std::vector<uint8_t> wst;
        const uint8_t* w = MakeWeights(c.plain, n_rows, n_in, &rng, &wst);
        std::vector<uint8_t> r8(n_rows * RowBytes(c.plain, static_cast<int64_t>(n_in)) + 1);
        uint8_t* w8 = r8.data() + 1;  // unaligned on purpose
        c.repack(w, static_cast<int64_t>(n_rows), static_cast<int64_t>(n_in), w8);
        const size_t stride =
            ActivationRowBytes(WeightQuantType(c.plain), static_cast<int64_t>(n_in));
        for (size_t n_tok : tok_counts) {
          const auto x = MakeActivations(c.plain, n_tok, n_in, &rng);
          std::vector<uint8_t> xst;
          const uint8_t* xq = QuantizeRef(c.plain, x, n_tok, n_in, &xst);
          std::vector<float> a(n_tok * n_rows), b(n_tok * n_rows);
          a_table->QMatmul(c.r8)(xq, stride, n_tok, w8, n_in, n_rows, a.data(), n_rows);
          b_table->QMatmul(c.r8)(xq, stride, n_tok, w8, n_in, n_rows, b.data(), n_rows);
          ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0)
              << b_table->isa << " vs " << a_table->isa << ": " << DTypeName(c.r8) << " n_in "
              << n_in << " n_rows " << n_rows << " n_tok " << n_tok;
        }
      }
    }
  }
}

// The AVX-512 table's R8 kernels give the AVX2 table's bits (same integer dots, same f32 steps):
// row counts with and without a lone 8-row group, token counts across its 8-token tiles.
TEST(R8Layouts, Avx512MatchesAvx2Bits) {
  const KernelTable* avx2 = Avx2Kernels();
  const KernelTable* avx512 = Avx512Kernels();
  if (avx2 == nullptr || avx512 == nullptr) GTEST_SKIP() << "CPU or build without AVX-512 + VNNI";
  ExpectR8TablesAgree(avx2, avx512, {8, 16, 24, 48}, {1, 2, 3, 4, 5, 7, 8, 9, 17}, 13);
}

// The AMX table (Q8_0_R8 on TDPBSSD for whole blocks of 16 tokens, the AVX-512 kernel for the rest
// and for a lone 8-row group) gives the AVX-512 table's bits.
TEST(R8Layouts, AmxMatchesAvx512Bits) {
  const KernelTable* avx512 = Avx512Kernels();
  const KernelTable* amx = AmxKernels();
  if (avx512 == nullptr || amx == nullptr) GTEST_SKIP() << "CPU, OS or build without AMX";
  ExpectR8TablesAgree(avx512, amx, {8, 16, 24, 40, 64}, {1, 9, 12, 15, 16, 17, 25, 40}, 17);
}

// Linear on the R8 layouts with threads: whole groups per thread, same bits as one thread and as
// the plain layout.
TEST(R8Layouts, LinearThreadedEqualsPlain) {
  std::mt19937 rng(5);
  for (const R8Case& c : kR8Cases) {
    const size_t n_out = 48, n_in = 512;
    std::vector<uint8_t> wst;
    const uint8_t* w = MakeWeights(c.plain, n_out, n_in, &rng, &wst);
    std::vector<uint8_t> r8(n_out * RowBytes(c.plain, n_in));
    c.repack(w, n_out, n_in, r8.data());
    const Shape sh{{static_cast<int64_t>(n_out), static_cast<int64_t>(n_in)}};
    const TensorView plain{w, c.plain, sh}, inter{r8.data(), c.r8, sh};
    ThreadPool pool(3);
    for (bool qact : {true, false}) {
      for (size_t n_tok : {size_t{1}, size_t{6}}) {
        const auto x = MakeActivations(c.plain, n_tok, n_in, &rng);
        ExecContext one{nullptr, &BestKernels()}, many{&pool, &BestKernels()};
        one.quantized_activations = many.quantized_activations = qact;
        std::vector<float> y0(n_tok * n_out), y1(n_tok * n_out), y3(n_tok * n_out);
        Linear(one, x.data(), n_in, n_tok, plain, nullptr, y0.data(), n_out);
        Linear(one, x.data(), n_in, n_tok, inter, nullptr, y1.data(), n_out);
        Linear(many, x.data(), n_in, n_tok, inter, nullptr, y3.data(), n_out);
        EXPECT_EQ(std::memcmp(y0.data(), y1.data(), y1.size() * 4), 0)
            << DTypeName(c.r8) << " qact " << qact << " n_tok " << n_tok;
        EXPECT_EQ(std::memcmp(y1.data(), y3.data(), y1.size() * 4), 0)
            << DTypeName(c.r8) << " qact " << qact << " n_tok " << n_tok;
      }
    }
  }
}

// LinearMany (q, k and v in one job): each output has the bits of its own Linear call, whatever
// the threads, the chunking and the mix of formats (8-bit and 8-bit K activations, f32 weights),
// with and without biases, for decode and prefill-sized batches.
TEST(LinearMany, SameBitsAsSeparateLinearCalls) {
  std::mt19937 rng(6);
  const size_t n_in = 512;
  const size_t rows[3] = {48, 24, 40};
  std::vector<uint8_t> wq_st, wk_st;
  std::vector<uint8_t> wq8(rows[0] * RowBytes(DType::kQ8_0, n_in)),
      wk8(rows[1] * RowBytes(DType::kQ4_K, n_in));
  RepackQ8_0ToR8(MakeWeights(DType::kQ8_0, rows[0], n_in, &rng, &wq_st), rows[0], n_in, wq8.data());
  RepackQ4_KToR8(MakeWeights(DType::kQ4_K, rows[1], n_in, &rng, &wk_st), rows[1], n_in, wk8.data());
  std::vector<float> wv(rows[2] * n_in), bias(rows[0] + rows[2]);
  std::normal_distribution<float> nd;
  for (float& f : wv) f = nd(rng);
  for (float& f : bias) f = nd(rng);
  auto shape = [&](size_t r) {
    return Shape{{static_cast<int64_t>(r), static_cast<int64_t>(n_in)}};
  };
  const TensorView w[3] = {{wq8.data(), DType::kQ8_0R8, shape(rows[0])},
                           {wk8.data(), DType::kQ4_KR8, shape(rows[1])},
                           {wv.data(), DType::kF32, shape(rows[2])}};
  const float* b[3] = {bias.data(), nullptr, bias.data() + rows[0]};
  ThreadPool pool(3);
  for (bool qact : {true, false}) {
    for (size_t n_tok : {size_t{1}, size_t{9}}) {
      for (int chunks : {1, 4, 7}) {
        const auto x = MakeActivations(DType::kQ8_0, n_tok, n_in, &rng);
        ExecContext one{nullptr, &BestKernels()}, many{&pool, &BestKernels()};
        one.quantized_activations = many.quantized_activations = qact;
        many.chunks_per_thread = chunks;
        std::vector<float> want[3], got[3];
        LinearOut outs[3];
        for (int i = 0; i < 3; ++i) {
          want[i].assign(n_tok * rows[i], 0.f);
          got[i].assign(n_tok * rows[i], -1.f);
          Linear(one, x.data(), n_in, n_tok, w[i], b[i], want[i].data(), rows[i]);
          outs[i] = {&w[i], b[i], got[i].data(), rows[i]};
        }
        LinearMany(many, x.data(), n_in, n_tok, outs, 3);
        for (int i = 0; i < 3; ++i) {
          EXPECT_EQ(std::memcmp(want[i].data(), got[i].data(), want[i].size() * 4), 0)
              << "output " << i << " qact " << qact << " n_tok " << n_tok << " chunks " << chunks;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, QMatmulIsaTest,
                         ::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kMXFP4, DType::kQ4_K,
                                           DType::kQ5_K, DType::kQ6_K),
                         [](const auto& i) { return std::string(DTypeName(i.param)); });

}  // namespace
}  // namespace moxie
