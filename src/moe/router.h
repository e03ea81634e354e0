// Router: turns router logits into (expert ids, weights) per token, for every family's rule.
//
// All families' routers are one RouterConfig (data, not code):
//   scores  = softmax(logits) | sigmoid(logits)                      (f32)
//   choice  = scores + selection_bias (if any; DeepSeek-V3 e_score_correction_bias)
//   groups  : keep the topk_group best of n_group contiguous groups (group score = max or sum of
//             top-2 `choice`); experts outside them get choice = masked_group_fill
//   select  : the SelectionPolicy picks ids from `choice` (default: top-k, ties -> lower id)
//   weights = scores[ids] (never the bias); optionally / (sum + norm_eps); then * scale
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace moxie {

enum class RouterScoring : uint8_t { kSoftmax, kSigmoid };
enum class GroupScore : uint8_t { kMax, kTop2Sum };

struct RouterConfig {
  int n_expert = 0;
  int k = 0;  // experts per token (upper bound for policies that pick fewer)
  RouterScoring scoring = RouterScoring::kSoftmax;
  int n_group = 1;     // 1 = no group limit
  int topk_group = 1;  // groups kept
  GroupScore group_score = GroupScore::kMax;
  float masked_group_fill = 0.0f;  // HF fills 0.0; llama.cpp -inf
  bool normalize = false;          // divide the selected weights by their sum
  float norm_eps = 0.0f;           // added to the sum (DeepSeek-V3: 1e-20)
  float scale = 1.0f;              // routed_scaling_factor

  // Checks the config is self-consistent; `where` names its source (e.g. "config.json").
  // n_expert and k from a config's 64-bit integers, range-checked before they narrow to int
  // (a crafted 2^32 + 8 experts must not load as 8).
  Status SetCounts(int64_t experts, int64_t top_k, const std::string& where);
  Status Validate(const std::string& where) const;
  std::string Describe() const;  // one line, for `moxie info`
};

// Per-token routing decisions for a batch of n_tok tokens, laid out [n_tok, k_max].
// Views into caller-provided (arena) memory.
struct Routing {
  int n_tok = 0;
  int k_max = 0;
  int32_t* count = nullptr;  // [n_tok] experts selected for each token (<= k_max)
  int32_t* ids = nullptr;    // [n_tok, k_max] in selection order (best first)
  float* weights = nullptr;  // [n_tok, k_max] final weight multiplying each expert's output
  float* choice = nullptr;   // [n_tok, n_expert] selection scores (after bias and group mask)
};

// Chooses experts from selection scores. The default is top-k; runtime policies (top-p,
// thresholds, masks) implement this interface (later issues).
class SelectionPolicy {
 public:
  virtual ~SelectionPolicy() = default;
  // Writes up to k ids (best first) into `ids` and returns how many were chosen.
  virtual int Select(int layer, const float* choice, int n_expert, int k, int32_t* ids) const = 0;
};

class TopKSelection : public SelectionPolicy {
 public:
  int Select(int layer, const float* choice, int n_expert, int k, int32_t* ids) const override;
};

class Router {
 public:
  Router(RouterConfig config, std::vector<float> selection_bias);
  const RouterConfig& config() const { return config_; }
  bool has_selection_bias() const { return !bias_.empty(); }

  // logits: [n_tok, n_expert] f32 (overwritten with scores). out.* must be allocated for n_tok.
  void Route(int layer, float* logits, int n_tok, const SelectionPolicy& policy,
             Routing* out) const;

 private:
  RouterConfig config_;
  std::vector<float> bias_;  // [n_expert] or empty
};

}  // namespace moxie
