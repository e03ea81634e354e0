// Router math for every scoring/selection variant, on hand-checked values.
#include "moe/router.h"

#include <cmath>

#include "moe/expert_plan.h"
#include "tests/test_util.h"

namespace moxie {
namespace {

struct Out {
  std::vector<int32_t> count, ids;
  std::vector<float> weights, choice;
  Routing r;
  Out(int T, int k, int E) : count(T), ids(T * k), weights(T * k), choice(T * E) {
    r.count = count.data();
    r.ids = ids.data();
    r.weights = weights.data();
    r.choice = choice.data();
  }
};

Out RouteOne(const RouterConfig& rc, std::vector<float> logits, std::vector<float> bias = {}) {
  EXPECT_TRUE(rc.Validate("test").ok()) << rc.Validate("test").message();
  Router router(rc, std::move(bias));
  const int T = static_cast<int>(logits.size()) / rc.n_expert;
  Out o(T, rc.k, rc.n_expert);
  router.Route(0, logits.data(), T, TopKSelection(), &o.r);
  return o;
}

std::vector<float> Softmax(std::vector<float> v) {
  float m = *std::max_element(v.begin(), v.end()), s = 0;
  for (auto& x : v) s += (x = std::exp(x - m));
  for (auto& x : v) x /= s;
  return v;
}

TEST(Router, SoftmaxTopKWithoutRenorm) {
  RouterConfig rc{.n_expert = 4, .k = 2};
  const std::vector<float> lg = {0.1f, 2.0f, -1.0f, 1.5f};
  Out o = RouteOne(rc, lg);
  const auto p = Softmax(lg);
  EXPECT_EQ(o.ids[0], 1);
  EXPECT_EQ(o.ids[1], 3);
  EXPECT_FLOAT_EQ(o.weights[0], p[1]);
  EXPECT_FLOAT_EQ(o.weights[1], p[3]);
}

TEST(Router, RenormalisedAndScaled) {
  RouterConfig rc{.n_expert = 4, .k = 2, .normalize = true, .scale = 2.5f};
  const std::vector<float> lg = {0.1f, 2.0f, -1.0f, 1.5f};
  Out o = RouteOne(rc, lg);
  const auto p = Softmax(lg);
  EXPECT_NEAR(o.weights[0], 2.5f * p[1] / (p[1] + p[3]), 1e-6);
  EXPECT_NEAR(o.weights[0] + o.weights[1], 2.5f, 1e-6);
}

TEST(Router, SelectionBiasChoosesButDoesNotWeigh) {
  RouterConfig rc{.n_expert = 4, .k = 1, .scoring = RouterScoring::kSigmoid};
  // Without bias expert 0 wins; the bias makes expert 2 win; its weight is the plain sigmoid.
  Out o = RouteOne(rc, {1.0f, 0.0f, 0.5f, -1.0f}, {0.0f, 0.0f, 0.5f, 0.0f});
  EXPECT_EQ(o.ids[0], 2);
  EXPECT_NEAR(o.weights[0], 1.0f / (1.0f + std::exp(-0.5f)), 1e-7);
}

TEST(Router, GroupScoreMaxVersusTop2Sum) {
  // Groups {0,1} and {2,3}. Max: group 0 (0.9) wins; top-2 sum: group 1 (0.5+0.5) wins.
  const std::vector<float> s = {0.9f, 0.0f, 0.5f, 0.5f};
  std::vector<float> logits;  // sigmoid^-1 so the scores are exactly-ish s
  for (float v : s) logits.push_back(v == 0.f ? -30.f : std::log(v / (1 - v)));
  RouterConfig mx{.n_expert = 4, .k = 1, .scoring = RouterScoring::kSigmoid, .n_group = 2,
                  .topk_group = 1, .group_score = GroupScore::kMax};
  EXPECT_EQ(RouteOne(mx, logits).ids[0], 0);
  RouterConfig t2 = mx;
  t2.group_score = GroupScore::kTop2Sum;
  EXPECT_EQ(RouteOne(t2, logits).ids[0], 2);
}

TEST(Router, MaskedGroupFillMatters) {
  // Surviving group holds only negative biased scores: HF's 0.0 fill lets a masked expert win,
  // -inf does not.
  RouterConfig rc{.n_expert = 4, .k = 1, .scoring = RouterScoring::kSigmoid, .n_group = 2,
                  .topk_group = 1, .group_score = GroupScore::kTop2Sum};
  const std::vector<float> lg = {0.f, 0.f, 0.f, 0.f};     // s = 0.5 each
  const std::vector<float> bias = {-0.6f, -0.6f, -0.9f, -0.9f};  // group 0 kept, c = -0.1
  EXPECT_EQ(RouteOne(rc, lg, bias).ids[0], 2);  // 0.0 fill beats -0.1: first masked expert
  rc.masked_group_fill = -INFINITY;
  EXPECT_EQ(RouteOne(rc, lg, bias).ids[0], 0);
}

TEST(Router, TiesPickLowerId) {
  RouterConfig rc{.n_expert = 4, .k = 2};
  Out o = RouteOne(rc, {1.f, 2.f, 2.f, 2.f});
  EXPECT_EQ(o.ids[0], 1);
  EXPECT_EQ(o.ids[1], 2);
}

TEST(Router, ValidateRejectsBadConfigs) {
  EXPECT_FALSE((RouterConfig{.n_expert = 4, .k = 5}).Validate("c").ok());
  EXPECT_FALSE((RouterConfig{.n_expert = 4, .k = 0}).Validate("c").ok());
  EXPECT_FALSE((RouterConfig{.n_expert = 6, .k = 2, .n_group = 4}).Validate("c").ok());
  EXPECT_FALSE((RouterConfig{.n_expert = 8, .k = 2, .n_group = 4, .topk_group = 5}).Validate("c").ok());
  EXPECT_FALSE((RouterConfig{.n_expert = 8, .k = 4, .n_group = 4, .topk_group = 1}).Validate("c").ok());
}

TEST(ExpertPlan, GroupsTokensByExpertInBatchOrder) {
  RouterConfig rc{.n_expert = 3, .k = 2};
  Out o = RouteOne(rc, {3, 2, 1, 1, 3, 2, 3, 1, 2});  // t0 -> {0,1}, t1 -> {1,2}, t2 -> {0,2}
  Arena arena;
  arena.Reserve(ExpertPlan::ScratchFloats(3, 2, 3));
  ExpertPlan plan;
  plan.Build(o.r, 3, arena);
  ASSERT_EQ(plan.n_tokens(0), 2);
  EXPECT_EQ(plan.token[plan.offset[0]], 0);
  EXPECT_EQ(plan.token[plan.offset[0] + 1], 2);
  ASSERT_EQ(plan.n_tokens(1), 2);
  EXPECT_EQ(plan.token[plan.offset[1]], 0);
  EXPECT_EQ(plan.token[plan.offset[1] + 1], 1);
  ASSERT_EQ(plan.n_tokens(2), 2);
  EXPECT_FLOAT_EQ(plan.weight[plan.offset[2]], o.weights[1 * 2 + 1]);  // t1 ranks expert 2 second
}

}  // namespace
}  // namespace moxie
