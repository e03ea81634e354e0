// Streaming-read memory bandwidth: the denominator of Moxie's roofline figures (`moxie bench`,
// bench/membw.cc). Each thread sums its contiguous slice of a buffer much larger than the caches
// (integer sums vectorise without fast-math, so the loop is bound by memory, not by adds).
#pragma once

#include <cstddef>

namespace moxie {

struct Bandwidth {
  double best_gb_s = 0;    // best of the repetitions (GB = 1e9 bytes)
  double median_gb_s = 0;
};

Bandwidth MeasureReadBandwidth(int threads, size_t mib = 1024, int reps = 5);

}  // namespace moxie
