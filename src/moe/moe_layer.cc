#include "moe/moe_layer.h"

#include <algorithm>
#include <cstring>

#include "kernels/ops.h"
#include "moe/expert_ffn.h"
#include "moe/expert_plan.h"

namespace moxie {

MoeLayer::MoeLayer(int layer, int64_t n_embd, TensorView router_weight, Router router,
                   ExpertStore* store, std::unique_ptr<SharedExpert> shared)
    : layer_(layer),
      n_embd_(n_embd),
      router_weight_(router_weight),
      router_(std::move(router)),
      store_(store),
      shared_(std::move(shared)) {
  // Read once at construction, while the store is resident; later scratch sizing must not make
  // an offloading store fetch every expert.
  for (int e = 0; e < store_->n_experts(layer_); ++e) {
    max_ff_ = std::max(max_ff_, store_->Get(layer_, e).gate.dim(0));
  }
}

size_t MoeLayer::ScratchFloats(int max_tok) const {
  const size_t T = static_cast<size_t>(max_tok);
  const size_t E = static_cast<size_t>(router_.config().n_expert);
  const size_t K = static_cast<size_t>(router_.config().k);
  const size_t H = static_cast<size_t>(n_embd_);
  const size_t max_ff = static_cast<size_t>(max_ff_);
  size_t n = 2 * Arena::Round(T * E) + Arena::Round(T) + 2 * Arena::Round(T * K);  // routing
  n += ExpertPlan::ScratchFloats(max_tok, static_cast<int>(K), static_cast<int>(E));
  n += 2 * Arena::Round(T * H) + SwiGluScratchFloats(T, max_ff);  // gathered rows, expert out
  if (shared_) {
    n += Arena::Round(T * H) + Arena::Round(T) +
         SwiGluScratchFloats(T, static_cast<size_t>(shared_->ffn.gate.dim(0)));
  }
  return n;
}

void MoeLayer::Forward(const ExecContext& ctx, const float* x, int n_tok, float* out, Arena& arena,
                       const MoeStepInfo& step) const {
  const size_t mark = arena.mark();
  const RouterConfig& rc = router_.config();
  const size_t T = static_cast<size_t>(n_tok);
  const size_t E = static_cast<size_t>(rc.n_expert);
  const size_t K = static_cast<size_t>(rc.k);
  const size_t H = static_cast<size_t>(n_embd_);

  // 1. Route.
  const double t0 = step.times ? PhaseClock() : 0;
  float* scores = arena.Alloc(T * E);
  Linear(ctx, x, H, T, router_weight_, nullptr, scores, E);
  Routing routing;
  routing.choice = arena.Alloc(T * E);
  routing.count = arena.AllocAs<int32_t>(T);
  routing.ids = arena.AllocAs<int32_t>(T * K);
  routing.weights = arena.Alloc(T * K);
  static const TopKSelection kTopK;
  router_.Route(layer_, scores, n_tok, step.policy ? *step.policy : kTopK, &routing);
  if (step.observer != nullptr) {
    RoutingEvent ev;
    ev.layer = layer_;
    ev.n_tok = n_tok;
    ev.k_max = routing.k_max;
    ev.n_expert = rc.n_expert;
    ev.seq = step.seq;
    ev.pos = step.pos;
    ev.count = routing.count;
    ev.ids = routing.ids;
    ev.weights = routing.weights;
    ev.scores = scores;
    ev.choice = routing.choice;
    step.observer->OnRouting(ev);
  }

  const double t1 = step.times ? PhaseClock() : 0;
  if (step.times) step.times->router += t1 - t0;
  // 2. Dispatch.
  ExpertPlan plan;
  plan.Build(routing, rc.n_expert, arena);

  // 3. Experts, in ascending id; 4. weighted combine in that order.
  std::memset(out, 0, T * H * sizeof(float));
  float* xg = arena.Alloc(T * H);
  float* yg = arena.Alloc(T * H);
  for (int e = 0; e < rc.n_expert; ++e) {
    const int n = plan.n_tokens(e);
    if (n == 0) continue;
    const int32_t* toks = plan.token + plan.offset[e];
    const float* wts = plan.weight + plan.offset[e];
    for (int i = 0; i < n; ++i) std::memcpy(xg + i * H, x + toks[i] * H, H * sizeof(float));
    RunSwiGlu(ctx, store_->Get(layer_, e), xg, static_cast<size_t>(n), yg, arena);
    for (int i = 0; i < n; ++i) {
      float* o = out + toks[i] * H;
      const float* y = yg + i * H;
      const float w = wts[i];
      for (size_t c = 0; c < H; ++c) o[c] += w * y[c];
    }
  }

  const double t2 = step.times ? PhaseClock() : 0;
  if (step.times) step.times->experts += t2 - t1;
  // 5. Shared experts.
  if (shared_) {
    float* ys = arena.Alloc(T * H);
    RunSwiGlu(ctx, shared_->ffn, x, T, ys, arena);
    float* g = nullptr;
    if (!shared_->gate.empty()) {
      g = arena.Alloc(T);
      Linear(ctx, x, H, T, shared_->gate, nullptr, g, 1);
    }
    for (size_t t = 0; t < T; ++t) {
      const float gt = g != nullptr ? Sigmoid(g[t]) : 1.0f;
      for (size_t c = 0; c < H; ++c) out[t * H + c] += gt * ys[t * H + c];
    }
    if (step.times) step.times->shared += PhaseClock() - t2;
  }
  arena.Release(mark);
}

}  // namespace moxie
