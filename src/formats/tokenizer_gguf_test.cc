// GGUF tokenizer metadata written from tokenizer.json: read back through Tokenizer::FromGguf it
// reproduces llama.cpp's test vectors and the tokenizer.json tokenization, and it carries what
// llama.cpp's converter wrote for the same folders (the ggml-vocab-*.gguf files and the model
// fixtures' model.gguf, written by gguf-py): pre-tokenizer name, tokens, types, merges, specials.
#include "formats/tokenizer_gguf.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/tokenizer.h"
#include "tests/test_util.h"

namespace moxie {
namespace {

using Json = nlohmann::json;
using moxie::testing::ModelDir;
using moxie::testing::TempDir;
namespace fs = std::filesystem;

std::string VocabDir(const std::string& v) { return testing::DataDir() + "/tokenizers/" + v; }

constexpr EncodeOptions kPlain{.add_special = false, .parse_special = false};

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

// llama.cpp's test-tokenizer-0 vectors: texts separated by "\n__ggml_vocab_test__\n", ids one
// line per text.
std::vector<Case> ReadCases(const std::string& vocab) {
  const std::string base = VocabDir(vocab) + "/ggml-vocab-" + vocab + ".gguf";
  auto inp = ReadTextFile(base + ".inp");
  auto out = ReadTextFile(base + ".out");
  EXPECT_TRUE(inp.ok() && out.ok()) << base;
  std::vector<Case> cases;
  if (!inp.ok() || !out.ok()) return cases;
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
    for (int32_t id; ids >> id;) c.ids.push_back(id);
  }
  return cases;
}

// The metadata written for a folder, parsed back, and the tokenizer FromGguf builds from it.
struct Written {
  std::vector<uint8_t> image;
  std::unique_ptr<GgufFile> f;
  std::unique_ptr<Tokenizer> tok;
};

Result<Written> WriteAndLoad(const std::string& dir) {
  GgufWriter w;
  MOXIE_RETURN_IF_ERROR(WriteTokenizerMetadata(dir, &w));
  Written out;
  MOXIE_ASSIGN_OR_RETURN(out.image, w.MetadataImage());
  MOXIE_ASSIGN_OR_RETURN(out.f, GgufFile::Parse(dir, out.image.data(), out.image.size()));
  MOXIE_ASSIGN_OR_RETURN(out.tok, Tokenizer::FromGguf(*out.f));
  return out;
}

std::vector<std::string> Strings(const GgufFile& f, const std::string& key) {
  std::vector<std::string> out;
  if (const GgufValue* v = f.Find(key); v != nullptr && v->is_array()) {
    for (const auto& x : v->as_array().items) out.push_back(x.as_string());
  }
  return out;
}

std::vector<int64_t> Ints(const GgufFile& f, const std::string& key) {
  std::vector<int64_t> out;
  if (const GgufValue* v = f.Find(key); v != nullptr && v->is_array()) {
    for (const auto& x : v->as_array().items) out.push_back(x.as_int());
  }
  return out;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A folder holding a link to `tokenizer_json` plus the given extra files.
void MakeFolder(const TempDir& d, const std::string& tokenizer_json,
                const std::map<std::string, std::string>& files = {}) {
  fs::create_symlink(tokenizer_json, d.File("tokenizer.json"));
  for (const auto& [name, text] : files) WriteFile(d.File(name), text);
}

const char* kModelTokenizer() {
  static const std::string p = ModelDir("mixtral") + "/tokenizer.json";
  return p.c_str();
}

// The metadata written for a tokenizer fixture, once per test binary (a 150k vocabulary takes
// about a second). phi-3 gets the tokenizer_config.json of its original folder: transformers
// lists the added tokens there (added_tokens_decoder), which is what makes llama.cpp type <unk>
// as control.
const Written* WrittenFor(const std::string& vocab) {
  static std::map<std::string, std::unique_ptr<Written>> cache;
  auto& slot = cache[vocab];
  if (slot) return slot.get();
  const std::string tj = VocabDir(vocab) + "/tokenizer.json";
  std::string dir = VocabDir(vocab);
  TempDir tmp;
  if (vocab == "phi-3") {
    auto text = ReadTextFile(tj);
    EXPECT_TRUE(text.ok());
    if (!text.ok()) return nullptr;
    const Json j = Json::parse(*text);
    Json dec = Json::object();
    for (const auto& a : j["added_tokens"]) dec[std::to_string(a["id"].get<int>())] = a;
    MakeFolder(tmp, tj, {{"tokenizer_config.json", Json{{"added_tokens_decoder", dec}}.dump()}});
    dir = tmp.path();
  }
  auto w = WriteAndLoad(dir);
  EXPECT_TRUE(w.ok()) << w.status().message();
  if (!w.ok()) return nullptr;
  slot = std::make_unique<Written>(std::move(w).value());
  return slot.get();
}

class TokenizerGgufVocab : public ::testing::TestWithParam<const char*> {};

// (a) llama.cpp's vectors (Hugging Face's tokenization), (b) the pre-tokenizer name llama.cpp
// chose, (c) tokens, types, merges and BOS as in llama.cpp's ggml-vocab-*.gguf.
TEST_P(TokenizerGgufVocab, MatchesLlamaCppAndHuggingFace) {
  const std::string vocab = GetParam();
  const Written* w = WrittenFor(vocab);
  ASSERT_TRUE(w);
  const GgufFile& got = *w->f;
  const Tokenizer& tok = *w->tok;

  // (a) llama.cpp's test vectors (Hugging Face tokenizers' output).
  int ok = 0;
  for (const auto& c : ReadCases(vocab)) {
    const auto ids = tok.Encode(c.text, kPlain);
    EXPECT_EQ(ids, c.ids) << vocab << " text: '" << c.text << "'";
    ok += ids == c.ids;
  }
  EXPECT_EQ(ok, 46);

  // (b), (c) against the file llama.cpp wrote, where the fixture has one.
  const std::string ref_path = VocabDir(vocab) + "/ggml-vocab-" + vocab + ".gguf";
  if (!fs::exists(ref_path)) {
    // Llama 3: llama.cpp's converter names this pre-tokenizer "llama-bpe".
    EXPECT_EQ(*got.GetString("tokenizer.ggml.pre"), "llama-bpe");
    EXPECT_EQ(*got.GetString("tokenizer.ggml.model"), "gpt2");
    return;
  }
  auto ref = GgufFile::Open(ref_path);
  ASSERT_OK(ref);
  EXPECT_EQ(*got.GetString("tokenizer.ggml.model"), *(*ref)->GetString("tokenizer.ggml.model"));
  EXPECT_EQ(*got.GetString("tokenizer.ggml.pre"), *(*ref)->GetString("tokenizer.ggml.pre"));
  const auto tokens = Strings(got, "tokenizer.ggml.tokens");
  const auto ref_tokens = Strings(**ref, "tokenizer.ggml.tokens");
  const auto types = Ints(got, "tokenizer.ggml.token_type");
  const auto ref_types = Ints(**ref, "tokenizer.ggml.token_type");
  // llama.cpp padded to the model's vocab_size (config.json, not in these folders).
  ASSERT_LE(tokens.size(), ref_tokens.size());
  ASSERT_EQ(types.size(), tokens.size());
  int bad = 0;
  for (size_t i = 0; i < tokens.size() && bad < 5; ++i) {
    if (tokens[i] != ref_tokens[i] || types[i] != ref_types[i]) {
      ADD_FAILURE() << vocab << " token " << i << ": '" << tokens[i] << "' type " << types[i]
                    << ", llama.cpp '" << ref_tokens[i] << "' type " << ref_types[i];
      ++bad;
    }
  }
  EXPECT_EQ(Strings(got, "tokenizer.ggml.merges"), Strings(**ref, "tokenizer.ggml.merges"));
  if (got.Find("tokenizer.ggml.bos_token_id") != nullptr) {  // when the folder names one
    EXPECT_EQ(*got.GetInt("tokenizer.ggml.bos_token_id"),
              *(*ref)->GetInt("tokenizer.ggml.bos_token_id"));
    EXPECT_EQ(got.GetBoolOr("tokenizer.ggml.add_bos_token", false),
              (*ref)->GetBoolOr("tokenizer.ggml.add_bos_token", false));
  }
  if (vocab == "llama-spm" || vocab == "phi-3") {
    EXPECT_TRUE(got.GetBoolOr("tokenizer.ggml.add_space_prefix", false));
    EXPECT_EQ(*got.GetInt("tokenizer.ggml.unknown_token_id"), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, TokenizerGgufVocab,
                         ::testing::Values("gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "mpt",
                                           "phi-3", "llama-spm"),
                         [](const auto& i) {
                           std::string n = i.param;
                           for (auto& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

// The tokenizer.json pipeline and the GGUF one agree on special-token markup too (matched when
// parse_special is on), on added tokens and on BOS/EOS insertion.
TEST(TokenizerGguf, SpecialTokensAgreeWithTokenizerJson) {
  for (const char* vocab : {"mpt", "phi-3"}) {
    const Written* w = WrittenFor(vocab);
    ASSERT_TRUE(w);
    auto ref = Tokenizer::FromModelDir(VocabDir(vocab));
    ASSERT_OK(ref);
    // An unknown-typed (2) token is not matched in text by FromGguf (nor by llama.cpp): a
    // SentencePiece <unk> without tokenizer_config.json's added_tokens_decoder.
    const auto types = Ints(*w->f, "tokenizer.ggml.token_type");
    std::string text = "start";
    for (const auto& a : (*ref)->added_tokens()) {
      if (types[a.id] != 2) text += "x" + a.content + "y\n";
    }
    for (const EncodeOptions& o : {EncodeOptions{true, true}, EncodeOptions{false, true}, kPlain}) {
      EXPECT_EQ(w->tok->Encode(text, o), (*ref)->Encode(text, o)) << vocab;
    }
    const auto ids = w->tok->Encode(text);
    EXPECT_EQ(w->tok->Decode(ids), (*ref)->Decode(ids));
  }
}

// The model fixtures' model.gguf was written by llama.cpp's gguf-py from the same folders.
TEST(TokenizerGguf, ModelFixturesMatchLlamaCppExport) {
  const std::string text = "Hello world, this is a test.\n\n  It's 2024!<|endoftext|> ok";
  for (const char* model : {"deepseek-v2", "deepseek-v3", "deepseek-v3-nogroup", "mixtral", "olmoe",
                            "qwen2moe", "qwen2moe-bf16-sharded", "qwen3moe"}) {
    SCOPED_TRACE(model);
    auto w = WriteAndLoad(ModelDir(model));
    ASSERT_OK(w);
    auto ref = GgufFile::Open(ModelDir(model) + "/model.gguf");
    ASSERT_OK(ref);
    const GgufFile& got = *w->f;
    EXPECT_EQ(*got.GetString("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(*got.GetString("tokenizer.ggml.pre"), "gpt-2");
    EXPECT_EQ(*(*ref)->GetString("tokenizer.ggml.pre"), "gpt-2");
    for (const char* key : {"tokenizer.ggml.tokens", "tokenizer.ggml.merges"}) {
      EXPECT_EQ(Strings(got, key), Strings(**ref, key)) << key;
    }
    EXPECT_EQ(Ints(got, "tokenizer.ggml.token_type"), Ints(**ref, "tokenizer.ggml.token_type"));
    for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"}) {
      EXPECT_EQ(*got.GetInt(key), *(*ref)->GetInt(key)) << key;
    }
    EXPECT_EQ(got.GetBoolOr("tokenizer.ggml.add_bos_token", true),
              (*ref)->GetBoolOr("tokenizer.ggml.add_bos_token", true));
    auto ref_tok = Tokenizer::FromGguf(**ref);
    ASSERT_OK(ref_tok);
    auto hf = Tokenizer::FromModelDir(ModelDir(model));
    ASSERT_OK(hf);
    for (const EncodeOptions& o : {EncodeOptions{true, true}, kPlain}) {
      EXPECT_EQ(w->tok->Encode(text, o), (*ref_tok)->Encode(text, o));
      EXPECT_EQ(w->tok->Encode(text, o), (*hf)->Encode(text, o));
    }
  }
}

TEST(TokenizerGguf, CopyTokenizerMetadataCopiesOnlyTokenizerKeys) {
  auto src = GgufFile::Open(ModelDir("mixtral") + "/model.gguf");
  ASSERT_OK(src);
  GgufWriter w;
  w.SetString("general.architecture", "copy");
  CopyTokenizerMetadata(**src, &w);
  auto image = w.MetadataImage();
  ASSERT_OK(image);
  auto got = GgufFile::Parse("copy", image->data(), image->size());
  ASSERT_OK(got);
  size_t n = 0;
  for (const auto& [key, value] : (*src)->kv()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    ++n;
    const GgufValue* v = (*got)->Find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type, value.type) << key;
  }
  EXPECT_GE(n, 7u);
  EXPECT_EQ((*got)->kv().size(), n + 1);
  EXPECT_EQ(*(*got)->GetString("general.architecture"), "copy");
  EXPECT_EQ(Strings(**got, "tokenizer.ggml.tokens"), Strings(**src, "tokenizer.ggml.tokens"));
  EXPECT_EQ(Strings(**got, "tokenizer.ggml.merges"), Strings(**src, "tokenizer.ggml.merges"));
}

// tokenizer_config.json specials and chat templates (a named list as gguf-py writes it);
// config.json pads the token list to the embedding rows and supplies *_token_id.
TEST(TokenizerGguf, ConfigFilesSpecialsTemplatesAndPadding) {
  TempDir d;
  MakeFolder(d, kModelTokenizer(),
             {{"tokenizer_config.json",
               R"({"bos_token": {"content": "<|endoftext|>"}, "eos_token": "<|endoftext|>",
                   "add_bos_token": true,
                   "chat_template": [{"name": "default", "template": "D"},
                                     {"name": "tool_use", "template": "T"}]})"},
              {"config.json", R"({"vocab_size": 520, "pad_token_id": 3, "eos_token_id": 7})"}});
  auto w = WriteAndLoad(d.path());
  ASSERT_OK(w);
  const GgufFile& f = *w->f;
  EXPECT_EQ(*f.GetString("tokenizer.chat_template"), "D");
  EXPECT_EQ(*f.GetString("tokenizer.chat_template.tool_use"), "T");
  EXPECT_EQ(Strings(f, "tokenizer.chat_templates"), std::vector<std::string>{"tool_use"});
  EXPECT_EQ(*f.GetInt("tokenizer.ggml.bos_token_id"), 511);
  EXPECT_EQ(*f.GetInt("tokenizer.ggml.eos_token_id"), 511);  // tokenizer_config.json first
  EXPECT_EQ(*f.GetInt("tokenizer.ggml.padding_token_id"), 3);
  EXPECT_TRUE(f.GetBoolOr("tokenizer.ggml.add_bos_token", false));
  EXPECT_FALSE(f.GetBoolOr("tokenizer.ggml.add_eos_token", true));
  const auto tokens = Strings(f, "tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 520u);
  EXPECT_EQ(tokens[519], "[PAD519]");
  EXPECT_EQ(Ints(f, "tokenizer.ggml.token_type")[519], 5);  // unused
  EXPECT_EQ(w->tok->Encode("hi", {.add_special = true}).front(), 511);
  EXPECT_EQ(w->tok->chat_template(), "D");

  TempDir j;  // chat_template.jinja when tokenizer_config.json has none
  MakeFolder(j, kModelTokenizer(), {{"chat_template.jinja", "{{ messages }}"}});
  auto wj = WriteAndLoad(j.path());
  ASSERT_OK(wj);
  EXPECT_EQ(*wj->f->GetString("tokenizer.chat_template"), "{{ messages }}");
  EXPECT_EQ(wj->f->Find("tokenizer.ggml.bos_token_id"), nullptr);
}

// A tiny SentencePiece-style tokenizer.json: with the Prepend/Replace normalizer, or (newer
// files) with a Metaspace pre-tokenizer using `metaspace_scheme`.
std::string TinySpm(const Json& merges, const std::string& metaspace_scheme = "") {
  Json j = Json::parse(R"({"model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
      "vocab": {"<unk>": 0, "<s>": 1, "\u2581": 2, "a": 3, "b": 4, "ab": 5, "\u2581ab": 6,
                "\u2581a": 7}},
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                     {"id": 1, "content": "<s>", "special": true}],
    "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}]}})");
  j["model"]["merges"] = merges;
  if (metaspace_scheme.empty()) {
    j["normalizer"] = Json::parse(R"({"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]})");
  } else {
    j["pre_tokenizer"] = {{"type", "Metaspace"},
                          {"replacement", "\u2581"},
                          {"prepend_scheme", metaspace_scheme},
                          {"split", false}};
  }
  return j.dump();
}

const Json kTinyMerges = {"a b", "\u2581 ab", "\u2581 a", "\u2581a b"};

// Scores are minus the rank of the first merge making a token, so the merges FromGguf derives
// from scores are tokenizer.json's, in its order.
TEST(TokenizerGguf, SpmScoresFollowMergeRanks) {
  TempDir d;
  WriteFile(d.File("tokenizer.json"), TinySpm(kTinyMerges));
  auto w = WriteAndLoad(d.path());
  ASSERT_OK(w);
  EXPECT_EQ(*w->f->GetString("tokenizer.ggml.model"), "llama");
  const GgufValue* scores = w->f->Find("tokenizer.ggml.scores");
  ASSERT_NE(scores, nullptr);
  EXPECT_EQ(scores->as_array().items[5].as_float(), 0.0);   // ab: merge 0
  EXPECT_EQ(scores->as_array().items[6].as_float(), -1.0);  // ▁ab: merge 1
  EXPECT_EQ(scores->as_array().items[7].as_float(), -2.0);  // ▁a: merge 2
  EXPECT_LT(scores->as_array().items[3].as_float(), -3.0);  // a: made by no merge
  EXPECT_EQ(Ints(*w->f, "tokenizer.ggml.token_type"),
            (std::vector<int64_t>{2, 3, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(*w->f->GetInt("tokenizer.ggml.unknown_token_id"), 0);
  EXPECT_EQ(*w->f->GetInt("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_TRUE(w->f->GetBoolOr("tokenizer.ggml.add_bos_token", false));
  EXPECT_TRUE(w->f->GetBoolOr("tokenizer.ggml.add_space_prefix", false));
  EXPECT_EQ(w->tok->Encode("ab a", {.add_special = true}), (std::vector<int32_t>{1, 6, 7}));

  // "▁a" is in the vocabulary but no merge makes it: GGUF's derived merges would.
  TempDir e;
  WriteFile(e.File("tokenizer.json"), TinySpm({"a b", "\u2581 ab", "\u2581a b"}));
  GgufWriter out;
  const Status st = WriteTokenizerMetadata(e.path(), &out);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_NE(st.message().find("lacks the merge"), std::string::npos) << st.message();
  EXPECT_TRUE(out.kv().empty());
}

// Newer SentencePiece-style files use a Metaspace pre-tokenizer instead of the Prepend / Replace
// normalizer: add_space_prefix follows its prepend_scheme. (GGUF always prepends "▁" to text
// that starts with a space, Metaspace "first" does not: see tokenizer_test.cc.)
TEST(TokenizerGguf, SpmMetaspaceForm) {
  for (const char* scheme : {"first", "always", "never"}) {
    TempDir d;
    WriteFile(d.File("tokenizer.json"), TinySpm(kTinyMerges, scheme));
    auto w = WriteAndLoad(d.path());
    ASSERT_OK(w);
    auto ref = Tokenizer::FromModelDir(d.path());
    ASSERT_OK(ref);
    EXPECT_EQ(w->f->GetBoolOr("tokenizer.ggml.add_space_prefix", true),
              std::string(scheme) != "never");
    for (const char* text : {"ab a", "a  b\nab", "ba"}) {
      EXPECT_EQ(w->tok->Encode(text, {.add_special = true}),
                (*ref)->Encode(text, {.add_special = true}))
          << scheme << " '" << text << "'";
    }
  }
}

TEST(TokenizerGguf, UnsupportedTokenizersAndBadFilesAreClearErrors) {
  GgufWriter w;
  {
    TempDir d;  // no tokenizer.json
    const Status st = WriteTokenizerMetadata(d.path(), &w);
    EXPECT_EQ(st.code(), StatusCode::kNotFound);
    EXPECT_NE(st.message().find(d.File("tokenizer.json")), std::string::npos) << st.message();
  }
  for (const char* model : {R"({"type": "Unigram", "vocab": [["a", 0.0]]})",
                            R"({"type": "WordPiece", "vocab": {"a": 0}})"}) {
    TempDir d;
    WriteFile(d.File("tokenizer.json"), std::string(R"({"model": )") + model + "}");
    const Status st = WriteTokenizerMetadata(d.path(), &w);
    EXPECT_EQ(st.code(), StatusCode::kUnsupported) << st.message();
    EXPECT_NE(st.message().find("tokenizer.json: tokenizer model type"), std::string::npos)
        << st.message();
  }
  {
    // Byte-level BPE split at vowels: no llama.cpp pre-tokenizer does that.
    auto text = ReadTextFile(kModelTokenizer());
    ASSERT_OK(text);
    auto j = Json::parse(*text);
    j["pre_tokenizer"] = Json::parse(R"({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "[aeiou]"}, "behavior": "Isolated"},
        {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})");
    TempDir d;
    WriteFile(d.File("tokenizer.json"), j.dump());
    const Status st = WriteTokenizerMetadata(d.path(), &w);
    EXPECT_EQ(st.code(), StatusCode::kUnsupported) << st.message();
    EXPECT_NE(st.message().find("not expressible in GGUF"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(d.path()), std::string::npos) << st.message();
  }
  {
    TempDir d;
    MakeFolder(d, kModelTokenizer(), {{"tokenizer_config.json", "{\"bos_token\": "}});
    const Status st = WriteTokenizerMetadata(d.path(), &w);
    EXPECT_EQ(st.code(), StatusCode::kInvalidFormat);
    EXPECT_NE(st.message().find("tokenizer_config.json: malformed JSON"), std::string::npos)
        << st.message();
  }
  EXPECT_TRUE(w.kv().empty());  // nothing is written on failure
}

// A SentencePiece ("llama") vocabulary from GGUF metadata alone.
Result<std::unique_ptr<Tokenizer>> SpmFromTokens(const std::vector<std::string>& tokens) {
  GgufWriter w;
  w.SetString("tokenizer.ggml.model", "llama");
  w.SetStrings("tokenizer.ggml.tokens", tokens);
  std::vector<float> scores(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) scores[i] = -static_cast<float>(i);
  w.SetF32s("tokenizer.ggml.scores", scores);
  auto image = w.MetadataImage();
  if (!image.ok()) return image.status();
  static std::vector<uint8_t> keep;  // GgufFile::Parse views the image
  keep = std::move(*image);
  auto f = GgufFile::Parse("spm.gguf", keep.data(), keep.size());
  if (!f.ok()) return f.status();
  return Tokenizer::FromGguf(**f);
}

// A crafted vocabulary: a 300 000-byte token (its merges would cost the square of its length:
// minutes) loads at once, and a byte-fallback piece that is not hex ("<0xZZ>") decodes as text.
TEST(TokenizerGguf, HostileSpmVocabulary) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "\u2581h", "h", "i", "<0x41>", "<0xZZ>"};
  tokens.push_back(std::string(300000, 'a'));
  tokens.push_back("a");
  auto t = SpmFromTokens(tokens);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ((*t)->Decode({6}), "A");
  EXPECT_EQ((*t)->Decode({7}), "<0xZZ>");
  EXPECT_FALSE((*t)->Encode("hi", {.add_special = false, .parse_special = false}).empty());
}

}  // namespace
}  // namespace moxie
