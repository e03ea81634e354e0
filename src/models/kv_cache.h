// KV cache storage: per layer, per sequence slot, one K row and one V row per position.
// Row widths are the attention block's choice (GQA: n_kv_head*head_dim; MLA: expanded per-head
// keys and values), so the cache is described by KvLayerSpec. Allocated once; the runtime owns it.
// The storage is an anonymous mapping: a page becomes resident only when a position in it is
// first written, so a cache sized for many sequences and a long context costs memory only for
// what is used (attention reads only positions already written).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moxie {

struct KvLayerSpec {
  int k_width = 0;  // floats per cached key row
  int v_width = 0;  // floats per cached value row
};

struct KvLayer {
  float* k = nullptr;
  float* v = nullptr;
  int k_width = 0;
  int v_width = 0;
  int max_ctx = 0;
  float* KRow(int seq, int pos) const {
    return k + (static_cast<size_t>(seq) * max_ctx + pos) * static_cast<size_t>(k_width);
  }
  float* VRow(int seq, int pos) const {
    return v + (static_cast<size_t>(seq) * max_ctx + pos) * static_cast<size_t>(v_width);
  }
};

class KvCache {
 public:
  KvCache(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx);  // std::bad_alloc if out of memory
  // Bytes of the storage for these specs (what the constructor maps).
  static size_t Bytes(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;
  int n_seq() const { return n_seq_; }
  int max_ctx() const { return max_ctx_; }
  KvLayer layer(int i) const { return layers_[static_cast<size_t>(i)]; }
  size_t bytes() const { return n_floats_ * sizeof(float); }

 private:
  int n_seq_;
  int max_ctx_;
  float* storage_ = nullptr;
  size_t n_floats_ = 0;
  std::vector<KvLayer> layers_;
};

}  // namespace moxie
