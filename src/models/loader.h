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
#include "models/model.h"
#include "moe/expert_store.h"

namespace moxie {

// Weight bytes the loader made (re-laid-out copies); the model keeps them alive.
class OwnedWeights {
 public:
  uint8_t* Alloc(size_t n);  // 64-byte aligned; nullptr when out of memory
 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::vector<std::unique_ptr<uint8_t, Free>> bufs_;
  // Buffers under 2 MiB share 2 MiB slabs (huge pages too): the slab in use and its next free byte.
  uint8_t* slab_ = nullptr;
  size_t slab_used_ = 0;
};

class TensorLoader {
 public:
  // `owned` receives re-laid-out weights (none are made without it).
  TensorLoader(const WeightSource& src, std::string config_path, LoadOptions opts = {},
               OwnedWeights* owned = nullptr)
      : src_(src), config_path_(std::move(config_path)), opts_(opts), owned_(owned) {}

  bool Has(const std::string& name) const { return src_.Find(name) != nullptr; }
  // A float weight used in place (view into the mapping).
  Result<TensorView> Weight(const std::string& name, const std::vector<int64_t>& shape);
  // A weight only ever used as a matmul operand (Linear, expert FFNs): may come back in a layout
  // of the kernels' choosing (Q8_0 -> Q8_0_R8, Q4_K -> Q4_K_R8 when LoadOptions::repack). `row_unit`: the rows of
  // each piece addressed on its own (0 = the next-to-last dim). `keep_layout`: copied as stored
  // (onto huge pages, as every other copy) but never re-laid out, for a matmul whose exact bits
  // must stay those of the row-major kernel (the router: its top-k is discrete).
  Result<TensorView> Matmul(const std::string& name, const std::vector<int64_t>& shape,
                            int64_t row_unit = 0, bool keep_layout = false);
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
  int relaid() const { return static_cast<int>(relaid_.size()); }
  const std::map<std::string, int64_t>& bytes_by_dtype() const { return bytes_; }
  const std::map<std::string, int>& tensors_by_dtype() const { return count_; }
  // Tensors in the source that no Weight/F32/Experts call asked for (e.g. MTP layers).
  std::vector<std::string> Unused() const;

 private:
  Result<const WeightRef*> Fetch(const std::string& name, const std::vector<int64_t>& shape);

  const WeightSource& src_;
  std::string config_path_;
  LoadOptions opts_;
  OwnedWeights* owned_ = nullptr;
  std::map<std::string, TensorView> relaid_;
  std::set<std::string> used_;
  int64_t params_ = 0;
  std::map<std::string, int64_t> bytes_;
  std::map<std::string, int> count_;
};

}  // namespace moxie
