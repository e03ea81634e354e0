#include "moe/moe_layer.h"

#include <algorithm>
#include <cstring>
#include <new>

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
  size_t ff = max_ff, n_assign = T * K;
  if (shared_) {
    ff = std::max(ff, static_cast<size_t>(shared_->ffn.gate.dim(0)));
    n_assign += T;
    n += 3 * Arena::Round(T) + Arena::Round(T);  // shared gate logits, weights, token list
  }
  n += Arena::Round((E + 1) * sizeof(ExpertGroup) / 4 + 1) + ExpertGroupsScratchFloats(n_assign, H, ff);
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
  // The router keeps f32 activations even under bf16_activations: its decisions are discrete,
  // and a GGUF file keeps it in F32 anyway.
  ExecContext rctx = ctx;
  rctx.bf16_activations = false;
  Linear(rctx, x, H, T, router_weight_, nullptr, scores, E);
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

  // 3. Experts in ascending id, then the shared expert, as one fused step (RunExpertGroups);
  // 4. the weighted combine happens inside it, in that order.
  std::memset(out, 0, T * H * sizeof(float));
  auto* groups = reinterpret_cast<ExpertGroup*>(arena.Alloc((E + 1) * sizeof(ExpertGroup) / sizeof(float) + 1));
  int n_groups = 0;
  for (int e = 0; e < rc.n_expert; ++e) {
    const int n = plan.n_tokens(e);
    if (n == 0) continue;
    new (&groups[n_groups++]) ExpertGroup{&store_->Get(layer_, e), n, plan.token + plan.offset[e], plan.weight + plan.offset[e]};
  }
  if (shared_) {
    int32_t* all = arena.AllocAs<int32_t>(T);
    for (size_t t = 0; t < T; ++t) all[t] = static_cast<int32_t>(t);
    float* gw = nullptr;
    if (!shared_->gate.empty()) {
      float* g = arena.Alloc(T);
      Linear(ctx, x, H, T, shared_->gate, nullptr, g, 1);
      gw = arena.Alloc(T);
      for (size_t t = 0; t < T; ++t) gw[t] = Sigmoid(g[t]);
    }
    new (&groups[n_groups++]) ExpertGroup{&shared_->ffn, n_tok, all, gw};
  }
  RunExpertGroups(ctx, groups, n_groups, x, H, out, arena);
  if (step.times) step.times->experts += PhaseClock() - t1;
  arena.Release(mark);
}

}  // namespace moxie
