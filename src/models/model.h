// Model: the interface every family implements (through DecoderModel), and what the runtime uses.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/phase_times.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "models/kv_cache.h"
#include "moe/router.h"
#include "moe/routing_observer.h"

namespace moxie {

// A batch of tokens from one or more sequences, each at its own position. Tokens of the same
// sequence must appear in increasing position order; the K/V of every token is written before any
// attention is computed, so a prompt can be one batch (prefill) or one token per step (decode).
struct Batch {
  int n_tok = 0;
  const int32_t* tokens = nullptr;  // [n_tok]
  const int32_t* pos = nullptr;     // [n_tok]
  const int32_t* seq = nullptr;     // [n_tok] KV slot of each token
  // Rows whose logits are wanted, in output order; nullptr = every row.
  const int32_t* logit_rows = nullptr;
  int n_logit_rows = 0;
};

struct ForwardOptions {
  RoutingObserver* observer = nullptr;      // receives every MoE routing decision
  const SelectionPolicy* policy = nullptr;  // null = the router's top-k
  PhaseTimes* times = nullptr;              // adds seconds per phase when set
};

struct ModelInfo {
  std::string family;      // registry name, e.g. "qwen3_moe"
  std::string model_type;  // as in config.json
  std::string source;      // folder or file
  int n_layer = 0;
  int n_embd = 0;
  int n_vocab = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  std::string attention;  // "GQA", "MLA (q_lora 1536, kv_lora 512)", ...
  int n_expert = 0;
  int n_expert_used = 0;
  int n_expert_shared = 0;       // shared experts per MoE layer (merged MLPs count their number)
  bool shared_expert_gated = false;
  int n_ff_expert = 0;
  int n_ff_dense = 0;
  std::vector<int> moe_layers;
  std::vector<int> dense_layers;
  std::string router;  // RouterConfig::Describe()
  std::string rope;    // e.g. "neox theta=10000"
  int64_t params_total = 0;
  int64_t params_active = 0;  // per token: all non-routed params + top-k routed experts per layer
  int64_t params_expert = 0;  // routed-expert params, all layers
  std::map<std::string, int64_t> bytes_by_dtype;  // weight bytes per stored dtype
  int64_t weight_bytes = 0;     // all weights as stored
  int64_t embedding_bytes = 0;  // the token embedding table (0 if it doubles as lm_head)
  // Per MoE layer (parallel to moe_layers): bytes of one routed expert (gate + up + down).
  std::vector<int64_t> expert_bytes;
  int64_t expert_bytes_total = 0;  // all routed experts
  // Weight bytes one decoded token reads with k experts per MoE layer: everything but the
  // embedding table and the unchosen experts.
  int64_t DecodeBytesPerToken() const;
  std::map<std::string, int> tensors_by_dtype;
  int relaid_tensors = 0;  // weights the loader re-laid out for the kernels (LoadOptions::repack)
  int max_position = 0;
  int bos_token = -1;
  int eos_token = -1;
  std::vector<std::string> unused_tensors;  // present in the files, not used by the model
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelInfo& info() const = 0;
  virtual std::vector<KvLayerSpec> KvSpec() const = 0;
  // Scratch floats one Forward needs for up to max_tok tokens, contexts up to max_ctx and
  // n_threads threads.
  virtual size_t ScratchFloats(int max_tok, int max_ctx, int n_threads) const = 0;
  // Runs the batch, appending its K/V to `kv`; writes logits [n_logit_rows (or n_tok), n_vocab].
  // Bad tokens/positions/slots are reported, not trusted.
  virtual Status Forward(const ExecContext& ctx, const Batch& batch, KvCache& kv, Arena& arena,
                         float* logits, const ForwardOptions& opts) = 0;
};

// Loads a Hugging Face folder (config.json + safetensors). Errors name file, tensor and field;
// an unknown model_type lists the supported ones.
struct LoadOptions {
  // Lay Q8_0 / Q4_K matmul weights out as Q8_0_R8 / Q4_K_R8 (8 rows interleaved) at load when the CPU kernels
  // have a fast path for it: same results, faster kernels; the load reads every such weight once
  // and its mapped pages are released. Off = use the file's bytes in place.
  bool repack = true;
};
Result<std::unique_ptr<Model>> LoadModel(const std::string& path, const LoadOptions& opts = {});
std::vector<std::string> SupportedModelTypes();

}  // namespace moxie
