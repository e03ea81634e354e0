// SiLU·up and softmax kernels of every ISA table against the scalar references (kernels/ops.cc),
// special values, and the position independence the batch-invariant numerics rely on.
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/kernel_table.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

namespace moxie {
namespace {

// |a - b| within a few ulp of the larger magnitude (or an absolute floor near zero).
void ExpectClose(float want, float got, float rel, const char* what, size_t i) {
  const float tol = rel * std::max(std::fabs(want), 1e-30f);
  EXPECT_NEAR(got, want, tol) << what << " element " << i;
}

std::vector<const KernelTable*> Tables() {
  std::vector<const KernelTable*> t = SimdKernels();
  t.insert(t.begin(), &RefKernels());
  return t;
}

TEST(ElementwiseKernels, SiluMulMatchesReference) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> ud(-30.f, 30.f);
  for (const KernelTable* kt : Tables()) {
    ASSERT_NE(kt->silu_mul, nullptr) << kt->isa;
    for (size_t n : {1, 3, 7, 8, 9, 15, 16, 17, 63, 1025}) {
      std::vector<float> g(n), u(n), want(n), got(n, -1.f);
      for (size_t i = 0; i < n; ++i) {
        g[i] = ud(rng);
        u[i] = ud(rng) / 10.f;
      }
      SwiGlu(g.data(), u.data(), want.data(), n);
      kt->silu_mul(g.data(), u.data(), got.data(), n);
      for (size_t i = 0; i < n; ++i) ExpectClose(want[i], got[i], 2e-6f, kt->isa, i);
    }
  }
}

TEST(ElementwiseKernels, SiluMulSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> g = {0.f, -0.f, 1e-20f, -1e-20f, 88.f, -88.f, 100.f, -100.f, 1e30f, -1e30f,
                                -inf, std::nanf("")};
  const std::vector<float> u(g.size(), 2.f);
  for (const KernelTable* kt : Tables()) {
    std::vector<float> h(g.size());
    kt->silu_mul(g.data(), u.data(), h.data(), g.size());
    EXPECT_EQ(h[0], 0.f) << kt->isa;
    EXPECT_NEAR(h[2], 1e-20f, 1e-26f) << kt->isa;  // silu(z) ~ z / 2 near 0, times 2
    EXPECT_NEAR(h[4], 176.f, 1e-4f) << kt->isa;
    EXPECT_NEAR(h[5], 0.f, 1e-30f) << kt->isa;
    EXPECT_NEAR(h[6], 200.f, 1e-4f) << kt->isa;
    EXPECT_NEAR(h[7], 0.f, 1e-30f) << kt->isa;
    EXPECT_EQ(h[8], 2e30f) << kt->isa;
    EXPECT_NEAR(h[9], 0.f, 1e-30f) << kt->isa;
    EXPECT_TRUE(std::isnan(h[10]) || h[10] == 0.f) << kt->isa << " " << h[10];  // -inf / inf
    EXPECT_TRUE(std::isnan(h[11])) << kt->isa << ": NaN must not turn into a number";
  }
}

TEST(ElementwiseKernels, SoftmaxMatchesReference) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 8.f);
  for (const KernelTable* kt : Tables()) {
    ASSERT_NE(kt->softmax, nullptr) << kt->isa;
    for (size_t n : {1, 2, 7, 8, 9, 16, 31, 100, 513}) {
      std::vector<float> want(n);
      for (auto& v : want) v = nd(rng);
      if (n > 1) want[n / 2] = -std::numeric_limits<float>::infinity();  // a masked position
      if (n > 3) want[1] = want[0] - 200.f;                  // e^-200 underflows to 0
      std::vector<float> got = want;
      SoftmaxInPlace(want.data(), n);
      kt->softmax(got.data(), n);
      double sum = 0;
      for (size_t i = 0; i < n; ++i) {
        ExpectClose(want[i], got[i], 4e-6f, kt->isa, i);
        sum += got[i];
      }
      EXPECT_NEAR(sum, 1.0, 1e-5) << kt->isa << " n " << n;
      if (n > 1) {
        EXPECT_EQ(got[n / 2], 0.f) << kt->isa;
      }
    }
  }
}

// An element's result does not depend on where it sits in a call: rows split into ranges at any
// offset (phase A of the expert FFN splits by cost, which depends on the batch) give the same bits.
TEST(ElementwiseKernels, SiluMulBitsDoNotDependOnTheSplit) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> ud(-12.f, 12.f);
  const size_t n = 67;
  std::vector<float> g(n), u(n), whole(n);
  for (size_t i = 0; i < n; ++i) {
    g[i] = ud(rng);
    u[i] = ud(rng);
  }
  for (const KernelTable* kt : Tables()) {
    kt->silu_mul(g.data(), u.data(), whole.data(), n);
    for (size_t cut : {1, 5, 8, 13, 40, 66}) {
      std::vector<float> parts(n);
      kt->silu_mul(g.data(), u.data(), parts.data(), cut);
      kt->silu_mul(g.data() + cut, u.data() + cut, parts.data() + cut, n - cut);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(whole[i], parts[i]) << kt->isa << " cut " << cut << " element " << i;
    }
  }
}

}  // namespace
}  // namespace moxie
