#include "runtime/batch_engine.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "moe/routing_observer.h"

namespace moxie {

using Clock = std::chrono::steady_clock;

void RequestHandle::Push(EngineEvent ev) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

bool RequestHandle::Next(EngineEvent* ev, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return !events_.empty(); })) return false;
  *ev = std::move(events_.front());
  events_.pop_front();
  return true;
}

struct BatchEngine::Slot {
  int id = 0;
  std::shared_ptr<RequestHandle> req;  // null: free
  std::vector<int32_t> kv_tokens;      // tokens whose K/V the slot holds, positions 0..size-1
  size_t prompt_fed = 0;               // prompt tokens in kv_tokens
  int32_t pending = -1;                // sampled, to be fed at the next step
  int generated = 0;
  int cached = 0;
  uint64_t order = 0;  // admission order (prefill is first come, first served)
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<TextOutput> out;
  std::vector<TokenLogprob> lp;  // logprobs of tokens whose text is not yet emitted
  std::vector<TokenLogprob> plp;  // prompt tokens' logprobs (EngineRequest::prompt_logprobs)
  Clock::time_point deadline = Clock::time_point::max();
  bool active() const { return req != nullptr; }
  bool prefilling() const { return active() && prompt_fed < req->req_.prompt.size(); }
};

// Counts routed-expert selections per MoE layer (for /metrics). Runs on the engine thread.
class BatchEngine::ExpertCounter : public RoutingObserver {
 public:
  ExpertCounter(const ModelInfo& info, std::mutex& mu, EngineStats& stats) : mu_(mu), stats_(stats) {
    layer_to_row_.assign(static_cast<size_t>(info.n_layer), -1);
    for (size_t i = 0; i < info.moe_layers.size(); ++i) {
      layer_to_row_[static_cast<size_t>(info.moe_layers[i])] = static_cast<int>(i);
    }
    stats_.moe_layers = info.moe_layers;
    stats_.expert_counts.assign(info.moe_layers.size(),
                                std::vector<uint64_t>(static_cast<size_t>(info.n_expert), 0));
  }
  void OnRouting(const RoutingEvent& e) override {
    if (e.layer < 0 || e.layer >= static_cast<int>(layer_to_row_.size())) return;
    const int row = layer_to_row_[static_cast<size_t>(e.layer)];
    if (row < 0) return;
    std::lock_guard<std::mutex> lk(mu_);
    auto& counts = stats_.expert_counts[static_cast<size_t>(row)];
    for (int t = 0; t < e.n_tok; ++t) {
      for (int j = 0; j < e.count[t]; ++j) {
        const int32_t x = e.ids[static_cast<size_t>(t) * static_cast<size_t>(e.k_max) +
                                static_cast<size_t>(j)];
        if (x >= 0 && static_cast<size_t>(x) < counts.size()) ++counts[static_cast<size_t>(x)];
      }
    }
  }

 private:
  std::mutex& mu_;
  EngineStats& stats_;
  std::vector<int> layer_to_row_;
};

