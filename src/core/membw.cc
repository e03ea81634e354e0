#include "core/membw.h"

#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

namespace moxie {

Bandwidth MeasureReadBandwidth(int threads, size_t mib, int reps) {
  const int nt = std::max(1, threads);
  const size_t n = mib * 1024 * 1024 / sizeof(uint64_t);
  // On transparent huge pages where the kernel offers them, as the weights Moxie lays out at load
  // are: 4 KiB pages add TLB misses to a stream and would understate what memory delivers.
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t bytes = (n * sizeof(uint64_t) + kHuge - 1) / kHuge * kHuge;
  std::unique_ptr<uint64_t, void (*)(void*)> mem(static_cast<uint64_t*>(std::aligned_alloc(kHuge, bytes)), std::free);
  if (!mem) return Bandwidth{};
  ::madvise(mem.get(), bytes, MADV_HUGEPAGE);
  uint64_t* buf = mem.get();
  std::fill(buf, buf + n, uint64_t{1});
  std::vector<double> gbs;
  volatile uint64_t sink = 0;
  for (int r = 0; r < std::max(1, reps); ++r) {
    std::vector<uint64_t> partial(static_cast<size_t>(nt));
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> th;
    for (int t = 0; t < nt; ++t) {
      th.emplace_back([&, t] {
        // A thread inherits its creator's CPU mask: under `moxie bench --pin` that is the one CPU
        // the pool pinned the caller to, which would run every probe thread on one core (the
        // probe then read half the bandwidth and decode shares came out at 140 %). Each probe
        // thread gets the machine's online CPUs back (the kernel keeps it within any cpuset).
        cpu_set_t all;
        CPU_ZERO(&all);
        const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
        for (long c = 0; c < online && c < CPU_SETSIZE; ++c) CPU_SET(static_cast<int>(c), &all);
        ::sched_setaffinity(0, sizeof(all), &all);  // best effort

        const size_t b = n * static_cast<size_t>(t) / static_cast<size_t>(nt);
        const size_t e = n * static_cast<size_t>(t + 1) / static_cast<size_t>(nt);
        // Eight independent sums and, in every other repetition, a software prefetch 2 KiB
        // ahead, as the kernels stream their weights: one plain dependent loop read 20-25 % less
        // on a Xeon (Sapphire Rapids class) than Moxie's own decode streams, so roofline shares
        // came out above 100 %; on an AMD EPYC Zen 3 the prefetch read up to ~10 % less than
        // the hardware prefetchers alone (alternated harness runs), where the kernels (which
        // prefetch 1 KiB ahead there) read more than the prefetching probe. The best of both.
        uint64_t acc[8] = {};
        size_t i = b;
        const bool prefetch = r % 2 == 0;
        for (; i + 8 <= e; i += 8) {
          if (prefetch) __builtin_prefetch(buf + i + 256);
          for (int k = 0; k < 8; ++k) acc[k] += buf[i + static_cast<size_t>(k)];
        }
        for (; i < e; ++i) acc[0] += buf[i];
        uint64_t sum = 0;
        for (uint64_t v : acc) sum += v;
        partial[static_cast<size_t>(t)] = sum;
      });
    }
    for (auto& x : th) x.join();
    const auto t1 = std::chrono::steady_clock::now();
    for (uint64_t p : partial) sink = sink + p;
    gbs.push_back(static_cast<double>(n * sizeof(uint64_t)) / std::chrono::duration<double>(t1 - t0).count() / 1e9);
  }
  std::sort(gbs.begin(), gbs.end());
  return Bandwidth{gbs.back(), gbs[gbs.size() / 2]};
}

}  // namespace moxie
