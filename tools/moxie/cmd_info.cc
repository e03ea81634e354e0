// `moxie info -m DIR [--json]`: what the model is, as loaded (after validation).
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "tools/moxie/commands.h"
#include "formats/json_parse.h"
#include "tools/moxie/common.h"

namespace moxie::cli {
namespace {

std::string Human(int64_t n) {
  char buf[32];
  if (n >= 1'000'000'000) {
    std::snprintf(buf, sizeof(buf), "%.2fB", n / 1e9);
  } else if (n >= 1'000'000) {
    std::snprintf(buf, sizeof(buf), "%.2fM", n / 1e6);
  } else if (n >= 1000) {
    std::snprintf(buf, sizeof(buf), "%.1fK", n / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(n));
  }
  return buf;
}

std::string Join(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s.empty() ? "-" : s;
}

}  // namespace

void RegisterInfo(CLI::App& app, int* rc) {
  auto* cmd = app.add_subcommand("info", "Describe a model: family, shape, experts, parameters");
  static std::string model;
  static bool json = false;
  cmd->add_option("-m,--model", model, "Hugging Face model folder (default: the demo model)");
  cmd->add_flag("--json", json, "Machine-readable output");
  cmd->callback([rc] {
    model = ModelOrDefault(model);
    auto loaded = LoadModel(model);
    if (!loaded.ok()) {
      *rc = Fail(loaded.status());
      return;
    }
    const ModelInfo& i = (*loaded)->info();
    int64_t bytes = 0;
    for (const auto& [d, b] : i.bytes_by_dtype) bytes += b;
    if (json) {
      nlohmann::ordered_json j;
      j["family"] = i.family;
      j["model_type"] = i.model_type;
      j["source"] = i.source;
      j["n_layer"] = i.n_layer;
      j["n_embd"] = i.n_embd;
      j["n_vocab"] = i.n_vocab;
      j["n_head"] = i.n_head;
      j["n_head_kv"] = i.n_head_kv;
      j["head_dim"] = i.head_dim;
      j["attention"] = i.attention;
      j["n_expert"] = i.n_expert;
      j["n_expert_used"] = i.n_expert_used;
      j["n_expert_shared"] = i.n_expert_shared;
      j["shared_expert_gated"] = i.shared_expert_gated;
      j["n_ff_expert"] = i.n_ff_expert;
      j["n_ff_dense"] = i.n_ff_dense;
      j["moe_layers"] = i.moe_layers;
      j["dense_layers"] = i.dense_layers;
      j["router"] = i.router;
      j["rope"] = i.rope;
      j["params_total"] = i.params_total;
      j["params_active"] = i.params_active;
      j["params_expert"] = i.params_expert;
      j["weight_bytes"] = bytes;
      j["bytes_by_dtype"] = i.bytes_by_dtype;
      j["tensors_by_dtype"] = i.tensors_by_dtype;
      j["max_position"] = i.max_position;
      j["bos_token"] = i.bos_token;
      j["eos_token"] = i.eos_token;
      j["unused_tensors"] = i.unused_tensors;
      std::printf("%s\n", DumpJson(j, 1).c_str());
      *rc = 0;
      return;
    }
    std::printf("model            %s\n", i.source.c_str());
    std::printf("family           %s\n", i.family.c_str());
    std::printf("layers           %d (MoE: %s; dense: %s)\n", i.n_layer, Join(i.moe_layers).c_str(),
                Join(i.dense_layers).c_str());
    std::printf("hidden size      %d\n", i.n_embd);
    std::printf("vocab            %d\n", i.n_vocab);
    std::printf("attention        %s; heads %d q / %d kv, head dim %d\n", i.attention.c_str(),
                i.n_head, i.n_head_kv, i.head_dim);
    std::printf("rope             %s\n", i.rope.c_str());
    std::printf("experts          %d routed, top-%d, expert FFN %d", i.n_expert, i.n_expert_used,
                i.n_ff_expert);
    if (i.n_expert_shared > 0) {
      std::printf("; %d shared%s", i.n_expert_shared, i.shared_expert_gated ? " (sigmoid-gated)" : "");
    }
    if (i.n_ff_dense > 0 && !i.dense_layers.empty()) std::printf("; dense FFN %d", i.n_ff_dense);
    std::printf("\n");
    std::printf("router           %s\n", i.router.c_str());
    std::printf("params total     %s (%lld)\n", Human(i.params_total).c_str(),
                static_cast<long long>(i.params_total));
    std::printf("params active    %s (%lld) per token\n", Human(i.params_active).c_str(),
                static_cast<long long>(i.params_active));
    std::printf("routed experts   %s (%lld)\n", Human(i.params_expert).c_str(),
                static_cast<long long>(i.params_expert));
    std::printf("weights          %s bytes:", Human(bytes).c_str());
    for (const auto& [d, b] : i.bytes_by_dtype) {
      std::printf(" %s %s (%d tensors)", d.c_str(), Human(b).c_str(), i.tensors_by_dtype.at(d));
    }
    std::printf("\n");
    std::printf("context          %d (max_position_embeddings)\n", i.max_position);
    std::printf("bos / eos        %d / %d\n", i.bos_token, i.eos_token);
    if (!i.unused_tensors.empty()) {
      std::printf("unused tensors   %zu (e.g. %s)\n", i.unused_tensors.size(),
                  i.unused_tensors.front().c_str());
    }
    *rc = 0;
  });
}

}  // namespace moxie::cli
