#include "models/decoder.h"

#include <algorithm>
#include <cstring>

#include "kernels/kernel_table.h"
#include "kernels/ops.h"
#include "moe/expert_ffn.h"

namespace moxie {

namespace {

// token ids in configs may be an int or a list of ints (the first is used).
Status TokenIdField(const ConfigReader& cfg, const std::string& key, int64_t* out) {
  *out = -1;
  if (!cfg.Has(key)) return Status::Ok();
  const auto& v = cfg.json().at(key);
  if (v.is_array()) {
    if (v.empty()) return Status::Ok();
    if (!v[0].is_number_integer()) return cfg.FieldError(key, "expected integer token ids");
    *out = v[0].get<int64_t>();
    return Status::Ok();
  }
  return cfg.IntOr(key, -1, out);
}

}  // namespace

Status ParseCommonConfig(const ConfigReader& cfg, CommonConfig* c) {
  MOXIE_RETURN_IF_ERROR(cfg.Int("hidden_size", &c->n_embd));
  MOXIE_RETURN_IF_ERROR(cfg.Int("num_hidden_layers", &c->n_layer));
  MOXIE_RETURN_IF_ERROR(cfg.Int("num_attention_heads", &c->n_head));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("num_key_value_heads", c->n_head, &c->n_head_kv));
  MOXIE_RETURN_IF_ERROR(cfg.Int("vocab_size", &c->n_vocab));
  MOXIE_RETURN_IF_ERROR(cfg.IntOr("max_position_embeddings", 4096, &c->max_position));
  MOXIE_RETURN_IF_ERROR(cfg.FloatOr("rms_norm_eps", 1e-6, &c->norm_eps));
  MOXIE_RETURN_IF_ERROR(cfg.BoolOr("tie_word_embeddings", false, &c->tie_embeddings));
  MOXIE_RETURN_IF_ERROR(TokenIdField(cfg, "bos_token_id", &c->bos));
  MOXIE_RETURN_IF_ERROR(TokenIdField(cfg, "eos_token_id", &c->eos));
  auto positive = [&](const char* key, int64_t v, int64_t max) -> Status {
    if (v <= 0 || v > max) {
      return cfg.FieldError(key, "must be in [1, " + std::to_string(max) + "], got " +
                                     std::to_string(v));
    }
    return Status::Ok();
  };
  MOXIE_RETURN_IF_ERROR(positive("hidden_size", c->n_embd, 1 << 20));
  MOXIE_RETURN_IF_ERROR(positive("num_hidden_layers", c->n_layer, 4096));
  MOXIE_RETURN_IF_ERROR(positive("num_attention_heads", c->n_head, 4096));
  MOXIE_RETURN_IF_ERROR(positive("num_key_value_heads", c->n_head_kv, 4096));
  MOXIE_RETURN_IF_ERROR(positive("vocab_size", c->n_vocab, 1 << 24));
  MOXIE_RETURN_IF_ERROR(positive("max_position_embeddings", c->max_position, 1 << 24));
  if (c->n_head % c->n_head_kv != 0) {
    return cfg.FieldError("num_key_value_heads",
                          std::to_string(c->n_head_kv) + " does not divide num_attention_heads " +
                              std::to_string(c->n_head));
  }
  if (cfg.Has("head_dim")) {
    MOXIE_RETURN_IF_ERROR(cfg.Int("head_dim", &c->head_dim));
    MOXIE_RETURN_IF_ERROR(positive("head_dim", c->head_dim, 1 << 16));
  } else {
    // 0 when undefined; families that need it (GQA) report it, MLA families do not use it.
    c->head_dim = c->n_embd % c->n_head == 0 ? c->n_embd / c->n_head : 0;
  }
  if (!(c->norm_eps > 0.0) || c->norm_eps > 1.0) return cfg.FieldError("rms_norm_eps", "must be in (0, 1]");
  return Status::Ok();
}

DecoderModel::DecoderModel(std::unique_ptr<WeightSource> source, const CommonConfig& common)
    : common_(common), source_(std::move(source)) {
  info_.source = source_->Describe();
  info_.n_layer = static_cast<int>(common.n_layer);
  info_.n_embd = static_cast<int>(common.n_embd);
  info_.n_vocab = static_cast<int>(common.n_vocab);
  info_.n_head = static_cast<int>(common.n_head);
  info_.n_head_kv = static_cast<int>(common.n_head_kv);
  info_.head_dim = static_cast<int>(common.head_dim);
  info_.max_position = static_cast<int>(common.max_position);
  info_.bos_token = static_cast<int>(common.bos);
  info_.eos_token = static_cast<int>(common.eos);
  experts_ = std::make_unique<ResidentExpertStore>(info_.n_layer);
  layers_.resize(static_cast<size_t>(common.n_layer));
}

