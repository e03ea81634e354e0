// GGUF (v2/v3) reader: header, metadata key/values of every type, tensor infos, alignment and the
// tensor data section, validated before use — every count, length and offset is checked against
// the file size, and every error names the byte offset or the tensor. Tensor data stays in the
// mapping (ggml layouts: moe-architectures.md §4.3/§4.4).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"

namespace moxie {

enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

struct GgufValue;
struct GgufArray {
  GgufType type = GgufType::kU8;
  std::vector<GgufValue> items;
};

struct GgufValue {
  GgufType type = GgufType::kU8;
  // Integers (signed or not) as int64/uint64, floats as double, bools, strings, arrays.
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> v;

  bool is_int() const;
  bool is_string() const { return type == GgufType::kString; }
  bool is_array() const { return type == GgufType::kArray; }
  // Value conversions; nullopt-like failures are reported by the typed getters of GgufFile.
  int64_t as_int() const;
  double as_float() const;
  const std::string& as_string() const { return std::get<std::string>(v); }
  const GgufArray& as_array() const { return std::get<GgufArray>(v); }
};

// ggml tensor element types (ids as in ggml.h) with their block geometry.
struct GgmlTypeInfo {
  const char* name;
  int block;       // elements per block
  int type_size;   // bytes per block
};
// nullptr for ids that are unknown or retired.
const GgmlTypeInfo* GgmlType(uint32_t id);

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the contiguous dimension
  uint32_t type = 0;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;
};

class GgufFile {
 public:
  static Result<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses an in-memory image (the bytes must outlive the object). `path` is for messages.
  static Result<std::unique_ptr<GgufFile>> Parse(const std::string& path, const uint8_t* data,
                                                 size_t size);

  const std::string& path() const { return path_; }
  const MappedFile& mapping() const { return *file_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& kv() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufValue* Find(const std::string& key) const;
  const GgufTensorInfo* FindTensor(const std::string& name) const;

  // Typed access; a key of the wrong type is an error naming it.
  Result<std::string> GetString(const std::string& key) const;
  Result<int64_t> GetInt(const std::string& key) const;
  int64_t GetIntOr(const std::string& key, int64_t def) const;
  bool GetBoolOr(const std::string& key, bool def) const;
  std::string GetStringOr(const std::string& key, const std::string& def) const;

 private:
  std::string path_;
  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

bool LooksLikeGguf(const std::string& path);  // regular file starting with "GGUF"

}  // namespace moxie
