// Tests of the scalar ggml block formats (kernels/ref/quant.h).
#include "kernels/ref/quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moxie {
namespace {

constexpr QuantType kAllTypes[] = {QuantType::kQ8_0, QuantType::kQ4_0, QuantType::kQ4_K,
                                   QuantType::kQ5_K, QuantType::kQ6_K, QuantType::kMXFP4};

int BlockOf(QuantType t) { return GetQuantInfo(static_cast<uint32_t>(t))->block; }
const char* NameOf(QuantType t) { return QuantTypeName(t); }

std::vector<uint8_t> Quantize(QuantType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(QuantRowBytes(t, static_cast<int64_t>(x.size())));
  const Status s = QuantizeRow(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
  EXPECT_TRUE(s.ok()) << NameOf(t) << ": " << s.message();
  return q;
}

std::vector<float> Dequantize(QuantType t, const std::vector<uint8_t>& q, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  DequantizeRow(t, q.data(), y.data(), n);
  return y;
}

std::vector<float> RoundTrip(QuantType t, const std::vector<float>& x) {
  return Dequantize(t, Quantize(t, x), static_cast<int64_t>(x.size()));
}

float MaxAbs(const float* x, int n) {
  float a = 0.f;
  for (int i = 0; i < n; ++i) a = std::max(a, std::fabs(x[i]));
  return a;
}

// The per-element error bounds stated in quant.h (plus f32 rounding slack).
std::vector<double> Bounds(QuantType t, const std::vector<float>& x) {
  const int blk = BlockOf(t);
  std::vector<double> out(x.size());
  const double fp16_sub = std::ldexp(1.0, -24);  // fp16 subnormal quantum
  for (size_t b = 0; b < x.size(); b += blk) {
    const float* xb = x.data() + b;
    const double A = MaxAbs(xb, blk);
    for (int i = 0; i < blk; ++i) {
      double bound = 0;
      switch (t) {
        case QuantType::kQ8_0:
          bound = A / 254 + A / 2048 + 127 * fp16_sub / 2;
          break;
        case QuantType::kQ4_0:
          bound = A / 8 + A / 2048 + 8 * fp16_sub / 2;
          break;
        case QuantType::kMXFP4:
          bound = std::max(A / 4, std::ldexp(1.0, -129));
          break;
        case QuantType::kQ4_K:
        case QuantType::kQ5_K: {
          const int nmax = t == QuantType::kQ4_K ? 15 : 31;
          const float* sub = xb + (i / 32) * 32;
          float lo = 0.f, hi = 0.f;
          for (int l = 0; l < 32; ++l) {
            lo = std::min(lo, sub[l]);
            hi = std::max(hi, sub[l]);
          }
          const double R = static_cast<double>(hi) - lo;
          bound = (R + A / 20) / (2 * nmax) + fp16_sub;
          break;
        }
        case QuantType::kQ6_K: {
          const double a = MaxAbs(xb + (i / 16) * 16, 16);
          bound = (a + A / 100) / 62 + fp16_sub;
          break;
        }
      }
      out[b + i] = bound * (1 + 1e-5) + 1e-45;
    }
  }
  return out;
}

enum class Dist { kNormal, kUniform, kOutliers, kPositive, kNegative };
const char* DistName(Dist d) {
  switch (d) {
    case Dist::kNormal:
      return "normal";
    case Dist::kUniform:
      return "uniform";
    case Dist::kOutliers:
      return "outliers";
    case Dist::kPositive:
      return "positive";
    case Dist::kNegative:
      return "negative";
  }
  return "?";
}
constexpr Dist kAllDists[] = {Dist::kNormal, Dist::kUniform, Dist::kOutliers, Dist::kPositive,
                              Dist::kNegative};

std::vector<float> Generate(Dist d, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) {
    switch (d) {
      case Dist::kNormal:
        v = normal(rng);
        break;
      case Dist::kUniform:
        v = uni(rng);
        break;
      case Dist::kOutliers:
        v = normal(rng) * (unit(rng) < 0.01f ? 100.f : 0.05f);
        break;
      case Dist::kPositive:
        v = 1.f + 0.5f * uni(rng);
        break;
      case Dist::kNegative:
        v = -2.f + uni(rng);
        break;
    }
  }
  return x;
}

std::vector<int64_t> LengthsFor(QuantType t) {
  if (BlockOf(t) == 32) return {32, 96, 256, 1024, 4096};
  return {256, 512, 4096};
}

// ---------------------------------------------------------------------------------------------

TEST(Quant, Info) {
  struct Want {
    uint32_t id;
    int block, size;
    const char* name;
  };
  const Want want[] = {{2, 32, 18, "Q4_0"},    {8, 32, 34, "Q8_0"},    {12, 256, 144, "Q4_K"},
                       {13, 256, 176, "Q5_K"}, {14, 256, 210, "Q6_K"}, {39, 32, 17, "MXFP4"}};
  for (const Want& w : want) {
    const QuantInfo* info = GetQuantInfo(w.id);
    ASSERT_NE(info, nullptr) << w.id;
    EXPECT_EQ(info->block, w.block);
    EXPECT_EQ(info->type_size, w.size);
    EXPECT_STREQ(info->name, w.name);
    EXPECT_EQ(QuantRowBytes(static_cast<QuantType>(w.id), 4096),
              static_cast<size_t>(4096 / w.block * w.size));
  }
  for (uint32_t id : {0u, 1u, 3u, 6u, 7u, 9u, 10u, 11u, 15u, 30u, 40u, 1000u}) {
    EXPECT_EQ(GetQuantInfo(id), nullptr) << id;
  }
  EXPECT_EQ(ActivationGgmlType(QuantType::kQ4_0), kGgmlTypeQ8_0);
  EXPECT_EQ(ActivationGgmlType(QuantType::kMXFP4), kGgmlTypeQ8_0);
  EXPECT_EQ(ActivationGgmlType(QuantType::kQ6_K), kGgmlTypeQ8_K);
  EXPECT_EQ(ActivationRowBytes(QuantType::kQ8_0, 512), 16u * 34u);
  EXPECT_EQ(ActivationRowBytes(QuantType::kQ5_K, 512), 2u * 292u);
}

struct Stats {
  double sum_err2 = 0, sum_x2 = 0, max_abs = 0, max_rel_rms = 0;
};

TEST(Quant, RoundTripWithinBound) {
  // RMS(error) / RMS(x) must stay below these (measured values are printed; these leave margin).
  auto rms_limit = [](QuantType t) {
    switch (t) {
      case QuantType::kQ8_0:
        return 0.007;
      case QuantType::kQ4_0:
        return 0.11;
      case QuantType::kQ4_K:
        return 0.10;
      case QuantType::kQ5_K:
        return 0.05;
      case QuantType::kQ6_K:
        return 0.025;
      case QuantType::kMXFP4:
        return 0.19;
    }
    return 0.0;
  };
  std::printf("%-6s %-9s %12s %12s\n", "type", "dist", "rms_rel", "max_abs");
  uint32_t seed = 1;
  for (QuantType t : kAllTypes) {
    for (Dist d : kAllDists) {
      double se = 0, sx = 0, mx = 0;
      for (int64_t n : LengthsFor(t)) {
        const std::vector<float> x = Generate(d, n, seed++);
        const std::vector<float> y = RoundTrip(t, x);
        const std::vector<double> bound = Bounds(t, x);
        for (int64_t i = 0; i < n; ++i) {
          const double e = std::fabs(static_cast<double>(y[i]) - x[i]);
          ASSERT_TRUE(std::isfinite(y[i])) << NameOf(t) << " " << DistName(d) << " i=" << i;
          ASSERT_LE(e, bound[i]) << NameOf(t) << " " << DistName(d) << " n=" << n << " i=" << i
                                 << " x=" << x[i] << " y=" << y[i];
          se += e * e;
          sx += static_cast<double>(x[i]) * x[i];
          mx = std::max(mx, e);
        }
      }
      const double rel = std::sqrt(se / sx);
      std::printf("%-6s %-9s %12.6f %12.6f\n", NameOf(t), DistName(d), rel, mx);
      EXPECT_LE(rel, rms_limit(t)) << NameOf(t) << " " << DistName(d);
    }
  }
}

// The E2M1 value of a 4-bit code (sign bit 3): magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6.
float E2M1(int code) {
  const float mag[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  return (code & 8 ? -1.f : 1.f) * mag[code & 7];
}

// Exact-representable data come back exactly for the ggml-exact encoders.
TEST(Quant, ExactGridsRoundTripExactly) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> q8(-127, 127), q4(-8, 7), code(0, 15);
  std::vector<float> a(256), b(256), c(256);
  for (int i = 0; i < 256; ++i) {
    a[i] = 0.5f * static_cast<float>(q8(rng));
    b[i] = static_cast<float>(q4(rng));
    c[i] = std::ldexp(E2M1(code(rng)), -3);
  }
  for (int blk = 0; blk < 8; ++blk) {
    a[32 * blk + 3] = 63.5f;  // fixes max|x| so d = 0.5 exactly
    b[32 * blk + 5] = -8.f;   // d = 1
    c[32 * blk + 9] = 0.75f;  // max 6/8: e = floor(log2 .75) - 2 + 127 -> scale 2^-3
  }
  EXPECT_EQ(RoundTrip(QuantType::kQ8_0, a), a);
  EXPECT_EQ(RoundTrip(QuantType::kQ4_0, b), b);
  EXPECT_EQ(RoundTrip(QuantType::kMXFP4, c), c);
}

// ggml's rounding rules on chosen values (bytes as quantize_row_*_ref would write them).
TEST(Quant, GgmlRoundingRules) {
  {  // Q8_0: d = amax/127 = 1; roundf rounds halves away from zero.
    std::vector<float> x(32, 0.f);
    x[0] = 127.f;
    x[1] = 2.5f;
    x[2] = -2.5f;
    x[3] = 0.49f;
    x[4] = -126.5f;
    const std::vector<uint8_t> q = Quantize(QuantType::kQ8_0, x);
    EXPECT_EQ(q[0], 0x00);
    EXPECT_EQ(q[1], 0x3C);  // fp16 1.0
    EXPECT_EQ(static_cast<int8_t>(q[2]), 127);
    EXPECT_EQ(static_cast<int8_t>(q[3]), 3);
    EXPECT_EQ(static_cast<int8_t>(q[4]), -3);
    EXPECT_EQ(static_cast<int8_t>(q[5]), 0);
    EXPECT_EQ(static_cast<int8_t>(q[6]), -127);
  }
  {  // Q4_0: d = max/-8 with the sign of the largest-magnitude element; ties round up.
    std::vector<float> x(32, 0.f);
    x[0] = -8.f;   // d = 1 -> code 0
    x[1] = 0.5f;   // floor(0.5 + 8.5) = 9
    x[2] = -0.5f;  // floor(-0.5 + 8.5) = 8
    x[16] = 7.4f;  // 15
    x[17] = 7.6f;  // floor(16.1) = 16 -> clamped to 15
    const std::vector<uint8_t> q = Quantize(QuantType::kQ4_0, x);
    EXPECT_EQ(q[0] | (q[1] << 8), 0x3C00);
    EXPECT_EQ(q[2], 0x00 | (15 << 4));
    EXPECT_EQ(q[3], 9 | (15 << 4));
    EXPECT_EQ(q[4], 8 | (8 << 4));
    std::vector<float> y = Dequantize(QuantType::kQ4_0, q, 32);
    EXPECT_EQ(y[0], -8.f);
    EXPECT_EQ(y[17], 7.f);
  }
  {  // Q4_0 with a positive max: d = -1; the opposite extreme -8 clips to -7 (error A/8).
    std::vector<float> x(32, 0.f);
    x[0] = 8.f;
    x[1] = -8.f;
    const std::vector<float> y = RoundTrip(QuantType::kQ4_0, x);
    EXPECT_EQ(y[0], 8.f);
    EXPECT_EQ(y[1], -7.f);
  }
  {  // MXFP4: amax 6 -> e = 2 - 2 + 127 = 127 (scale 1); nearest E2M1, ties to the lower code.
    std::vector<float> x(32, 0.f);
    x[0] = 6.f;     // code 7
    x[1] = 0.25f;   // tie 0 / 0.5 -> code 0
    x[2] = 5.f;     // tie 4 / 6 -> code 6 (4)
    x[3] = -2.6f;   // -3 -> code 13
    x[16] = -0.8f;  // -1 -> code 10
    x[17] = 1.25f;  // tie 1 / 1.5 -> code 2 (1)
    const std::vector<uint8_t> q = Quantize(QuantType::kMXFP4, x);
    EXPECT_EQ(q[0], 127);
    EXPECT_EQ(q[1], 7 | (10 << 4));
    EXPECT_EQ(q[2], 0 | (2 << 4));
    EXPECT_EQ(q[3], 6);
    EXPECT_EQ(q[4], 13);
    x[0] = 7.9f;  // e = 127 still: 7.9 saturates to 6
    const std::vector<float> y = RoundTrip(QuantType::kMXFP4, x);
    EXPECT_EQ(y[0], 6.f);
  }
}

TEST(Quant, ZeroBlocks) {
  for (QuantType t : kAllTypes) {
    const int64_t n = 1024;
    std::vector<float> x = Generate(Dist::kNormal, n, 99);
    const int blk = BlockOf(t);
    // Zero blocks 0 and 2; for the K types also a zero 32-element sub-block inside block 1.
    std::fill(x.begin(), x.begin() + blk, 0.f);
    std::fill(x.begin() + 2 * blk, x.begin() + 3 * blk, 0.f);
    if (blk == 256) std::fill(x.begin() + 256 + 64, x.begin() + 256 + 96, 0.f);
    const std::vector<float> y = RoundTrip(t, x);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_FALSE(std::isnan(y[i])) << NameOf(t) << " " << i;
      if (x[i] == 0.f &&
          (i < blk || (i >= 2 * blk && i < 3 * blk) || (blk == 256 && i >= 320 && i < 352))) {
        ASSERT_EQ(y[i], 0.f) << NameOf(t) << " " << i;
      }
    }
    const std::vector<float> zeros(static_cast<size_t>(n), 0.f);
    EXPECT_EQ(RoundTrip(t, zeros), zeros) << NameOf(t);
  }
}

