// Session: one loaded model plus everything needed to run it — threads, kernel table, KV cache
// with `n_seq` slots, and a workspace sized once for the largest batch. Owns no model.
// Not thread-safe: drive it from one thread (the engine loop).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "models/kv_cache.h"
#include "models/model.h"

namespace moxie {

struct SessionOptions {
  int n_threads = 0;    // 0 = all hardware threads
  int n_seq = 1;        // KV slots
  int max_ctx = 0;      // 0 = min(model max_position, 4096)
  int max_batch = 256;  // tokens per forward; longer prompts are split
  // Quantized weights: 8-bit activations (default, as llama.cpp) or f32 activations against the
  // dequantized weights (exact to the dequantized model; slower).
  bool quantized_activations = true;
  // BF16 weights: bf16 activations (ExecContext::bf16_activations; off by default).
  bool bf16_activations = false;
  bool pin_threads = false;  // bind the threads to CPUs (ThreadPool)
  // KV cache element type: kF32 (exact) or kF16 (half the memory and attention reads).
  DType kv_type = DType::kF32;
  // KV cache positions per block (0 = automatic, KvCache::BlockPositions; tests set small ones).
  int kv_block = 0;
};

class Session {
 public:
  static Result<std::unique_ptr<Session>> Create(Model& model, const SessionOptions& opts);

  Model& model() { return model_; }
  int max_ctx() const { return kv_->max_ctx(); }
  DType kv_type() const { return kv_->type(); }
  int kv_block() const { return kv_->block(); }
  size_t kv_bytes() const { return kv_->bytes(); }
  int max_batch() const { return max_batch_; }
  int n_threads() const { return pool_->size(); }
  const ExecContext& exec() const { return ctx_; }
  int n_past(int seq) const { return n_past_[static_cast<size_t>(seq)]; }
  void Reset(int seq) { n_past_[static_cast<size_t>(seq)] = 0; }
  // Keeps the first n tokens of a sequence (n <= n_past); later positions are overwritten.
  void Truncate(int seq, int n) {
    int& p = n_past_[static_cast<size_t>(seq)];
    p = n < p ? n : p;
  }

  // Makes sequence dst a copy of the first n positions of sequence src (n < 0: all of src's
  // n_past) and sets dst's length to them; dst's own positions are dropped. The copy shares
  // nothing: either may then continue on its own.
  Status CopySequence(int src, int dst, int n = -1);
  size_t kv_bytes_per_position() const { return kv_->bytes_per_position(); }

  // Raw forward of a batch (positions chosen by the caller). logits: [rows, n_vocab].
  Status Forward(const Batch& batch, float* logits, const ForwardOptions& opts = {});

  // Appends `tokens` to sequence `seq` (positions continue from n_past), in chunks of at most
  // max_batch. If all_logits, logits gets [n, n_vocab]; otherwise only the last row [n_vocab].
  Status Feed(int seq, const int32_t* tokens, int n, bool all_logits, float* logits,
              const ForwardOptions& opts = {});

 private:
  Session(Model& model) : model_(model) {}
  Model& model_;
  std::unique_ptr<ThreadPool> pool_;
  ExecContext ctx_;
  std::unique_ptr<KvCache> kv_;
  Arena arena_;
  int max_batch_ = 0;
  std::vector<int> n_past_;
  std::vector<int32_t> pos_buf_, seq_buf_, row_buf_;  // sized max_batch
};

}  // namespace moxie
