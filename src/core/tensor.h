// TensorView: a non-owning view of a dense tensor that lives elsewhere (an mmap'd file, an arena).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moxie {

// Shapes are PyTorch order: dims[0] is the outermost, the last dim is contiguous.
// A Linear weight is [out, in], row-major, so row o holds the `in` weights of output o.
struct Shape {
  std::vector<int64_t> dims;

  size_t rank() const { return dims.size(); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
  bool operator==(const Shape& o) const { return dims == o.dims; }
  bool operator!=(const Shape& o) const { return dims != o.dims; }
  std::string ToString() const;  // "[64, 128]"
};

struct TensorView {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;

  bool empty() const { return data == nullptr; }
  int64_t numel() const { return shape.numel(); }
  size_t nbytes() const { return RowBytes(dtype, numel()); }
  int64_t dim(size_t i) const { return shape.dims[i]; }
  // Row `r` of a 2-D (or flattened leading dims) tensor.
  const void* row(int64_t r) const {
    return static_cast<const uint8_t*>(data) +
           static_cast<size_t>(r) * RowBytes(dtype, shape.dims.back());
  }
  // Slice `i` along dim 0 (e.g. expert i of a fused [E, out, in] tensor).
  TensorView Slice0(int64_t i) const;
};

}  // namespace moxie
