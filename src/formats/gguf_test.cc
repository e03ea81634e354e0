// GGUF reader: well-formed files parse; every kind of corruption gives an error naming the byte
// offset or tensor, never a crash.
#include "formats/gguf.h"

#include <cstring>

#include "tests/test_util.h"

namespace moxie {
namespace {

// Little-endian byte builder for hand-made GGUF images.
struct Bytes {
  std::string b;
  template <typename T>
  Bytes& Put(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof(T));
    return *this;
  }
  Bytes& Str(const std::string& s) {
    Put<uint64_t>(s.size());
    b += s;
    return *this;
  }
  Bytes& Header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b += "GGUF";
    return Put(version).Put(n_tensors).Put(n_kv);
  }
  Bytes& KvU32(const std::string& k, uint32_t v) { return Str(k).Put<uint32_t>(4).Put(v); }
  Bytes& KvStr(const std::string& k, const std::string& v) { return Str(k).Put<uint32_t>(8).Str(v); }
  Bytes& Tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t off) {
    Str(name).Put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (auto d : ne) Put(d);
    return Put(type).Put(off);
  }
  Bytes& PadTo(size_t align) {
    while (b.size() % align) b.push_back('\0');
    return *this;
  }
};

Result<std::unique_ptr<GgufFile>> P(const Bytes& x) {
  return GgufFile::Parse("t.gguf", reinterpret_cast<const uint8_t*>(x.b.data()), x.b.size());
}

void ExpectError(const Bytes& x, const std::string& needle) {
  auto r = P(x);
  ASSERT_FALSE(r.ok()) << "expected error containing '" << needle << "'";
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("t.gguf"), std::string::npos);
}

Bytes Valid() {
  Bytes x;
  x.Header(3, 2, 2).KvStr("general.architecture", "llama").KvU32("general.alignment", 32);
  x.Tensor("a", {4, 2}, 0, 0).Tensor("b", {32}, 8, 32);  // F32 [2,4] = 32 bytes; Q8_0 32 = 34 bytes
  x.PadTo(32);
  x.b.append(32 + 34, '\x01');
  return x;
}

TEST(Gguf, ParsesValidFile) {
  auto r = P(Valid());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->version(), 3u);
  EXPECT_EQ((*r)->GetString("general.architecture").value(), "llama");
  ASSERT_NE((*r)->FindTensor("b"), nullptr);
  EXPECT_EQ((*r)->FindTensor("b")->nbytes, 34u);
  EXPECT_EQ((*r)->FindTensor("a")->ne, (std::vector<int64_t>{4, 2}));
}

TEST(Gguf, BadMagic) {
  Bytes x = Valid();
  x.b[0] = 'X';
  ExpectError(x, "bad magic");
}

TEST(Gguf, UnsupportedVersions) {
  Bytes v1;
  v1.Header(1, 0, 0);
  ExpectError(v1, "version 1");
  Bytes be;
  be.Header(0x03000000, 0, 0);
  ExpectError(be, "big-endian");
}

TEST(Gguf, CountsBeyondFile) {
  Bytes a;
  a.Header(3, 0, 1000000);
  ExpectError(a, "metadata count");
  Bytes b;
  b.Header(3, 1u << 30, 0);
  ExpectError(b, "tensor count");
}

TEST(Gguf, StringLengthBeyondFile) {
  Bytes x;
  x.Header(3, 0, 1).Put<uint64_t>(1u << 20).b += "abc";
  x.b.append(64, 'x');
  ExpectError(x, "beyond the end of the file");
}

TEST(Gguf, ArrayLengthBeyondFile) {
  Bytes x;
  x.Header(3, 0, 1).Str("k").Put<uint32_t>(9).Put<uint32_t>(4).Put<uint64_t>(uint64_t{1} << 40);
  ExpectError(x, "claims");
}