TEST(Quant, HugeValues) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> unit(0.5f, 1.f);
  std::vector<float> x(512);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = (i % 3 == 0 ? 1e30f : -1e30f) * (i % 5 == 0 ? 1.f : unit(rng));
  }
  // MXFP4's E8M0 scale covers every float: bounded error relative to the block maximum.
  {
    const std::vector<float> y = RoundTrip(QuantType::kMXFP4, x);
    const std::vector<double> bound = Bounds(QuantType::kMXFP4, x);
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_TRUE(std::isfinite(y[i])) << i;
      ASSERT_LE(std::fabs(static_cast<double>(y[i]) - x[i]), bound[i]) << i;
      ASSERT_EQ(std::signbit(y[i]), std::signbit(x[i])) << i;
    }
    std::vector<float> big(32, 3.4e38f);
    big[1] = -3.4e38f;
    const std::vector<float> yb = RoundTrip(QuantType::kMXFP4, big);
    for (float v : yb) ASSERT_TRUE(std::isfinite(v));
  }
  // fp16 block scales cannot hold 1e30: refused, naming an element, dst untouched.
  for (QuantType t : kAllTypes) {
    if (t == QuantType::kMXFP4) continue;
    std::vector<uint8_t> q(QuantRowBytes(t, 512), 0xAB);
    const Status s = QuantizeRow(t, x.data(), q.data(), 512);
    ASSERT_FALSE(s.ok()) << NameOf(t);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("element "), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("scale of block 0 would overflow"), std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("out of range"), std::string::npos) << s.message();
    EXPECT_TRUE(std::all_of(q.begin(), q.end(), [](uint8_t b) { return b == 0xAB; }));
  }
  // Each format's limit: an element just out of range in the second block is named.
  struct Case {
    QuantType t;
    float ok, bad;
  };
  const Case cases[] = {{QuantType::kQ8_0, 8.0e6f, 8.5e6f},
                        {QuantType::kQ4_0, 5.2e5f, 5.3e5f},
                        {QuantType::kQ4_K, -4.0e6f, -4.2e6f},
                        {QuantType::kQ5_K, -4.0e6f, -4.2e6f},
                        {QuantType::kQ6_K, 2.5e8f, 2.6e8f}};
  for (const Case& c : cases) {
    const int blk = BlockOf(c.t);
    std::vector<float> v = Generate(Dist::kNormal, 2 * blk, 5);
    v[blk + 7] = c.ok;
    std::vector<uint8_t> q(QuantRowBytes(c.t, 2 * blk));
    ASSERT_TRUE(QuantizeRow(c.t, v.data(), q.data(), 2 * blk).ok()) << NameOf(c.t);
    std::vector<float> y = Dequantize(c.t, q, 2 * blk);
    const std::vector<double> bound = Bounds(c.t, v);
    for (int i = 0; i < 2 * blk; ++i) {
      ASSERT_TRUE(std::isfinite(y[i]));
      ASSERT_LE(std::fabs(static_cast<double>(y[i]) - v[i]), bound[i]) << NameOf(c.t) << " " << i;
    }
    v[blk + 7] = c.bad;
    const Status s = QuantizeRow(c.t, v.data(), q.data(), 2 * blk);
    ASSERT_FALSE(s.ok()) << NameOf(c.t);
    EXPECT_NE(s.message().find("element " + std::to_string(blk + 7) + " "), std::string::npos)
        << s.message();
  }
}

