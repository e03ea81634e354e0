#include "core/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

namespace moxie {
namespace {

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort
}

}  // namespace

ThreadPool::ThreadPool(int n_threads, bool pin)
    : n_threads_(n_threads < 1 ? 1 : n_threads),
      queues_(static_cast<size_t>(n_threads_)),
      idle_(static_cast<size_t>(n_threads_)) {
  if (const char* e = std::getenv("MOXIE_TAPER"); e != nullptr && e[0] != '\0') tapered_ = e[0] != '0';
  if (pin) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &set)) cpus_.push_back(c);
      }
    }
    pin_ = !cpus_.empty();
  }
  for (int t = 1; t < n_threads_; ++t) {
    threads_.emplace_back([this, t] {
      if (pin_) PinTo(cpus_[static_cast<size_t>(t) % cpus_.size()]);
      WorkerLoop(t);
    });
  }
}

void ThreadPool::PinCaller() {
  const auto self = std::this_thread::get_id();
  if (self == pinned_caller_) return;
  PinTo(cpus_[0]);
  pinned_caller_ = self;
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& th : threads_) th.join();
}

size_t ThreadPool::ChunkBegin(size_t n, size_t c, size_t C, size_t T, bool tapered) {
  if (c >= C) return n;
  if (!tapered || T < 1) return n * c / C;
  size_t t = 0;  // the owner: the last thread whose first chunk is <= c
  while (t + 1 < T && C * (t + 1) / T <= c) ++t;
  const size_t lo = C * t / T, hi = C * (t + 1) / T;
  const size_t a = n * lo / C, b = n * hi / C;
  const size_t k = hi - lo, left = hi - c;  // chunks from c to the end of the owner's run
  if (k >= (size_t{1} << 16)) return n * c / C;  // (no caller has that many chunks per thread)
  const size_t kk = k * k, f = kk - left * left, m = b - a;
  return a + m / kk * f + m % kk * f / kk;  // a + m·f/kk without overflow
}

void ThreadPool::RunRange(int range, int n_ranges) {
  const size_t n = job_n_;
  const size_t nr = static_cast<size_t>(n_ranges);
  const size_t r = static_cast<size_t>(range);
  // (ParallelFor has one range per thread: the taper is the identity there.)
  const size_t nt = static_cast<size_t>(n_threads_);
  const size_t begin = ChunkBegin(n, r, nr, nt, tapered_);
  const size_t end = ChunkBegin(n, r + 1, nr, nt, tapered_);
  if (begin < end) job_fn_(job_ctx_, begin, end, range);
}

void ThreadPool::Run(size_t n, int n_ranges, RangeFn fn, void* ctx) {
  if (pin_) PinCaller();
  const bool timing = timing_.load(std::memory_order_relaxed);
  if (timing && last_end_ > 0) {
    serial_s_ += Seconds() - std::max(last_end_, reset_at_.load(std::memory_order_relaxed));
  }
  job_fn_ = fn;
  job_ctx_ = ctx;
  job_n_ = n;
  job_ranges_ = n_ranges;
  done_.store(0, std::memory_order_relaxed);
  // Publishes the job to whoever claims a range: thread t owns ranges [R·t/T, R·(t+1)/T).
  const uint64_t nr = static_cast<uint64_t>(n_ranges), nt = static_cast<uint64_t>(n_threads_);
  for (uint64_t t = 0; t < nt; ++t) {
    const uint64_t lo = nr * t / nt, hi = nr * (t + 1) / nt;
    queues_[t].v.store(hi << 32 | lo, std::memory_order_release);
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  Participate(0);
  const double t0 = timing ? Seconds() : 0;
  // Spin briefly (ranges are short in decode), then block.
  int d;
  for (int spin = 0; (d = done_.load(std::memory_order_acquire)) != n_ranges; ++spin) {
    if (spin > 64) std::this_thread::yield();
    if (spin > 2000) done_.wait(d, std::memory_order_acquire);
  }
  if (timing) {
    last_end_ = Seconds();
    idle_[0].s.store(idle_[0].s.load(std::memory_order_relaxed) + last_end_ - t0, std::memory_order_relaxed);
    ++jobs_;
  }
}

void ThreadPool::reset_idle() {
  for (auto& i : idle_) i.s.store(0, std::memory_order_relaxed);
  jobs_ = 0;
  serial_s_ = 0;
  reset_at_.store(Seconds(), std::memory_order_relaxed);
}

namespace {

// Claims a range from the front (the owner) or the back (another thread) of a queue word
// ([lo, hi) as lo | hi << 32); false when it is empty.
bool Claim(std::atomic<uint64_t>& q, bool front, int* range) {
  uint64_t v = q.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t lo = v & 0xffffffffu, hi = v >> 32;
    if (lo >= hi) return false;
    const uint64_t next = front ? v + 1 : (hi - 1) << 32 | lo;
    if (q.compare_exchange_weak(v, next, std::memory_order_acq_rel, std::memory_order_acquire)) {
      *range = static_cast<int>(front ? lo : hi - 1);
      return true;
    }
  }
}

}  // namespace

// Runs this thread's own ranges in order, then claims the others' from the back until none is
// left. Range r always covers the same slice and is passed r as its thread index, so results
// and per-index scratch never depend on which thread ran it; a thread that finds another
// descheduled (oversubscribed cores) runs that thread's ranges itself instead of waiting.
void ThreadPool::Participate(int self) {
  const int nt = n_threads_;
  int r = 0;
  for (int k = 0; k < nt; ++k) {
    auto& q = queues_[static_cast<size_t>((self + k) % nt)].v;
    while (Claim(q, k == 0, &r)) {
      const int n_ranges = job_ranges_;  // read before the count lets the next job start
      RunRange(r, n_ranges);
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_ranges) done_.notify_one();
    }
  }
}

void ThreadPool::WorkerLoop(int tid) {
  uint32_t seen = 0;
  double t0 = 0;  // when this thread finished its share of the last job it timed
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
    const bool timing = timing_.load(std::memory_order_relaxed);
    if (timing && t0 > 0) {
      // Time before the last reset_idle is not counted (it is published with this job).
      auto& idle = idle_[static_cast<size_t>(tid)].s;
      const double from = std::max(t0, reset_at_.load(std::memory_order_relaxed));
      idle.store(idle.load(std::memory_order_relaxed) + Seconds() - from, std::memory_order_relaxed);
    }
    Participate(tid);
    t0 = timing ? Seconds() : 0;
  }
}

}  // namespace moxie