Result<std::unique_ptr<BatchEngine>> BatchEngine::Create(Model& model, const Tokenizer& tok,
                                                         const BatchEngineOptions& o) {
  if (o.n_slots < 1 || o.n_slots > 1024) return InvalidArgument("--parallel must be in [1, 1024]");
  if (o.max_step_tokens < o.n_slots) {
    return InvalidArgument("tokens per step (" + std::to_string(o.max_step_tokens) +
                           ") must be at least the number of slots (" +
                           std::to_string(o.n_slots) + ")");
  }
  if (o.prefill_chunk_while_decoding < 1) return InvalidArgument("prefill chunk must be >= 1");
  if (o.max_queue < 0) return InvalidArgument("queue size must be >= 0");
  std::unique_ptr<BatchEngine> e(new BatchEngine(model, tok));
  e->opts_ = o;
  SessionOptions so;
  so.n_threads = o.n_threads;
  so.n_seq = o.n_slots;
  so.max_ctx = o.ctx;
  so.max_batch = o.max_step_tokens;
  so.quantized_activations = o.quantized_activations;
  so.bf16_activations = o.bf16_activations;
  so.pin_threads = o.pin_threads;
  so.kv_type = o.kv_type;
  MOXIE_ASSIGN_OR_RETURN(e->session_, Session::Create(model, so));
  e->ctx_ = e->session_->max_ctx();
  if (e->session_->max_batch() < o.n_slots) {
    return InvalidArgument("the context (" + std::to_string(e->ctx_) +
                           " tokens) is smaller than the number of slots");
  }
  e->n_vocab_ = model.info().n_vocab;
  e->slots_.resize(static_cast<size_t>(o.n_slots));
  for (int i = 0; i < o.n_slots; ++i) e->slots_[static_cast<size_t>(i)].id = i;
  const size_t B = static_cast<size_t>(e->session_->max_batch());
  e->b_tok_.resize(B);
  e->b_pos_.resize(B);
  e->b_seq_.resize(B);
  const size_t rows = static_cast<size_t>(o.n_slots) + kPromptLogitRows;
  e->b_rows_.resize(rows);
  e->row_slot_.resize(rows);
  e->row_prompt_.resize(rows);
  e->logits_.resize(rows * static_cast<size_t>(e->n_vocab_));
  e->idx_work_.resize(static_cast<size_t>(e->n_vocab_));
  e->prefill_order_.reserve(static_cast<size_t>(o.n_slots));
  auto& st = e->stats_;
  st.n_slots = o.n_slots;
  e->free_slots_ = o.n_slots;
  for (int b = 1; b <= 2 * static_cast<int>(B); b *= 2) st.batch_bounds.push_back(b);
  st.batch_buckets.assign(st.batch_bounds.size(), 0);
  st.ttft_bounds = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  st.ttft_buckets.assign(st.ttft_bounds.size(), 0);
  e->counter_ = std::make_unique<ExpertCounter>(model.info(), e->mu_, e->stats_);
  e->thread_ = std::thread([p = e.get()] { p->Loop(); });
  return e;
}

BatchEngine::BatchEngine(Model& model, const Tokenizer& tok) : model_(model), tok_(tok) {}

BatchEngine::~BatchEngine() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<std::shared_ptr<RequestHandle>> BatchEngine::Submit(EngineRequest req) {
  if (req.prompt.empty()) return InvalidArgument("the prompt is empty");
  for (int32_t t : req.prompt) {
    if (t < 0 || t >= n_vocab_) {
      return InvalidArgument("token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                             std::to_string(n_vocab_) + ")");
    }
  }
  if (static_cast<int>(req.prompt.size()) >= ctx_) {
    return InvalidArgument("the prompt has " + std::to_string(req.prompt.size()) +
                           " tokens but the context holds " + std::to_string(ctx_) +
                           " (one more is needed to generate)");
  }
  if (req.max_tokens < 1) return InvalidArgument("max_tokens must be >= 1");
  if (req.top_logprobs > 20) return InvalidArgument("top_logprobs must be <= 20");
  if (req.prompt_logprobs && req.top_logprobs < 0) {
    return InvalidArgument("prompt logprobs need logprobs (top_logprobs >= 0)");
  }
  for (const auto& s : req.stop) {
    if (s.empty()) return InvalidArgument("empty stop string");
  }
  MOXIE_RETURN_IF_ERROR(req.sampler.Validate());
  auto h = std::make_shared<RequestHandle>();
  h->req_ = std::move(req);
  h->submitted_ = Clock::now();
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_) return Unavailable("the engine is shutting down");
    if (static_cast<int>(queue_.size()) >= opts_.max_queue + free_slots_) {
      ++stats_.requests_rejected;
      return Unavailable("the request queue is full (" + std::to_string(opts_.max_queue) +
                         " waiting); retry later");
    }
    queue_.push_back(h);
    ++stats_.requests_submitted;
    stats_.queue_depth = static_cast<int>(queue_.size());
  }
  cv_.notify_all();
  return h;
}

EngineStats BatchEngine::Stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

void BatchEngine::Loop() {
  for (;;) {
    bool busy = false;
    for (const auto& s : slots_) busy |= s.active();
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || busy || !queue_.empty(); });
      if (stop_) break;
    }
    Admit();
    Step();
  }
  // Shutting down: everything still running or waiting ends with an error.
  for (auto& s : slots_) {
    if (s.active()) Fail(s, Unavailable("the server is shutting down"));
  }
  std::deque<std::shared_ptr<RequestHandle>> rest;
  {
    std::lock_guard<std::mutex> lk(mu_);
    rest.swap(queue_);
  }
  for (auto& h : rest) {
    EngineEvent ev;
    ev.kind = EngineEvent::Kind::kError;
    ev.error = Unavailable("the server is shutting down");
    h->Push(std::move(ev));
  }
}