TEST(Quant, TinyValues) {
  for (float mag : {1e-30f, 1e-40f, 1e-6f}) {
    std::vector<float> x(512);
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> unit(0.25f, 1.f);
    for (size_t i = 0; i < x.size(); ++i) x[i] = (i % 2 ? mag : -mag) * unit(rng);
    for (QuantType t : kAllTypes) {
      const std::vector<float> y = RoundTrip(t, x);
      const std::vector<double> bound = Bounds(t, x);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_TRUE(std::isfinite(y[i])) << NameOf(t) << " " << mag << " " << i;
        ASSERT_LE(std::fabs(static_cast<double>(y[i]) - x[i]), bound[i])
            << NameOf(t) << " " << mag << " " << i;
        if (t != QuantType::kMXFP4 && mag < 1e-20f) {
          // Below the fp16 scales' resolution: flushed to zero (ggml encoders) or to within
          // the fp16 subnormal quantum (K-quants).
          if (t == QuantType::kQ8_0 || t == QuantType::kQ4_0) {
            ASSERT_EQ(y[i], 0.f) << NameOf(t) << " " << i;
          } else {
            ASSERT_LE(std::fabs(y[i]), std::ldexp(1.f, -24)) << NameOf(t) << " " << i;
          }
        }
      }
      if (t == QuantType::kMXFP4 && mag == 1e-30f) {  // relative error bounded, not flushed
        double se = 0, sx = 0;
        for (size_t i = 0; i < x.size(); ++i) {
          se += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
          sx += static_cast<double>(x[i]) * x[i];
        }
        EXPECT_LT(std::sqrt(se / sx), 0.16);
      }
    }
  }
}