Status DecoderModel::LoadEmbeddingsAndHead(TensorLoader& loader) {
  const int64_t V = common_.n_vocab, H = common_.n_embd;
  MOXIE_ASSIGN_OR_RETURN(embed_, loader.Weight("model.embed_tokens.weight", {V, H}));
  MOXIE_ASSIGN_OR_RETURN(final_norm_, loader.F32("model.norm.weight", {H}));
  if (loader.Has("lm_head.weight") || !common_.tie_embeddings) {
    MOXIE_ASSIGN_OR_RETURN(lm_head_, loader.Matmul("lm_head.weight", {V, H}));
  } else {
    lm_head_ = embed_;
  }
  return Status::Ok();
}

Status DecoderModel::Finalize(const TensorLoader& loader) {
  info_.params_total = loader.params();
  info_.bytes_by_dtype = loader.bytes_by_dtype();
  info_.weight_bytes = 0;
  for (const auto& [dt, b] : info_.bytes_by_dtype) info_.weight_bytes += b;
  info_.embedding_bytes = embed_.data != lm_head_.data ? static_cast<int64_t>(embed_.nbytes()) : 0;
  info_.expert_bytes.clear();
  info_.expert_bytes_total = 0;
  info_.tensors_by_dtype = loader.tensors_by_dtype();
  info_.relaid_tensors = loader.relaid();
  info_.unused_tensors = loader.Unused();
  info_.moe_layers.clear();
  info_.dense_layers.clear();
  int64_t inactive = 0;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const DecoderLayer& L = layers_[l];
    if (L.attn == nullptr) return Internal("layer " + std::to_string(l) + " has no attention");
    if (L.moe != nullptr) {
      info_.moe_layers.push_back(static_cast<int>(l));
      const int E = experts_->n_experts(static_cast<int>(l));
      const int k = L.moe->router().config().k;
      std::vector<int64_t> per(static_cast<size_t>(E));
      int64_t bytes = 0;
      for (int e = 0; e < E; ++e) {
        const ExpertWeights& ew = experts_->Get(static_cast<int>(l), e);
        per[static_cast<size_t>(e)] = ew.n_params();
        info_.params_expert += per[static_cast<size_t>(e)];
        bytes += static_cast<int64_t>(ew.gate.nbytes() + ew.up.nbytes() + ew.down.nbytes());
      }
      info_.expert_bytes.push_back(bytes / E);
      info_.expert_bytes_total += bytes;
      // Active counts the k largest experts (all equal in every supported family).
      std::sort(per.begin(), per.end());
      for (int e = 0; e < E - k; ++e) inactive += per[static_cast<size_t>(e)];
    } else {
      if (L.dense.gate.empty()) return Internal("layer " + std::to_string(l) + " has no FFN");
      info_.dense_layers.push_back(static_cast<int>(l));
    }
  }
  info_.params_active = info_.params_total - inactive;
  return Status::Ok();
}

int64_t ModelInfo::DecodeBytesPerToken() const {
  int64_t b = weight_bytes - embedding_bytes - expert_bytes_total;
  for (int64_t e : expert_bytes) b += e * n_expert_used;
  return b;
}

std::vector<KvLayerSpec> DecoderModel::KvSpec() const {
  std::vector<KvLayerSpec> v;
  for (const auto& L : layers_) v.push_back(L.attn->kv_spec());
  return v;
}

size_t DecoderModel::ScratchFloats(int max_tok, int max_ctx, int n_threads) const {
  const size_t T = static_cast<size_t>(max_tok);
  const size_t H = static_cast<size_t>(common_.n_embd);
  size_t per_layer = 0;
  for (const auto& L : layers_) {
    per_layer = std::max(per_layer, L.attn->ScratchFloats(max_tok, max_ctx, n_threads));
    const size_t ffn = L.moe ? L.moe->ScratchFloats(max_tok)
                             : SwiGluScratchFloats(T, static_cast<size_t>(L.dense.gate.dim(0)));
    per_layer = std::max(per_layer, ffn);
  }
  return 3 * Arena::Round(T * H) + per_layer + Arena::Round(T * H);
}

