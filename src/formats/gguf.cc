#include "formats/gguf.h"

#include <cstdint>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

namespace moxie {

namespace {

constexpr GgmlTypeInfo kUnknown{nullptr, 0, 0};

// ids 0..41 (moe-architectures.md §4.3); retired ids have a null name.
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {"F32", 1, 4},        {"F16", 1, 2},       {"Q4_0", 32, 18},    {"Q4_1", 32, 20},
    kUnknown,             kUnknown,            {"Q5_0", 32, 22},    {"Q5_1", 32, 24},
    {"Q8_0", 32, 34},     {"Q8_1", 32, 36},    {"Q2_K", 256, 84},   {"Q3_K", 256, 110},
    {"Q4_K", 256, 144},   {"Q5_K", 256, 176},  {"Q6_K", 256, 210},  {"Q8_K", 256, 292},
    {"IQ2_XXS", 256, 66}, {"IQ2_XS", 256, 74}, {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
    {"IQ4_NL", 32, 18},   {"IQ3_S", 256, 110}, {"IQ2_S", 256, 82},  {"IQ4_XS", 256, 136},
    {"I8", 1, 1},         {"I16", 1, 2},       {"I32", 1, 4},       {"I64", 1, 8},
    {"F64", 1, 8},        {"IQ1_M", 256, 56},  {"BF16", 1, 2},      kUnknown,
    kUnknown,             kUnknown,            {"TQ1_0", 256, 54},  {"TQ2_0", 256, 66},
    kUnknown,             kUnknown,            kUnknown,            {"MXFP4", 32, 17},
    {"NVFP4", 64, 36},    {"Q1_0", 128, 18},
};

// Bounds-checked little-endian reader over the file image.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* p, size_t n) : path_(path), p_(p), n_(n) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }

  Status Need(size_t k, const char* what) const {
    if (k > n_ - pos_) {
      return InvalidFormat(path_ + ": " + what + " at byte " + std::to_string(pos_) + " needs " +
                           std::to_string(k) + " bytes but the file ends at " +
                           std::to_string(n_) + " (truncated or corrupt)");
    }
    return Status::Ok();
  }
  template <typename T>
  Result<T> Read(const char* what) {
    MOXIE_RETURN_IF_ERROR(Need(sizeof(T), what));
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  Result<std::string> String(const char* what) {
    const size_t at = pos_;
    MOXIE_ASSIGN_OR_RETURN(uint64_t len, Read<uint64_t>(what));
    if (len > remaining()) {
      return InvalidFormat(path_ + ": " + what + " at byte " + std::to_string(at) +
                           " has length " + std::to_string(len) + ", beyond the end of the file");
    }
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }
  const std::string& path() const { return path_; }

 private:
  const std::string& path_;
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

size_t ScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
    case GgufType::kU16: case GgufType::kI16: return 2;
    case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
    case GgufType::kU64: case GgufType::kI64: case GgufType::kF64: return 8;
    default: return 0;
  }
}

Result<GgufValue> ReadValue(Cursor& c, GgufType type, int depth);

Result<GgufValue> ReadScalar(Cursor& c, GgufType type) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::kU8: { MOXIE_ASSIGN_OR_RETURN(uint8_t x, c.Read<uint8_t>("u8 value")); v.v = uint64_t{x}; break; }
    case GgufType::kI8: { MOXIE_ASSIGN_OR_RETURN(int8_t x, c.Read<int8_t>("i8 value")); v.v = int64_t{x}; break; }
    case GgufType::kU16: { MOXIE_ASSIGN_OR_RETURN(uint16_t x, c.Read<uint16_t>("u16 value")); v.v = uint64_t{x}; break; }
    case GgufType::kI16: { MOXIE_ASSIGN_OR_RETURN(int16_t x, c.Read<int16_t>("i16 value")); v.v = int64_t{x}; break; }
    case GgufType::kU32: { MOXIE_ASSIGN_OR_RETURN(uint32_t x, c.Read<uint32_t>("u32 value")); v.v = uint64_t{x}; break; }
    case GgufType::kI32: { MOXIE_ASSIGN_OR_RETURN(int32_t x, c.Read<int32_t>("i32 value")); v.v = int64_t{x}; break; }
    case GgufType::kU64: { MOXIE_ASSIGN_OR_RETURN(uint64_t x, c.Read<uint64_t>("u64 value")); v.v = x; break; }
    case GgufType::kI64: { MOXIE_ASSIGN_OR_RETURN(int64_t x, c.Read<int64_t>("i64 value")); v.v = x; break; }
    case GgufType::kF32: { MOXIE_ASSIGN_OR_RETURN(float x, c.Read<float>("f32 value")); v.v = double{x}; break; }
    case GgufType::kF64: { MOXIE_ASSIGN_OR_RETURN(double x, c.Read<double>("f64 value")); v.v = x; break; }
    case GgufType::kBool: {
      const size_t at = c.pos();
      MOXIE_ASSIGN_OR_RETURN(uint8_t x, c.Read<uint8_t>("bool value"));
      if (x > 1) {
        return InvalidFormat(c.path() + ": bool value at byte " + std::to_string(at) + " is " +
                             std::to_string(x) + " (must be 0 or 1)");
      }
      v.v = x == 1;
      break;
    }
    case GgufType::kString: { MOXIE_ASSIGN_OR_RETURN(std::string s, c.String("string value")); v.v = std::move(s); break; }
    default:
      return InvalidFormat(c.path() + ": unknown value type " +
                           std::to_string(static_cast<uint32_t>(type)) + " before byte " +
                           std::to_string(c.pos()));
  }
  return v;
}