void BatchEngine::Admit() {
  for (;;) {
    Slot* free_slot = nullptr;
    for (auto& s : slots_) {
      if (!s.active()) {
        free_slot = &s;
        break;
      }
    }
    if (free_slot == nullptr) break;
    std::shared_ptr<RequestHandle> h;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (queue_.empty()) break;
      h = queue_.front();
      queue_.pop_front();
      stats_.queue_depth = static_cast<int>(queue_.size());
    }
    const EngineRequest& r = h->req_;
    if (h->cancelled()) {
      std::lock_guard<std::mutex> lk(mu_);
      ++stats_.requests_cancelled;
      continue;
    }
    // Tokens of this prompt a slot's cache already holds (at least one prompt token is always
    // fed, to get logits).
    auto shared = [&r](const Slot& s) {
      size_t n = 0;
      if (r.prompt_logprobs) return n;  // every prompt token's logits are needed
      while (n < s.kv_tokens.size() && n + 1 < r.prompt.size() && s.kv_tokens[n] == r.prompt[n]) ++n;
      return n;
    };
    // The free slot sharing the longest prefix with the prompt (best), and the slot of all, free
    // or still serving its request, sharing the longest (donor): when that is another slot with a
    // longer prefix (a shared system prompt, parallel requests), its K/V rows are copied rather
    // than recomputed. The rows are what this prompt would compute (batch-invariant numerics).
    Slot* best = nullptr;
    size_t best_len = 0;
    const Slot* donor = nullptr;
    size_t donor_len = 0;
    for (auto& s : slots_) {
      const size_t n = shared(s);
      if (!s.active() && (best == nullptr || n > best_len)) {
        best = &s;
        best_len = n;
      }
      if (n > donor_len) {
        donor = &s;
        donor_len = n;
      }
    }
    if (donor_len <= best_len) donor = nullptr;
    if (donor != nullptr && session_->CopySequence(donor->id, best->id, static_cast<int>(donor_len)).ok()) {
      best->kv_tokens.assign(donor->kv_tokens.begin(), donor->kv_tokens.begin() + static_cast<std::ptrdiff_t>(donor_len));
      best_len = donor_len;
      std::lock_guard<std::mutex> lk(mu_);
      stats_.copied_prompt_tokens += donor_len;
    }
    Slot& s = *best;
    s.req = h;
    s.kv_tokens.resize(best_len);
    s.prompt_fed = best_len;
    s.cached = static_cast<int>(best_len);
    s.pending = -1;
    s.generated = 0;
    s.order = admit_seq_++;
    s.lp.clear();
    s.plp.clear();
    s.sampler = std::make_unique<Sampler>(r.sampler, n_vocab_);
    for (int32_t t : r.prompt) s.sampler->Accept(t);
    s.out = std::make_unique<TextOutput>(tok_, r.stop);
    s.deadline = r.timeout_s > 0
                     ? h->submitted_ + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(r.timeout_s))
                     : Clock::time_point::max();
    std::lock_guard<std::mutex> lk(mu_);
    --free_slots_;
    stats_.active_slots = opts_.n_slots - free_slots_;
    stats_.cached_prompt_tokens += best_len;
  }
}

void BatchEngine::Release(Slot& s) {
  s.out.reset();  // holds a reference to the request's stop strings
  s.sampler.reset();
  s.req.reset();
  s.pending = -1;
  s.lp.clear();
  std::lock_guard<std::mutex> lk(mu_);
  ++free_slots_;
  stats_.active_slots = opts_.n_slots - free_slots_;
}

void BatchEngine::Finish(Slot& s, const std::string& reason) {
  const std::string rest = s.out->Finish();
  std::shared_ptr<RequestHandle> h = s.req;
  EngineEvent text;
  const bool has_text = !rest.empty() || !s.lp.empty();
  if (has_text) {
    text.text = rest;
    text.logprobs = std::move(s.lp);
  }
  EngineEvent done;
  done.kind = EngineEvent::Kind::kDone;
  done.finish_reason = reason;
  done.prompt_tokens = static_cast<int>(h->req_.prompt.size());
  done.completion_tokens = s.generated;
  done.cached_tokens = s.cached;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.requests_finished;
  }
  // The slot is free before the caller can see the end: a client that sends its next request
  // the moment this one completes must find it free.
  Release(s);
  if (has_text) h->Push(std::move(text));
  h->Push(std::move(done));
}

