// BatchEngine: continuous batching over one Session (engineering.md §11: state + actions behind
// one thread boundary).
//
// One engine thread owns the Session. Other threads Submit() requests (token ids in, sampling
// settings) and read a per-request stream of events (text pieces, logprobs, then done or error).
// Each step the engine admits queued requests into free KV slots, then runs ONE forward over a
// batch made of one token per decoding sequence plus prefill chunks of newly admitted prompts
// (bounded, so a long prompt never stalls running streams for long). The MoE layer receives that
// whole batch grouped by expert, so sequences that chose the same expert share its weight reads.
//
// Batch-invariant numerics: every kernel reduces a (row, token) in a fixed order, so a sequence's
// logits - and its greedy output - do not depend on what else shares its steps.
//
// Thread-safety: Submit, Stats and the RequestHandle methods may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "formats/tokenizer.h"
#include "models/model.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace moxie {

struct BatchEngineOptions {
  int n_slots = 4;          // sequences decoded together (KV slots)
  int ctx = 0;              // tokens per slot; 0 = min(model max, 4096)
  int n_threads = 0;        // 0 = all cores
  int max_step_tokens = 256;  // tokens in one forward (decode tokens + prefill chunks)
  // Prefill tokens per step while other sequences are decoding: bounds the stall a new prompt
  // causes to running streams (a step's time grows with its tokens).
  int prefill_chunk_while_decoding = 32;
  int max_queue = 64;  // waiting requests beyond the slots; Submit fails with kUnavailable past it
  bool quantized_activations = true;
  bool bf16_activations = false;  // SessionOptions::bf16_activations
  bool pin_threads = false;
  DType kv_type = DType::kF32;  // KV cache element type (kF32 or kF16)
};

struct EngineRequest {
  std::vector<int32_t> prompt;  // token ids (at least one)
  int max_tokens = 16;          // >= 1
  std::vector<std::string> stop;
  std::vector<int32_t> eos_tokens;  // sampling one ends the request (not emitted)
  SamplerConfig sampler;
  int top_logprobs = -1;  // -1: no logprobs; 0..20: the chosen token's and this many alternatives
  // Also the logprob (and top_logprobs alternatives) of every prompt token after the first, as the
  // model predicted it from the tokens before (OpenAI completions' echo + logprobs, what
  // lm-evaluation-harness scores with). Needs top_logprobs >= 0; the prompt is then computed in
  // full (no reuse of cached prefixes) and delivered in one event before the first text.
  bool prompt_logprobs = false;
  double timeout_s = 0;   // 0: none; counted from Submit
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // best first
};

struct EngineEvent {
  enum class Kind { kText, kDone, kError };
  Kind kind = Kind::kText;
  std::string text;                    // kText: new final text (valid UTF-8, maybe empty)
  std::vector<TokenLogprob> logprobs;  // kText: the tokens behind this text (when requested)
  // kText, once, first (EngineRequest::prompt_logprobs): prompt tokens 1..n-1, text empty.
  bool is_prompt_scores = false;
  std::vector<TokenLogprob> prompt_logprobs;
  // kDone:
  std::string finish_reason;  // "stop" (EOS or stop string) or "length"
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;  // prompt tokens reused from the slot's KV cache
  Status error;           // kError
};

// The caller's side of one request. Events arrive in order; the last is kDone or kError.
class RequestHandle {
 public:
  // Waits up to `timeout` for the next event; false when none arrived in time.
  bool Next(EngineEvent* ev, std::chrono::milliseconds timeout);
  // Asks the engine to stop the request and free its slot (idempotent; no more events after the
  // engine notices, at the next step boundary).
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  // The engine's side: appends an event and wakes the reader.
  void Push(EngineEvent ev);

 private:
  friend class BatchEngine;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<EngineEvent> events_;
  std::atomic<bool> cancelled_{false};
  EngineRequest req_;
  std::chrono::steady_clock::time_point submitted_;
};