Result<GgufValue> ReadValue(Cursor& c, GgufType type, int depth) {
  if (type != GgufType::kArray) return ReadScalar(c, type);
  if (depth > 4) return InvalidFormat(c.path() + ": arrays nested too deeply at byte " + std::to_string(c.pos()));
  const size_t at = c.pos();
  MOXIE_ASSIGN_OR_RETURN(uint32_t et, c.Read<uint32_t>("array element type"));
  MOXIE_ASSIGN_OR_RETURN(uint64_t count, c.Read<uint64_t>("array length"));
  const GgufType elem = static_cast<GgufType>(et);
  // Every element takes at least one byte (8 for a string's length): bound the count by the file.
  const size_t min_elem = elem == GgufType::kString ? 8 : elem == GgufType::kArray ? 12 : ScalarSize(elem);
  if (min_elem == 0) {
    return InvalidFormat(c.path() + ": array at byte " + std::to_string(at) +
                         " has unknown element type " + std::to_string(et));
  }
  if (count > c.remaining() / min_elem) {
    return InvalidFormat(c.path() + ": array at byte " + std::to_string(at) + " claims " +
                         std::to_string(count) + " elements, more than the rest of the file holds");
  }
  GgufValue v;
  v.type = GgufType::kArray;
  GgufArray arr;
  arr.type = elem;
  arr.items.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    MOXIE_ASSIGN_OR_RETURN(GgufValue x, ReadValue(c, elem, depth + 1));
    arr.items.push_back(std::move(x));
  }
  v.v = std::move(arr);
  return v;
}

}  // namespace

bool GgufValue::is_int() const {
  return std::holds_alternative<uint64_t>(v) || std::holds_alternative<int64_t>(v);
}

int64_t GgufValue::as_int() const {
  if (auto* u = std::get_if<uint64_t>(&v)) return static_cast<int64_t>(*u);
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  if (auto* b = std::get_if<bool>(&v)) return *b ? 1 : 0;
  return 0;
}

double GgufValue::as_float() const {
  if (auto* d = std::get_if<double>(&v)) return *d;
  return static_cast<double>(as_int());
}

const GgmlTypeInfo* GgmlType(uint32_t id) {
  if (id >= sizeof(kGgmlTypes) / sizeof(kGgmlTypes[0])) return nullptr;
  return kGgmlTypes[id].name ? &kGgmlTypes[id] : nullptr;
}

bool LooksLikeGguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char m[4] = {};
  return in.read(m, 4) && std::memcmp(m, "GGUF", 4) == 0;
}

