#include "models/kv_cache.h"

namespace moxie {

KvCache::KvCache(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx)
    : n_seq_(n_seq), max_ctx_(max_ctx) {
  const size_t slots = static_cast<size_t>(n_seq) * static_cast<size_t>(max_ctx);
  size_t total = 0;
  for (const auto& s : specs) total += slots * static_cast<size_t>(s.k_width + s.v_width);
  storage_.assign(total, 0.f);
  size_t off = 0;
  for (const auto& s : specs) {
    KvLayer l;
    l.k_width = s.k_width;
    l.v_width = s.v_width;
    l.max_ctx = max_ctx;
    l.k = storage_.data() + off;
    off += slots * static_cast<size_t>(s.k_width);
    l.v = storage_.data() + off;
    off += slots * static_cast<size_t>(s.v_width);
    layers_.push_back(l);
  }
}

}  // namespace moxie
