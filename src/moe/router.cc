#include "moe/router.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/ops.h"

namespace moxie {

Status RouterConfig::Validate(const std::string& where) const {
  if (n_expert <= 0) return InvalidFormat(where + ": number of experts must be > 0");
  if (k <= 0) return InvalidFormat(where + ": experts per token (top-k) must be > 0");
  if (k > n_expert) {
    return InvalidFormat(where + ": experts per token (top-k = " + std::to_string(k) +
                         ") is larger than the number of experts (" + std::to_string(n_expert) +
                         ")");
  }
  if (n_group < 1 || n_group > 256 || n_expert % n_group != 0) {
    return InvalidFormat(where + ": n_group = " + std::to_string(n_group) +
                         " does not divide the number of experts " + std::to_string(n_expert));
  }
  if (topk_group < 1 || topk_group > n_group) {
    return InvalidFormat(where + ": topk_group = " + std::to_string(topk_group) +
                         " must be in [1, n_group = " + std::to_string(n_group) + "]");
  }
  if (n_group > 1 && group_score == GroupScore::kTop2Sum && n_expert / n_group < 2) {
    return InvalidFormat(where + ": group score top-2 sum needs >= 2 experts per group");
  }
  if (n_group > 1 && topk_group * (n_expert / n_group) < k) {
    return InvalidFormat(where + ": topk_group groups hold fewer experts than top-k");
  }
  if (!std::isfinite(scale)) return InvalidFormat(where + ": routed scaling factor is not finite");
  return Status::Ok();
}

Status RouterConfig::SetCounts(int64_t experts, int64_t top_k, const std::string& where) {
  constexpr int64_t kMaxExperts = int64_t{1} << 16;
  if (experts < 1 || experts > kMaxExperts) {
    return InvalidFormat(where + ": number of experts " + std::to_string(experts) + " is outside [1, " +
                         std::to_string(kMaxExperts) + "]");
  }
  if (top_k < 1) return InvalidFormat(where + ": experts per token (top-k) must be > 0");
  if (top_k > experts) {
    return InvalidFormat(where + ": experts per token (top-k = " + std::to_string(top_k) +
                         ") is larger than the number of experts (" + std::to_string(experts) + ")");
  }
  n_expert = static_cast<int>(experts);
  k = static_cast<int>(top_k);
  return Status::Ok();
}

std::string RouterConfig::Describe() const {
  std::string s = scoring == RouterScoring::kSoftmax ? "softmax" : "sigmoid";
  s += " top-" + std::to_string(k) + " of " + std::to_string(n_expert);
  if (n_group > 1) {
    s += ", groups " + std::to_string(topk_group) + "/" + std::to_string(n_group) +
         (group_score == GroupScore::kMax ? " (max)" : " (top-2 sum)");
  }
  s += normalize ? ", renormalised" : ", not renormalised";
  if (scale != 1.0f) s += ", scale " + std::to_string(scale);
  return s;
}

int TopKSelection::Select(int /*layer*/, const float* choice, int n_expert, int k,
                          int32_t* ids) const {
  // Partial selection sort: k is small (<= 16 in practice). Strict '>' keeps the lower id on ties.
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int e = 0; e < n_expert; ++e) {
      bool taken = false;
      for (int q = 0; q < j; ++q) taken |= (ids[q] == e);
      if (taken) continue;
      if (best < 0 || choice[e] > choice[best]) best = e;
    }
    ids[j] = best;
  }
  return k;
}

Router::Router(RouterConfig config, std::vector<float> selection_bias)
    : config_(config), bias_(std::move(selection_bias)) {}

void Router::Route(int layer, float* logits, int n_tok, const SelectionPolicy& policy,
                   Routing* out) const {
  const int E = config_.n_expert;
  const int k = config_.k;
  out->n_tok = n_tok;
  out->k_max = k;
  for (int t = 0; t < n_tok; ++t) {
    float* s = logits + static_cast<size_t>(t) * E;  // becomes the scores
    if (config_.scoring == RouterScoring::kSoftmax) {
      SoftmaxInPlace(s, static_cast<size_t>(E));
    } else {
      for (int e = 0; e < E; ++e) s[e] = Sigmoid(s[e]);
    }
    float* c = out->choice + static_cast<size_t>(t) * E;
    for (int e = 0; e < E; ++e) c[e] = s[e] + (bias_.empty() ? 0.f : bias_[e]);
    if (config_.n_group > 1) {
      const int G = config_.n_group;
      const int per = E / G;
      float gscore[256];
      const int g_cap = std::min(G, 256);
      for (int g = 0; g < g_cap; ++g) {
        const float* cg = c + g * per;
        if (config_.group_score == GroupScore::kMax) {
          gscore[g] = *std::max_element(cg, cg + per);
        } else {
          float a = -INFINITY, b = -INFINITY;  // two largest
          for (int i = 0; i < per; ++i) {
            if (cg[i] > a) {
              b = a;
              a = cg[i];
            } else if (cg[i] > b) {
              b = cg[i];
            }
          }
          gscore[g] = a + b;
        }
      }
      // Keep the topk_group best groups (ties -> lower group index).
      bool keep[256] = {};
      for (int j = 0; j < config_.topk_group; ++j) {
        int best = -1;
        for (int g = 0; g < g_cap; ++g) {
          if (!keep[g] && (best < 0 || gscore[g] > gscore[best])) best = g;
        }
        keep[best] = true;
      }
      for (int g = 0; g < g_cap; ++g) {
        if (keep[g]) continue;
        for (int i = 0; i < per; ++i) c[g * per + i] = config_.masked_group_fill;
      }
    }
    int32_t* ids = out->ids + static_cast<size_t>(t) * k;
    float* w = out->weights + static_cast<size_t>(t) * k;
    const int n = policy.Select(layer, c, E, k, ids);
    out->count[t] = n;
    float sum = 0.f;
    for (int j = 0; j < n; ++j) {
      w[j] = s[ids[j]];
      sum += w[j];
    }
    if (config_.normalize && n > 0) {
      const float denom = sum + config_.norm_eps;
      for (int j = 0; j < n; ++j) w[j] /= denom;
    }
    for (int j = 0; j < n; ++j) w[j] *= config_.scale;
  }
}

}  // namespace moxie
