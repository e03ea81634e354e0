// TensorLoader: fetches the tensors a family expects from a WeightSource, validating presence,
// dtype and shape against what config.json implies, and keeps the books for `moxie info`
// (parameter counts, bytes per dtype, unused tensors).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "formats/weight_source.h"
#include "moe/expert_store.h"

namespace moxie {

class TensorLoader {
 public:
  TensorLoader(const WeightSource& src, std::string config_path)
      : src_(src), config_path_(std::move(config_path)) {}

  bool Has(const std::string& name) const { return src_.Find(name) != nullptr; }
  // A float weight used in place (view into the mapping).
  Result<TensorView> Weight(const std::string& name, const std::vector<int64_t>& shape);
  // A small float tensor (norm weight, bias) copied to f32.
  Result<std::vector<float>> F32(const std::string& name, const std::vector<int64_t>& shape);
  // Routed experts of one layer: per-expert tensors "<prefix>.<e>.<gate|up|down>.weight" (Hub
  // layout) or fused "<prefix>.gate_up_proj" [E, 2I, H] + "<prefix>.down_proj" [E, H, I]
  // (transformers v5 layout). Each expert stays individually addressable.
  struct ExpertNames {
    std::string gate = "gate_proj", up = "up_proj", down = "down_proj";
  };
  Result<std::vector<ExpertWeights>> Experts(const std::string& prefix, int n_expert, int64_t n_ff,
                                             int64_t n_embd, const ExpertNames& names);

  int64_t params() const { return params_; }
  const std::map<std::string, int64_t>& bytes_by_dtype() const { return bytes_; }
  const std::map<std::string, int>& tensors_by_dtype() const { return count_; }
  // Tensors in the source that no Weight/F32/Experts call asked for (e.g. MTP layers).
  std::vector<std::string> Unused() const;

 private:
  Result<const WeightRef*> Fetch(const std::string& name, const std::vector<int64_t>& shape);

  const WeightSource& src_;
  std::string config_path_;
  std::set<std::string> used_;
  int64_t params_ = 0;
  std::map<std::string, int64_t> bytes_;
  std::map<std::string, int> count_;
};

}  // namespace moxie
