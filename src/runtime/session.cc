#include "runtime/session.h"

#include <algorithm>
#include <new>
#include <string>
#include <thread>

#include "kernels/kernel_table.h"

namespace moxie {

Result<std::unique_ptr<Session>> Session::Create(Model& model, const SessionOptions& o) {
  if (o.n_seq < 1 || o.n_seq > 4096) return InvalidArgument("n_seq must be in [1, 4096]");
  if (o.max_batch < 1 || o.max_batch > 65536) return InvalidArgument("max_batch must be in [1, 65536]");
  if (o.n_threads < 0 || o.n_threads > 1024) return InvalidArgument("threads must be in [0, 1024]");
  if (o.max_ctx < 0) return InvalidArgument("context size must be >= 0");
  if (o.kv_block < 0) return InvalidArgument("KV cache block must be >= 0");
  if (!IsKvType(o.kv_type)) {
    return InvalidArgument(std::string("KV cache type must be f32 or f16, got ") + DTypeName(o.kv_type));
  }
  std::unique_ptr<Session> s(new Session(model));
  int nt = o.n_threads;
  if (nt == 0) nt = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  s->pool_ = std::make_unique<ThreadPool>(nt, o.pin_threads);
  s->ctx_.pool = s->pool_.get();
  s->ctx_.kernels = &BestKernels();
  s->ctx_.quantized_activations = o.quantized_activations;
  s->ctx_.bf16_activations = o.bf16_activations;
  int ctx_len = o.max_ctx;
  if (ctx_len == 0) ctx_len = std::min(model.info().max_position, 4096);
  try {
    s->kv_ = std::make_unique<KvCache>(model.KvSpec(), o.n_seq, ctx_len, o.kv_type, o.kv_block);
    s->max_batch_ = std::min(o.max_batch, ctx_len);
    s->arena_.Reserve(model.ScratchFloats(s->max_batch_, ctx_len, nt));
  } catch (const std::bad_alloc&) {
    const size_t bytes = KvCache::Bytes(model.KvSpec(), o.n_seq, ctx_len, o.kv_type, o.kv_block);
    return InvalidArgument("cannot allocate the KV cache for " + std::to_string(o.n_seq) + " sequence(s) x " +
                           std::to_string(ctx_len) + " positions (" + std::to_string(bytes >> 20) +
                           " MiB) and its workspace: lower the context size or the number of sequences");
  }
  s->n_past_.assign(static_cast<size_t>(o.n_seq), 0);
  s->pos_buf_.resize(static_cast<size_t>(s->max_batch_));
  s->seq_buf_.resize(static_cast<size_t>(s->max_batch_));
  s->row_buf_.resize(1);
  return s;
}

Status Session::CopySequence(int src, int dst, int n) {
  if (src < 0 || src >= kv_->n_seq() || dst < 0 || dst >= kv_->n_seq()) {
    return InvalidArgument("sequence slot out of range");
  }
  if (n < 0) n = n_past_[static_cast<size_t>(src)];
  if (n > kv_->max_ctx()) return InvalidArgument("copy of " + std::to_string(n) + " positions exceeds the context size");
  kv_->CopyPrefix(src, dst, n);
  n_past_[static_cast<size_t>(dst)] = n;
  return Status::Ok();
}

Status Session::Forward(const Batch& batch, float* logits, const ForwardOptions& opts) {
  return model_.Forward(ctx_, batch, *kv_, arena_, logits, opts);
}

Status Session::Feed(int seq, const int32_t* tokens, int n, bool all_logits, float* logits,
                     const ForwardOptions& opts) {
  if (seq < 0 || seq >= kv_->n_seq()) return InvalidArgument("sequence slot out of range");
  if (n <= 0) return InvalidArgument("no tokens to feed");
  int& past = n_past_[static_cast<size_t>(seq)];
  if (past + n > kv_->max_ctx()) {
    return InvalidArgument(std::to_string(past + n) + " tokens exceed the context size " +
                           std::to_string(kv_->max_ctx()));
  }
  const size_t V = static_cast<size_t>(model_.info().n_vocab);
  for (int done = 0; done < n;) {
    const int m = std::min(max_batch_, n - done);
    for (int i = 0; i < m; ++i) {
      pos_buf_[static_cast<size_t>(i)] = past + i;
      seq_buf_[static_cast<size_t>(i)] = seq;
    }
    Batch b;
    b.n_tok = m;
    b.tokens = tokens + done;
    b.pos = pos_buf_.data();
    b.seq = seq_buf_.data();
    if (!all_logits) {
      row_buf_[0] = m - 1;
      b.logit_rows = row_buf_.data();
      b.n_logit_rows = 1;
    }
    float* out = all_logits ? logits + static_cast<size_t>(done) * V : logits;
    // Non-final chunks of a last-row-only feed still write their last row; the final chunk
    // overwrites it.
    MOXIE_RETURN_IF_ERROR(Forward(b, out, opts));
    past += m;
    done += m;
  }
  return Status::Ok();
}

}  // namespace moxie