void BatchEngine::Fail(Slot& s, const Status& st) {
  std::shared_ptr<RequestHandle> h = s.req;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.requests_failed;
  }
  s.kv_tokens.clear();  // contents unknown after a failed step
  Release(s);
  EngineEvent ev;
  ev.kind = EngineEvent::Kind::kError;
  ev.error = st;
  h->Push(std::move(ev));
}

TokenLogprob BatchEngine::Logprob(const float* lg, int32_t tok, int top_n) {
  const size_t V = static_cast<size_t>(n_vocab_);
  float mx = lg[0];
  for (size_t i = 1; i < V; ++i) mx = std::max(mx, lg[i]);
  double sum = 0;
  for (size_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(lg[i] - mx));
  const float log_z = mx + static_cast<float>(std::log(sum));
  TokenLogprob out;
  out.token = tok;
  out.logprob = lg[tok] - log_z;
  if (top_n > 0) {
    const size_t n = std::min(V, static_cast<size_t>(top_n));
    std::iota(idx_work_.begin(), idx_work_.end(), 0);
    std::partial_sort(idx_work_.begin(), idx_work_.begin() + static_cast<std::ptrdiff_t>(n),
                      idx_work_.end(), [&](int32_t a, int32_t b) {
                        return lg[a] != lg[b] ? lg[a] > lg[b] : a < b;
                      });
    for (size_t i = 0; i < n; ++i) out.top.emplace_back(idx_work_[i], lg[idx_work_[i]] - log_z);
  }
  return out;
}