TEST(Gguf, TruncatedValue) {
  Bytes x;
  x.Header(3, 0, 1).Str("k").Put<uint32_t>(10).Put<uint16_t>(7);
  ExpectError(x, "truncated");
}

TEST(Gguf, UnknownValueTypeAndBadBool) {
  Bytes x;
  x.Header(3, 0, 1).Str("k").Put<uint32_t>(77);
  ExpectError(x, "unknown value type 77");
  Bytes y;
  y.Header(3, 0, 1).Str("k").Put<uint32_t>(7).Put<uint8_t>(5);
  ExpectError(y, "must be 0 or 1");
}

TEST(Gguf, DuplicateKey) {
  Bytes x;
  x.Header(3, 0, 2).KvU32("k", 1).KvU32("k", 2);
  ExpectError(x, "duplicate metadata key 'k'");
}

TEST(Gguf, TensorDataBeyondFile) {
  Bytes x;
  x.Header(3, 1, 0).Tensor("w", {64, 64}, 0, 0).PadTo(32);
  x.b.append(100, '\0');
  ExpectError(x, "tensor 'w' data");
}

TEST(Gguf, MisalignedOffset) {
  Bytes x;
  x.Header(3, 1, 0).Tensor("w", {4}, 0, 4).PadTo(32);
  x.b.append(64, '\0');
  ExpectError(x, "not a multiple of the alignment");
}

TEST(Gguf, BadTensorShapesAndTypes) {
  Bytes a;
  a.Header(3, 1, 0).Tensor("w", {1, 1, 1, 1, 1}, 0, 0);
  ExpectError(a, "5 dimensions");
  Bytes b;
  b.Header(3, 1, 0).Tensor("w", {4}, 99, 0);
  ExpectError(b, "unknown ggml type 99");
  Bytes c;
  c.Header(3, 1, 0).Tensor("w", {33}, 8, 0);
  ExpectError(c, "not a multiple of the Q8_0 block size 32");
  Bytes d;
  d.Header(3, 1, 0).Tensor("w", {0}, 0, 0);
  ExpectError(d, "invalid dimension");
  // Found by fuzzing: 2^22 x 2^40 F32 elements is 2^64 bytes, which wrapped to 0 and passed the
  // bounds check (then a loader wrote through the empty copy).
  Bytes e;
  e.Header(3, 1, 0).Tensor("w", {uint64_t{1} << 22, uint64_t{1} << 40}, 0, 0).PadTo(32);
  ExpectError(e, "size in bytes overflows");
  Bytes f;  // more elements than an int64 holds
  f.Header(3, 1, 0).Tensor("w", {uint64_t{1} << 23, uint64_t{1} << 40}, 8, 0).PadTo(32);
  ExpectError(f, "overflows");
}

TEST(Gguf, OverlappingTensors) {
  Bytes x;
  x.Header(3, 2, 0).Tensor("a", {16}, 0, 0).Tensor("b", {16}, 0, 64).PadTo(32);
  x.b.append(128, '\0');
  ASSERT_TRUE(P(x).ok());
  Bytes y;
  y.Header(3, 2, 0).Tensor("a", {16}, 0, 0).Tensor("b", {16}, 0, 32).PadTo(32);
  y.b.append(128, '\0');
  ExpectError(y, "overlap");
}

TEST(Gguf, BadAlignmentKey) {
  Bytes x;
  x.Header(3, 0, 1).KvU32("general.alignment", 24);
  ExpectError(x, "power of two");
}

// Every prefix of a valid file is rejected cleanly (no crash, no hang).
TEST(Gguf, EveryTruncationIsAnError) {
  const Bytes v = Valid();
  for (size_t n = 0; n + 1 < v.b.size(); ++n) {
    Bytes t;
    t.b = v.b.substr(0, n);
    EXPECT_FALSE(P(t).ok()) << "prefix of " << n << " bytes parsed";
  }
}

}  // namespace
}  // namespace moxie
