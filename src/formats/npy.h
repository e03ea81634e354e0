// NumPy .npy (format 1.0) for float32 arrays: what `moxie logits` writes and tests read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace moxie {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

Status WriteNpyF32(const std::string& path, const float* data, const std::vector<int64_t>& shape);
// Reads a little-endian float32 C-order array; anything else is an error naming the header.
Result<NpyArray> ReadNpyF32(const std::string& path);

}  // namespace moxie