void BatchEngine::Step() {
  const auto now = Clock::now();
  for (auto& s : slots_) {
    if (!s.active()) continue;
    if (s.req->cancelled()) {
      {
        std::lock_guard<std::mutex> lk(mu_);
        ++stats_.requests_cancelled;
      }
      Release(s);
    } else if (now > s.deadline) {
      Fail(s, DeadlineExceeded("the request ran past its time limit of " +
                               std::to_string(s.req->req_.timeout_s) + " s"));
    }
  }
  // Batch: one token per decoding sequence, then prefill chunks (first admitted first).
  const int cap = session_->max_batch();
  int n = 0, rows = 0, n_decode = 0;
  for (auto& s : slots_) {
    if (!s.active() || s.pending < 0) continue;
    b_tok_[n] = s.pending;
    b_pos_[n] = static_cast<int32_t>(s.kv_tokens.size());
    b_seq_[n] = s.id;
    b_rows_[rows] = n;
    row_slot_[rows] = s.id;
    row_prompt_[rows] = -1;
    ++n, ++rows, ++n_decode;
  }
  int prompt_rows = static_cast<int>(kPromptLogitRows);  // rows left for prompt logprobs this step
  int budget = cap - n;
  if (n_decode > 0) budget = std::min(budget, opts_.prefill_chunk_while_decoding);
  std::vector<Slot*>& pre = prefill_order_;
  pre.clear();
  for (auto& s : slots_) {
    if (s.prefilling()) pre.push_back(&s);
  }
  std::sort(pre.begin(), pre.end(), [](const Slot* a, const Slot* b) { return a->order < b->order; });
  for (Slot* s : pre) {
    if (budget <= 0) break;
    const auto& prompt = s->req->req_.prompt;
    const bool score = s->req->req_.prompt_logprobs;
    int m = std::min(budget, static_cast<int>(prompt.size() - s->prompt_fed));
    if (score) m = std::min(m, prompt_rows);  // a row per token scored: the buffer's rows bound the chunk
    if (m <= 0) continue;
    for (int i = 0; i < m; ++i) {
      const size_t at = s->prompt_fed + static_cast<size_t>(i);
      b_tok_[n + i] = prompt[at];
      b_pos_[n + i] = static_cast<int32_t>(at);
      b_seq_[n + i] = s->id;
      if (score && at + 1 < prompt.size()) {  // this row's logits score the next prompt token
        b_rows_[rows] = n + i;
        row_slot_[rows] = s->id;
        row_prompt_[rows] = static_cast<int32_t>(at + 1);
        ++rows;
        --prompt_rows;
      }
    }
    n += m;
    budget -= m;
    if (s->prompt_fed + static_cast<size_t>(m) == prompt.size()) {
      b_rows_[rows] = n - 1;
      row_slot_[rows] = s->id;
      row_prompt_[rows] = -1;
      ++rows;
    }
  }
  if (n == 0) return;
  Batch b;
  b.n_tok = n;
  b.tokens = b_tok_.data();
  b.pos = b_pos_.data();
  b.seq = b_seq_.data();
  b.logit_rows = b_rows_.data();
  b.n_logit_rows = rows;
  ForwardOptions fo;
  fo.observer = counter_.get();
  const auto t0 = Clock::now();
  const Status st = session_->Forward(b, logits_.data(), fo);
  const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!st.ok()) {
    for (auto& s : slots_) {
      if (!s.active()) continue;
      const bool in_batch = std::find(b_seq_.begin(), b_seq_.begin() + n, s.id) != b_seq_.begin() + n;
      if (in_batch) Fail(s, st.WithContext("forward step"));
    }
    return;
  }
  // The batch's tokens are now in the KV cache.
  for (int i = 0; i < n; ++i) {
    Slot& s = slots_[static_cast<size_t>(b_seq_[i])];
    s.kv_tokens.push_back(b_tok_[i]);
    if (i >= n_decode) ++s.prompt_fed;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.steps;
    stats_.prompt_tokens += static_cast<uint64_t>(n - n_decode);
    stats_.prefill_seconds += dt * (n - n_decode) / n;
    stats_.decode_seconds += dt * n_decode / n;
    stats_.last_batch_tokens = n;
    stats_.batch_tokens_sum += static_cast<uint64_t>(n);
    for (size_t i = 0; i < stats_.batch_bounds.size(); ++i) {
      if (n <= stats_.batch_bounds[i]) ++stats_.batch_buckets[i];
    }
  }
  const size_t V = static_cast<size_t>(n_vocab_);
  for (int r = 0; r < rows; ++r) {
    Slot& s = slots_[static_cast<size_t>(row_slot_[r])];
    const EngineRequest& req = s.req->req_;
    const float* lg = logits_.data() + static_cast<size_t>(r) * V;
    if (row_prompt_[r] >= 0) {
      s.plp.push_back(Logprob(lg, req.prompt[static_cast<size_t>(row_prompt_[r])], req.top_logprobs));
      continue;
    }
    if (req.prompt_logprobs && s.generated == 0) {  // the prompt's scores, before any text
      EngineEvent ev;
      ev.is_prompt_scores = true;
      ev.prompt_logprobs = std::move(s.plp);
      s.plp.clear();
      s.req->Push(std::move(ev));
    }
    if (Status bad = CheckLogits(lg, V, s.generated); !bad.ok()) {
      s.pending = -1;
      Fail(s, bad);
      continue;
    }
    const int32_t tok = s.sampler->Sample(lg);
    if (s.generated == 0) {
      const double ttft = std::chrono::duration<double>(Clock::now() - s.req->submitted_).count();
      std::lock_guard<std::mutex> lk(mu_);
      stats_.ttft_sum += ttft;
      ++stats_.ttft_count;
      for (size_t i = 0; i < stats_.ttft_bounds.size(); ++i) {
        if (ttft <= stats_.ttft_bounds[i]) ++stats_.ttft_buckets[i];
      }
    }
    if (std::find(req.eos_tokens.begin(), req.eos_tokens.end(), tok) != req.eos_tokens.end()) {
      s.pending = -1;
      Finish(s, "stop");
      continue;
    }
    s.sampler->Accept(tok);
    ++s.generated;
    {
      std::lock_guard<std::mutex> lk(mu_);
      ++stats_.generated_tokens;
    }
    if (req.top_logprobs >= 0) s.lp.push_back(Logprob(lg, tok, req.top_logprobs));
    std::string text = s.out->Push(tok);
    if (!text.empty()) {
      EngineEvent ev;
      ev.text = std::move(text);
      ev.logprobs = std::move(s.lp);
      s.lp.clear();
      s.req->Push(std::move(ev));
    }
    s.pending = -1;
    if (s.out->stopped()) {
      Finish(s, "stop");
    } else if (s.generated >= req.max_tokens || static_cast<int>(s.kv_tokens.size()) + 1 > ctx_) {
      Finish(s, "length");
    } else {
      s.pending = tok;
    }
  }
}

}  // namespace moxie
