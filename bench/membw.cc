// Streaming-read memory bandwidth with N threads: the denominator of Moxie's roofline figures.
//   moxie_membw [threads=2] [MiB=1024] [reps=5]   -> prints GB/s (best of reps) and the median
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  const int nt = argc > 1 ? std::atoi(argv[1]) : 2;
  const size_t mib = argc > 2 ? static_cast<size_t>(std::atol(argv[2])) : 1024;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
  // Integer sums vectorise without fast-math, so the loop is bound by memory, not by adds.
  const size_t n = mib * 1024 * 1024 / sizeof(uint64_t);
  std::vector<uint64_t> buf(n, 1);
  std::vector<double> gbs;
  volatile uint64_t sink = 0;
  for (int r = 0; r < reps; ++r) {
    std::vector<uint64_t> partial(static_cast<size_t>(nt));
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> th;
    for (int t = 0; t < nt; ++t) {
      th.emplace_back([&, t] {
        const size_t b = n * t / nt, e = n * (t + 1) / nt;
        uint64_t acc = 0;
        for (size_t i = b; i < e; ++i) acc += buf[i];
        partial[t] = acc;
      });
    }
    for (auto& x : th) x.join();
    auto t1 = std::chrono::steady_clock::now();
    for (uint64_t p : partial) sink = sink + p;
    gbs.push_back(n * sizeof(uint64_t) / std::chrono::duration<double>(t1 - t0).count() / 1e9);
  }
  std::sort(gbs.begin(), gbs.end());
  std::printf("membw: %d threads, %zu MiB: best %.1f GB/s, median %.1f GB/s\n", nt, mib,
              gbs.back(), gbs[gbs.size() / 2]);
  return 0;
}