TEST(Quant, RejectsNonFiniteAndBadLengths) {
  struct Bad {
    int64_t index;
    float value;
    const char* word;
  };
  const Bad bads[] = {{37, NAN, "NaN"}, {300, INFINITY, "+inf"}, {511, -INFINITY, "-inf"}};
  for (QuantType t : kAllTypes) {
    for (const Bad& b : bads) {
      std::vector<float> x = Generate(Dist::kNormal, 512, 2);
      x[b.index] = b.value;
      std::vector<uint8_t> q(QuantRowBytes(t, 512), 0xCD);
      const Status s = QuantizeRow(t, x.data(), q.data(), 512);
      ASSERT_FALSE(s.ok());
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(s.message().find("element " + std::to_string(b.index) + " is " + b.word),
                std::string::npos)
          << s.message();
      EXPECT_NE(s.message().find(NameOf(t)), std::string::npos) << s.message();
      EXPECT_TRUE(std::all_of(q.begin(), q.end(), [](uint8_t v) { return v == 0xCD; }));
    }
    const int blk = BlockOf(t);
    std::vector<float> x(1024, 1.f);
    std::vector<uint8_t> q(1024, 0xCD);
    for (int64_t n : {int64_t{blk + 1}, int64_t{blk / 2}, int64_t{-blk}}) {
      const Status s = QuantizeRow(t, x.data(), q.data(), n);
      ASSERT_FALSE(s.ok()) << n;
      EXPECT_NE(s.message().find("multiple of the block size " + std::to_string(blk)),
                std::string::npos)
          << s.message();
    }
    EXPECT_TRUE(QuantizeRow(t, x.data(), q.data(), 0).ok());
    EXPECT_TRUE(std::all_of(q.begin(), q.end(), [](uint8_t v) { return v == 0xCD; }));
  }
  std::vector<float> x(32, 1.f);
  uint8_t q[64];
  const Status s = QuantizeRow(static_cast<QuantType>(3), x.data(), q, 32);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
}

