// MoeLayer: route -> dispatch (ExpertPlan) -> expert FFNs -> weighted combine (+ shared experts).
#pragma once

#include "core/phase_times.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "moe/expert_store.h"
#include "moe/router.h"
#include "moe/routing_observer.h"

namespace moxie {

// Always-on experts added to every token: out += g(x) * SwiGLU_shared(x), where g = 1 or, with a
// gate weight [1, n_embd] (Qwen2-MoE), g = sigmoid(gate · x).
struct SharedExpert {
  ExpertWeights ffn;
  TensorView gate;  // empty = unweighted
};

struct MoeStepInfo {  // per-step context the layer passes to observers
  const int32_t* seq = nullptr;
  const int32_t* pos = nullptr;
  RoutingObserver* observer = nullptr;      // may be null
  const SelectionPolicy* policy = nullptr;  // null = top-k
  PhaseTimes* times = nullptr;              // may be null
};

class MoeLayer {
 public:
  // router_weight: [n_expert, n_embd]. `store` must outlive the layer.
  MoeLayer(int layer, int64_t n_embd, TensorView router_weight, Router router, ExpertStore* store,
           std::unique_ptr<SharedExpert> shared);

  size_t ScratchFloats(int max_tok) const;
  // out[t] = Σ_j w_tj · Expert_{id_tj}(x[t]) + shared term. x, out: [n_tok, n_embd].
  void Forward(const ExecContext& ctx, const float* x, int n_tok, float* out, Arena& arena,
               const MoeStepInfo& step) const;

  const Router& router() const { return router_; }
  const SharedExpert* shared() const { return shared_.get(); }
  int layer() const { return layer_; }

 private:
  int layer_;
  int64_t n_embd_;
  TensorView router_weight_;
  Router router_;
  ExpertStore* store_;
  std::unique_ptr<SharedExpert> shared_;
  int64_t max_ff_ = 0;  // widest expert FFN of this layer (scratch sizing without store lookups)
};

}  // namespace moxie
