#include "formats/gguf_writer.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

namespace moxie {

namespace {

GgufValue MakeValue(GgufType t, decltype(GgufValue::v) v) {
  GgufValue x;
  x.type = t;
  x.v = std::move(v);
  return x;
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

GgufWriter::~GgufWriter() {
  if (f_ != nullptr) {
    std::fclose(f_);
    std::error_code ec;
    std::filesystem::remove(part_, ec);
  }
}

void GgufWriter::Set(const std::string& key, GgufValue v) {
  if (key == "general.alignment" && v.is_int() && v.as_int() > 0) {
    alignment_ = static_cast<uint64_t>(v.as_int());
  }
  for (auto& [k, old] : kv_) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  kv_.emplace_back(key, std::move(v));
}

void GgufWriter::SetString(const std::string& key, const std::string& s) {
  Set(key, MakeValue(GgufType::kString, s));
}
void GgufWriter::SetU32(const std::string& key, uint32_t x) {
  Set(key, MakeValue(GgufType::kU32, uint64_t{x}));
}
void GgufWriter::SetI32(const std::string& key, int32_t x) {
  Set(key, MakeValue(GgufType::kI32, int64_t{x}));
}
void GgufWriter::SetF32(const std::string& key, float x) {
  Set(key, MakeValue(GgufType::kF32, static_cast<double>(x)));
}
void GgufWriter::SetBool(const std::string& key, bool b) { Set(key, MakeValue(GgufType::kBool, b)); }

void GgufWriter::SetStrings(const std::string& key, const std::vector<std::string>& a) {
  GgufArray arr;
  arr.type = GgufType::kString;
  arr.items.reserve(a.size());
  for (const auto& s : a) arr.items.push_back(MakeValue(GgufType::kString, s));
  Set(key, MakeValue(GgufType::kArray, std::move(arr)));
}
void GgufWriter::SetI32s(const std::string& key, const std::vector<int32_t>& a) {
  GgufArray arr;
  arr.type = GgufType::kI32;
  arr.items.reserve(a.size());
  for (int32_t x : a) arr.items.push_back(MakeValue(GgufType::kI32, int64_t{x}));
  Set(key, MakeValue(GgufType::kArray, std::move(arr)));
}
void GgufWriter::SetF32s(const std::string& key, const std::vector<float>& a) {
  GgufArray arr;
  arr.type = GgufType::kF32;
  arr.items.reserve(a.size());
  for (float x : a) arr.items.push_back(MakeValue(GgufType::kF32, static_cast<double>(x)));
  Set(key, MakeValue(GgufType::kArray, std::move(arr)));
}

Status GgufWriter::AddTensor(const std::string& name, std::vector<int64_t> ne, uint32_t ggml_type) {
  if (f_ != nullptr) return InvalidArgument("GGUF writer: tensor '" + name + "' declared after Open()");
  const GgmlTypeInfo* ti = GgmlType(ggml_type);
  if (ti == nullptr) {
    return InvalidArgument("GGUF writer: tensor '" + name + "' has unknown ggml type " +
                           std::to_string(ggml_type));
  }
  if (ne.empty() || ne.size() > 4) {
    return InvalidArgument("GGUF writer: tensor '" + name + "' must have 1 to 4 dimensions");
  }
  uint64_t numel = 1;
  for (int64_t d : ne) {
    if (d <= 0) return InvalidArgument("GGUF writer: tensor '" + name + "' has a non-positive dimension");
    numel *= static_cast<uint64_t>(d);
  }
  if (ne[0] % ti->block != 0) {
    return InvalidArgument("GGUF writer: tensor '" + name + "': row length " + std::to_string(ne[0]) +
                           " is not a multiple of the " + ti->name + " block size " +
                           std::to_string(ti->block));
  }
  for (const auto& t : tensors_) {
    if (t.name == name) return InvalidArgument("GGUF writer: duplicate tensor '" + name + "'");
  }
  GgufTensorInfo t;
  t.name = name;
  t.ne = std::move(ne);
  t.type = ggml_type;
  t.nbytes = numel / static_cast<uint64_t>(ti->block) * static_cast<uint64_t>(ti->type_size);
  t.offset = data_size_;
  data_size_ = AlignUp(data_size_ + t.nbytes, alignment_);
  tensors_.push_back(std::move(t));
  return Status::Ok();
}

Status GgufWriter::Put(const void* p, size_t n) {
  if (sink_ != nullptr) {
    sink_->insert(sink_->end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    pos_ += n;
    return Status::Ok();
  }
  if (n > 0 && std::fwrite(p, 1, n, f_) != n) {
    return IoError(part_ + ": write failed at byte " + std::to_string(pos_) + ": " +
                   std::strerror(errno));
  }
  pos_ += n;
  return Status::Ok();
}

Status GgufWriter::PutString(const std::string& s) {
  const uint64_t n = s.size();
  MOXIE_RETURN_IF_ERROR(Put(&n, 8));
  return Put(s.data(), s.size());
}

Status GgufWriter::PutValue(const GgufValue& v) {
  auto put_int = [&](int bytes) {
    const uint64_t u = static_cast<uint64_t>(v.as_int());
    return Put(&u, static_cast<size_t>(bytes));  // little-endian host (checked at build)
  };
  switch (v.type) {
    case GgufType::kU8: case GgufType::kI8: return put_int(1);
    case GgufType::kU16: case GgufType::kI16: return put_int(2);
    case GgufType::kU32: case GgufType::kI32: return put_int(4);
    case GgufType::kU64: case GgufType::kI64: return put_int(8);
    case GgufType::kBool: {
      const uint8_t b = std::get_if<bool>(&v.v) ? (std::get<bool>(v.v) ? 1 : 0) : (v.as_int() != 0);
      return Put(&b, 1);
    }
    case GgufType::kF32: {
      const float x = static_cast<float>(v.as_float());
      return Put(&x, 4);
    }
    case GgufType::kF64: {
      const double x = v.as_float();
      return Put(&x, 8);
    }
    case GgufType::kString: return PutString(v.as_string());
    case GgufType::kArray: {
      const GgufArray& a = v.as_array();
      const uint32_t t = static_cast<uint32_t>(a.type);
      const uint64_t n = a.items.size();
      MOXIE_RETURN_IF_ERROR(Put(&t, 4));
      MOXIE_RETURN_IF_ERROR(Put(&n, 8));
      for (const auto& x : a.items) {
        if (x.type != a.type) return InvalidArgument("GGUF writer: array items must all have the array's type");
        MOXIE_RETURN_IF_ERROR(PutValue(x));
      }
      return Status::Ok();
    }
  }
  return InvalidArgument("GGUF writer: unknown metadata type");
}

Status GgufWriter::Pad() {
  static const char zeros[256] = {};
  const uint64_t target = AlignUp(pos_, alignment_);
  while (pos_ < target) {
    MOXIE_RETURN_IF_ERROR(Put(zeros, static_cast<size_t>(std::min<uint64_t>(target - pos_, sizeof zeros))));
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> GgufWriter::MetadataImage() {
  std::vector<uint8_t> out;
  sink_ = &out;
  const uint64_t saved = pos_;
  pos_ = 0;
  Status st = PutHeader(false);
  sink_ = nullptr;
  pos_ = saved;
  MOXIE_RETURN_IF_ERROR(st);
  return out;
}

Status GgufWriter::PutHeader(bool with_tensors) {
  const uint32_t version = 3;
  const uint64_t nt = with_tensors ? tensors_.size() : 0, nkv = kv_.size();
  MOXIE_RETURN_IF_ERROR(Put("GGUF", 4));
  MOXIE_RETURN_IF_ERROR(Put(&version, 4));
  MOXIE_RETURN_IF_ERROR(Put(&nt, 8));
  MOXIE_RETURN_IF_ERROR(Put(&nkv, 8));
  for (const auto& [k, v] : kv_) {
    MOXIE_RETURN_IF_ERROR(PutString(k));
    const uint32_t t = static_cast<uint32_t>(v.type);
    MOXIE_RETURN_IF_ERROR(Put(&t, 4));
    MOXIE_RETURN_IF_ERROR(PutValue(v));
  }
  if (with_tensors) {
    for (const auto& t : tensors_) {
      MOXIE_RETURN_IF_ERROR(PutString(t.name));
      const uint32_t nd = static_cast<uint32_t>(t.ne.size());
      MOXIE_RETURN_IF_ERROR(Put(&nd, 4));
      for (int64_t d : t.ne) MOXIE_RETURN_IF_ERROR(Put(&d, 8));
      MOXIE_RETURN_IF_ERROR(Put(&t.type, 4));
      MOXIE_RETURN_IF_ERROR(Put(&t.offset, 8));
    }
  }
  return Pad();
}

Status GgufWriter::Open(const std::string& path, bool overwrite) {
  static_assert(std::endian::native == std::endian::little, "GGUF writer assumes a little-endian host");
  if (f_ != nullptr) return InvalidArgument("GGUF writer: already open");
  std::error_code ec;
  if (!overwrite && std::filesystem::exists(path, ec)) {
    return InvalidArgument(path + " exists; pass --force to overwrite it");
  }
  path_ = path;
  part_ = path + ".part";
  f_ = std::fopen(part_.c_str(), "wb");
  if (f_ == nullptr) return IoError(part_ + ": cannot create: " + std::strerror(errno));
  buf_.resize(1 << 20);
  std::setvbuf(f_, buf_.data(), _IOFBF, buf_.size());
  MOXIE_RETURN_IF_ERROR(PutHeader(true));
  data_start_ = pos_;
  cur_ = 0;
  cur_done_ = 0;
  return Status::Ok();
}

Status GgufWriter::Write(const void* data, size_t n) {
  if (f_ == nullptr) return InvalidArgument("GGUF writer: Write() before Open()");
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (cur_ >= tensors_.size()) {
      return InvalidArgument("GGUF writer: more tensor data written than declared");
    }
    const GgufTensorInfo& t = tensors_[cur_];
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, t.nbytes - cur_done_));
    MOXIE_RETURN_IF_ERROR(Put(p, k));
    p += k;
    n -= k;
    cur_done_ += k;
    if (cur_done_ == t.nbytes) {
      MOXIE_RETURN_IF_ERROR(Pad());
      ++cur_;
      cur_done_ = 0;
    }
  }
  return Status::Ok();
}

Status GgufWriter::Close() {
  if (f_ == nullptr) return InvalidArgument("GGUF writer: Close() before Open()");
  if (cur_ != tensors_.size()) {
    return InvalidArgument("GGUF writer: tensor '" + tensors_[cur_].name + "' was not written in full (" +
                           std::to_string(cur_done_) + " of " + std::to_string(tensors_[cur_].nbytes) +
                           " bytes)");
  }
  const bool flushed = std::fflush(f_) == 0;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  std::error_code ec;
  if (!flushed || !closed) {
    std::filesystem::remove(part_, ec);
    return IoError(part_ + ": write failed: " + std::strerror(errno));
  }
  std::filesystem::rename(part_, path_, ec);
  if (ec) return IoError(part_ + ": cannot rename to " + path_ + ": " + ec.message());
  return Status::Ok();
}

}  // namespace moxie