// ---- hand-built blocks, bytes laid out by the rules of docs/moe-architectures.md §4.4 ----

TEST(Quant, HandBuiltQ8_0) {
  std::vector<uint8_t> b = {0x00, 0x38};  // d = 0.5
  for (int j = 0; j < 32; ++j) b.push_back(static_cast<uint8_t>(static_cast<int8_t>(8 * j - 128)));
  const std::vector<float> y = Dequantize(QuantType::kQ8_0, b, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * static_cast<float>(8 * j - 128)) << j;
}

TEST(Quant, HandBuiltQ4_0) {
  std::vector<uint8_t> b = {0x00, 0x40};  // d = 2
  for (int j = 0; j < 16; ++j) b.push_back(static_cast<uint8_t>(j | ((15 - j) << 4)));
  const std::vector<float> y = Dequantize(QuantType::kQ4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.f * static_cast<float>(j - 8)) << j;            // low nibbles: 0..15
    EXPECT_EQ(y[j + 16], 2.f * static_cast<float>(15 - j - 8)) << j;  // high nibbles: 16..31
  }
}

TEST(Quant, HandBuiltMXFP4) {
  for (int e : {128, 127, 120, 1, 0, 254}) {
    std::vector<uint8_t> b = {static_cast<uint8_t>(e)};
    for (int j = 0; j < 16; ++j) b.push_back(static_cast<uint8_t>(j | ((15 - j) << 4)));
    const std::vector<float> y = Dequantize(QuantType::kMXFP4, b, 32);
    for (int j = 0; j < 16; ++j) {
      // value = E2M1(code) * 2^(e - 127); at e = 254 the codes 6/7 (4, 6) * 2^127 overflow.
      const double w0 = std::ldexp(static_cast<double>(E2M1(j)), e - 127);
      const double w1 = std::ldexp(static_cast<double>(E2M1(15 - j)), e - 127);
      if (std::fabs(w0) <= 3.4e38) {
        EXPECT_EQ(y[j], static_cast<float>(w0)) << e << " " << j;
      }
      if (std::fabs(w1) <= 3.4e38) {
        EXPECT_EQ(y[j + 16], static_cast<float>(w1)) << e << " " << j;
      }
    }
  }
}

