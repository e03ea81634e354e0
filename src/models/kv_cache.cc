#include "models/kv_cache.h"

#include <sys/mman.h>

#include <new>

namespace moxie {

KvCache::KvCache(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx)
    : n_seq_(n_seq), max_ctx_(max_ctx) {
  const size_t slots = static_cast<size_t>(n_seq) * static_cast<size_t>(max_ctx);
  const size_t total = Bytes(specs, n_seq, max_ctx) / sizeof(float);
  n_floats_ = total;
  if (total > 0) {
    void* p = ::mmap(nullptr, total * sizeof(float), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    storage_ = static_cast<float*>(p);
  }
  size_t off = 0;
  for (const auto& s : specs) {
    KvLayer l;
    l.k_width = s.k_width;
    l.v_width = s.v_width;
    l.max_ctx = max_ctx;
    l.k = storage_ + off;
    off += slots * static_cast<size_t>(s.k_width);
    l.v = storage_ + off;
    off += slots * static_cast<size_t>(s.v_width);
    layers_.push_back(l);
  }
}

size_t KvCache::Bytes(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx) {
  const size_t slots = static_cast<size_t>(n_seq) * static_cast<size_t>(max_ctx);
  size_t floats = 0;
  for (const auto& s : specs) floats += slots * static_cast<size_t>(s.k_width + s.v_width);
  return floats * sizeof(float);
}

KvCache::~KvCache() {
  if (storage_ != nullptr) ::munmap(storage_, n_floats_ * sizeof(float));
}

}  // namespace moxie
