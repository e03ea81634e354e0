#include "models/blocks/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/kernel_table.h"
#include "kernels/ops.h"

namespace moxie {

namespace {
// Queries per attention tile (rows of a thread's score scratch, ctx floats each): kMaxAttnTile,
// halved for long contexts down to kMinAttnTile so the scratch stays within kAttnScratchBytes per
// thread. A tile's queries (consecutive batch tokens of one sequence x the heads of one K/V head)
// read each K/V row once: without GQA, a 512-token prefill chunk after 1536 tokens reads a layer's
// K/V (32 MiB for model A) 64 / 16 times with tiles of 8 / 32 tokens.
constexpr size_t kMinAttnTile = 8, kMaxAttnTile = 32;
constexpr size_t kAttnScratchBytes = size_t{4} << 20;
// Tiles of up to kStreamTile queries (decode: one token x a GQA group) read their K/V runs in
// pieces of kPieceBytes of rows (at least 4 rows), prefetching the next run (AttendCachedT). Kernel
// bench attend_decode (Zen 4, 2 threads, Qwen3-30B-A3B shape, 2048 positions, us per layer): f32
// rows (512 B) in pieces of 8 / 4 rows 603 / 394, f16 rows (256 B) 324 / 393; 16 rows slower
// still. The best piece is ~2 KiB of rows for both.
constexpr size_t kStreamTile = 8, kPieceBytes = 2048;
size_t AttnTile(size_t max_ctx) {
  size_t t = kMaxAttnTile;
  while (t > kMinAttnTile && max_ctx * t * sizeof(float) > kAttnScratchBytes) t /= 2;
  return t;
}
}  // namespace

size_t AttendScratchFloats(int max_ctx, int n_threads) {
  const size_t ctx = static_cast<size_t>(max_ctx);
  return Arena::Round(ctx * AttnTile(ctx) * static_cast<size_t>(n_threads));
}

namespace {

template <typename E>
struct KvKernels;
template <>
struct KvKernels<float> {
  static AttnScoresFn Scores(const KernelTable& kt) { return kt.attn_scores; }
  static AttnValuesFn Values(const KernelTable& kt) { return kt.attn_values; }
};
template <>
struct KvKernels<uint16_t> {
  static AttnScoresF16Fn Scores(const KernelTable& kt) { return kt.attn_scores_f16; }
  static AttnValuesF16Fn Values(const KernelTable& kt) { return kt.attn_values_f16; }
};

// Work is split in tiles of queries that read the same keys: consecutive batch tokens of one
// sequence x the heads of one K/V head (a GQA group, or one head), up to AttnTile queries. A tile
// computes its queries' scores over the keys they all see together (each key row read from memory
// once for the tile), the rest per query; every score and output column has the arithmetic of a
// lone query (see AttnScoresFn), so results do not depend on the tiling.
// E: the cache's element type (float, or uint16_t for f16).
template <typename E>
void AttendCachedT(const ExecContext& ctx, const float* q, size_t ldq, const Batch& batch,
                   const KvLayer& kv, const AttendParams& p, float* out, size_t ldo, Arena& arena) {
  const int n_threads = ctx.n_threads();
  const KernelTable& kt = ctx.kernels != nullptr ? *ctx.kernels : BestKernels();
  const auto scores = KvKernels<E>::Scores(kt);
  const auto values = KvKernels<E>::Values(kt);
  const size_t ctx_len = static_cast<size_t>(kv.max_ctx);
  const size_t attn_tile = AttnTile(ctx_len);
  float* scores_all = arena.Alloc(ctx_len * attn_tile * static_cast<size_t>(n_threads));
  const size_t group = static_cast<size_t>(p.n_head / p.n_kv_head);
  const size_t n_tok = static_cast<size_t>(batch.n_tok), n_head = static_cast<size_t>(p.n_head);
  const size_t dk = static_cast<size_t>(p.dk), dv = static_cast<size_t>(p.dv);
  const size_t ldk = static_cast<size_t>(kv.k_dim), ldv = p.v_in_k ? ldk : static_cast<size_t>(kv.v_dim);
  auto first_key = [&](size_t t) { return p.window > 0 ? std::max(0, batch.pos[t] - p.window + 1) : 0; };
  // One tile: tokens t0..t0+mt-1 (same sequence and first key) x heads h0..h0+mh-1 (same K/V
  // head); query i is token t0 + i / mh, head h0 + i % mh. The kernels take evenly strided
  // queries, so the tile goes to them in sub-tiles: one token's mh heads (dk apart) each when
  // mh > 1, else the mt tokens (ldq apart); the sub-tiles take each run of K/V rows in turn, so a
  // run read for the first comes from L1 for the others.
  auto tile = [&](size_t t0, size_t mt, size_t h0, size_t mh, float* sc) {
    const int seq = batch.seq[t0];
    const int j0 = first_key(t0);
    const size_t g = h0 / group, m = mt * mh;
    const size_t ms = mh > 1 ? mh : mt, n_sub = m / ms;  // queries per sub-tile, sub-tiles
    const size_t sq = mh > 1 ? dk : ldq, so = mh > 1 ? dv : ldo;
    auto qi = [&](size_t i) { return q + (t0 + i / mh) * ldq + (h0 + i % mh) * dk; };
    auto oi = [&](size_t i) { return out + (t0 + i / mh) * ldo + (h0 + i % mh) * dv; };
    size_t n[kMaxAttnTile], n_min = SIZE_MAX;
    for (size_t i = 0; i < m; ++i) {
      n[i] = static_cast<size_t>(batch.pos[t0 + i / mh] - j0 + 1);
      n_min = std::min(n_min, n[i]);
    }
    // Keys [a, b) (relative to j0) in runs of rows that lie k_dim / v_dim elements apart (a cache
    // block each): fn(a', len, keys, values), for K rows (values = false) or V rows. Split calls
    // give the same bits (KernelTable). A decode-sized tile (kStreamTile queries at most) has
    // little arithmetic per row it reads, so its rows come from DRAM at the rate memory answers
    // misses: such a tile takes a run in pieces of kPieceBytes of rows and, before each piece,
    // prefetches the same share of the next run into L2, so the next run is on its way while this
    // one computes. (The hardware prefetchers start over at each run, 16 KiB of rows for the
    // benchmarked models; prefetching a whole run at once stalled about as long as the misses it
    // saved.) Kernel bench attend_decode, one token after 2048 positions, Zen 4, 2 threads, whole
    // runs -> pieces, two alternated rounds, us per layer: Qwen3-30B-A3B shape (8 queries per K/V
    // head) f32 cache 884 / 704 -> 676 / 535, f16 577 / 531 -> 400 / 459; OLMoE shape (one query
    // per head) f32 1930 / 1776 -> 1205 / 1173, f16 1649 / 1170 -> 585 / 699.
    const int gh = static_cast<int>(g);
    const bool stream = m <= kStreamTile;
    auto run_end = [&](size_t a) { return static_cast<size_t>(kv.RunEnd(j0 + static_cast<int>(a)) - j0); };
    // Share [part, part + 1) of `parts` of the rows of the run that starts at key a (< b), into L2.
    auto prefetch = [&](size_t a, size_t b, bool values, size_t part, size_t parts) {
      if (a >= b) return;
      const int j = j0 + static_cast<int>(a);
      const size_t e = std::min(b, run_end(a));
      const char* r = static_cast<const char*>(values && !p.v_in_k ? kv.V(seq, gh, j) : kv.K(seq, gh, j));
      const size_t lines = ((e - a) * (values ? ldv : ldk) * sizeof(E) + 63) / 64;
      for (size_t l = lines * part / parts; l < lines * (part + 1) / parts; ++l) {
        __builtin_prefetch(r + 64 * l, 0, 1);
      }
    };
    auto runs = [&](size_t a, size_t b, bool values, auto&& fn) {
      const size_t row_bytes = (values ? dv : dk) * sizeof(E);
      const size_t piece = std::max<size_t>(4, kPieceBytes / row_bytes);
      while (a < b) {
        const int j = j0 + static_cast<int>(a);
        const size_t e = std::min(b, run_end(a));
        const E* kr = static_cast<const E*>(kv.K(seq, gh, j));
        const E* vr = p.v_in_k ? kr : static_cast<const E*>(kv.V(seq, gh, j));
        if (!stream) {
          fn(a, e - a, kr, vr);
        } else {
          const size_t parts = (e - a + piece - 1) / piece;
          for (size_t i = 0; i < parts; ++i) {
            const size_t x = a + i * piece, y = std::min(e, x + piece);
            prefetch(e, b, values, i, parts);
            fn(x, y - x, kr + (x - a) * ldk, vr + (x - a) * ldv);
          }
        }
        a = e;
      }
    };
    if (stream) prefetch(0, n_min, false, 0, 1);
    runs(0, n_min, false, [&](size_t a, size_t len, const E* kr, const E*) {
      for (size_t u = 0; u < n_sub; ++u) {
        scores(qi(u * ms), sq, ms, kr, ldk, len, dk, p.scale, sc + u * ms * ctx_len + a, ctx_len);
      }
    });
    for (size_t i = 0; i < m; ++i) {
      runs(n_min, n[i], false, [&](size_t a, size_t len, const E* kr, const E*) {
        scores(qi(i), sq, 1, kr, ldk, len, dk, p.scale, sc + i * ctx_len + a, ctx_len);
      });
      kt.softmax(sc + i * ctx_len, n[i]);
      std::memset(oi(i), 0, dv * sizeof(float));
    }
    if (stream) prefetch(0, n_min, true, 0, 1);
    runs(0, n_min, true, [&](size_t a, size_t len, const E*, const E* vr) {
      for (size_t u = 0; u < n_sub; ++u) {
        values(sc + u * ms * ctx_len + a, ctx_len, ms, vr, ldv, len, dv, oi(u * ms), so);
      }
    });
    for (size_t i = 0; i < m; ++i) {
      runs(n_min, n[i], true, [&](size_t a, size_t len, const E*, const E* vr) {
        values(sc + i * ctx_len + a, ctx_len, 1, vr, ldv, len, dv, oi(i), so);
      });
    }
  };
  // Work items: blocks of tb batch tokens x K/V heads (x chunks of a GQA group larger than a
  // tile); a block splits into runs of one sequence with the same first key. Without GQA a tile
  // is up to attn_tile tokens of one head; with it, attn_tile / group tokens of a group's heads.
  const size_t hc = std::min(group, attn_tile), chunks = (group + hc - 1) / hc;
  const size_t per_blk = n_head / group * chunks, tb = attn_tile / hc;
  const size_t n_blocks = (n_tok + tb - 1) / tb;
  // Blocks in zigzag order (0, B-1, 1, B-2, ...): a causal batch's cost grows with the position,
  // so contiguous static ranges of this order get balanced work.
  auto zigzag = [](size_t z, size_t count) { return z % 2 == 0 ? z / 2 : count - 1 - z / 2; };
  ctx.ParallelFor(n_blocks * per_blk, [&](size_t b, size_t e, int tid) {
    float* sc = scores_all + static_cast<size_t>(tid) * ctx_len * attn_tile;
    for (size_t i = b; i < e; ++i) {
      const size_t blk = zigzag(i / per_blk, n_blocks), r = i % per_blk;
      const size_t h0 = (r / chunks) * group + (r % chunks) * hc;
      const size_t mh = std::min(hc, (r / chunks + 1) * group - h0);
      const size_t t_end = std::min(n_tok, (blk + 1) * tb);
      for (size_t t0 = blk * tb; t0 < t_end;) {
        size_t mt = 1;
        while (t0 + mt < t_end && batch.seq[t0 + mt] == batch.seq[t0] && first_key(t0 + mt) == first_key(t0)) ++mt;
        tile(t0, mt, h0, mh, sc);
        t0 += mt;
      }
    }
  });
}

}  // namespace

void AttendCached(const ExecContext& ctx, const float* q, size_t ldq, const Batch& batch,
                  const KvLayer& kv, const AttendParams& p, float* out, size_t ldo, Arena& arena) {
  if (kv.type == DType::kF16) {
    AttendCachedT<uint16_t>(ctx, q, ldq, batch, kv, p, out, ldo, arena);
  } else {
    AttendCachedT<float>(ctx, q, ldq, batch, kv, p, out, ldo, arena);
  }
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
    return {c_.n_kv_head, c_.head_dim, c_.head_dim};
  }