// Eight 6-bit scales and mins and their 12-byte packing, worked out by hand from the rules
// (j < 4: sc = s[j] & 63, mn = s[j+4] & 63; j >= 4: sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4,
// mn = (s[j+4] >> 4) | (s[j] >> 6) << 4).
constexpr int kSc[8] = {1, 2, 3, 63, 17, 33, 48, 5};
constexpr int kMn[8] = {0, 4, 63, 10, 20, 45, 7, 60};
constexpr uint8_t kScalesK4[12] = {0x41, 0x82, 0xC3, 0x3F,   // sc[0..3] | (sc[4..7] >> 4) << 6
                                   0x40, 0x84, 0x3F, 0xCA,   // mn[0..3] | (mn[4..7] >> 4) << 6
                                   0x41, 0xD1, 0x70, 0xC5};  // sc[4..7] & 15 | (mn[4..7] & 15) << 4

TEST(Quant, HandBuiltQ4_K) {
  std::vector<uint8_t> b = {0x00, 0x3C, 0x00, 0x38};  // d = 1, dmin = 0.5
  b.insert(b.end(), kScalesK4, kScalesK4 + 12);
  auto lo = [](int c, int l) { return (l + c) & 0xF; };
  auto hi = [](int c, int l) { return (3 * l + 5 * c) & 0xF; };
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) b.push_back(static_cast<uint8_t>(lo(c, l) | (hi(c, l) << 4)));
  }
  ASSERT_EQ(b.size(), 144u);
  const std::vector<float> y = Dequantize(QuantType::kQ4_K, b, 256);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      EXPECT_EQ(y[64 * c + l], 1.0 * kSc[2 * c] * lo(c, l) - 0.5 * kMn[2 * c]) << c << " " << l;
      EXPECT_EQ(y[64 * c + 32 + l], 1.0 * kSc[2 * c + 1] * hi(c, l) - 0.5 * kMn[2 * c + 1])
          << c << " " << l;
    }
  }
}

