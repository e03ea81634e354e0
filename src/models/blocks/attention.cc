#include "models/blocks/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernel_table.h"
#include "kernels/ops.h"

namespace moxie {

size_t AttendScratchFloats(int max_ctx, int n_threads) {
  return Arena::Round(static_cast<size_t>(max_ctx) * static_cast<size_t>(n_threads));
}

void AttendCached(const ExecContext& ctx, const float* q, size_t ldq, const Batch& batch,
                  const KvLayer& kv, const AttendParams& p, float* out, size_t ldo, Arena& arena) {
  const int n_threads = ctx.n_threads();
  const KernelTable& kt = ctx.kernels != nullptr ? *ctx.kernels : BestKernels();
  float* scores_all = arena.Alloc(static_cast<size_t>(kv.max_ctx) * n_threads);
  const int group = p.n_head / p.n_kv_head;
  const size_t n_pairs = static_cast<size_t>(batch.n_tok) * static_cast<size_t>(p.n_head);
  ctx.ParallelFor(n_pairs, [&](size_t b, size_t e, int tid) {
    float* sc = scores_all + static_cast<size_t>(tid) * kv.max_ctx;
    for (size_t i = b; i < e; ++i) {
      // Tokens in zigzag order (0, T-1, 1, T-2, ...): a causal batch's cost grows with the
      // position, so contiguous static ranges of this order get balanced work.
      const size_t z = i / static_cast<size_t>(p.n_head), n_tok = static_cast<size_t>(batch.n_tok);
      const int t = static_cast<int>(z % 2 == 0 ? z / 2 : n_tok - 1 - z / 2);
      const int h = static_cast<int>(i % p.n_head);
      const int g = h / group;
      const int seq = batch.seq[t];
      const int pos = batch.pos[t];
      const int j0 = p.window > 0 ? std::max(0, pos - p.window + 1) : 0;
      const float* qh = q + static_cast<size_t>(t) * ldq + static_cast<size_t>(h) * p.dk;
      const size_t n = static_cast<size_t>(pos - j0 + 1);
      // K and V rows of one sequence are contiguous, k_width / v_width floats apart.
      const float* k0 = kv.KRow(seq, j0) + static_cast<size_t>(g) * p.dk;
      const float* v0 = kv.VRow(seq, j0) + static_cast<size_t>(g) * p.dv;
      kt.attn_scores(qh, k0, static_cast<size_t>(kv.k_width), n, static_cast<size_t>(p.dk),
                     p.scale, sc);
      float m = -INFINITY;
      for (size_t j = 0; j < n; ++j) m = std::max(m, sc[j]);
      float sum = 0.f;
      for (size_t j = 0; j < n; ++j) {
        sc[j] = std::exp(sc[j] - m);
        sum += sc[j];
      }
      const float inv = 1.0f / sum;
      for (size_t j = 0; j < n; ++j) sc[j] *= inv;
      float* o = out + static_cast<size_t>(t) * ldo + static_cast<size_t>(h) * p.dv;
      std::memset(o, 0, static_cast<size_t>(p.dv) * sizeof(float));
      kt.attn_values(sc, v0, static_cast<size_t>(kv.v_width), n, static_cast<size_t>(p.dv), o);
    }
  });
}

namespace {

void AddBias(float* y, size_t n_tok, size_t width, const std::vector<float>& b) {
  if (b.empty()) return;
  for (size_t t = 0; t < n_tok; ++t) {
    for (size_t i = 0; i < width; ++i) y[t * width + i] += b[i];
  }
}

class GqaAttention : public AttentionBlock {
 public:
  GqaAttention(GqaConfig c, GqaWeights w, const Rope* rope) : c_(c), w_(std::move(w)), rope_(rope) {
    if (c_.scale == 0.f) c_.scale = 1.0f / std::sqrt(static_cast<float>(c_.head_dim));
  }

  KvLayerSpec kv_spec() const override {
    return {c_.n_kv_head * c_.head_dim, c_.n_kv_head * c_.head_dim};
  }

  size_t ScratchFloats(int max_tok, int max_ctx, int n_threads) const override {
    const size_t T = static_cast<size_t>(max_tok);
    const size_t qw = static_cast<size_t>(c_.n_head * c_.head_dim);
    const size_t kw = static_cast<size_t>(c_.n_kv_head * c_.head_dim);
    return 2 * Arena::Round(T * qw) + 2 * Arena::Round(T * kw) +
           2 * Arena::Round(static_cast<size_t>(rope_->dim)) + AttendScratchFloats(max_ctx, n_threads);
  }

