// Read-only memory-mapped file. Weights used as stored are read straight from the mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace moxie {

class MappedFile {
 public:
  // Maps the whole file read-only. An empty file maps to size 0 with a null data pointer.
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the whole pages inside [p, p + n) from this process's resident set (the page cache
  // keeps them; a later read faults them back in). For data that was copied elsewhere. Ranges
  // outside the mapping are ignored.
  void Release(const void* p, size_t n) const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) text file such as config.json.
Result<std::string> ReadTextFile(const std::string& path);

}  // namespace moxie
