// Tokenizers against Hugging Face `tokenizers` test vectors (llama.cpp's test-tokenizer-0 data,
// copied to tests/data/tokenizers), plus decoding, streaming and bad input.
#include "formats/tokenizer.h"

#include <fstream>
#include <map>
#include <sstream>

#include "core/mapped_file.h"
#include "core/utf8.h"
#include "formats/gguf.h"

#include <nlohmann/json.hpp>
#include "tests/test_util.h"

namespace moxie {
namespace {

std::string Dir(const std::string& vocab) { return testing::DataDir() + "/tokenizers/" + vocab; }

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

// The .inp/.out format of the fixtures' README: tests separated by "\n__ggml_vocab_test__\n".
std::vector<Case> ReadCases(const std::string& vocab) {
  const std::string base = Dir(vocab) + "/ggml-vocab-" + vocab + ".gguf";
  auto inp = ReadTextFile(base + ".inp");
  auto out = ReadTextFile(base + ".out");
  EXPECT_TRUE(inp.ok() && out.ok());
  std::vector<Case> cases;
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0;;) {
    const size_t f = inp->find(sep, pos);
    if (f == std::string::npos) break;
    cases.push_back({inp->substr(pos, f - pos), {}});
    pos = f + sep.size();
  }
  std::istringstream lines(*out);
  std::string line;
  for (auto& c : cases) {
    std::getline(lines, line);
    std::istringstream ids(line);
    int32_t id;
    while (ids >> id) c.ids.push_back(id);
  }
  return cases;
}

// Loaded once per vocabulary for the whole test binary (large vocabularies take a second).
const Tokenizer* Load(const std::string& vocab) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[vocab];
  if (!slot) {
    auto text = ReadTextFile(Dir(vocab) + "/tokenizer.json");
    EXPECT_TRUE(text.ok());
    if (!text.ok()) return nullptr;
    auto t = Tokenizer::FromJson(*text, vocab + "/tokenizer.json");
    EXPECT_TRUE(t.ok()) << t.status().message();
    if (!t.ok()) return nullptr;
    slot = std::move(t).value();
  }
  return slot.get();
}

class VocabTest : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabTest, EncodeMatchesHuggingFace) {
  auto tok = Load(GetParam());
  ASSERT_TRUE(tok);
  const auto cases = ReadCases(GetParam());
  ASSERT_EQ(cases.size(), 46u);
  int ok = 0;
  for (const auto& c : cases) {
    const auto got = tok->Encode(c.text, {.add_special = false, .parse_special = false});
    EXPECT_EQ(got, c.ids) << "text: '" << c.text << "'";
    ok += got == c.ids;
  }
  std::printf("    %-14s %d/46 test vectors\n", GetParam(), ok);
}

// decode(encode(x)) == x for these lossless vocabularies (SPM: up to the added leading space
// handling, which Strip undoes).
TEST_P(VocabTest, DecodeRoundTrips) {
  auto tok = Load(GetParam());
  ASSERT_TRUE(tok);
  for (const auto& c : ReadCases(GetParam())) {
    const auto ids = tok->Encode(c.text, {.add_special = false, .parse_special = false});
    EXPECT_EQ(tok->Decode(ids), c.text);
    // Streaming gives the same text, and every chunk is valid UTF-8.
    StreamingDecoder sd(*tok, /*skip_special=*/false);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string chunk = sd.Push(id);
      EXPECT_TRUE(IsValidUtf8(chunk));
      streamed += chunk;
    }
    streamed += sd.Flush();
    EXPECT_EQ(streamed, c.text);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, VocabTest,
                         ::testing::Values("gpt-2", "mpt", "deepseek-llm", "llama-bpe", "qwen2",
                                           "llama-spm", "phi-3"),
                         [](const auto& i) {
                           std::string n = i.param;
                           for (auto& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

// The same vectors through the GGUF-metadata path (tokenizer.ggml.*).
class GgufVocabTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GgufVocabTest, EncodeMatchesHuggingFace) {
  auto f = GgufFile::Open(Dir(GetParam()) + "/ggml-vocab-" + GetParam() + ".gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  auto tok = Tokenizer::FromGguf(**f);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  int ok = 0;
  for (const auto& c : ReadCases(GetParam())) {
    const auto got = (*tok)->Encode(c.text, {.add_special = false, .parse_special = false});
    EXPECT_EQ(got, c.ids) << "text: '" << c.text << "'";
    ok += got == c.ids;
    EXPECT_EQ((*tok)->Decode(got), c.text);
  }
  std::printf("    %-14s %d/46 test vectors (GGUF)\n", GetParam(), ok);
}

INSTANTIATE_TEST_SUITE_P(Vocabs, GgufVocabTest,
                         ::testing::Values("gpt-2", "mpt", "deepseek-llm", "qwen2", "llama-spm",
                                           "phi-3"),
                         [](const auto& i) {
                           std::string n = i.param;
                           for (auto& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

// Newer SentencePiece-style tokenizer.json files (Mistral, Llama 2 re-saved by recent transformers)
// use a Metaspace pre-tokenizer (prepend_scheme "first", split false) and decoder instead of the
// Prepend/Replace normalizer: the same vocabulary gives the same ids, except where the text starts
// with a space (Metaspace then adds no second "▁", as tokenizers does).
TEST(Tokenizer, MetaspaceFormMatchesNormalizerForm) {
  auto text = ReadTextFile(Dir("llama-spm") + "/tokenizer.json");
  ASSERT_TRUE(text.ok());
  auto j = nlohmann::json::parse(*text);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"},
                        {"prepend_scheme", "first"}, {"split", false}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", {{{"type", "Metaspace"}, {"replacement", "\u2581"},
                                 {"prepend_scheme", "first"}, {"split", false}},
                                {{"type", "ByteFallback"}},
                                {{"type", "Fuse"}}}}};
  auto t = Tokenizer::FromJson(j.dump(), "metaspace.json");
  ASSERT_TRUE(t.ok()) << t.status().message();
  int compared = 0;
  for (const auto& c : ReadCases("llama-spm")) {
    const auto ids = (*t)->Encode(c.text, {.add_special = false, .parse_special = false});
    if (!c.text.empty() && c.text[0] == ' ') continue;
    ++compared;
    EXPECT_EQ(ids, c.ids) << "text: '" << c.text << "'";
    EXPECT_EQ((*t)->Decode(ids), c.text);
  }
  EXPECT_GT(compared, 30);
}

TEST(Tokenizer, SpecialTokensMatchedInTextAndBos) {
  auto q = Load("qwen2");
  ASSERT_TRUE(q);
  const auto ids = q->Encode("<|im_start|>user\nHi<|im_end|>");
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), *q->TokenId("<|im_start|>"));
  EXPECT_EQ(ids.back(), *q->TokenId("<|im_end|>"));
  // Not matched when parse_special is off.
  const auto raw = q->Encode("<|im_start|>", {.parse_special = false});
  EXPECT_GT(raw.size(), 1u);
  auto d = Load("deepseek-llm");
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->add_bos());
  EXPECT_EQ(d->Encode("Hi", {.add_special = true}).front(), 100000);
  EXPECT_FALSE(q->add_bos());
}

