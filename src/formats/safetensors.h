// safetensors reader (https://github.com/huggingface/safetensors format), validated as strictly as
// the reference implementation: header length bounds, JSON well-formedness, no duplicate names,
// dtype/shape/size consistency, tensors tiling the data buffer with no gap or overlap.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "core/tensor.h"

namespace moxie {

struct SafetensorsTensor {
  std::string name;
  std::string dtype_name;  // as written in the file ("BF16", "F8_E4M3", ...)
  bool dtype_supported = false;  // true if `dtype` is meaningful (F32/F16/BF16/I32/I64/U8)
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t begin = 0;  // byte offsets relative to the data buffer, end exclusive
  uint64_t end = 0;
  const uint8_t* data = nullptr;  // points into the mapping

  TensorView view() const { return TensorView{data, dtype, shape}; }
};

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  // Maps and validates `path`. Errors name the file and, where one is at fault, the tensor.
  static Result<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // Parses an in-memory image (used by Open; the bytes must outlive the object).
  static Result<std::unique_ptr<SafetensorsFile>> Parse(const std::string& path,
                                                        const uint8_t* bytes, size_t size);

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* Find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Drops the whole pages of [p, p + n) from the resident set if they lie in this file's mapping
  // (MappedFile::Release; the bytes stay readable, faulted back from the file).
  void Release(const void* p, size_t n) const {
    if (file_ != nullptr) file_->Release(p, n);
  }

 private:
  std::string path_;
  std::unique_ptr<MappedFile> file_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes a safetensors file (F32/F16/BF16 tensors, data copied from the views). Used by tools and
// tests; tensors are written in the given order.
struct NamedTensor {
  std::string name;
  TensorView view;
};
Status WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors);

}  // namespace moxie