  void Forward(const ExecContext& ctx, const float* x, const Batch& batch, const KvLayer& kv,
               float* out, Arena& arena) const override {
    const size_t mark = arena.mark();
    const size_t T = static_cast<size_t>(batch.n_tok);
    const size_t H = static_cast<size_t>(c_.n_embd);
    const int hd = c_.head_dim;
    const size_t qw = static_cast<size_t>(c_.n_head * hd);
    const size_t kw = static_cast<size_t>(c_.n_kv_head * hd);
    float* q = arena.Alloc(T * qw);
    float* k = arena.Alloc(T * kw);
    float* v = arena.Alloc(T * kw);
    Linear(ctx, x, H, T, w_.wq, nullptr, q, qw);
    Linear(ctx, x, H, T, w_.wk, nullptr, k, kw);
    Linear(ctx, x, H, T, w_.wv, nullptr, v, kw);
    AddBias(q, T, qw, w_.bq);
    AddBias(k, T, kw, w_.bk);
    AddBias(v, T, kw, w_.bv);
    for (size_t t = 0; t < T; ++t) {
      float* qt = q + t * qw;
      float* kt = k + t * kw;
      if (c_.qk_norm == QkNorm::kFull) {
        RmsNorm(qt, w_.q_norm.data(), qw, c_.norm_eps, qt);
        RmsNorm(kt, w_.k_norm.data(), kw, c_.norm_eps, kt);
      } else if (c_.qk_norm == QkNorm::kPerHead) {
        for (int h = 0; h < c_.n_head; ++h) {
          RmsNorm(qt + h * hd, w_.q_norm.data(), static_cast<size_t>(hd), c_.norm_eps, qt + h * hd);
        }
        for (int h = 0; h < c_.n_kv_head; ++h) {
          RmsNorm(kt + h * hd, w_.k_norm.data(), static_cast<size_t>(hd), c_.norm_eps, kt + h * hd);
        }
      }
    }
    if (c_.clip_qkv > 0.f) {
      const float c = c_.clip_qkv;
      for (size_t i = 0; i < T * qw; ++i) q[i] = std::clamp(q[i], -c, c);
      for (size_t i = 0; i < T * kw; ++i) k[i] = std::clamp(k[i], -c, c);
      for (size_t i = 0; i < T * kw; ++i) v[i] = std::clamp(v[i], -c, c);
    }
    float* cs = arena.Alloc(static_cast<size_t>(rope_->dim));
    float* sn = arena.Alloc(static_cast<size_t>(rope_->dim));
    for (size_t t = 0; t < T; ++t) {
      rope_->CosSin(batch.pos[t], cs, sn);
      for (int h = 0; h < c_.n_head; ++h) rope_->Apply(q + t * qw + h * hd, cs, sn);
      for (int h = 0; h < c_.n_kv_head; ++h) rope_->Apply(k + t * kw + h * hd, cs, sn);
      std::memcpy(kv.KRow(batch.seq[t], batch.pos[t]), k + t * kw, kw * sizeof(float));
      std::memcpy(kv.VRow(batch.seq[t], batch.pos[t]), v + t * kw, kw * sizeof(float));
    }
    float* att = arena.Alloc(T * qw);
    AttendParams p{c_.n_head, c_.n_kv_head, hd, hd, c_.scale, c_.sliding_window};
    AttendCached(ctx, q, qw, batch, kv, p, att, qw, arena);
    Linear(ctx, att, qw, T, w_.wo, w_.bo.empty() ? nullptr : w_.bo.data(), out, H);
    arena.Release(mark);
  }

 private:
  GqaConfig c_;
  GqaWeights w_;
  const Rope* rope_;
};

class MlaAttention : public AttentionBlock {
 public:
  MlaAttention(MlaConfig c, MlaWeights w, const Rope* rope) : c_(c), w_(std::move(w)), rope_(rope) {}

  int dq() const { return c_.qk_nope_dim + c_.qk_rope_dim; }
  KvLayerSpec kv_spec() const override { return {c_.n_head * dq(), c_.n_head * c_.v_dim}; }

  size_t ScratchFloats(int max_tok, int max_ctx, int n_threads) const override {
    const size_t T = static_cast<size_t>(max_tok);
    const size_t nh = static_cast<size_t>(c_.n_head);
    size_t n = Arena::Round(T * static_cast<size_t>(c_.q_lora_rank));
    n += 2 * Arena::Round(T * nh * static_cast<size_t>(dq()));  // q, attention out (>= nh*v)
    n += Arena::Round(T * static_cast<size_t>(c_.kv_lora_rank + c_.qk_rope_dim));
    n += Arena::Round(T * static_cast<size_t>(c_.kv_lora_rank));
    n += Arena::Round(T * nh * static_cast<size_t>(c_.qk_nope_dim + c_.v_dim));
    n += 2 * Arena::Round(static_cast<size_t>(c_.qk_rope_dim));
    return n + AttendScratchFloats(max_ctx, n_threads) + Arena::Round(T * nh * c_.v_dim);
  }

