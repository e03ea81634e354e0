#include "core/tensor.h"

namespace moxie {

std::string Shape::ToString() const {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

TensorView TensorView::Slice0(int64_t i) const {
  TensorView v;
  v.dtype = dtype;
  v.shape.dims.assign(shape.dims.begin() + 1, shape.dims.end());
  v.data = static_cast<const uint8_t*>(data) + static_cast<size_t>(i) * v.nbytes();
  return v;
}

}  // namespace moxie
