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
  done_.store(0, std::memory_order_relaxed);
  next_.store(0, std::memory_order_release);  // publishes the job to whoever claims a range
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  Participate();
  // Spin briefly (ranges are short in decode), then block.
  int d;
  for (int spin = 0; (d = done_.load(std::memory_order_acquire)) != n_threads_; ++spin) {
    if (spin > 64) std::this_thread::yield();
    if (spin > 2000) done_.wait(d, std::memory_order_acquire);
  }
}

// Claims ranges until none is left. Range r always covers the same slice and is passed r as its
// thread index, so results and per-index scratch never depend on which thread ran it; a thread
// that finds its worker descheduled (oversubscribed cores) runs the worker's range itself instead
// of waiting for it.
void ThreadPool::Participate() {
  for (;;) {
    const int r = next_.fetch_add(1, std::memory_order_acq_rel);
    if (r >= n_threads_) return;
    RunRange(r);
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_threads_) done_.notify_one();
  }
}

void ThreadPool::WorkerLoop(int tid) {
  (void)tid;
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
    Participate();
  }
}

}  // namespace moxie
