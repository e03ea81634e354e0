// ThreadPool and ExecContext: the only way Moxie code runs in parallel.
//
// Threads come from an explicit ExecContext passed down the call chain, never from a global.
// ParallelFor splits [0, n) into one contiguous static range per thread (range i is passed
// thread index i, whichever thread runs it), so results never depend on scheduling; callers that reduce must combine per-range
// results in range order. ParallelFor does not allocate and is not reentrant: call it from one
// thread at a time (the engine loop).
#pragma once

#include <atomic>
#include <cstddef>
#include <thread>
#include <type_traits>
#include <vector>

namespace moxie {

class ThreadPool {
 public:
  // n_threads >= 1; the calling thread is worker 0, so n_threads - 1 threads are spawned.
  // pin: each worker is bound to one CPU of the process's affinity set (worker i -> the i-th
  // allowed CPU, wrapping), and so is whichever thread calls ParallelFor (-> the first CPU), so
  // the OS never migrates them mid-step; off by default (on a shared machine a pinned thread
  // cannot dodge a busy core).
  explicit ThreadPool(int n_threads, bool pin = false);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  bool pinned() const { return pin_; }

  // Calls fn(begin, end, thread_index) for each non-empty static range of [0, n).
  template <typename Fn>
  void ParallelFor(size_t n, Fn&& fn) {
    if (n == 0) return;
    if (n_threads_ == 1 || n == 1) {
      fn(size_t{0}, n, 0);
      return;
    }
    using F = std::remove_reference_t<Fn>;
    Run(n, &Trampoline<F>, const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using RangeFn = void (*)(void* ctx, size_t begin, size_t end, int tid);
  template <typename Fn>
  static void Trampoline(void* ctx, size_t b, size_t e, int tid) {
    (*static_cast<Fn*>(ctx))(b, e, tid);
  }
  void Run(size_t n, RangeFn fn, void* ctx);
  void WorkerLoop(int tid);
  void RunRange(int tid);
  void Participate();
  void PinCaller();

  int n_threads_;
  bool pin_ = false;
  std::vector<int> cpus_;            // allowed CPUs, when pinning
  std::thread::id pinned_caller_{};  // the ParallelFor caller last pinned
  std::vector<std::thread> threads_;
  // Job description, published by `generation_` (release) and read by workers (acquire).
  RangeFn job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  size_t job_n_ = 0;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> next_{0};  // next range to claim (>= n_threads_: none left)
  std::atomic<int> done_{0};  // ranges finished in the current job
  std::atomic<bool> stop_{false};
};

struct KernelTable;  // kernels/kernel_table.h

// Everything a forward pass needs to execute: the threads and the kernel table (later: device).
// Not owned; the creator keeps both alive for the context's lifetime.
struct ExecContext {
  ThreadPool* pool = nullptr;
  const KernelTable* kernels = nullptr;
  // Quantized weights multiply 8-bit quantized activations (llama.cpp's CPU scheme, faster);
  // false: f32 activations against the dequantized weights (exact to the dequantized model).
  bool quantized_activations = true;
  int n_threads() const { return pool ? pool->size() : 1; }
  template <typename Fn>
  void ParallelFor(size_t n, Fn&& fn) const {
    if (pool != nullptr) {
      pool->ParallelFor(n, fn);
    } else if (n > 0) {
      fn(size_t{0}, n, 0);
    }
  }
};

}  // namespace moxie
