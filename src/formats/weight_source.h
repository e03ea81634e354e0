// WeightSource: named tensors from a checkpoint, whatever its format (HF safetensors now, GGUF
// later). Model loaders only see this interface.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"

namespace moxie {

struct WeightRef {
  std::string name;
  TensorView view;         // dtype valid only if dtype_supported
  std::string dtype_name;  // as stored ("BF16", "F8_E4M3", ...)
  bool dtype_supported = false;
  std::string file;        // file that holds it, for messages
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // nullptr if absent. The pointer and the data stay valid for the source's lifetime.
  virtual const WeightRef* Find(const std::string& name) const = 0;
  virtual std::vector<std::string> Names() const = 0;
  virtual std::string Describe() const = 0;  // e.g. the folder path
  // Computed (not stored) tensors, e.g. the random weights of `moxie synth`, have view.data ==
  // nullptr and produce their rows here, as f32 (view.dtype is F32). Stored sources never get
  // this call.
  virtual void FillRowF32(const WeightRef& ref, int64_t row, float* out) const {
    (void)ref, (void)row, (void)out;
  }
  // The loader copied this tensor's bytes elsewhere (e.g. re-laid out for the kernels): a mapped
  // source may drop them from the resident set. The view stays readable.
  virtual void Release(const WeightRef& ref) const { (void)ref; }
  // Whether Release drops the bytes (so a copy does not double the resident set).
  virtual bool CanRelease() const { return false; }
};

}  // namespace moxie
