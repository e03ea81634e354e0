// Malformed safetensors files: every one gets a clear error naming the file and what is wrong.
#include "formats/safetensors.h"

#include <cstring>
#include <fstream>
#include <vector>

#include "tests/test_util.h"

namespace moxie {
namespace {

// Builds a file image: 8-byte header length (or `declared_len`), header text, then `data_bytes`.
std::string Image(const std::string& header, size_t data_bytes, int64_t declared_len = -1) {
  std::string out(8, '\0');
  const uint64_t n = declared_len >= 0 ? static_cast<uint64_t>(declared_len) : header.size();
  std::memcpy(out.data(), &n, 8);
  out += header;
  out.append(data_bytes, '\x01');
  return out;
}

Result<std::unique_ptr<SafetensorsFile>> ParseImage(const std::string& img) {
  return SafetensorsFile::Parse("t.safetensors", reinterpret_cast<const uint8_t*>(img.data()),
                                img.size());
}

void ExpectError(const std::string& img, const std::string& needle) {
  auto r = ParseImage(img);
  ASSERT_FALSE(r.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("t.safetensors"), std::string::npos) << r.status().message();
}

TEST(Safetensors, ParsesValidFile) {
  const std::string h =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  auto r = ParseImage(Image(h, 12));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_NE((*r)->Find("a"), nullptr);
  EXPECT_EQ((*r)->Find("a")->shape, Shape{{2}});
  EXPECT_EQ((*r)->Find("b")->dtype, DType::kBF16);
  EXPECT_EQ((*r)->metadata().at("format"), "pt");
}

TEST(Safetensors, TruncatedBeforeHeaderLength) {
  ExpectError(std::string(5, '\0'), "truncated");
}

TEST(Safetensors, HeaderLengthBeyondFile) {
  ExpectError(Image("{}", 0, 4096), "beyond the file size");
}

TEST(Safetensors, HeaderLengthOverLimit) {
  ExpectError(Image("{}", 0, 200'000'000), "exceeds the limit");
}

TEST(Safetensors, MalformedJson) {
  ExpectError(Image(R"({"a": {"dtype": "F32", )", 0), "malformed JSON");
}

TEST(Safetensors, HeaderNotObject) { ExpectError(Image("[1,2]", 0), "not an object"); }

TEST(Safetensors, OffsetsOutsideData) {
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
              "outside the data buffer");
}

TEST(Safetensors, OverlappingTensors) {
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                    12),
              "overlaps");
}

TEST(Safetensors, GapBetweenTensors) {
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                    R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                    12),
              "gap");
}

TEST(Safetensors, TrailingBytesNotCovered) {
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8),
              "tensors cover");
}

TEST(Safetensors, UnknownDtype) {
  ExpectError(Image(R"({"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}})", 4),
              "unknown dtype 'F31'");
}

TEST(Safetensors, SizeDoesNotMatchShape) {
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "needs 12");
}

TEST(Safetensors, NegativeShape) {
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
              "non-negative");
}

TEST(Safetensors, EndBeforeBegin) {
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4), "< begin");
}

TEST(Safetensors, ShapeOverflow) {
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],)"
                    R"("data_offsets":[0,4]}})",
                    4),
              "overflow");
}

TEST(Safetensors, DuplicateNames) {
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                    R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                    8),
              "duplicate tensor name 'a'");
}

TEST(Safetensors, MissingFields) {
  ExpectError(Image(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4), "dtype");
  ExpectError(Image(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4), "shape");
  ExpectError(Image(R"({"a":{"dtype":"F32","shape":[1]}})", 4), "data_offsets");
}

TEST(Safetensors, WriteThenReadRoundTrip) {
  testing::TempDir dir;
  const float a[3] = {1.5f, -2.f, 3.25f};
  const uint16_t b[2] = {F32ToBf16(0.5f), F32ToBf16(-7.f)};
  ASSERT_TRUE(WriteSafetensors(dir.File("x.safetensors"),
                               {{"a", TensorView{a, DType::kF32, Shape{{3}}}},
                                {"b", TensorView{b, DType::kBF16, Shape{{1, 2}}}}})
                  .ok());
  auto r = SafetensorsFile::Open(dir.File("x.safetensors"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  float got[3];
  std::memcpy(got, (*r)->Find("a")->data, 12);
  EXPECT_EQ(got[2], 3.25f);
  EXPECT_EQ((*r)->Find("b")->shape, Shape({{1, 2}}));
}

// A released tensor (the loader copied it) leaves the resident set but stays readable: its pages
// fault back from the file with the same bytes; a pointer outside the mapping is ignored.
TEST(Safetensors, ReleasedTensorStaysReadable) {
  testing::TempDir dir;
  std::vector<float> big(5000);  // several pages
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i) * 0.25f - 7.f;
  const float small[2] = {1.f, 2.f};
  ASSERT_TRUE(WriteSafetensors(dir.File("r.safetensors"),
                               {{"small", TensorView{small, DType::kF32, Shape{{2}}}},
                                {"big", TensorView{big.data(), DType::kF32, Shape{{5000}}}}})
                  .ok());
  auto r = SafetensorsFile::Open(dir.File("r.safetensors"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  const SafetensorsTensor* t = (*r)->Find("big");
  ASSERT_NE(t, nullptr);
  (*r)->Release(t->data, t->end - t->begin);
  (*r)->Release(big.data(), big.size() * 4);  // not in the mapping: no effect
  EXPECT_EQ(std::memcmp(t->data, big.data(), big.size() * 4), 0);
  EXPECT_EQ(std::memcmp((*r)->Find("small")->data, small, 8), 0);
  EXPECT_EQ(big[4999], 4999 * 0.25f - 7.f);
}

TEST(Safetensors, MissingFileIsNotFound) {
  auto r = SafetensorsFile::Open("/nonexistent/model.safetensors");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace moxie
