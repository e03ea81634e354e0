// Arena: scratch memory sized once (at model load, for the worst batch) and reused every step, so
// that nothing allocates in the decode loop. Blocks declare their needs up front (ScratchFloats)
// and take slices with Alloc; the caller resets the arena between blocks.
#pragma once

#include <cstddef>
#include <memory>

#include "core/status.h"

namespace moxie {

class Arena {
 public:
  static constexpr size_t kAlign = 16;  // floats (64 bytes)
  static size_t Round(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

  // Uninitialised: pages the worst-case batch never touches stay out of the resident set.
  void Reserve(size_t n_floats) {
    size_ = n_floats + kAlign;
    buf_.reset(new float[size_]);
    used_ = 0;
  }
  size_t capacity() const { return size_; }
  // Returns `n` floats (contents undefined). Exceeding the reserved size is a bug in a block's
  // ScratchFloats, never a user error.
  float* Alloc(size_t n) {
    const size_t need = Round(n);
    MOXIE_CHECK(used_ + need <= size_);
    float* p = buf_.get() + used_;
    used_ += need;
    return p;
  }
  template <typename T>
  T* AllocAs(size_t n) {
    static_assert(sizeof(T) <= sizeof(float) && alignof(T) <= alignof(float));
    return reinterpret_cast<T*>(Alloc(n));
  }
  size_t mark() const { return used_; }
  void Release(size_t mark) { used_ = mark; }
  void Reset() { used_ = 0; }

 private:
  std::unique_ptr<float[]> buf_;
  size_t size_ = 0;
  size_t used_ = 0;
};

}  // namespace moxie
