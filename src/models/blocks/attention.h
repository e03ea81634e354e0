// Attention blocks: GQA (Mixtral, Qwen2/3-MoE, OLMoE) and MLA (DeepSeek-V2/V3), plus the shared
// cached-attention core. Each block owns its weights (views into the checkpoint plus small f32
// copies of norms/biases) and defines its KV row layout.
#pragma once

#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "models/blocks/rope.h"
#include "models/kv_cache.h"
#include "models/model.h"

namespace moxie {

class AttentionBlock {
 public:
  virtual ~AttentionBlock() = default;
  virtual KvLayerSpec kv_spec() const = 0;
  virtual size_t ScratchFloats(int max_tok, int max_ctx, int n_threads) const = 0;
  // x, out: [n_tok, n_embd]. Appends the batch's K/V to `kv`, then attends causally.
  virtual void Forward(const ExecContext& ctx, const float* x, const Batch& batch,
                       const KvLayer& kv, float* out, Arena& arena) const = 0;
};

// Scratch for AttendCached.
size_t AttendScratchFloats(int max_ctx, int n_threads);

// For each token t and query head h: out[t, h*dv ..] = softmax_j(scale * q_th · K[seq_t, j]) · V,
// over cached positions j <= pos_t (and j > pos_t - window when window > 0). Query head h uses
// KV head h / (n_head / n_kv_head). Softmax in f32.
struct AttendParams {
  int n_head = 0;
  int n_kv_head = 0;
  int dk = 0;  // key/query dims per head
  int dv = 0;  // value dims per head
  float scale = 1.f;
  int window = 0;  // 0 = full causal
  // Values are the first dv elements of the key rows (MLA's latent cache: K = [c_kv; k_pe],
  // V = c_kv); the cache then holds no V rows.
  bool v_in_k = false;
};
void AttendCached(const ExecContext& ctx, const float* q, size_t ldq, const Batch& batch,
                  const KvLayer& kv, const AttendParams& p, float* out, size_t ldo, Arena& arena);

enum class QkNorm { kNone, kPerHead, kFull };

struct GqaConfig {
  int n_embd = 0;
  int n_head = 0;
  int n_kv_head = 0;
  int head_dim = 0;
  QkNorm qk_norm = QkNorm::kNone;
  float norm_eps = 1e-6f;
  float clip_qkv = 0.f;  // 0 = none; else clamp q, k, v to [-c, c] after the norms
  int sliding_window = 0;
  float scale = 0.f;  // 0 = head_dim^-0.5
};

struct GqaWeights {
  TensorView wq, wk, wv, wo;             // [nh*hd, H], [nkv*hd, H], [nkv*hd, H], [H, nh*hd]
  std::vector<float> bq, bk, bv, bo;     // empty = no bias
  std::vector<float> q_norm, k_norm;     // [hd] per head, or [nh*hd]/[nkv*hd] full width
};

std::unique_ptr<AttentionBlock> MakeGqaAttention(GqaConfig cfg, GqaWeights w, const Rope* rope);

struct MlaConfig {
  int n_embd = 0;
  int n_head = 0;
  int q_lora_rank = 0;  // 0 = plain q_proj
  int kv_lora_rank = 0;
  int qk_nope_dim = 0;
  int qk_rope_dim = 0;
  int v_dim = 0;
  float lora_norm_eps = 1e-6f;  // q_a_layernorm / kv_a_layernorm (class default, not config)
  float scale = 0.f;            // softmax scale incl. YaRN m^2
};

struct MlaWeights {
  TensorView wq;                  // [nh*dq, H] when q_lora_rank == 0
  TensorView wq_a, wq_b;          // [q_lora, H], [nh*dq, q_lora]
  std::vector<float> q_a_norm;    // [q_lora]
  TensorView wkv_a;               // [kv_lora + rope, H]
  std::vector<float> kv_a_norm;   // [kv_lora]
  std::vector<float> kv_b;        // kv_b_proj in f32: [nh*(nope + v), kv_lora]
  TensorView wo;                  // [H, nh*v]
};

// MLA with the absorbed latent cache (DeepSeek-V2's "absorb" form, as llama.cpp and vLLM run it):
// the cache holds per position only c_kv (kv_lora, after its RMSNorm) and the roped k_pe (rope),
// shared by all heads — not per-head keys and values. Head h's query is absorbed into the latent
// space, q_lat = W_kb_h^T q_nope (W_kb_h: head h's nope rows of kv_b_proj), so its score against
// position j is q_lat · c_kv_j + q_pe · k_pe_j, exactly the expanded q · k; its output is
// W_vb_h (Σ_j p_j c_kv_j), exactly Σ_j p_j v_j. Same math as Hugging Face's expanded form, summed
// in another order. Cache elements per layer and position: kv_lora + rope instead of
// nh * (nope + rope + v) (DeepSeek-V2-Lite: 576 instead of 5120).

std::unique_ptr<AttentionBlock> MakeMlaAttention(MlaConfig cfg, MlaWeights w, const Rope* rope);

}  // namespace moxie
