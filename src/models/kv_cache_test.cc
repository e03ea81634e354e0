#include "models/kv_cache.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

namespace moxie {
namespace {

// Every row of every (layer, K/V, sequence, head, position) lies inside the storage, no two
// overlap, and within a block a head's rows follow each other.
TEST(KvCache, BlockedRowsAreDisjointAndRunsContiguous) {
  const std::vector<KvLayerSpec> specs = {{2, 8, 8}, {3, 4, 6}, {1, 12, 0}};
  for (DType type : {DType::kF32, DType::kF16}) {
    for (int block : {0, 1, 3, 10, 11}) {
      SCOPED_TRACE(std::string(DTypeName(type)) + " block " + std::to_string(block));
      const int n_seq = 2, max_ctx = 10;
      KvCache kv(specs, n_seq, max_ctx, type, block);
      EXPECT_EQ(kv.block(), block == 0 ? KvCache::BlockPositions(specs, max_ctx, type) : std::min(block, max_ctx));
      EXPECT_EQ(kv.bytes(), KvCache::Bytes(specs, n_seq, max_ctx, type, block));
      std::map<uintptr_t, size_t> rows;  // start -> bytes
      size_t total = 0;
      for (int l = 0; l < static_cast<int>(specs.size()); ++l) {
        const KvLayer L = kv.layer(l);
        for (int s = 0; s < n_seq; ++s) {
          for (int h = 0; h < L.n_head; ++h) {
            for (int p = 0; p < max_ctx; ++p) {
              for (int which = 0; which < 2; ++which) {
                const size_t dim = static_cast<size_t>(which == 0 ? L.k_dim : L.v_dim);
                if (dim == 0) continue;
                const auto* r = static_cast<const uint8_t*>(which == 0 ? L.K(s, h, p) : L.V(s, h, p));
                const size_t bytes = dim * L.elem_bytes();
                rows[reinterpret_cast<uintptr_t>(r)] = bytes;
                total += bytes;
                if (p + 1 < max_ctx && p + 1 < L.RunEnd(p)) {
                  const auto* next = static_cast<const uint8_t*>(which == 0 ? L.K(s, h, p + 1) : L.V(s, h, p + 1));
                  EXPECT_EQ(next, r + bytes) << "layer " << l << " seq " << s << " head " << h << " pos " << p;
                }
              }
            }
          }
        }
      }
      ASSERT_FALSE(rows.empty());
      EXPECT_LE(total, kv.bytes());
      const auto* lo = static_cast<const uint8_t*>(kv.layer(0).k);
      uintptr_t end = 0;
      for (const auto& [start, bytes] : rows) {
        EXPECT_GE(start, end) << "overlapping rows";
        end = start + bytes;
        EXPECT_LE(end, reinterpret_cast<uintptr_t>(lo) + kv.bytes());
        EXPECT_GE(start, reinterpret_cast<uintptr_t>(lo));
      }
    }
  }
}

// The automatic block fills 2 MiB over all layers and >= 16 KiB per head run, capped by the
// context: model A's shape (16 layers x 16 heads x 128, f32) -> 32 positions (8 MiB).
TEST(KvCache, AutomaticBlock) {
  const std::vector<KvLayerSpec> a(16, KvLayerSpec{16, 128, 128});
  EXPECT_EQ(KvCache::BlockPositions(a, 4096, DType::kF32), 32);
  EXPECT_EQ(KvCache::BlockPositions(a, 4096, DType::kF16), 64);
  EXPECT_EQ(KvCache::BlockPositions(a, 20, DType::kF32), 20);
  const std::vector<KvLayerSpec> tiny(2, KvLayerSpec{2, 16, 16});
  EXPECT_EQ(KvCache::BlockPositions(tiny, 4096, DType::kF32), 4096);
  EXPECT_EQ(KvCache::BlockPositions({}, 4096, DType::kF32), 1);
}

// CopyPrefix copies positions [0, n) of every layer, head, K and V, and nothing else.
TEST(KvCache, CopyPrefixAcrossBlocks) {
  const std::vector<KvLayerSpec> specs = {{2, 4, 4}, {1, 8, 2}};
  KvCache kv(specs, 2, 12, DType::kF32, 5);
  float v = 1;
  for (int l = 0; l < 2; ++l) {
    const KvLayer L = kv.layer(l);
    for (int h = 0; h < L.n_head; ++h) {
      for (int p = 0; p < 12; ++p) {
        std::vector<float> k(static_cast<size_t>(L.k_dim), v++), vv(static_cast<size_t>(L.v_dim), v++);
        L.Store(L.K(0, h, p), 0, k.data(), k.size());
        L.Store(L.V(0, h, p), 0, vv.data(), vv.size());
      }
    }
  }
  kv.CopyPrefix(0, 1, 7);
  for (int l = 0; l < 2; ++l) {
    const KvLayer L = kv.layer(l);
    for (int h = 0; h < L.n_head; ++h) {
      for (int p = 0; p < 12; ++p) {
        const size_t kb = static_cast<size_t>(L.k_dim) * 4, vb = static_cast<size_t>(L.v_dim) * 4;
        const bool copied = p < 7;
        EXPECT_EQ(std::memcmp(L.K(0, h, p), L.K(1, h, p), kb) == 0, copied) << l << " " << h << " " << p;
        EXPECT_EQ(std::memcmp(L.V(0, h, p), L.V(1, h, p), vb) == 0, copied) << l << " " << h << " " << p;
      }
    }
  }
}

}  // namespace
}  // namespace moxie