Result<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  MOXIE_ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(path));
  MOXIE_ASSIGN_OR_RETURN(auto f, Parse(path, mapped->data(), mapped->size()));
  f->file_ = std::move(mapped);
  return f;
}

Result<std::unique_ptr<GgufFile>> GgufFile::Parse(const std::string& path, const uint8_t* data,
                                                  size_t size) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  Cursor c(f->path_, data, size);
  MOXIE_RETURN_IF_ERROR(c.Need(4, "magic"));
  if (std::memcmp(data, "GGUF", 4) != 0) {
    return InvalidFormat(path + ": bad magic (not a GGUF file): expected \"GGUF\" at byte 0");
  }
  MOXIE_RETURN_IF_ERROR(c.Read<uint32_t>("magic").status());
  MOXIE_ASSIGN_OR_RETURN(uint32_t version, c.Read<uint32_t>("version"));
  if (version == 1) return Unsupported(path + ": GGUF version 1 is not supported (use v2 or v3)");
  if (version != 2 && version != 3) {
    if ((version & 0xFFFF) == 0) {
      return Unsupported(path + ": GGUF version " + std::to_string(version) +
                         " looks big-endian; only little-endian files are supported");
    }
    return Unsupported(path + ": GGUF version " + std::to_string(version) +
                       " is not supported (2 or 3)");
  }
  f->version_ = version;
  MOXIE_ASSIGN_OR_RETURN(uint64_t n_tensors, c.Read<uint64_t>("tensor count"));
  MOXIE_ASSIGN_OR_RETURN(uint64_t n_kv, c.Read<uint64_t>("metadata count"));
  // A key/value needs >= 12 bytes and a tensor info >= 24: bound both counts by the file size.
  if (n_kv > c.remaining() / 12) {
    return InvalidFormat(path + ": metadata count " + std::to_string(n_kv) +
                         " is more than the file can hold");
  }
  if (n_tensors > c.remaining() / 24) {
    return InvalidFormat(path + ": tensor count " + std::to_string(n_tensors) +
                         " is more than the file can hold");
  }
  for (uint64_t i = 0; i < n_kv; ++i) {
    const size_t at = c.pos();
    MOXIE_ASSIGN_OR_RETURN(std::string key, c.String("metadata key"));
    MOXIE_ASSIGN_OR_RETURN(uint32_t type, c.Read<uint32_t>("metadata value type"));
    MOXIE_ASSIGN_OR_RETURN(GgufValue v, ReadValue(c, static_cast<GgufType>(type), 0));
    if (!f->kv_.emplace(key, std::move(v)).second) {
      return InvalidFormat(path + ": duplicate metadata key '" + key + "' at byte " + std::to_string(at));
    }
  }
  if (const GgufValue* a = f->Find("general.alignment")) {
    const int64_t al = a->is_int() ? a->as_int() : 0;
    if (al <= 0 || (al & (al - 1)) != 0 || al > (1 << 20)) {
      return InvalidFormat(path + ": general.alignment must be a power of two, got " + std::to_string(al));
    }
    f->alignment_ = static_cast<uint64_t>(al);
  }
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const size_t at = c.pos();
    GgufTensorInfo t;
    MOXIE_ASSIGN_OR_RETURN(t.name, c.String("tensor name"));
    if (t.name.size() > 255) {
      return InvalidFormat(path + ": tensor name at byte " + std::to_string(at) + " is " +
                           std::to_string(t.name.size()) + " bytes long");
    }
    MOXIE_ASSIGN_OR_RETURN(uint32_t n_dims, c.Read<uint32_t>("tensor n_dims"));
    if (n_dims == 0 || n_dims > 4) {
      return InvalidFormat(path + ": tensor '" + t.name + "' has " + std::to_string(n_dims) +
                           " dimensions (1 to 4 allowed)");
    }
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      MOXIE_ASSIGN_OR_RETURN(uint64_t ne, c.Read<uint64_t>("tensor dimension"));
      if (ne == 0 || ne > (uint64_t{1} << 40) || __builtin_mul_overflow(numel, ne, &numel)) {
        return InvalidFormat(path + ": tensor '" + t.name + "' has an invalid dimension " +
                             std::to_string(ne));
      }
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    MOXIE_ASSIGN_OR_RETURN(t.type, c.Read<uint32_t>("tensor type"));
    MOXIE_ASSIGN_OR_RETURN(t.offset, c.Read<uint64_t>("tensor offset"));
    const GgmlTypeInfo* ti = GgmlType(t.type);
    if (ti == nullptr) {
      return Unsupported(path + ": tensor '" + t.name + "' has unknown ggml type " + std::to_string(t.type));
    }
    if (t.ne[0] % ti->block != 0) {
      return InvalidFormat(path + ": tensor '" + t.name + "' row length " + std::to_string(t.ne[0]) +
                           " is not a multiple of the " + ti->name + " block size " +
                           std::to_string(ti->block));
    }
    if (t.offset % f->alignment_ != 0) {
      return InvalidFormat(path + ": tensor '" + t.name + "' offset " + std::to_string(t.offset) +
                           " is not a multiple of the alignment " + std::to_string(f->alignment_));
    }
    // numel fits an int64 (Shape::numel) and the byte size must not wrap: a wrapped size would
    // pass the bounds check below for a tensor far larger than the file.
    if (numel > static_cast<uint64_t>(INT64_MAX) ||
        __builtin_mul_overflow(numel / static_cast<uint64_t>(ti->block), static_cast<uint64_t>(ti->type_size),
                               &t.nbytes)) {
      return InvalidFormat(path + ": tensor '" + t.name + "' has " + std::to_string(numel) +
                           " elements: its size in bytes overflows");
    }
    if (f->tensor_index_.count(t.name) != 0) {
      return InvalidFormat(path + ": duplicate tensor name '" + t.name + "'");
    }
    f->tensor_index_[t.name] = f->tensors_.size();
    f->tensors_.push_back(std::move(t));
  }
  const uint64_t data_start = (c.pos() + f->alignment_ - 1) / f->alignment_ * f->alignment_;
  if (!f->tensors_.empty() && data_start > size) {
    return InvalidFormat(path + ": the tensor data section (byte " + std::to_string(data_start) +
                         ") starts beyond the end of the file");
  }
  const uint64_t data_size = size > data_start ? size - data_start : 0;
  // Tensors must lie inside the data section and must not overlap.
  std::vector<const GgufTensorInfo*> order;
  for (auto& t : f->tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      return InvalidFormat(path + ": tensor '" + t.name + "' data [" + std::to_string(t.offset) +
                           ", " + std::to_string(t.offset + t.nbytes) +
                           ") lies beyond the end of the file (data section holds " +
                           std::to_string(data_size) + " bytes)");
    }
    t.data = data + data_start + t.offset;
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes) {
      return InvalidFormat(path + ": tensors '" + order[i - 1]->name + "' and '" + order[i]->name +
                           "' overlap");
    }
  }
  return f;
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<std::string> GgufFile::GetString(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return NotFound(path_ + ": missing metadata key '" + key + "'");
  if (!v->is_string()) return InvalidFormat(path_ + ": metadata key '" + key + "' is not a string");
  return v->as_string();
}

Result<int64_t> GgufFile::GetInt(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return NotFound(path_ + ": missing metadata key '" + key + "'");
  if (!v->is_int()) return InvalidFormat(path_ + ": metadata key '" + key + "' is not an integer");
  return v->as_int();
}

int64_t GgufFile::GetIntOr(const std::string& key, int64_t def) const {
  const GgufValue* v = Find(key);
  return v != nullptr && v->is_int() ? v->as_int() : def;
}

bool GgufFile::GetBoolOr(const std::string& key, bool def) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return def;
  if (auto* b = std::get_if<bool>(&v->v)) return *b;
  return v->is_int() ? v->as_int() != 0 : def;
}

std::string GgufFile::GetStringOr(const std::string& key, const std::string& def) const {
  const GgufValue* v = Find(key);
  return v != nullptr && v->is_string() ? v->as_string() : def;
}

}  // namespace moxie