TEST(Quant, HandBuiltQ5_K) {
  std::vector<uint8_t> b = {0x00, 0x3C, 0x00, 0x38};  // d = 1, dmin = 0.5
  b.insert(b.end(), kScalesK4, kScalesK4 + 12);
  auto qh = [](int l) { return (37 * l + 11) & 0xFF; };
  auto lo = [](int c, int l) { return (l + c) & 0xF; };
  auto hi = [](int c, int l) { return (3 * l + 5 * c) & 0xF; };
  for (int l = 0; l < 32; ++l) b.push_back(static_cast<uint8_t>(qh(l)));
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) b.push_back(static_cast<uint8_t>(lo(c, l) | (hi(c, l) << 4)));
  }
  ASSERT_EQ(b.size(), 176u);
  const std::vector<float> y = Dequantize(QuantType::kQ5_K, b, 256);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int q0 = lo(c, l) + 16 * ((qh(l) >> (2 * c)) & 1);
      const int q1 = hi(c, l) + 16 * ((qh(l) >> (2 * c + 1)) & 1);
      EXPECT_EQ(y[64 * c + l], 1.0 * kSc[2 * c] * q0 - 0.5 * kMn[2 * c]) << c << " " << l;
      EXPECT_EQ(y[64 * c + 32 + l], 1.0 * kSc[2 * c + 1] * q1 - 0.5 * kMn[2 * c + 1])
          << c << " " << l;
    }
  }
}

TEST(Quant, HandBuiltQ6_K) {
  const int8_t scales[16] = {-128, -1, 0, 1, 2, 5, 127, -7, 33, -64, 9, 10, -3, 100, 64, -100};
  std::vector<uint8_t> b(210);
  for (int i = 0; i < 128; ++i) b[i] = static_cast<uint8_t>((7 * i + 3) & 0xFF);        // ql
  for (int i = 0; i < 64; ++i) b[128 + i] = static_cast<uint8_t>((13 * i + 1) & 0xFF);  // qh
  std::memcpy(b.data() + 192, scales, 16);
  b[208] = 0x00;  // d = 0.25, stored last
  b[209] = 0x34;
  const std::vector<float> y = Dequantize(QuantType::kQ6_K, b, 256);
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b.data() + 64 * n;
    const uint8_t* qh = b.data() + 128 + 32 * n;
    const int8_t* sc = scales + 8 * n;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      const int o = 128 * n;
      EXPECT_EQ(y[o + l], 0.25 * sc[is] * q1) << n << " " << l;
      EXPECT_EQ(y[o + l + 32], 0.25 * sc[is + 2] * q2) << n << " " << l;
      EXPECT_EQ(y[o + l + 64], 0.25 * sc[is + 4] * q3) << n << " " << l;
      EXPECT_EQ(y[o + l + 96], 0.25 * sc[is + 6] * q4) << n << " " << l;
    }
  }
  EXPECT_EQ(y[0], 0.25 * -128 * (((3 & 0xF) | ((1 & 3) << 4)) - 32));  // spot check: -> 512
}

// ---- dot products ----

