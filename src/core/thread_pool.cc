#include "core/thread_pool.h"

namespace moxie {

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int t = 1; t < n_threads_; ++t) threads_.emplace_back([this, t] { WorkerLoop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& th : threads_) th.join();
}

void ThreadPool::RunRange(int tid) {
  const size_t n = job_n_;
  const size_t nt = static_cast<size_t>(n_threads_);
  const size_t t = static_cast<size_t>(tid);
  const size_t begin = n * t / nt;
  const size_t end = n * (t + 1) / nt;
  if (begin < end) job_fn_(job_ctx_, begin, end, tid);
}

void ThreadPool::Run(size_t n, RangeFn fn, void* ctx) {
  job_fn_ = fn;
  job_ctx_ = ctx;
  job_n_ = n;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  RunRange(0);
  // Spin briefly (ranges are short in decode), then block.
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin > 64) std::this_thread::yield();  // oversubscribed cores: let the worker run
    if (spin > 2000) {
      int p = pending_.load(std::memory_order_acquire);
      if (p != 0) pending_.wait(p, std::memory_order_acquire);
    }
  }
}

void ThreadPool::WorkerLoop(int tid) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen; ++spin) {
      if (spin > 64) std::this_thread::yield();
      if (spin > 4000) {
        generation_.wait(seen, std::memory_order_acquire);
      }
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    RunRange(tid);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

}  // namespace moxie
