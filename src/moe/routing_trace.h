// RoutingTrace: a RoutingObserver that records, per MoE layer and per position of one sequence,
// the selected experts and their final weights; serialises to the JSON `--routing-out` writes
// (schema "moxie-routing-v1", documented in the README).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "moe/routing_observer.h"

namespace moxie {

class RoutingTrace : public RoutingObserver {
 public:
  explicit RoutingTrace(int seq = 0) : seq_(seq) {}
  void OnRouting(const RoutingEvent& ev) override;

  struct Row {
    std::vector<int> ids;        // selection order (best first)
    std::vector<float> weights;  // aligned with ids
  };
  // layer -> position -> row
  const std::map<int, std::map<int, Row>>& layers() const { return layers_; }
  int n_expert() const { return n_expert_; }
  int k_max() const { return k_max_; }

  // JSON text; `extra` fields (model_type, tokens, mode) are merged at the top level.
  std::string ToJson(const std::string& extra_json_object) const;

 private:
  int seq_;
  int n_expert_ = 0;
  int k_max_ = 0;
  std::map<int, std::map<int, Row>> layers_;
};

}  // namespace moxie
