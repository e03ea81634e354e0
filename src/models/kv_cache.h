// KV cache storage: per layer, per sequence slot and per K/V head, one key and one value row per
// position. The attention block chooses the heads and their widths (GQA: n_kv_head heads of
// head_dim; MLA: expanded per-head keys and values), described by KvLayerSpec. Allocated once;
// the runtime owns it.
//
// Layout: [seq][block][layer][K|V][head][pos in block][dim], blocks of `block` positions. Within a
// block one head's rows are contiguous (attention streams each head's keys and values in runs of
// a block: a position-major layout made every position of a head a separate page-crossing access,
// and at 1024 positions of OLMoE's shape attention took about half of a decode step that way). A
// block holds every layer, so a sequence's memory grows a block at a time. Blocks are sized to
// >= 2 MiB and >= 16 KiB per head run (KvCache::BlockPositions) and the storage is offered to
// transparent huge pages: on 4 KiB pages each position touched a page per (layer, K/V, head), and
// in decode on a VM the page walks cost more than the bytes (model A Q8_0, 512 positions deep,
// attention 37-40 % of a decode step on 4 KiB pages, 28-31 % on huge ones).
// Rows are stored as f32 (exact) or f16 (half the memory and half the attention reads; a value is
// rounded to nearest even once, when it is written, and attention widens it exactly).
// The storage is an anonymous mapping: a block becomes resident only when a position in it is
// first written, so a cache sized for many sequences and a long context costs memory only for
// what is used (attention reads only positions already written).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace moxie {

struct KvLayerSpec {
  int n_head = 0;  // K/V heads
  int k_dim = 0;   // elements per head of a cached key row
  int v_dim = 0;   // elements per head of a cached value row
};

// Element types a KV cache can store.
inline bool IsKvType(DType t) { return t == DType::kF32 || t == DType::kF16; }

struct KvLayer {
  void* k = nullptr;
  void* v = nullptr;
  DType type = DType::kF32;  // kF32 or kF16
  int n_head = 0;
  int k_dim = 0;
  int v_dim = 0;
  int max_ctx = 0;
  int block = 1;           // positions per block
  size_t block_bytes = 0;  // from a block of a sequence to its next
  size_t seq_bytes = 0;    // from a sequence's first block to the next sequence's
  size_t elem_bytes() const { return DTypeSize(type); }
  // Head `head`'s key / value row at `pos` of sequence `seq` (k_dim / v_dim elements of `type`);
  // the rows of later positions follow it, k_dim / v_dim elements apart, up to RunEnd(pos).
  void* K(int seq, int head, int pos) const { return Row(k, seq, head, pos, k_dim); }
  void* V(int seq, int head, int pos) const { return Row(v, seq, head, pos, v_dim); }
  // The first position after `pos` whose rows do not follow pos's (the end of its block).
  int RunEnd(int pos) const { return (pos / block + 1) * block; }
  // Writes n f32 values into a row from element `at` on, converting to the cache's type.
  void Store(void* row, size_t at, const float* src, size_t n) const;

 private:
  void* Row(void* base, int seq, int head, int pos, int dim) const {
    const size_t b = static_cast<size_t>(block);
    const size_t at = static_cast<size_t>(seq) * seq_bytes + static_cast<size_t>(pos) / b * block_bytes +
                      (static_cast<size_t>(head) * b + static_cast<size_t>(pos) % b) * static_cast<size_t>(dim) *
                          elem_bytes();
    return static_cast<uint8_t*>(base) + at;
  }
};

class KvCache {
 public:
  // type: kF32 or kF16 (anything else is a programming error). std::bad_alloc if out of memory.
  // block: positions per block (0 = BlockPositions).
  KvCache(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx, DType type = DType::kF32, int block = 0);
  // Bytes of the storage for these specs (what the constructor maps, less alignment).
  static size_t Bytes(const std::vector<KvLayerSpec>& specs, int n_seq, int max_ctx, DType type = DType::kF32,
                      int block = 0);
  // The automatic block: the fewest positions that fill 2 MiB (a huge page) over all layers and
  // give each head a run of >= 16 KiB, at most max_ctx.
  static int BlockPositions(const std::vector<KvLayerSpec>& specs, int max_ctx, DType type);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;
  int n_seq() const { return n_seq_; }
  int max_ctx() const { return max_ctx_; }
  int block() const { return block_; }
  DType type() const { return type_; }
  KvLayer layer(int i) const { return layers_[static_cast<size_t>(i)]; }
  size_t bytes() const { return bytes_; }
  // Copies positions [0, n) of slot src into slot dst, every layer (n <= max_ctx).
  void CopyPrefix(int src, int dst, int n);
  // Bytes of one position's K and V rows over all layers (what attention reads per position).
  size_t bytes_per_position() const;

 private:
  int n_seq_;
  int max_ctx_;
  DType type_;
  int block_ = 1;
  uint8_t* map_ = nullptr;  // the mapping (storage_ rounded up to 2 MiB inside it)
  size_t map_bytes_ = 0;
  uint8_t* storage_ = nullptr;
  size_t bytes_ = 0;
  std::vector<KvLayer> layers_;
};

}  // namespace moxie
