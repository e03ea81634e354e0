// ThreadPool and ExecContext: the only way Moxie code runs in parallel.
//
// Threads come from an explicit ExecContext passed down the call chain, never from a global.
// ParallelFor splits [0, n) into one contiguous static range per thread (range i is passed
// thread index i, whichever thread runs it), so results never depend on scheduling; callers that
// reduce must combine per-range results in range order. ParallelChunks splits [0, n) into more
// fixed ranges than threads: thread t first runs its own consecutive ranges in order (one
// contiguous stream of weights), then takes what is left of others' from the back (a slow or
// descheduled core then does less of the work); the ranges are fixed by n and the chunk count,
// so results still never depend on scheduling.
// Neither allocates, and neither is reentrant: call them from one thread at a time (the engine
// loop).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/dtype.h"

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

  // First index of chunk c of ParallelChunks(n, C) on T threads (c == C: n). Thread t owns the
  // chunks [C·t/T, C·(t+1)/T), which cover the items [n·lo/C, n·hi/C). Tapered (the default), its
  // j-th chunk of K starts at the fraction 1 − (1 − j/K)² of those items: long chunks first, so
  // one thread streams long runs, and short ones last, the ones another thread steals from its
  // back, so the threads finish a job closer together. Untapered: n·c/C.
  static size_t ChunkBegin(size_t n, size_t c, size_t C, size_t T, bool tapered);
  // Tapered chunks on or off (env MOXIE_TAPER=0|1 sets the default); call between jobs.
  void set_tapered_chunks(bool on) { tapered_ = on; }

  // Idle-time counters (`moxie bench`), off by default: while on, each thread adds the seconds it
  // spends with no range to run — the caller from finishing its share of a job until the job is
  // done (waiting at the barrier), a worker from finishing its share until the next job starts
  // (the barrier plus the caller's serial work between jobs). Two clock reads per thread per job.
  void set_idle_timing(bool on) { timing_.store(on, std::memory_order_relaxed); }
  // Seconds thread t has been idle since the counters were last reset (read between jobs).
  double idle_seconds(int t) const { return idle_[static_cast<size_t>(t)].s.load(std::memory_order_relaxed); }
  uint64_t jobs() const { return jobs_; }
  // Seconds the caller spent between consecutive jobs (its serial work, while the workers wait).
  double serial_seconds() const { return serial_s_; }
  // Zeroes the counters; idle time from before this call is not counted. Call between jobs.
  void reset_idle();

  // Calls fn(begin, end, thread_index) for each non-empty static range of [0, n).
  template <typename Fn>
  void ParallelFor(size_t n, Fn&& fn) {
    if (n == 0) return;
    if (n_threads_ == 1 || n == 1) {
      fn(size_t{0}, n, 0);
      return;
    }
    using F = std::remove_reference_t<Fn>;
    Run(n, n_threads_, &Trampoline<F>, const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Calls fn(begin, end, chunk) for each non-empty range [ChunkBegin(c), ChunkBegin(c + 1)),
  // c < C = n_chunks (clamped to [1, n]), each claimed by the first free thread. `chunk` is the
  // range's index, not a thread's: per-thread scratch does not fit this call.
  template <typename Fn>
  void ParallelChunks(size_t n, size_t n_chunks, Fn&& fn) {
    if (n == 0) return;
    const size_t c = n_chunks < 1 ? 1 : (n_chunks > n ? n : n_chunks);
    if (n_threads_ == 1 || c == 1) {
      for (size_t i = 0; i < c; ++i) {
        const size_t b = ChunkBegin(n, i, c, 1, tapered_), e = ChunkBegin(n, i + 1, c, 1, tapered_);
        if (b < e) fn(b, e, static_cast<int>(i));
      }
      return;
    }
    using F = std::remove_reference_t<Fn>;
    Run(n, static_cast<int>(c), &Trampoline<F>, const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using RangeFn = void (*)(void* ctx, size_t begin, size_t end, int tid);
  template <typename Fn>
  static void Trampoline(void* ctx, size_t b, size_t e, int tid) {
    (*static_cast<Fn*>(ctx))(b, e, tid);
  }
  void Run(size_t n, int n_ranges, RangeFn fn, void* ctx);
  void WorkerLoop(int tid);
  void RunRange(int range, int n_ranges);
  void Participate(int self);
  void PinCaller();

  int n_threads_;
  bool pin_ = false;
  bool tapered_ = true;
  std::vector<int> cpus_;            // allowed CPUs, when pinning
  std::thread::id pinned_caller_{};  // the ParallelFor caller last pinned
  std::vector<std::thread> threads_;
  // Job description, published by `generation_` (release) and read by workers (acquire).
  RangeFn job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  size_t job_n_ = 0;
  int job_ranges_ = 0;
  std::atomic<uint32_t> generation_{0};
  // Thread t's ranges of the current job: [lo, hi) as lo (low 32 bits) and hi (high 32 bits) of
  // one word. The owner claims from the front, so each thread streams one contiguous span of
  // weights; a thread without ranges left claims others' from the back. A thread still claiming
  // from the job before sees only empty words (every range of a job is claimed before the next
  // starts) or the next job's, published after its fields.
  struct alignas(64) RangeQueue {
    std::atomic<uint64_t> v{0};
  };
  std::vector<RangeQueue> queues_;
  std::atomic<int> done_{0};  // ranges finished in the current job
  struct alignas(64) Idle {
    std::atomic<double> s{0};  // written by its thread only (and reset_idle between jobs)
  };
  std::vector<Idle> idle_;
  std::atomic<bool> timing_{false};
  std::atomic<double> reset_at_{0};  // when reset_idle last ran
  uint64_t jobs_ = 0;
  double serial_s_ = 0, last_end_ = 0;  // the caller's
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
  // BF16 weights multiply bf16-rounded activations (llama.cpp's CPU scheme for BF16; vdpbf16ps on
  // CPUs with AVX512_BF16, about 1.6x the f32 tile's multiply rate) instead of f32 ones. Off by
  // default: it moves logits by ~1e-2 on the fixtures. The router always keeps f32 activations.
  bool bf16_activations = false;
  // Whether QMatmul(dtype) is to be used for a weight of `dtype` under these options.
  bool PreparedActivations(DType dtype) const {
    return dtype == DType::kBF16 || dtype == DType::kBF16R16 ? bf16_activations : quantized_activations;
  }
  // Ranges per thread in the loops that stream weights (Linear, the expert phases), claimed by
  // whichever thread is free (ParallelChunks). Model A Q8_0, 8 sequences decoded together, 2
  // threads on a shared 2-vCPU AMD EPYC, alternated: 46-55 -> 53-60 tok/s from 1 to 4; 8 about
  // the same as 4; one-sequence decode and prefill within the noise.
  int chunks_per_thread = 4;
  int n_threads() const { return pool ? pool->size() : 1; }
  template <typename Fn>
  void ParallelFor(size_t n, Fn&& fn) const {
    if (pool != nullptr) {
      pool->ParallelFor(n, fn);
    } else if (n > 0) {
      fn(size_t{0}, n, 0);
    }
  }
  // ParallelFor from min_parallel items up; below that, fn(0, n, 0) on the calling thread (a decode
  // step's few rows cost less than a barrier).
  template <typename Fn>
  void ParallelForFrom(size_t min_parallel, size_t n, Fn&& fn) const {
    if (n >= min_parallel && pool != nullptr) {
      pool->ParallelFor(n, fn);
    } else if (n > 0) {
      fn(size_t{0}, n, 0);
    }
  }
  // ParallelChunks with chunks_per_thread chunks per thread.
  template <typename Fn>
  void ParallelChunks(size_t n, Fn&& fn) const {
    if (pool != nullptr) {
      const size_t per = chunks_per_thread < 1 ? 1 : static_cast<size_t>(chunks_per_thread);
      pool->ParallelChunks(n, per * static_cast<size_t>(pool->size()), fn);
    } else if (n > 0) {
      fn(size_t{0}, n, 0);
    }
  }
};

}  // namespace moxie
