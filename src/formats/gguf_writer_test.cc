// GGUF writer: what it writes parses back with the (independently tested) reader, byte for byte,
// with every metadata type; misuse is refused; nothing appears under the final name unless the
// file was completed.
#include "formats/gguf_writer.h"

#include <filesystem>
#include <cstring>
#include <numeric>

#include "tests/test_util.h"

namespace moxie {
namespace {

using moxie::testing::TempDir;

TEST(GgufWriter, RoundTripsMetadataAndTensors) {
  TempDir dir;
  const std::string path = dir.File("w.gguf");
  GgufWriter w;
  w.SetString("general.architecture", "qwen3moe");
  w.SetU32("qwen3moe.block_count", 3);
  w.SetI32("x.i32", -7);
  w.SetF32("x.f32", 0.125f);
  w.SetBool("x.bool", true);
  w.SetStrings("x.strs", {"a", "", "ĠĠ"});
  w.SetI32s("x.i32s", {1, -2, 3});
  w.SetF32s("x.f32s", {-1.5f, 2.0f});
  w.SetU32("qwen3moe.block_count", 4);  // replaced in place
  ASSERT_OK(w.AddTensor("a", {4, 2}, 0));     // F32, 32 bytes
  ASSERT_OK(w.AddTensor("b", {64, 3}, 8));    // Q8_0, 3 rows x 2 blocks x 34 = 204 bytes
  ASSERT_OK(w.AddTensor("c", {5}, 1));        // F16, 10 bytes
  EXPECT_EQ(w.tensor(1).offset, 32u);
  EXPECT_EQ(w.tensor(2).offset, 32u + 224u);  // 204 rounded up to the 32-byte alignment
  ASSERT_OK(w.Open(path, false));
  std::vector<uint8_t> bytes(32 + 204 + 10);
  std::iota(bytes.begin(), bytes.end(), uint8_t{1});
  // Pieces that straddle tensor boundaries.
  ASSERT_OK(w.Write(bytes.data(), 20));
  ASSERT_OK(w.Write(bytes.data() + 20, 100));
  EXPECT_EQ(w.current_tensor(), 1u);
  ASSERT_OK(w.Write(bytes.data() + 120, bytes.size() - 120));
  EXPECT_EQ(w.current_tensor(), 3u);
  EXPECT_FALSE(std::filesystem::exists(path));
  ASSERT_OK(w.Close());
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".part"));

  auto r = GgufFile::Open(path);
  ASSERT_OK(r.status());
  const GgufFile& f = **r;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.kv().size(), 8u);
  EXPECT_EQ(*f.GetString("general.architecture"), "qwen3moe");
  EXPECT_EQ(*f.GetInt("qwen3moe.block_count"), 4);
  EXPECT_EQ(f.Find("qwen3moe.block_count")->type, GgufType::kU32);
  EXPECT_EQ(*f.GetInt("x.i32"), -7);
  EXPECT_EQ(f.Find("x.f32")->as_float(), 0.125);
  EXPECT_TRUE(f.GetBoolOr("x.bool", false));
  const auto& strs = f.Find("x.strs")->as_array();
  ASSERT_EQ(strs.items.size(), 3u);
  EXPECT_EQ(strs.items[2].as_string(), "ĠĠ");
  EXPECT_EQ(strs.items[1].as_string(), "");
  EXPECT_EQ(f.Find("x.i32s")->as_array().items[1].as_int(), -2);
  EXPECT_EQ(f.Find("x.f32s")->as_array().items[0].as_float(), -1.5);
  ASSERT_EQ(f.tensors().size(), 3u);
  const GgufTensorInfo* b = f.FindTensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->ne, (std::vector<int64_t>{64, 3}));
  EXPECT_EQ(b->type, 8u);
  EXPECT_EQ(std::memcmp(f.FindTensor("a")->data, bytes.data(), 32), 0);
  EXPECT_EQ(std::memcmp(b->data, bytes.data() + 32, 204), 0);
  EXPECT_EQ(std::memcmp(f.FindTensor("c")->data, bytes.data() + 236, 10), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data) % 32, reinterpret_cast<uintptr_t>(f.FindTensor("a")->data) % 32);
}

TEST(GgufWriter, HonoursAlignmentKey) {
  TempDir dir;
  GgufWriter w;
  w.SetU32("general.alignment", 64);
  ASSERT_OK(w.AddTensor("a", {3}, 0));
  ASSERT_OK(w.AddTensor("b", {3}, 0));
  EXPECT_EQ(w.tensor(1).offset, 64u);
  ASSERT_OK(w.Open(dir.File("a.gguf"), false));
  const float x[6] = {1, 2, 3, 4, 5, 6};
  ASSERT_OK(w.Write(x, sizeof x));
  ASSERT_OK(w.Close());
  auto r = GgufFile::Open(dir.File("a.gguf"));
  ASSERT_OK(r.status());
  EXPECT_EQ((*r)->alignment(), 64u);
  EXPECT_EQ(reinterpret_cast<const float*>((*r)->FindTensor("b")->data)[2], 6.f);
}

TEST(GgufWriter, RefusesMisuse) {
  TempDir dir;
  GgufWriter w;
  EXPECT_FALSE(w.AddTensor("q", {33, 2}, 8).ok());  // row not a whole number of Q8_0 blocks
  EXPECT_FALSE(w.AddTensor("u", {4}, 4).ok());      // retired type id
  EXPECT_FALSE(w.AddTensor("z", {0}, 0).ok());
  ASSERT_OK(w.AddTensor("a", {2}, 0));
  EXPECT_FALSE(w.AddTensor("a", {2}, 0).ok());  // duplicate
  const std::string path = dir.File("x.gguf");
  { std::FILE* f = std::fopen(path.c_str(), "w"); std::fclose(f); }
  auto st = w.Open(path, false);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("--force"), std::string::npos) << st.message();
  ASSERT_OK(w.Open(path, true));
  const float x[3] = {1, 2, 3};
  EXPECT_FALSE(w.Write(x, sizeof x).ok());  // more than declared
}

TEST(GgufWriter, UnfinishedFileLeavesNothingBehind) {
  TempDir dir;
  const std::string path = dir.File("u.gguf");
  {
    GgufWriter w;
    ASSERT_OK(w.AddTensor("a", {4}, 0));
    ASSERT_OK(w.Open(path, false));
    const float x[2] = {1, 2};
    ASSERT_OK(w.Write(x, sizeof x));
    auto st = w.Close();
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("'a'"), std::string::npos) << st.message();
  }
  {
    GgufWriter w;
    ASSERT_OK(w.AddTensor("a", {4}, 0));
    ASSERT_OK(w.Open(path, false));
  }  // destroyed without Close()
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".part"));
}

}  // namespace
}  // namespace moxie

namespace moxie {
namespace {

TEST(GgufWriter, MetadataImageParses) {
  GgufWriter w;
  w.SetString("tokenizer.ggml.model", "gpt2");
  w.SetStrings("tokenizer.ggml.tokens", {"a", "b"});
  ASSERT_OK(w.AddTensor("t", {2}, 0));  // not part of the image
  auto img = w.MetadataImage();
  ASSERT_OK(img);
  auto f = GgufFile::Parse("mem", img->data(), img->size());
  ASSERT_OK(f);
  EXPECT_EQ(*(*f)->GetString("tokenizer.ggml.model"), "gpt2");
  EXPECT_TRUE((*f)->tensors().empty());
}

}  // namespace
}  // namespace moxie
