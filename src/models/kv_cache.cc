#include "models/kv_cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>

#include "core/status.h"

namespace moxie {

void KvLayer::Store(void* row, size_t at, const float* src, size_t n) const {
  if (type == DType::kF32) {
    std::memcpy(static_cast<float*>(row) + at, src, n * sizeof(float));
    return;
  }
  uint16_t* dst = static_cast<uint16_t*>(row) + at;
  for (size_t i = 0; i < n; ++i) dst[i] = F32ToF16(src[i]);
}

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// Bytes of one position over all layers (K and V rows of every head).
size_t PositionBytes(const std::vector<KvLayerSpec>& specs, DType type) {
  size_t b = 0;
  for (const auto& s : specs) b += static_cast<size_t>(s.n_head) * static_cast<size_t>(s.k_dim + s.v_dim);
  return b * DTypeSize(type);
}

int Blocks(int max_ctx, int block) { return (max_ctx + block - 1) / block; }

}  // namespace

int KvCache::BlockPositions(const std::vector<KvLayerSpec>& specs, int max_ctx, DType type) {
  const size_t per_pos = PositionBytes(specs, type);
  if (per_pos == 0 || max_ctx <= 1) return 1;
  size_t min_row = SIZE_MAX;
  for (const auto& s : specs) {
    for (int d : {s.k_dim, s.v_dim}) {
      if (s.n_head > 0 && d > 0) min_row = std::min(min_row, static_cast<size_t>(d) * DTypeSize(type));
    }
  }
  constexpr size_t kHeadRun = size_t{16} << 10;
  size_t b = (kHugePage + per_pos - 1) / per_pos;
  if (min_row != SIZE_MAX) b = std::max(b, (kHeadRun + min_row - 1) / min_row);
  return static_cast<int>(std::min(b, static_cast<size_t>(max_ctx)));
}

KvCache::KvCache(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx, DType type, int block)
    : n_seq_(n_seq), max_ctx_(max_ctx), type_(type) {
  MOXIE_CHECK(IsKvType(type));
  MOXIE_CHECK(block >= 0);
  block_ = block > 0 ? std::min(block, std::max(1, max_ctx)) : BlockPositions(specs, max_ctx, type);
  const size_t elem = DTypeSize(type), b = static_cast<size_t>(block_);
  const size_t block_bytes = b * PositionBytes(specs, type);
  const size_t seq_bytes = static_cast<size_t>(Blocks(max_ctx, block_)) * block_bytes;
  bytes_ = Bytes(specs, n_seq, max_ctx, type, block_);
  if (bytes_ > 0) {
    // On a 2 MiB boundary (mapped with room to align), offered to transparent huge pages.
    map_bytes_ = bytes_ + kHugePage;
    void* p = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    map_ = static_cast<uint8_t*>(p);
    const auto addr = reinterpret_cast<uintptr_t>(p);
    storage_ = map_ + ((addr + kHugePage - 1) / kHugePage * kHugePage - addr);
    ::madvise(storage_, bytes_, MADV_HUGEPAGE);
  }
  size_t off = 0;  // within a block
  for (const auto& s : specs) {
    KvLayer l;
    l.type = type;
    l.n_head = s.n_head;
    l.k_dim = s.k_dim;
    l.v_dim = s.v_dim;
    l.max_ctx = max_ctx;
    l.block = block_;
    l.block_bytes = block_bytes;
    l.seq_bytes = seq_bytes;
    l.k = storage_ + off;
    off += b * static_cast<size_t>(s.n_head * s.k_dim) * elem;
    l.v = storage_ + off;
    off += b * static_cast<size_t>(s.n_head * s.v_dim) * elem;
    layers_.push_back(l);
  }
}

size_t KvCache::Bytes(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx, DType type, int block) {
  const int b = block > 0 ? std::min(block, std::max(1, max_ctx)) : BlockPositions(specs, max_ctx, type);
  return static_cast<size_t>(n_seq) * static_cast<size_t>(Blocks(max_ctx, b)) * static_cast<size_t>(b) *
         PositionBytes(specs, type);
}

void KvCache::CopyPrefix(int src, int dst, int n) {
  MOXIE_CHECK(src >= 0 && src < n_seq_ && dst >= 0 && dst < n_seq_ && n >= 0 && n <= max_ctx_);
  if (src == dst || n == 0) return;
  for (const KvLayer& l : layers_) {
    const size_t e = l.elem_bytes();
    for (int j = 0; j < n;) {
      const int end = std::min(n, l.RunEnd(j));
      const size_t count = static_cast<size_t>(end - j);
      for (int h = 0; h < l.n_head; ++h) {
        std::memcpy(l.K(dst, h, j), l.K(src, h, j), count * static_cast<size_t>(l.k_dim) * e);
        std::memcpy(l.V(dst, h, j), l.V(src, h, j), count * static_cast<size_t>(l.v_dim) * e);
      }
      j = end;
    }
  }
}

size_t KvCache::bytes_per_position() const {
  size_t b = 0;
  for (const KvLayer& l : layers_) b += static_cast<size_t>(l.n_head * (l.k_dim + l.v_dim)) * l.elem_bytes();
  return b;
}

KvCache::~KvCache() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
}

}  // namespace moxie
