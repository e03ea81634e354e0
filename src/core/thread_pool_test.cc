#include "core/thread_pool.h"

#include <atomic>
#include <vector>

#include "tests/test_util.h"

namespace moxie {
namespace {

TEST(ThreadPool, StaticRangesCoverEveryIndexOnce) {
  for (int nt : {1, 2, 3, 5}) {
    ThreadPool pool(nt);
    for (size_t n : {0u, 1u, 2u, 3u, 7u, 64u, 1001u}) {
      std::vector<std::atomic<int>> hits(n);
      std::vector<int> owner(n, -1);
      for (int rep = 0; rep < 50; ++rep) {
        pool.ParallelFor(n, [&](size_t b, size_t e, int tid) {
          for (size_t i = b; i < e; ++i) {
            hits[i].fetch_add(1);
            owner[i] = tid;
          }
        });
      }
      for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 50) << "n " << n << " i " << i;
      // Ranges are contiguous and in thread order: owner is non-decreasing.
      for (size_t i = 1; i < n; ++i) EXPECT_LE(owner[i - 1], owner[i]);
    }
  }
}

}  // namespace
}  // namespace moxie
