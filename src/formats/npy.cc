#include "formats/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "core/mapped_file.h"

namespace moxie {

Status WriteNpyF32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
    if (i + 1 < shape.size()) dict += " ";
    n *= shape[i];
  }
  dict += "), }";
  // magic(6) + version(2) + len(2) + dict + '\n' padded to a multiple of 64
  size_t total = 10 + dict.size() + 1;
  const size_t pad = (64 - total % 64) % 64;
  dict.append(pad, ' ');
  dict += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return IoError(path + ": cannot open for writing");
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t hl = static_cast<uint16_t>(dict.size());
  out.write(reinterpret_cast<const char*>(&hl), 2);
  out.write(dict.data(), static_cast<std::streamsize>(dict.size()));
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * 4));
  if (!out) return IoError(path + ": write failed");
  return Status::Ok();
}

Result<NpyArray> ReadNpyF32(const std::string& path) {
  MOXIE_ASSIGN_OR_RETURN(std::string bytes, ReadTextFile(path));
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) {
    return InvalidFormat(path + ": not a .npy file");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t hl = 0, off = 0;
  if (major == 1) {
    hl = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    off = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return InvalidFormat(path + ": truncated header");
    uint32_t h32;
    std::memcpy(&h32, bytes.data() + 8, 4);
    hl = h32;
    off = 12;
  } else {
    return InvalidFormat(path + ": unsupported .npy version " + std::to_string(major));
  }
  if (off + hl > bytes.size()) return InvalidFormat(path + ": header beyond file");
  const std::string dict = bytes.substr(off, hl);
  if (dict.find("'descr': '<f4'") == std::string::npos) {
    return Unsupported(path + ": only little-endian float32 is supported: " + dict);
  }
  if (dict.find("'fortran_order': False") == std::string::npos) {
    return Unsupported(path + ": Fortran order not supported");
  }
  const size_t a = dict.find('('), b = dict.find(')');
  if (a == std::string::npos || b == std::string::npos || b < a) {
    return InvalidFormat(path + ": no shape in header");
  }
  NpyArray arr;
  std::stringstream ss(dict.substr(a + 1, b - a - 1));
  std::string tok;
  int64_t n = 1;
  while (std::getline(ss, tok, ',')) {
    if (tok.find_first_not_of(" ") == std::string::npos) continue;
    const int64_t d = std::stoll(tok);
    arr.shape.push_back(d);
    n *= d;
  }
  const size_t data_off = off + hl;
  if (data_off + static_cast<size_t>(n) * 4 != bytes.size()) {
    return InvalidFormat(path + ": data size does not match the shape");
  }
  arr.data.resize(static_cast<size_t>(n));
  std::memcpy(arr.data.data(), bytes.data() + data_off, static_cast<size_t>(n) * 4);
  return arr;
}

}  // namespace moxie
