// ExpertStore: where each expert's weights live. The MoE layer asks the store for (layer, expert)
// and never indexes a stacked tensor itself, so experts can later live on disk, in host memory or
// on a GPU, be cached and prefetched, or carry their own precision.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace moxie {

// One SwiGLU expert: y = down · (silu(gate · x) ⊙ (up · x)).
// gate, up: [n_ff, n_embd]; down: [n_embd, n_ff]. Each tensor carries its own dtype.
struct ExpertWeights {
  TensorView gate;
  TensorView up;
  TensorView down;
  int64_t n_params() const { return gate.numel() + up.numel() + down.numel(); }
  size_t n_bytes() const { return gate.nbytes() + up.nbytes() + down.nbytes(); }
};

class ExpertStore {
 public:
  virtual ~ExpertStore() = default;
  // Experts of MoE layer `layer` (model layer index). 0 for dense layers.
  virtual int n_experts(int layer) const = 0;
  // The weights of one expert, resident when this returns. Valid until the next call that may
  // evict (a resident store never evicts). Thread-safety: called from the engine thread only.
  virtual const ExpertWeights& Get(int layer, int expert) = 0;
};

// All experts resident (mmap'd or owned elsewhere): the default store.
class ResidentExpertStore : public ExpertStore {
 public:
  explicit ResidentExpertStore(int n_layers) : experts_(static_cast<size_t>(n_layers)) {}
  void SetLayer(int layer, std::vector<ExpertWeights> experts) {
    experts_[static_cast<size_t>(layer)] = std::move(experts);
  }
  int n_experts(int layer) const override {
    return static_cast<int>(experts_[static_cast<size_t>(layer)].size());
  }
  const ExpertWeights& Get(int layer, int expert) override {
    return experts_[static_cast<size_t>(layer)][static_cast<size_t>(expert)];
  }

 private:
  std::vector<std::vector<ExpertWeights>> experts_;
};

}  // namespace moxie
