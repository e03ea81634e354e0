#include "core/thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
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

TEST(ThreadPool, ChunksCoverEveryIndexOnceInFixedRanges) {
  for (int nt : {1, 2, 3}) {
    ThreadPool pool(nt);
    for (bool tapered : {false, true}) {
      pool.set_tapered_chunks(tapered);
      const size_t T = static_cast<size_t>(nt);
      for (size_t n : {1u, 2u, 7u, 64u, 1001u}) {
        for (size_t chunks : {0u, 1u, 3u, 8u, 2000u}) {
          const size_t c = std::max<size_t>(1, std::min(chunks, n));
          std::vector<std::atomic<int>> hits(n);
          pool.ParallelChunks(n, chunks, [&](size_t b, size_t e, int chunk) {
            // Chunk i is always [ChunkBegin(i), ChunkBegin(i + 1)), whoever runs it.
            const auto i = static_cast<size_t>(chunk);
            EXPECT_EQ(b, ThreadPool::ChunkBegin(n, i, c, T, tapered));
            EXPECT_EQ(e, ThreadPool::ChunkBegin(n, i + 1, c, T, tapered));
            EXPECT_LT(b, e);
            for (size_t j = b; j < e; ++j) hits[j].fetch_add(1);
          });
          for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << "n " << n << " i " << i;
        }
      }
    }
  }
}

// Untapered chunks are n·c/C; tapered ones keep each thread's items (the untapered chunks' union)
// and shrink along its run: 4 chunks of one thread's 160 items are 70, 50, 30 and 10 long.
TEST(ThreadPool, TaperedChunksShrinkWithinEachThreadsItems) {
  const size_t n = 320, C = 8, T = 2;
  std::vector<size_t> got;
  for (size_t c = 0; c <= C; ++c) {
    EXPECT_EQ(ThreadPool::ChunkBegin(n, c, C, T, false), n * c / C);
    got.push_back(ThreadPool::ChunkBegin(n, c, C, T, true));
  }
  EXPECT_EQ(got, (std::vector<size_t>{0, 70, 120, 150, 160, 230, 280, 310, 320}));
  // Odd splits: boundaries never decrease and end at n.
  for (size_t nn : {1u, 5u, 37u, 1000003u}) {
    for (size_t cc : {1u, 3u, 7u, 12u}) {
      for (size_t tt : {1u, 2u, 3u}) {
        size_t prev = 0;
        for (size_t c = 0; c <= cc; ++c) {
          const size_t b = ThreadPool::ChunkBegin(nn, c, cc, tt, true);
          EXPECT_GE(b, prev) << nn << " " << cc << " " << tt << " " << c;
          prev = b;
        }
        EXPECT_EQ(prev, nn);
      }
    }
  }
}

// Each thread streams its own consecutive ranges in order and takes the others' from the back: with
// the caller held in its first chunk until chunk 3 has run, the worker runs its own 4-7 in order and
// then steals 3 (the caller's last) before anything else of the caller's.
TEST(ThreadPool, ChunksRunOwnRangesInOrderThenStealFromTheBack) {
  ThreadPool pool(2);
  pool.set_tapered_chunks(false);  // 8 items in 8 chunks: every chunk one item
  std::atomic<bool> ran3{false};
  std::vector<int> worker_seq, caller_seq;
  const auto caller = std::this_thread::get_id();
  pool.ParallelChunks(8, 8, [&](size_t, size_t, int chunk) {
    (std::this_thread::get_id() == caller ? caller_seq : worker_seq).push_back(chunk);
    if (chunk == 0) {
      for (int i = 0; i < 10000 && !ran3.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (chunk == 3) ran3.store(true);
  });
  ASSERT_TRUE(ran3.load());
  ASSERT_GE(worker_seq.size(), 5u);
  EXPECT_EQ(std::vector<int>(worker_seq.begin(), worker_seq.begin() + 5), (std::vector<int>{4, 5, 6, 7, 3}));
  EXPECT_EQ(caller_seq.front(), 0);
  EXPECT_TRUE(std::is_sorted(caller_seq.begin(), caller_seq.end()));
  EXPECT_EQ(caller_seq.size() + worker_seq.size(), 8u);
}

// Jobs with different range counts back to back: a thread still claiming from one job must never
// run a range of the next (each index of each job runs exactly once).
TEST(ThreadPool, AlternatingRangeCountsRunEachIndexOnce) {
  ThreadPool pool(3);
  constexpr size_t kN = 96;
  std::vector<std::atomic<int>> hits(kN);
  for (int rep = 0; rep < 3000; ++rep) {
    for (auto& h : hits) h.store(0);
    auto body = [&](size_t b, size_t e, int) {
      for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
    };
    if (rep % 2 == 0) {
      pool.ParallelFor(kN, body);
    } else {
      pool.ParallelChunks(kN, 1 + static_cast<size_t>(rep) % 40, body);
    }
    for (size_t i = 0; i < kN; ++i) ASSERT_EQ(hits[i].load(), 1) << "rep " << rep << " i " << i;
  }
}

TEST(ThreadPool, PinnedWorkersRunOnOneAllowedCpuEach) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  const int n_allowed = CPU_COUNT(&allowed);
  const int nt = std::min(n_allowed, 4);
  std::vector<int> counts(static_cast<size_t>(nt), 0);
  std::thread caller([&] {  // pinning binds the ParallelFor caller too: keep it off the test thread
    ThreadPool pool(nt, /*pin=*/true);
    ASSERT_TRUE(pool.pinned());
    for (int rep = 0; rep < 20; ++rep) {
      pool.ParallelFor(static_cast<size_t>(nt), [&](size_t b, size_t e, int) {
        cpu_set_t mine;
        CPU_ZERO(&mine);
        ASSERT_EQ(pthread_getaffinity_np(pthread_self(), sizeof(mine), &mine), 0);
        // Each thread is bound to exactly one CPU, one the process may use.
        ASSERT_EQ(CPU_COUNT(&mine), 1);
        for (int c = 0; c < CPU_SETSIZE; ++c) {
          if (CPU_ISSET(c, &mine)) {
            EXPECT_TRUE(CPU_ISSET(c, &allowed));
          }
        }
        for (size_t i = b; i < e; ++i) ++counts[i];
      });
    }
  });
  caller.join();
  for (int c : counts) EXPECT_EQ(c, 20);
}

}  // namespace
}  // namespace moxie
