// KV cache storage: per layer, per sequence slot, one K row and one V row per position.
// Row widths are the attention block's choice (GQA: n_kv_head*head_dim; MLA: expanded per-head
// keys and values), so the cache is described by KvLayerSpec. Allocated once; the runtime owns it.
// Rows are stored as f32 (exact) or f16 (half the memory and half the attention reads; a value is
// rounded to nearest even once, when it is written, and attention widens it exactly).
// The storage is an anonymous mapping: a page becomes resident only when a position in it is
// first written, so a cache sized for many sequences and a long context costs memory only for
// what is used (attention reads only positions already written).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace moxie {

struct KvLayerSpec {
  int k_width = 0;  // elements per cached key row
  int v_width = 0;  // elements per cached value row
};

// Element types a KV cache can store.
inline bool IsKvType(DType t) { return t == DType::kF32 || t == DType::kF16; }

struct KvLayer {
  void* k = nullptr;
  void* v = nullptr;
  DType type = DType::kF32;  // kF32 or kF16
  int k_width = 0;
  int v_width = 0;
  int max_ctx = 0;
  size_t elem_bytes() const { return type == DType::kF16 ? 2 : 4; }
  // Address of a row (elements of `type`, k_width / v_width of them).
  void* KRow(int seq, int pos) const { return Row(k, seq, pos, k_width); }
  void* VRow(int seq, int pos) const { return Row(v, seq, pos, v_width); }
  // Writes n f32 values into a row from element `at` on, converting to the cache's type.
  void Store(void* row, size_t at, const float* src, size_t n) const;

 private:
  void* Row(void* base, int seq, int pos, int width) const {
    return static_cast<uint8_t*>(base) +
           (static_cast<size_t>(seq) * max_ctx + pos) * static_cast<size_t>(width) * elem_bytes();
  }
};

class KvCache {
 public:
  // type: kF32 or kF16 (anything else is a programming error). std::bad_alloc if out of memory.
  KvCache(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx, DType type = DType::kF32);
  // Bytes of the storage for these specs (what the constructor maps).
  static size_t Bytes(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx, DType type = DType::kF32);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;
  int n_seq() const { return n_seq_; }
  int max_ctx() const { return max_ctx_; }
  DType type() const { return type_; }
  KvLayer layer(int i) const { return layers_[static_cast<size_t>(i)]; }
  // Copies positions [0, n) of slot src into slot dst, every layer (n <= max_ctx).
  void CopyPrefix(int src, int dst, int n);
  // Bytes of one position's K and V rows over all layers (what attention reads per position).
  size_t bytes_per_position() const;
  size_t bytes() const { return bytes_; }

 private:
  int n_seq_;
  int max_ctx_;
  DType type_;
  uint8_t* storage_ = nullptr;
  size_t bytes_ = 0;
  std::vector<KvLayer> layers_;
};

}  // namespace moxie