// Counters for /metrics. Times in seconds; step time is split between prefill and decode by
// their share of the step's tokens.
struct EngineStats {
  uint64_t requests_submitted = 0;
  uint64_t requests_finished = 0;  // done (any finish reason)
  uint64_t requests_cancelled = 0;
  uint64_t requests_failed = 0;    // errors and timeouts
  uint64_t requests_rejected = 0;  // queue full
  uint64_t prompt_tokens = 0;      // prefilled (reused ones not counted)
  uint64_t cached_prompt_tokens = 0;  // reused: kept in the slot, or copied from another
  uint64_t copied_prompt_tokens = 0;  // of those, copied from another slot's cache
  uint64_t generated_tokens = 0;
  uint64_t steps = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  int queue_depth = 0, active_slots = 0, n_slots = 0;
  int last_batch_tokens = 0;
  // Tokens per step: counts of steps with <= bound[i] tokens (cumulative as Prometheus wants).
  std::vector<int> batch_bounds;
  std::vector<uint64_t> batch_buckets;
  uint64_t batch_tokens_sum = 0;
  // Time to first token.
  std::vector<double> ttft_bounds;
  std::vector<uint64_t> ttft_buckets;
  double ttft_sum = 0;
  uint64_t ttft_count = 0;
  // Routed-expert selections: [moe layer index][expert], with the model layer of each row.
  std::vector<int> moe_layers;
  std::vector<std::vector<uint64_t>> expert_counts;
};

// What a front end (the HTTP server) needs of an engine: BatchEngine, or a scripted stand-in that
// tests the front end alone.
class EngineApi {
 public:
  virtual ~EngineApi() = default;
  // Validates and queues a request. kInvalidArgument for bad requests (prompt longer than the
  // context, bad sampler settings), kUnavailable when the queue is full.
  virtual Result<std::shared_ptr<RequestHandle>> Submit(EngineRequest req) = 0;
  virtual EngineStats Stats() const = 0;
  virtual const BatchEngineOptions& options() const = 0;
};

class BatchEngine : public EngineApi {
 public:
  // The model and tokenizer must outlive the engine. Starts the engine thread.
  static Result<std::unique_ptr<BatchEngine>> Create(Model& model, const Tokenizer& tok,
                                                     const BatchEngineOptions& opts);
  ~BatchEngine() override;  // stops the thread; pending requests get a kError event

  Result<std::shared_ptr<RequestHandle>> Submit(EngineRequest req) override;
  EngineStats Stats() const override;
  int ctx() const { return ctx_; }
  const BatchEngineOptions& options() const override { return opts_; }

 private:
  // Logit rows per step for prompt logprobs (EngineRequest::prompt_logprobs), beyond one per slot:
  // such a prompt is prefilled at most this many tokens per step.
  static constexpr size_t kPromptLogitRows = 32;
  struct Slot;
  class ExpertCounter;
  BatchEngine(Model& model, const Tokenizer& tok);
  void Loop();
  void Admit();
  void Step();
  void Finish(Slot& s, const std::string& reason);
  void Fail(Slot& s, const Status& st);
  void Release(Slot& s);
  TokenLogprob Logprob(const float* logits, int32_t token, int top_n);

  Model& model_;
  const Tokenizer& tok_;
  BatchEngineOptions opts_;
  std::unique_ptr<Session> session_;
  int ctx_ = 0;
  int n_vocab_ = 0;
  std::vector<Slot> slots_;
  std::unique_ptr<ExpertCounter> counter_;
  uint64_t admit_seq_ = 0;

  // Step buffers, sized once.
  std::vector<int32_t> b_tok_, b_pos_, b_seq_, b_rows_, row_slot_;
  std::vector<int32_t> row_prompt_;  // per logit row: the prompt token it scores, or -1 (sample)
  std::vector<float> logits_;
  std::vector<int32_t> idx_work_;
  std::vector<Slot*> prefill_order_;

  mutable std::mutex mu_;  // guards queue_, stop_, stats_
  std::condition_variable cv_;
  std::deque<std::shared_ptr<RequestHandle>> queue_;
  bool stop_ = false;
  int free_slots_ = 0;
  EngineStats stats_;
  std::thread thread_;
};

}  // namespace moxie