  size_t ScratchFloats(int max_tok, int max_ctx, int n_threads) const override {
    const size_t T = static_cast<size_t>(max_tok);
    const size_t qw = static_cast<size_t>(c_.n_head * c_.head_dim);
    const size_t kw = static_cast<size_t>(c_.n_kv_head * c_.head_dim);
    return 2 * Arena::Round(T * qw) + 2 * Arena::Round(T * kw) +
           2 * Arena::Round(static_cast<size_t>(rope_->dim)) * static_cast<size_t>(n_threads) +
           AttendScratchFloats(max_ctx, n_threads);
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
    const LinearOut qkv[3] = {{&w_.wq, nullptr, q, qw}, {&w_.wk, nullptr, k, kw}, {&w_.wv, nullptr, v, kw}};
    LinearMany(ctx, x, H, T, qkv, 3);
    AddBias(q, T, qw, w_.bq);
    AddBias(k, T, kw, w_.bk);
    AddBias(v, T, kw, w_.bv);
    // Per token: q/k norms, clipping, RoPE (by all threads for prefill-sized batches, each with
    // its own cos/sin rows); then the K/V rows into the cache, in batch order.
    const size_t rd = Arena::Round(static_cast<size_t>(rope_->dim));
    float* cs_all = arena.Alloc(2 * rd * static_cast<size_t>(ctx.n_threads()));
    auto prepare = [&](size_t t0, size_t t1, int tid) {
      float* cs = cs_all + 2 * rd * static_cast<size_t>(tid);
      float* sn = cs + rd;
      for (size_t t = t0; t < t1; ++t) {
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
        if (c_.clip_qkv > 0.f) {
          const float c = c_.clip_qkv;
          float* vt = v + t * kw;
          for (size_t i = 0; i < qw; ++i) qt[i] = std::clamp(qt[i], -c, c);
          for (size_t i = 0; i < kw; ++i) kt[i] = std::clamp(kt[i], -c, c);
          for (size_t i = 0; i < kw; ++i) vt[i] = std::clamp(vt[i], -c, c);
        }
        rope_->CosSin(batch.pos[t], cs, sn);
        for (int h = 0; h < c_.n_head; ++h) rope_->Apply(qt + h * hd, cs, sn);
        for (int h = 0; h < c_.n_kv_head; ++h) rope_->Apply(kt + h * hd, cs, sn);
      }
    };
    ctx.ParallelForFrom(kParallelRows, T, prepare);
    for (size_t t = 0; t < T; ++t) {
      for (int h = 0; h < c_.n_kv_head; ++h) {
        const size_t o = static_cast<size_t>(h * hd);
        kv.Store(kv.K(batch.seq[t], h, batch.pos[t]), 0, k + t * kw + o, static_cast<size_t>(hd));
        kv.Store(kv.V(batch.seq[t], h, batch.pos[t]), 0, v + t * kw + o, static_cast<size_t>(hd));
      }
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
  MlaAttention(MlaConfig c, MlaWeights w, const Rope* rope) : c_(c), w_(std::move(w)), rope_(rope) {
    // Per head: W_kb_h^T [kv_lora][nope] (rows: latent dims) and W_vb_h [v][kv_lora], from kv_b_proj.
    const size_t nh = static_cast<size_t>(c_.n_head), nope = static_cast<size_t>(c_.qk_nope_dim);
    const size_t vd = static_cast<size_t>(c_.v_dim), lr = static_cast<size_t>(c_.kv_lora_rank);
    wkb_t_.resize(nh * lr * nope);
    wvb_.resize(nh * vd * lr);
    for (size_t h = 0; h < nh; ++h) {
      const float* kb = w_.kv_b.data() + h * (nope + vd) * lr;  // [nope][lr]
      for (size_t i = 0; i < nope; ++i) {
        for (size_t r = 0; r < lr; ++r) wkb_t_[(h * lr + r) * nope + i] = kb[i * lr + r];
      }
      std::memcpy(wvb_.data() + h * vd * lr, kb + nope * lr, vd * lr * sizeof(float));
    }
    w_.kv_b = {};
  }

  int dq() const { return c_.qk_nope_dim + c_.qk_rope_dim; }
  int dk() const { return c_.kv_lora_rank + c_.qk_rope_dim; }  // cached row: [c_kv; k_pe]
  KvLayerSpec kv_spec() const override { return {1, dk(), 0}; }

  size_t ScratchFloats(int max_tok, int max_ctx, int n_threads) const override {
    const size_t T = static_cast<size_t>(max_tok);
    const size_t nh = static_cast<size_t>(c_.n_head);
    size_t n = Arena::Round(T * static_cast<size_t>(c_.q_lora_rank));
    n += Arena::Round(T * nh * static_cast<size_t>(dq()));                 // q
    n += Arena::Round(T * static_cast<size_t>(c_.kv_lora_rank + c_.qk_rope_dim));  // ckv
    n += Arena::Round(T * static_cast<size_t>(dk()));                      // cached rows
    n += Arena::Round(T * nh * static_cast<size_t>(dk()));                 // absorbed queries
    n += Arena::Round(T * nh * static_cast<size_t>(c_.kv_lora_rank));      // latent outputs
    n += Arena::Round(T * nh * static_cast<size_t>(c_.v_dim));             // head outputs
    n += 2 * Arena::Round(static_cast<size_t>(c_.qk_rope_dim));
    return n + AttendScratchFloats(max_ctx, n_threads);
  }

  void Forward(const ExecContext& ctx, const float* x, const Batch& batch, const KvLayer& kv,
               float* out, Arena& arena) const override {
    const size_t mark = arena.mark();
    const KernelTable& kt = ctx.kernels != nullptr ? *ctx.kernels : BestKernels();
    const MatmulFn f32mm = kt.Matmul(DType::kF32);
    const size_t T = static_cast<size_t>(batch.n_tok);
    const size_t H = static_cast<size_t>(c_.n_embd);
    const size_t nh = static_cast<size_t>(c_.n_head), nope = static_cast<size_t>(c_.qk_nope_dim);
    const size_t rd = static_cast<size_t>(c_.qk_rope_dim), vd = static_cast<size_t>(c_.v_dim);
    const size_t lr = static_cast<size_t>(c_.kv_lora_rank), d = static_cast<size_t>(dq());
    const size_t dkr = static_cast<size_t>(dk());
    const size_t qw = nh * d;
    float* q = arena.Alloc(T * qw);
    const size_t aw = lr + rd;
    float* ckv = arena.Alloc(T * aw);
    // The projections of x in one job: [q_a or q, kv_a].
    if (c_.q_lora_rank > 0) {
      const size_t r = static_cast<size_t>(c_.q_lora_rank);
      float* ca = arena.Alloc(T * r);
      const LinearOut first[2] = {{&w_.wq_a, nullptr, ca, r}, {&w_.wkv_a, nullptr, ckv, aw}};
      LinearMany(ctx, x, H, T, first, 2);
      for (size_t t = 0; t < T; ++t) {
        RmsNorm(ca + t * r, w_.q_a_norm.data(), r, c_.lora_norm_eps, ca + t * r);
      }
      Linear(ctx, ca, r, T, w_.wq_b, nullptr, q, qw);
    } else {
      const LinearOut first[2] = {{&w_.wq, nullptr, q, qw}, {&w_.wkv_a, nullptr, ckv, aw}};
      LinearMany(ctx, x, H, T, first, 2);
    }
    // Cached rows [RMSNorm(c_kv); RoPE(k_pe)]; absorbed queries [W_kb_h^T q_nope; RoPE(q_pe)].
    float* row = arena.Alloc(T * dkr);
    float* qa = arena.Alloc(T * nh * dkr);
    float* cs = arena.Alloc(rd);
    float* sn = arena.Alloc(rd);
    for (size_t t = 0; t < T; ++t) {
      rope_->CosSin(batch.pos[t], cs, sn);
      float* rt = row + t * dkr;
      RmsNorm(ckv + t * aw, w_.kv_a_norm.data(), lr, c_.lora_norm_eps, rt);
      std::memcpy(rt + lr, ckv + t * aw + lr, rd * sizeof(float));
      rope_->Apply(rt + lr, cs, sn);
      kv.Store(kv.K(batch.seq[t], 0, batch.pos[t]), 0, rt, dkr);
      for (size_t h = 0; h < nh; ++h) {
        float* qh = q + t * qw + h * d;
        rope_->Apply(qh + nope, cs, sn);
        std::memcpy(qa + (t * nh + h) * dkr + lr, qh + nope, rd * sizeof(float));
      }
    }
    ctx.ParallelFor(nh, [&](size_t h0, size_t h1, int) {
      for (size_t h = h0; h < h1; ++h) {
        f32mm(q + h * d, qw, T, wkb_t_.data() + h * lr * nope, nope, lr, qa + h * dkr, nh * dkr);
      }
    });
    float* lat = arena.Alloc(T * nh * lr);
    AttendParams p{c_.n_head, 1, static_cast<int>(dkr), static_cast<int>(lr), c_.scale, 0, true};
    AttendCached(ctx, qa, nh * dkr, batch, kv, p, lat, nh * lr, arena);
    const size_t ow = nh * vd;
    float* att = arena.Alloc(T * ow);
    ctx.ParallelFor(nh, [&](size_t h0, size_t h1, int) {
      for (size_t h = h0; h < h1; ++h) {
        f32mm(lat + h * lr, nh * lr, T, wvb_.data() + h * vd * lr, lr, vd, att + h * vd, ow);
      }
    });
    Linear(ctx, att, ow, T, w_.wo, nullptr, out, H);
    arena.Release(mark);
  }

 private:
  MlaConfig c_;
  MlaWeights w_;
  const Rope* rope_;
  std::vector<float> wkb_t_;  // [nh][kv_lora][nope]
  std::vector<float> wvb_;    // [nh][v][kv_lora]
};

}  // namespace

std::unique_ptr<AttentionBlock> MakeGqaAttention(GqaConfig cfg, GqaWeights w, const Rope* rope) {
  return std::make_unique<GqaAttention>(cfg, std::move(w), rope);
}

std::unique_ptr<AttentionBlock> MakeMlaAttention(MlaConfig cfg, MlaWeights w, const Rope* rope) {
  return std::make_unique<MlaAttention>(cfg, std::move(w), rope);
}

}  // namespace moxie
