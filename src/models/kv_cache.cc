#include "models/kv_cache.h"

#include <sys/mman.h>

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

KvCache::KvCache(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx, DType type)
    : n_seq_(n_seq), max_ctx_(max_ctx), type_(type) {
  MOXIE_CHECK(IsKvType(type));
  const size_t slots = static_cast<size_t>(n_seq) * static_cast<size_t>(max_ctx);
  const size_t elem = DTypeSize(type);
  bytes_ = Bytes(specs, n_seq, max_ctx, type);
  if (bytes_ > 0) {
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    storage_ = static_cast<uint8_t*>(p);
  }
  size_t off = 0;
  for (const auto& s : specs) {
    KvLayer l;
    l.type = type;
    l.n_head = s.n_head;
    l.k_dim = s.k_dim;
    l.v_dim = s.v_dim;
    l.max_ctx = max_ctx;
    l.k = storage_ + off;
    off += slots * static_cast<size_t>(s.n_head * s.k_dim) * elem;
    l.v = storage_ + off;
    off += slots * static_cast<size_t>(s.n_head * s.v_dim) * elem;
    layers_.push_back(l);
  }
}

size_t KvCache::Bytes(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx, DType type) {
  const size_t slots = static_cast<size_t>(n_seq) * static_cast<size_t>(max_ctx);
  size_t elems = 0;
  for (const auto& s : specs) elems += slots * static_cast<size_t>(s.n_head * (s.k_dim + s.v_dim));
  return elems * DTypeSize(type);
}

void KvCache::CopyPrefix(int src, int dst, int n) {
  MOXIE_CHECK(src >= 0 && src < n_seq_ && dst >= 0 && dst < n_seq_ && n >= 0 && n <= max_ctx_);
  if (src == dst || n == 0) return;
  for (const KvLayer& l : layers_) {
    const size_t e = l.elem_bytes(), count = static_cast<size_t>(n);
    for (int h = 0; h < l.n_head; ++h) {
      std::memcpy(l.K(dst, h, 0), l.K(src, h, 0), count * static_cast<size_t>(l.k_dim) * e);
      std::memcpy(l.V(dst, h, 0), l.V(src, h, 0), count * static_cast<size_t>(l.v_dim) * e);
    }
  }
}

size_t KvCache::bytes_per_position() const {
  size_t b = 0;
  for (const KvLayer& l : layers_) b += static_cast<size_t>(l.n_head * (l.k_dim + l.v_dim)) * l.elem_bytes();
  return b;
}

KvCache::~KvCache() {
  if (storage_ != nullptr) ::munmap(storage_, bytes_);
}

}  // namespace moxie
