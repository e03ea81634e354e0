// GGUF v3 writer, streaming: metadata and tensor infos are declared first, then the header is
// written and tensor data is appended in declaration order, so a writer never needs a whole
// model (or a whole tensor) in memory. Output goes to "<path>.part" and is renamed to <path>
// only by a successful Close(), so an interrupted run never leaves a truncated file under the
// final name. Layout as the reader (gguf.h) and llama.cpp expect: little-endian, keys in
// insertion order, tensor data offsets aligned to `general.alignment` (32 unless set).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "formats/gguf.h"

namespace moxie {

class GgufWriter {
 public:
  GgufWriter() = default;
  ~GgufWriter();  // an unfinished file is removed
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Metadata. Setting a key again replaces its value in place (order of first insertion kept).
  void Set(const std::string& key, GgufValue v);
  void SetString(const std::string& key, const std::string& s);
  void SetU32(const std::string& key, uint32_t x);
  void SetI32(const std::string& key, int32_t x);
  void SetF32(const std::string& key, float x);
  void SetBool(const std::string& key, bool b);
  void SetStrings(const std::string& key, const std::vector<std::string>& a);
  void SetI32s(const std::string& key, const std::vector<int32_t>& a);
  void SetF32s(const std::string& key, const std::vector<float>& a);
  const std::vector<std::pair<std::string, GgufValue>>& kv() const { return kv_; }

  // Declares a tensor (ggml order: ne[0] is the contiguous dimension). Errors: duplicate name,
  // unknown type, ne[0] not a multiple of the type's block size, a non-positive dimension.
  Status AddTensor(const std::string& name, std::vector<int64_t> ne, uint32_t ggml_type);
  size_t n_tensors() const { return tensors_.size(); }
  const GgufTensorInfo& tensor(size_t i) const { return tensors_[i]; }
  uint64_t data_bytes() const { return data_size_; }  // sum of tensor sizes incl. padding

  // The metadata alone as an in-memory GGUF image (no tensors), e.g. to build a tokenizer from
  // metadata about to be written (GgufFile::Parse reads it).
  Result<std::vector<uint8_t>> MetadataImage();

  // Creates <path>.part and writes header, metadata and tensor infos. Refuses an existing <path>
  // unless `overwrite`.
  Status Open(const std::string& path, bool overwrite);
  // Appends bytes of the current tensor (in declaration order); may be called repeatedly with
  // pieces of a tensor and may span tensors. Writing more than declared is an error.
  Status Write(const void* data, size_t n);
  // Index of the tensor the next Write() continues, or n_tensors() when all data is written.
  size_t current_tensor() const { return cur_; }
  // Checks that every tensor was written in full, flushes, renames <path>.part to <path>.
  Status Close();

 private:
  Status Put(const void* p, size_t n);
  Status PutString(const std::string& s);
  Status PutValue(const GgufValue& v);
  Status Pad();
  Status PutHeader(bool with_tensors);

  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<GgufTensorInfo> tensors_;
  uint64_t alignment_ = 32;
  uint64_t data_size_ = 0;
  std::string path_, part_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;       // bytes written to the file
  uint64_t data_start_ = 0;
  size_t cur_ = 0;         // tensor being written
  uint64_t cur_done_ = 0;  // bytes of it written
  std::vector<char> buf_;
  std::vector<uint8_t>* sink_ = nullptr;  // MetadataImage() writes here instead of the file
};

}  // namespace moxie