Status DecoderModel::CheckBatch(const Batch& b, const KvCache& kv, const Arena& arena,
                                int n_threads) const {
  if (b.n_tok <= 0) return InvalidArgument("empty batch");
  if (b.tokens == nullptr || b.pos == nullptr || b.seq == nullptr) {
    return InvalidArgument("batch is missing tokens, positions or sequence ids");
  }
  for (int i = 0; i < b.n_tok; ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= common_.n_vocab) {
      return InvalidArgument("token id " + std::to_string(b.tokens[i]) + " at batch row " +
                             std::to_string(i) + " is outside the vocabulary [0, " +
                             std::to_string(common_.n_vocab) + ")");
    }
    if (b.seq[i] < 0 || b.seq[i] >= kv.n_seq()) {
      return InvalidArgument("sequence slot " + std::to_string(b.seq[i]) + " out of range");
    }
    if (b.pos[i] < 0 || b.pos[i] >= kv.max_ctx()) {
      return InvalidArgument("position " + std::to_string(b.pos[i]) +
                             " exceeds the context size " + std::to_string(kv.max_ctx()));
    }
  }
  if (b.logit_rows != nullptr) {
    for (int i = 0; i < b.n_logit_rows; ++i) {
      if (b.logit_rows[i] < 0 || b.logit_rows[i] >= b.n_tok) {
        return InvalidArgument("logit row " + std::to_string(b.logit_rows[i]) + " out of range");
      }
    }
  }
  if (ScratchFloats(b.n_tok, kv.max_ctx(), n_threads) > arena.capacity()) {
    return InvalidArgument("batch of " + std::to_string(b.n_tok) +
                           " tokens exceeds the workspace size; split it");
  }
  return Status::Ok();
}

Status DecoderModel::Forward(const ExecContext& ctx, const Batch& batch, KvCache& kv, Arena& arena,
                             float* logits, const ForwardOptions& opts) {
  MOXIE_RETURN_IF_ERROR(CheckBatch(batch, kv, arena, ctx.n_threads()));
  arena.Reset();
  const size_t T = static_cast<size_t>(batch.n_tok);
  const size_t H = static_cast<size_t>(common_.n_embd);
  const float eps = static_cast<float>(common_.norm_eps);
  float* x = arena.Alloc(T * H);
  float* xn = arena.Alloc(T * H);
  float* y = arena.Alloc(T * H);
  for (size_t t = 0; t < T; ++t) {
    RowToF32(embed_.dtype, embed_.row(batch.tokens[t]), x + t * H, static_cast<int64_t>(H));
  }
  MoeStepInfo step{batch.seq, batch.pos, opts.observer, opts.policy, opts.times};
  PhaseTimes* pt = opts.times;
  double tc = pt ? PhaseClock() : 0;
  auto lap = [&](double* slot) {  // adds the time since the last lap to *slot
    if (pt == nullptr) return;
    const double now = PhaseClock();
    *slot += now - tc;
    tc = now;
  };
  if (pt) lap(&pt->other);
  // The residual add of each block's output is fused into the norm that follows it (the last
  // one into the final norm, for the logit rows only).
  for (size_t l = 0; l < layers_.size(); ++l) {
    const DecoderLayer& L = layers_[l];
    AddRmsNormRows(ctx, x, l > 0 ? y : nullptr, L.attn_norm.data(), T, H, eps, xn);
    L.attn->Forward(ctx, xn, batch, kv.layer(static_cast<int>(l)), y, arena);
    AddRmsNormRows(ctx, x, y, L.ffn_norm.data(), T, H, eps, xn);
    if (pt) lap(&pt->attention);
    if (L.moe) {
      L.moe->Forward(ctx, xn, batch.n_tok, y, arena, step);
      if (pt) tc = PhaseClock();  // the layer booked router / experts / shared itself
    } else {
      RunSwiGlu(ctx, L.dense, xn, T, y, arena);
      if (pt) lap(&pt->dense);
    }
    if (pt) lap(&pt->other);
  }
  const int n_rows = batch.logit_rows ? batch.n_logit_rows : batch.n_tok;
  float* hn = arena.Alloc(static_cast<size_t>(n_rows) * H);
  for (int r = 0; r < n_rows; ++r) {
    const size_t t = static_cast<size_t>(batch.logit_rows ? batch.logit_rows[r] : r);
    float* hr = hn + static_cast<size_t>(r) * H;
    for (size_t i = 0; i < H; ++i) hr[i] = layers_.empty() ? x[t * H + i] : x[t * H + i] + y[t * H + i];
    RmsNorm(hr, final_norm_.data(), H, eps, hr);
  }
  Linear(ctx, hn, H, static_cast<size_t>(n_rows), lm_head_, nullptr, logits,
         static_cast<size_t>(common_.n_vocab));
  if (pt) lap(&pt->lm_head);
  return Status::Ok();
}

}  // namespace moxie
