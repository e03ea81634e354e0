#include "formats/safetensors.h"
#include "formats/json_parse.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

namespace moxie {
namespace {

using json = nlohmann::json;

struct DTypeSpec {
  const char* name;
  int bits;
  bool supported;
  DType dtype;
};

// Every dtype the safetensors spec defines; only some are computable here.
constexpr DTypeSpec kDTypes[] = {
    {"BOOL", 8, false, DType::kU8},        {"F4", 4, false, DType::kU8},
    {"F6_E2M3", 6, false, DType::kU8},     {"F6_E3M2", 6, false, DType::kU8},
    {"U8", 8, true, DType::kU8},           {"I8", 8, false, DType::kU8},
    {"F8_E5M2", 8, false, DType::kU8},     {"F8_E4M3", 8, false, DType::kU8},
    {"F8_E8M0", 8, false, DType::kU8},     {"F8_E4M3FNUZ", 8, false, DType::kU8},
    {"F8_E5M2FNUZ", 8, false, DType::kU8}, {"I16", 16, false, DType::kU8},
    {"U16", 16, false, DType::kU8},        {"F16", 16, true, DType::kF16},
    {"BF16", 16, true, DType::kBF16},      {"I32", 32, true, DType::kI32},
    {"U32", 32, false, DType::kU8},        {"F32", 32, true, DType::kF32},
    {"C64", 64, false, DType::kU8},        {"F64", 64, false, DType::kU8},
    {"I64", 64, true, DType::kI64},        {"U64", 64, false, DType::kU8},
};

const DTypeSpec* FindDType(const std::string& s) {
  for (const auto& d : kDTypes) {
    if (s == d.name) return &d;
  }
  return nullptr;
}

bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

Status ParseEntry(const std::string& path, const std::string& name, const json& e,
                  SafetensorsTensor* t) {
  const std::string where = path + ": tensor '" + name + "'";
  if (!e.is_object()) return InvalidFormat(where + ": header entry is not a JSON object");
  t->name = name;
  auto dt = e.find("dtype");
  if (dt == e.end() || !dt->is_string()) return InvalidFormat(where + ": missing string 'dtype'");
  t->dtype_name = dt->get<std::string>();
  const DTypeSpec* spec = FindDType(t->dtype_name);
  if (spec == nullptr) return InvalidFormat(where + ": unknown dtype '" + t->dtype_name + "'");
  t->dtype_supported = spec->supported;
  t->dtype = spec->dtype;
  auto sh = e.find("shape");
  if (sh == e.end() || !sh->is_array()) return InvalidFormat(where + ": missing array 'shape'");
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) {
      return InvalidFormat(where + ": shape entries must be non-negative integers");
    }
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || MulOverflows(numel, v, &numel)) {
      return InvalidFormat(where + ": shape overflows");
    }
    t->shape.dims.push_back(static_cast<int64_t>(v));
  }
  auto off = e.find("data_offsets");
  if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned()) {
    return InvalidFormat(where + ": 'data_offsets' must be [begin, end] (non-negative integers)");
  }
  t->begin = (*off)[0].get<uint64_t>();
  t->end = (*off)[1].get<uint64_t>();
  if (t->end < t->begin) {
    return InvalidFormat(where + ": data_offsets end " + std::to_string(t->end) + " < begin " +
                         std::to_string(t->begin));
  }
  uint64_t bits = 0;
  if (MulOverflows(numel, static_cast<uint64_t>(spec->bits), &bits)) {
    return InvalidFormat(where + ": byte size overflows");
  }
  if (bits % 8 != 0) return InvalidFormat(where + ": element bits not a multiple of 8");
  if (bits / 8 != t->end - t->begin) {
    return InvalidFormat(where + ": data_offsets span " + std::to_string(t->end - t->begin) +
                         " bytes but dtype " + t->dtype_name + " x shape " + t->shape.ToString() +
                         " needs " + std::to_string(bits / 8));
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  MOXIE_ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(path));
  MOXIE_ASSIGN_OR_RETURN(auto file, Parse(path, mapped->data(), mapped->size()));
  file->file_ = std::move(mapped);
  return file;
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Parse(const std::string& path,
                                                                const uint8_t* bytes,
                                                                size_t size) {
  if (size < 8) {
    return InvalidFormat(path + ": truncated: " + std::to_string(size) +
                         " bytes, a safetensors file has at least an 8-byte header length");
  }
  uint64_t n = 0;
  std::memcpy(&n, bytes, 8);
  if (n > kMaxHeaderBytes) {
    return InvalidFormat(path + ": header length " + std::to_string(n) + " exceeds the limit of " +
                         std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (8 + n > size) {
    return InvalidFormat(path + ": header length " + std::to_string(n) +
                         " goes beyond the file size " + std::to_string(size) +
                         " (file truncated?)");
  }
  const char* hb = reinterpret_cast<const char*>(bytes + 8);
  // Detect duplicate tensor names (JSON allows them; safetensors does not).
  std::set<std::string> keys;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1) {
      const std::string k = parsed.get<std::string>();
      if (!keys.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  MOXIE_ASSIGN_OR_RETURN(json header, ParseJson<json>(std::string_view(hb, n), path + " (JSON header)", cb));
  if (!duplicate.empty()) return InvalidFormat(path + ": duplicate tensor name '" + duplicate + "'");
  if (!header.is_object()) return InvalidFormat(path + ": JSON header is not an object");

  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  const uint64_t data_size = size - 8 - n;
  const uint8_t* data = bytes + 8 + n;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return InvalidFormat(path + ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) {
          return InvalidFormat(path + ": __metadata__ value '" + m.key() + "' is not a string");
        }
        f->metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    SafetensorsTensor t;
    MOXIE_RETURN_IF_ERROR(ParseEntry(path, it.key(), *it, &t));
    f->tensors_.push_back(std::move(t));
  }
  // Tensors must tile [0, data_size) exactly.
  std::vector<const SafetensorsTensor*> order;
  for (const auto& t : f->tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const SafetensorsTensor* prev = nullptr;
  for (const auto* t : order) {
    if (t->end > data_size) {
      return InvalidFormat(path + ": tensor '" + t->name + "' data_offsets [" +
                           std::to_string(t->begin) + ", " + std::to_string(t->end) +
                           ") lie outside the data buffer of " + std::to_string(data_size) +
                           " bytes (file truncated?)");
    }
    if (t->begin < cursor) {
      return InvalidFormat(path + ": tensor '" + t->name + "' [" + std::to_string(t->begin) + ", " +
                           std::to_string(t->end) + ") overlaps tensor '" + prev->name + "' [" +
                           std::to_string(prev->begin) + ", " + std::to_string(prev->end) + ")");
    }
    if (t->begin > cursor) {
      return InvalidFormat(path + ": gap in data buffer before tensor '" + t->name + "' (bytes " +
                           std::to_string(cursor) + ".." + std::to_string(t->begin) + " unused)");
    }
    cursor = t->end;
    prev = t;
  }
  if (cursor != data_size) {
    return InvalidFormat(path + ": data buffer is " + std::to_string(data_size) +
                         " bytes but tensors cover " + std::to_string(cursor));
  }
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    auto& t = f->tensors_[i];
    t.data = data + t.begin;
    f->index_[t.name] = i;
  }
  return f;
}

const SafetensorsTensor* SafetensorsFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    json e;
    e["dtype"] = DTypeName(t.view.dtype);
    e["shape"] = t.view.shape.dims;
    e["data_offsets"] = {offset, offset + t.view.nbytes()};
    offset += t.view.nbytes();
    header[t.name] = e;
  }
  std::string hs = header.dump();
  while ((hs.size() + 8) % 8 != 0) hs.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return IoError(path + ": cannot open for writing");
  const uint64_t n = hs.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(hs.data(), static_cast<std::streamsize>(hs.size()));
  for (const auto& t : tensors) {
    out.write(static_cast<const char*>(t.view.data), static_cast<std::streamsize>(t.view.nbytes()));
  }
  if (!out) return IoError(path + ": write failed");
  return Status::Ok();
}

}  // namespace moxie
