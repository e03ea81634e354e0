#include "runtime/sampler.h"

#include <cmath>
#include <limits>
#include <string>

#include "tests/test_util.h"

namespace moxie {
namespace {

SamplerConfig Plain(uint64_t seed = 1) {
  SamplerConfig c;
  c.temperature = 1.0f;
  c.top_k = 0;
  c.top_p = 1.0f;
  c.min_p = 0.0f;
  c.seed = seed;
  return c;
}

TEST(Sampler, GreedyIsArgmax) {
  SamplerConfig c;
  c.temperature = 0;
  Sampler s(c, 4);
  const float l[] = {0.1f, 3.f, -2.f, 2.9f};
  EXPECT_EQ(s.Sample(l), 1);
}

// logit_bias is added to the logits first: it moves the argmax, bans (-100) and forces (+100)
// tokens under sampling, and skips ids outside the vocabulary.
TEST(Sampler, LogitBiasMovesBansAndForces) {
  SamplerConfig c;
  c.temperature = 0;
  c.logit_bias = {{1, -1.5f}, {7, 50.f}, {-3, 9.f}};  // 7 and -3 lie outside a 4-token vocabulary
  Sampler greedy(c, 4);
  const float l[] = {0.1f, 3.f, -2.f, 2.9f};
  EXPECT_EQ(greedy.Sample(l), 3);
  SamplerConfig ban = Plain(5);
  ban.logit_bias = {{1, -100.f}, {3, -100.f}};
  Sampler b(ban, 4);
  SamplerConfig force = Plain(6);
  force.logit_bias = {{2, 100.f}};
  Sampler f(force, 4);
  for (int i = 0; i < 200; ++i) {
    const int32_t t = b.Sample(l);
    EXPECT_TRUE(t == 0 || t == 2) << t;
    EXPECT_EQ(f.Sample(l), 2);
  }
  SamplerConfig bad = Plain();
  bad.logit_bias = {{0, std::nanf("")}};
  EXPECT_FALSE(bad.Validate().ok());
}

// A temperature whose inverse overflows f32 (denormal) is greedy, not the last candidate that
// NaN weights would leave.
TEST(Sampler, TinyTemperatureIsGreedy) {
  for (float t : {1e-45f, 1e-39f}) {
    SamplerConfig c = Plain(7);
    c.temperature = t;
    Sampler s(c, 5);
    const float l[] = {0.1f, 3.f, -2.f, 2.9f, -7.f};
    for (int i = 0; i < 20; ++i) EXPECT_EQ(s.Sample(l), 1) << t;
  }
}

TEST(Sampler, FollowsTheSoftmaxDistribution) {
  Sampler s(Plain(42), 2);
  const float l[] = {0.f, std::log(3.f)};  // p = 0.25, 0.75
  int ones = 0;
  const int n = 8000;
  for (int i = 0; i < n; ++i) ones += s.Sample(l);
  // 5 standard deviations of a binomial(8000, 0.75): ±0.024.
  EXPECT_NEAR(ones / static_cast<double>(n), 0.75, 0.024);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDiffers) {
  std::vector<float> l(50);
  for (int i = 0; i < 50; ++i) l[i] = std::sin(i * 1.7f);
  auto draw = [&](uint64_t seed) {
    Sampler s(Plain(seed), 50);
    std::vector<int> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.Sample(l.data()));
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(Sampler, TopKTopPMinPRestrictCandidates) {
  const float l[] = {1.0f, 0.9f, 0.8f, -5.f};
  {
    auto c = Plain();
    c.top_k = 1;
    Sampler s(c, 4);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(s.Sample(l), 0);
  }
  {
    auto c = Plain();
    c.top_p = 0.2f;  // the best token alone has ~0.36 of the mass
    Sampler s(c, 4);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(s.Sample(l), 0);
  }
  {
    auto c = Plain();
    c.min_p = 0.5f;  // token 3 has p/p_max = e^-6
    Sampler s(c, 4);
    for (int i = 0; i < 500; ++i) EXPECT_NE(s.Sample(l), 3);
  }
}

TEST(Sampler, PenaltiesDemoteSeenTokens) {
  const float l[] = {2.0f, 1.9f, 0.f};
  SamplerConfig c;
  c.temperature = 0;
  c.repetition_penalty = 1.2f;  // 2.0 / 1.2 = 1.67 < 1.9
  Sampler s(c, 3);
  s.Accept(0);
  EXPECT_EQ(s.Sample(l), 1);
  SamplerConfig f;
  f.temperature = 0;
  f.frequency_penalty = 0.06f;  // two occurrences: 2.0 - 0.12 < 1.9
  Sampler sf(f, 3);
  sf.Accept(0);
  EXPECT_EQ(sf.Sample(l), 0);
  sf.Accept(0);
  EXPECT_EQ(sf.Sample(l), 1);
  SamplerConfig p;
  p.temperature = 0;
  p.presence_penalty = 0.2f;
  Sampler sp(p, 3);
  sp.Accept(0);
  EXPECT_EQ(sp.Sample(l), 1);
}

TEST(Sampler, ValidateRejectsBadSettings) {
  SamplerConfig c;
  c.top_p = 0;
  EXPECT_FALSE(c.Validate().ok());
  c = SamplerConfig();
  c.temperature = -1;
  EXPECT_FALSE(c.Validate().ok());
  c = SamplerConfig();
  c.repetition_penalty = 0;
  EXPECT_FALSE(c.Validate().ok());
  EXPECT_TRUE(SamplerConfig().Validate().ok());
}

TEST(CheckLogits, NamesTheFirstNanOrPositiveInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  const float ok[] = {1.f, -inf, 3.f, -2.f};  // -inf bans a token: allowed
  EXPECT_TRUE(CheckLogits(ok, 4, 0).ok());
  const float nan[] = {1.f, 2.f, std::nanf(""), inf};
  const Status a = CheckLogits(nan, 4, 7);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.message().find("token 2's is nan, at generated token 7"), std::string::npos) << a.message();
  const float pinf[] = {1.f, inf, 0.f};
  const Status b = CheckLogits(pinf, 3, 0);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.message().find("token 1's is +inf"), std::string::npos) << b.message();
}

}  // namespace
}  // namespace moxie