TEST(Tokenizer, SpmByteFallbackAndDecodeSkipsSpecial) {
  auto t = Load("llama-spm");
  ASSERT_TRUE(t);
  // "▁" then 🦙, which is not in the vocabulary: four byte-fallback tokens.
  const auto ids = t->Encode("\xF0\x9F\xA6\x99", {});
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(t->Piece(ids[1]), "<0xF0>");
  EXPECT_EQ(t->Decode(ids), "\xF0\x9F\xA6\x99");
  std::vector<int32_t> with_bos = {1};
  for (int32_t id : t->Encode("Hello world")) with_bos.push_back(id);
  EXPECT_EQ(t->Decode(with_bos, /*skip_special=*/true), "Hello world");
  // Streaming never splits the 4-byte character.
  StreamingDecoder sd(*t);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(sd.Push(ids[i]), "") << i;
  EXPECT_EQ(sd.Push(ids[4]), "\xF0\x9F\xA6\x99");
}

TEST(Tokenizer, InvalidUtf8InputIsReplaced) {
  auto t = Load("gpt-2");
  ASSERT_TRUE(t);
  const auto ids = t->Encode("a\xFF" "b");
  EXPECT_EQ(t->Decode(ids), "a\xEF\xBF\xBD" "b");
}

TEST(Tokenizer, StreamingReplacesBytesThatNeverFormUtf8) {
  auto t = Load("gpt-2");
  ASSERT_TRUE(t);
  // GPT-2 has single-byte tokens for every byte; 0xE2 0x82 then 'a' is an invalid sequence.
  const auto e2 = t->Encode("\xE2\x82\xAC");  // € = e2 82 ac
  StreamingDecoder sd(*t);
  std::string out;
  for (int32_t id : e2) out += sd.Push(id);
  out += sd.Flush();
  EXPECT_EQ(out, "\xE2\x82\xAC");
}

TEST(Tokenizer, BadInputGivesClearErrors) {
  auto e1 = Tokenizer::FromJson("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "t.json");
  ASSERT_FALSE(e1.ok());
  EXPECT_NE(e1.status().message().find("'Unigram' is not supported"), std::string::npos)
      << e1.status().message();
  auto e2 = Tokenizer::FromJson("{\"model\": ", "t.json");
  ASSERT_FALSE(e2.ok());
  EXPECT_NE(e2.status().message().find("malformed JSON"), std::string::npos);
  auto e3 = Tokenizer::FromJson(
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}})", "t.json");
  ASSERT_FALSE(e3.ok());
  EXPECT_NE(e3.status().message().find("merge 0"), std::string::npos) << e3.status().message();
  auto e4 = Tokenizer::FromJson(
      R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "Split",
          "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}})",
      "t.json");
  ASSERT_FALSE(e4.ok());
  EXPECT_NE(e4.status().message().find("regex"), std::string::npos) << e4.status().message();
  auto e5 = Tokenizer::FromJson(R"({"model": {"type": "BPE", "vocab": {"a": "x"}}})", "t.json");
  ASSERT_FALSE(e5.ok());
  auto e6 = Tokenizer::FromModelDir("/nonexistent");
  ASSERT_FALSE(e6.ok());
  EXPECT_NE(e6.status().message().find("tokenizer.json"), std::string::npos);
}

TEST(Utf8, CompletePrefixAndRepair) {
  EXPECT_EQ(Utf8CompletePrefix("ab\xE2\x82"), 2u);
  EXPECT_EQ(Utf8CompletePrefix("ab\xE2\x82\xAC"), 5u);
  EXPECT_EQ(Utf8CompletePrefix("\xF0"), 0u);
  EXPECT_EQ(RepairUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  EXPECT_EQ(RepairUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));
}

}  // namespace
}  // namespace moxie