  void Forward(const ExecContext& ctx, const float* x, const Batch& batch, const KvLayer& kv,
               float* out, Arena& arena) const override {
    const size_t mark = arena.mark();
    const size_t T = static_cast<size_t>(batch.n_tok);
    const size_t H = static_cast<size_t>(c_.n_embd);
    const int nh = c_.n_head, nope = c_.qk_nope_dim, rd = c_.qk_rope_dim, vd = c_.v_dim;
    const int d = dq();
    const size_t qw = static_cast<size_t>(nh * d);
    float* q = arena.Alloc(T * qw);
    if (c_.q_lora_rank > 0) {
      const size_t r = static_cast<size_t>(c_.q_lora_rank);
      float* ca = arena.Alloc(T * r);
      Linear(ctx, x, H, T, w_.wq_a, nullptr, ca, r);
      for (size_t t = 0; t < T; ++t) {
        RmsNorm(ca + t * r, w_.q_a_norm.data(), r, c_.lora_norm_eps, ca + t * r);
      }
      Linear(ctx, ca, r, T, w_.wq_b, nullptr, q, qw);
    } else {
      Linear(ctx, x, H, T, w_.wq, nullptr, q, qw);
    }
    const size_t aw = static_cast<size_t>(c_.kv_lora_rank + rd);
    const size_t lr = static_cast<size_t>(c_.kv_lora_rank);
    float* ckv = arena.Alloc(T * aw);
    Linear(ctx, x, H, T, w_.wkv_a, nullptr, ckv, aw);
    float* cn = arena.Alloc(T * lr);
    for (size_t t = 0; t < T; ++t) {
      RmsNorm(ckv + t * aw, w_.kv_a_norm.data(), lr, c_.lora_norm_eps, cn + t * lr);
    }
    const size_t bw = static_cast<size_t>(nh * (nope + vd));
    float* kvb = arena.Alloc(T * bw);
    Linear(ctx, cn, lr, T, w_.wkv_b, nullptr, kvb, bw);
    float* cs = arena.Alloc(static_cast<size_t>(rd));
    float* sn = arena.Alloc(static_cast<size_t>(rd));
    for (size_t t = 0; t < T; ++t) {
      rope_->CosSin(batch.pos[t], cs, sn);
      float* kpe = ckv + t * aw + lr;  // shared by all heads
      rope_->Apply(kpe, cs, sn);
      float* krow = kv.KRow(batch.seq[t], batch.pos[t]);
      float* vrow = kv.VRow(batch.seq[t], batch.pos[t]);
      for (int h = 0; h < nh; ++h) {
        float* qh = q + t * qw + static_cast<size_t>(h * d);
        rope_->Apply(qh + nope, cs, sn);
        const float* src = kvb + t * bw + static_cast<size_t>(h * (nope + vd));
        std::memcpy(krow + h * d, src, static_cast<size_t>(nope) * sizeof(float));
        std::memcpy(krow + h * d + nope, kpe, static_cast<size_t>(rd) * sizeof(float));
        std::memcpy(vrow + h * vd, src + nope, static_cast<size_t>(vd) * sizeof(float));
      }
    }
    const size_t ow = static_cast<size_t>(nh * vd);
    float* att = arena.Alloc(T * ow);
    AttendParams p{nh, nh, d, vd, c_.scale, 0};
    AttendCached(ctx, q, qw, batch, kv, p, att, ow, arena);
    Linear(ctx, att, ow, T, w_.wo, nullptr, out, H);
    arena.Release(mark);
  }

 private:
  MlaConfig c_;
  MlaWeights w_;
  const Rope* rope_;
};

}  // namespace

std::unique_ptr<AttentionBlock> MakeGqaAttention(GqaConfig cfg, GqaWeights w, const Rope* rope) {
  return std::make_unique<GqaAttention>(cfg, std::move(w), rope);
}

std::unique_ptr<AttentionBlock> MakeMlaAttention(MlaConfig cfg, MlaWeights w, const Rope* rope) {
  return std::make_unique<MlaAttention>(cfg, std::move(w), rope);
}

}  // namespace moxie
