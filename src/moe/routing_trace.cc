#include "moe/routing_trace.h"
#include "formats/json_parse.h"

#include <algorithm>
#include <numeric>

#include <nlohmann/json.hpp>

namespace moxie {

void RoutingTrace::OnRouting(const RoutingEvent& ev) {
  n_expert_ = ev.n_expert;
  k_max_ = ev.k_max;
  auto& layer = layers_[ev.layer];
  for (int t = 0; t < ev.n_tok; ++t) {
    if (ev.seq[t] != seq_) continue;
    Row& r = layer[ev.pos[t]];
    r.ids.assign(ev.ids + t * ev.k_max, ev.ids + t * ev.k_max + ev.count[t]);
    r.weights.assign(ev.weights + t * ev.k_max, ev.weights + t * ev.k_max + ev.count[t]);
  }
}

std::string RoutingTrace::ToJson(const std::string& extra_json_object) const {
  nlohmann::ordered_json j;
  j["format"] = "moxie-routing-v1";
  if (!extra_json_object.empty()) {
    const auto extra = nlohmann::ordered_json::parse(extra_json_object);
    for (const auto& [k, v] : extra.items()) j[k] = v;
  }
  j["n_experts"] = n_expert_;
  j["top_k"] = k_max_;
  std::vector<int> moe_layers;
  for (const auto& [l, rows] : layers_) moe_layers.push_back(l);
  j["moe_layers"] = moe_layers;
  // ordered_json is vector-backed: build each array, then insert (no references kept).
  auto arr = nlohmann::ordered_json::array();
  for (const auto& [l, rows] : layers_) {
    auto ids = nlohmann::ordered_json::array();
    auto w = nlohmann::ordered_json::array();
    auto idr = nlohmann::ordered_json::array();
    auto wr = nlohmann::ordered_json::array();
    for (const auto& [pos, row] : rows) {
      std::vector<size_t> order(row.ids.size());
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return row.ids[a] < row.ids[b]; });
      std::vector<int> si;
      std::vector<float> sw;
      for (size_t o : order) {
        si.push_back(row.ids[o]);
        sw.push_back(row.weights[o]);
      }
      ids.push_back(si);
      w.push_back(sw);
      idr.push_back(row.ids);
      wr.push_back(row.weights);
    }
    nlohmann::ordered_json L;
    L["layer"] = l;
    L["ids"] = std::move(ids);
    L["weights"] = std::move(w);
    L["ids_ranked"] = std::move(idr);
    L["weights_ranked"] = std::move(wr);
    arr.push_back(std::move(L));
  }
  j["layers"] = std::move(arr);
  return DumpJson(j, 1);
}

}  // namespace moxie