TEST(Quant, DotRowF32EqualsDequantizeThenDot) {
  uint32_t seed = 100;
  for (QuantType t : kAllTypes) {
    for (int64_t n : LengthsFor(t)) {
      const std::vector<float> w = Generate(Dist::kNormal, n, seed++);
      const std::vector<float> x = Generate(Dist::kUniform, n, seed++);
      const std::vector<uint8_t> q = Quantize(t, w);
      const std::vector<float> wd = Dequantize(t, q, n);
      float acc = 0.f;
      for (int64_t i = 0; i < n; ++i) acc += wd[i] * x[i];
      EXPECT_EQ(DotRowF32(t, q.data(), x.data(), n), acc) << NameOf(t) << " " << n;
    }
  }
}

TEST(Quant, DotRowQ8) {
  uint32_t seed = 200;
  for (QuantType t : kAllTypes) {
    for (Dist d : kAllDists) {
      for (int64_t n : LengthsFor(t)) {
        const std::vector<float> w = Generate(Dist::kNormal, n, seed++);
        const std::vector<float> x = Generate(d, n, seed++);
        const std::vector<uint8_t> q = Quantize(t, w);
        const std::vector<float> wd = Dequantize(t, q, n);
        std::vector<uint8_t> xq(ActivationRowBytes(t, n));
        QuantizeActivationRow(t, x.data(), xq.data(), n);
        std::vector<float> xd(static_cast<size_t>(n));
        DequantizeActivationRow(t, xq.data(), xd.data(), n);

        // Activation quantization error: Q8_0 |x - x̂| <= A/254 (+ fp16 d rounding),
        // Q8_K (f32 d) <= A/254, A = max|x| over the activation block.
        const int ab = ActivationGgmlType(t) == kGgmlTypeQ8_K ? kQ8KBlock : 32;
        double err_bound = 0, abs_sum = 0, ref = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double A = MaxAbs(x.data() + (i / ab) * ab, ab);
          const double ea = std::fabs(static_cast<double>(xd[i]) - x[i]);
          ASSERT_LE(ea, (A / 254 + (ab == 32 ? A / 2048 : 0)) * (1 + 1e-5) + 1e-30)
              << NameOf(t) << " " << DistName(d) << " i=" << i;
          err_bound += std::fabs(static_cast<double>(wd[i])) * ea;
          abs_sum += std::fabs(static_cast<double>(wd[i]) * x[i]);
          ref += static_cast<double>(wd[i]) * xd[i];
        }
        const float dq = DotRowQ8(t, q.data(), xq.data(), n);
        const float df = DotRowF32(t, q.data(), x.data(), n);
        // The integer path computes exactly dot(ŵ, x̂) up to f32 rounding of the block sums.
        EXPECT_NEAR(dq, ref, 1e-5 * abs_sum + 1e-30) << NameOf(t) << " " << DistName(d) << " " << n;
        // ... hence it is within the activation-quantization error of the f32 dot.
        EXPECT_NEAR(dq, df, err_bound + 2e-5 * abs_sum)
            << NameOf(t) << " " << DistName(d) << " " << n;
      }
    }
  }
}

TEST(Quant, DotRowQ8EdgeCases) {
  for (QuantType t : kAllTypes) {
    const int64_t n = 512;
    const std::vector<float> w = Generate(Dist::kNormal, n, 5);
    const std::vector<uint8_t> q = Quantize(t, w);
    std::vector<uint8_t> xq(ActivationRowBytes(t, n));
    std::vector<float> x(static_cast<size_t>(n), 0.f);
    QuantizeActivationRow(t, x.data(), xq.data(), n);
    EXPECT_EQ(DotRowQ8(t, q.data(), xq.data(), n), 0.f) << NameOf(t);
    x[300] = NAN;  // propagates as NaN instead of vanishing in an int8 code
    QuantizeActivationRow(t, x.data(), xq.data(), n);
    EXPECT_TRUE(std::isnan(DotRowQ8(t, q.data(), xq.data(), n))) << NameOf(t);
    std::fill(x.begin(), x.end(), 1e-40f);  // -127/max overflows for Q8_K: stored as zeros
    QuantizeActivationRow(t, x.data(), xq.data(), n);
    const float dz = DotRowQ8(t, q.data(), xq.data(), n);
    EXPECT_TRUE(std::isfinite(dz)) << NameOf(t);
    EXPECT_LE(std::fabs(dz), 1e-30f) << NameOf(t);
  }
}

}  // namespace
}  // namespace moxie
