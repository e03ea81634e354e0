// Streaming-read memory bandwidth with N threads: the denominator of Moxie's roofline figures.
//   moxie_membw [threads=2] [MiB=1024] [reps=5]   -> prints GB/s (best of reps) and the median
#include <cstdio>
#include <cstdlib>

#include "core/membw.h"

int main(int argc, char** argv) {
  const int nt = argc > 1 ? std::atoi(argv[1]) : 2;
  const size_t mib = argc > 2 ? static_cast<size_t>(std::atol(argv[2])) : 1024;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
  const moxie::Bandwidth b = moxie::MeasureReadBandwidth(nt, mib, reps);
  std::printf("membw: %d threads, %zu MiB: best %.1f GB/s, median %.1f GB/s\n", nt, mib, b.best_gb_s,
              b.median_gb_s);
  return 0;
}
