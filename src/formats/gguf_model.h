// A GGUF model file seen as a Hugging Face checkpoint: its metadata translated into the
// config.json fields of the corresponding family, and its tensors served under HF names and
// shapes (ggml `ne` reversed). Family loaders then run unchanged.
//   llama (+ experts) -> mixtral      qwen2moe -> qwen2_moe      qwen3moe -> qwen3_moe
//   olmoe -> olmoe                    deepseek2 -> deepseek_v2 / deepseek_v3 (sigmoid gating)
// Layout differences handled here: Q/K rows that llama.cpp's converter permuted for arch `llama`
// are put back in Hugging Face order (row copy, any dtype); DeepSeek's split attn_k_b/attn_v_b are
// reassembled into kv_b_proj (f32); stacked ffn_*_exps become per-expert slices (3-D tensors
// "...mlp.experts.{gate,up,down}_proj").
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "formats/config_json.h"
#include "formats/gguf.h"
#include "formats/weight_source.h"

namespace moxie {

struct GgufModel {
  ConfigReader config{nlohmann::json::object(), ""};  // synthesised config.json
  std::unique_ptr<WeightSource> weights;               // owns the GgufFile
};

Result<GgufModel> OpenGgufModel(const std::string& path);

}  // namespace moxie
