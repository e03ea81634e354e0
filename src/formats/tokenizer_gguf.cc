#include "formats/tokenizer_gguf.h"
#include "formats/json_parse.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/regex.h"
#include "formats/tokenizer.h"

namespace moxie {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

// What a ByteLevel pre-tokenizer with use_regex splits by, spelled as llama.cpp's "gpt-2" entry.
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

// gguf-py TokenType.
enum TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct GgufPre {
  const char* name;
  bool ignore_merges;
  std::vector<const char*> regexes;
};

const std::vector<GgufPre>& PreTable() {
  static const std::vector<GgufPre> table = {
#include "formats/gguf_pre_table.inc"
  };
  return table;
}

// Among names that behave alike, the one written is the first of these (the names llama.cpp's
// converter gives the families Moxie runs), then the table's order.
constexpr const char* kPreferredPre[] = {
    "gpt-2",
    "llama-bpe",
    "qwen2",
    "deepseek-llm",
    "deepseek-v3",
    "deepseek-coder",
    "mpt",
    "olmo",
    "qwen35",
    "gpt-4o",
    "llama4",
    "glm4",
    "deepseek-r1-qwen",
    "kimi-k2",
    "minimax-m2",
    "hunyuan",
    "dbrx",
    "smaug-bpe",
    "starcoder",
    "refact",
    "command-r",
    "falcon",
};

// Tokenizer::FromGguf adds an NFC normaliser for these names (see tokenizer.cc), so they behave
// differently from table entries with the same regexes.
bool PreAddsNfc(const std::string& name) {
  return name == "qwen2" || name == "deepseek-r1-qwen" || name == "mpt";
}

// The text both tokenizers must encode identically: llama.cpp's convert_hf_to_gguf.py probe
// (chktxt), plus decomposed accents (NFC), CRLF, upper-case contractions, long digit runs and more
// scripts. It starts with a newline and holds no special-token markup: GGUF cannot express a
// leading space after Metaspace(prepend_scheme "first") nor an added token's lstrip/rstrip.
const std::string& ProbeText() {
  static const std::string text =
      "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n"
      "\xF0\x9F\x9A\x80 (normal) \xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F "
      "(multiple emojis concatenated) \xE2\x9C\x85 \xF0\x9F\xA6\x99\xF0\x9F\xA6\x99 "
      "3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
      "\xE1\x9E\x80\xE1\x9E\xB6\xE1\x9E\x93\xE1\x9F\x8B\xE1\x9E\x8F\xE1\x9F\x82"
      "\xE1\x9E\x96\xE1\x9E\xB7\xE1\x9E\x9F\xE1\x9F\x81\xE1\x9E\x9F\xE1\x9E\xA2"
      "\xE1\x9E\xB6\xE1\x9E\x85\xF0\x9F\x98\x81 ?\xE6\x88\x91\xE6\x83\xB3\xE5\x9C\xA8"
      "apple"
      "\xE5\xB7\xA5\xE4\xBD\x9C"
      "1314151\xE5\xA4\xA9\xEF\xBD\x9E ------======= "
      "\xD0\xBD\xD0\xB5\xD1\x89\xD0\xBE \xD0\xBD\xD0\xB0 "
      "\xD0\x91\xD1\x8A\xD0\xBB\xD0\xB3\xD0\xB0\xD1\x80\xD1\x81\xD0\xBA\xD0\xB8 "
      "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? "
      "'M not sure I'll make it, 'D you like some tea? We'Ve a'lL\r\n"
      "DON'T I'M WE'RE THEY'LL YOU'VE SHE'D it's\r\n\r\n"
      "Caf\xC3\xA9 cafe\xCC\x81 A\xCC\x8Angstro\xCC\x88m na\xC3\xAFve \xC3\x85ngstr\xC3\xB6m "
      "Stra\xC3\x9F"
      "e \xC3\x86\xC3\x98 \xC3\xB1o\xC3\xB1o \xEF\xAC\x81 \xE2\x84\xAB\n"
      "\t\tindent(x) { return x*2; }  // comment\n    four  two\t\ttabs   \n"
      "1234567890 12,345,678.90 0.001 1e-9 \xD9\xA3\xD9\xA4\xD9\xA5 "
      "\xEF\xBC\x94\xEF\xBC\x95\xEF\xBC\x96 \xC2\xBD \xC2\xB2 v1.2.3\n"
      "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF\xE4\xB8\x96\xE7\x95\x8C "
      "\xE3\x82\xAB\xE3\x82\xBF\xE3\x82\xAB\xE3\x83\x8A \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 "
      "\xE0\xB9\x84\xE0\xB8\x97\xE0\xB8\xA2 \xE0\xA4\xB9\xE0\xA4\xBF\xE0\xA4\xA8\xE0\xA5\x8D"
      "\xE0\xA4\xA6\xE0\xA5\x80 \xD8\xA7\xD9\x84\xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A\xD8\xA9\xD8\x8C "
      "\xCE\x95\xCE\xBB\xCE\xBB\xCE\xB7\xCE\xBD\xCE\xB9\xCE\xBA\xCE\xAC "
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 "
      "\xF0\x9F\x87\xBA\xF0\x9F\x87\xB8 \xE2\x9D\xA4\xEF\xB8\x8F \xE2\x80\x94 \xE2\x80\xA6 "
      "\xC2\xAB\xC2\xBB \xE2\x80\x9Cq\xE2\x80\x9D \xC2\xA0nbsp "
      "https://example.com/a_b?q=1&r=2 user@mail.org #tag $5 100% a+b=c <tag>\n"
      "   trailing   \n\t \n end.";
  return text;
}

// A member of a JSON object, or null: no copy (vocab and merges are large).
const Json& Field(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

Result<Json> ReadJsonFile(const std::string& path) {
  MOXIE_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  return ParseJson<Json>(text, path);
}

// What the model folder says about its tokenizer.
struct Folder {
  std::string dir, tj_path, tc_path;
  std::string tj_text;
  Json tj;  // tokenizer.json without model.vocab
  Json tc;  // tokenizer_config.json, null if absent
  Json mc;  // config.json, null if absent
};

Result<Folder> LoadFolder(const std::string& dir) {
  Folder f;
  f.dir = dir;
  f.tj_path = (fs::path(dir) / "tokenizer.json").string();
  f.tc_path = (fs::path(dir) / "tokenizer_config.json").string();
  std::error_code ec;
  if (!fs::is_regular_file(f.tj_path, ec)) {
    return NotFound(f.tj_path +
                    ": not found (GGUF tokenizer metadata is written from a Hugging "
                    "Face tokenizer.json)");
  }
  MOXIE_ASSIGN_OR_RETURN(f.tj_text, ReadTextFile(f.tj_path));
  // model.vocab is left out (the reference tokenizer has it): half the parsing time.
  MOXIE_ASSIGN_OR_RETURN(f.tj, ParseJson<Json>(f.tj_text, f.tj_path, [](int depth, Json::parse_event_t ev, Json& parsed) {
                           return !(ev == Json::parse_event_t::key && depth == 2 && parsed == "vocab");
                         }));
  if (!f.tj.is_object() || !f.tj.contains("model") || !f.tj["model"].is_object()) {
    return InvalidFormat(f.tj_path + ": no \"model\" object");
  }
  if (fs::is_regular_file(f.tc_path, ec)) {
    MOXIE_ASSIGN_OR_RETURN(f.tc, ReadJsonFile(f.tc_path));
    if (!f.tc.is_object()) return InvalidFormat(f.tc_path + ": not a JSON object");
  }
  const std::string mc_path = (fs::path(dir) / "config.json").string();
  if (fs::is_regular_file(mc_path, ec)) {
    MOXIE_ASSIGN_OR_RETURN(f.mc, ReadJsonFile(mc_path));
    if (!f.mc.is_object()) return InvalidFormat(mc_path + ": not a JSON object");
  }
  return f;
}

// Every component (normalizer, pre_tokenizer, decoder) of a type, inside Sequences too.
void FindComponents(const Json& c, const std::string& type, std::vector<const Json*>* out) {
  if (!c.is_object()) return;
  if (c.value("type", "") == type) out->push_back(&c);
  for (const char* list : {"normalizers", "pretokenizers", "decoders"}) {
    if (c.contains(list) && c[list].is_array()) {
      for (const auto& x : c[list]) FindComponents(x, type, out);
    }
  }
}

bool HasComponent(const Json& c, const std::string& type) {
  std::vector<const Json*> found;
  FindComponents(c, type, &found);
  return !found.empty();
}

std::optional<int64_t> IntField(const Json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number_integer()) return std::nullopt;
  return j[key].get<int64_t>();
}

// The tokens of tokenizer.json (model.vocab + added_tokens) as the reference tokenizer read them,
// padded to config.json's vocab_size (the embedding rows llama.cpp expects one token per).
struct Vocab {
  const Tokenizer* ref = nullptr;
  int32_t n = 0;
  std::unordered_map<int32_t, bool> added;  // id -> special
  bool present(int32_t id) const { return id < ref->n_vocab() && !ref->Piece(id).empty(); }
  const std::string& piece(int32_t id) const { return ref->Piece(id); }
  int32_t id(const std::string& piece) const { return ref->TokenId(piece).value_or(-1); }
};

Vocab ReadVocab(const Folder& f, const Tokenizer& ref) {
  Vocab v;
  v.ref = &ref;
  v.n = ref.n_vocab();
  for (const AddedToken& a : ref.added_tokens()) v.added[a.id] = a.special;
  std::optional<int64_t> vs = IntField(f.mc, "vocab_size");
  if (!vs && f.mc.is_object() && f.mc.contains("text_config")) {
    vs = IntField(f.mc["text_config"], "vocab_size");
  }
  if (vs && *vs > v.n && *vs < (int64_t{1} << 24)) v.n = static_cast<int32_t>(*vs);
  return v;
}

// tokenizer_config.json writes special tokens as "str" or {"content": "str", ...}.
std::string TokenContent(const Json& e) {
  if (e.is_string()) return e.get<std::string>();
  if (e.is_object() && e.contains("content") && e["content"].is_string()) {
    return e["content"].get<std::string>();
  }
  return "";
}

// TemplateProcessing item {"SpecialToken": {"id": name}} -> name, else "".
std::string SpecialTokenName(const Json& item) {
  if (!item.is_object() || !item.contains("SpecialToken")) return "";
  return item["SpecialToken"].value("id", "");
}

struct Specials {
  std::vector<std::pair<std::string, int32_t>> ids;  // GGUF key, id (in llama.cpp's order)
  bool add_bos = false, add_eos = false;
};

// What the post-processor adds: TemplateProcessing's leading / trailing special token (BOS / EOS
// when they are the tokens so named; they name BOS / EOS when `content` has none), Roberta's both.
struct PostProcessorSpecials {
  std::optional<bool> add_bos, add_eos;
  std::map<std::string, int32_t> ids;  // special_tokens of a template: name -> id
};

PostProcessorSpecials ReadPostProcessor(const Json& tj,
                                        std::map<std::string, std::string>* content) {
  PostProcessorSpecials out;
  const Json& post = Field(tj, "post_processor");
  std::vector<const Json*> procs;
  if (Field(post, "processors").is_array()) {
    for (const auto& p : post["processors"]) procs.push_back(&p);
  } else if (post.is_object()) {
    procs.push_back(&post);
  }
  for (const Json* pp : procs) {
    const Json& p = *pp;
    const std::string type = p.is_object() ? p.value("type", "") : "";
    if (type == "RobertaProcessing") {
      out.add_bos = out.add_eos = true;
      continue;
    }
    const Json& single = Field(p, "single");
    if (type != "TemplateProcessing" || !single.is_array() || single.size() < 2) continue;
    auto note_id = [&](const std::string& name) {
      const Json& ids = Field(Field(Field(p, "special_tokens"), name.c_str()), "ids");
      if (ids.is_array() && !ids.empty() && ids[0].is_number_integer()) {
        out.ids[name] = ids[0].get<int32_t>();
      }
    };
    auto& c = *content;
    if (const std::string first = SpecialTokenName(single.front()); !first.empty()) {
      if (c["bos"].empty()) c["bos"] = first;
      out.add_bos = first == c["bos"] || first == c["cls"];
      note_id(first);
    }
    if (const std::string last = SpecialTokenName(single.back()); !last.empty()) {
      if (c["eos"].empty()) c["eos"] = last;
      out.add_eos = last == c["eos"];
      note_id(last);
    }
  }
  return out;
}

std::optional<bool> BoolField(const Json& j, const char* key) {
  const Json& v = Field(j, key);
  if (!v.is_boolean()) return std::nullopt;
  return v.get<bool>();
}

// As gguf-py's SpecialVocab: tokenizer_config.json's *_token strings, the post-processor, then
// config.json's *_token_id; add_bos_token / add_eos_token from tokenizer_config.json, else the
// post-processor, else llama.cpp's defaults. Unlike gguf-py, a token named by content is looked
// up in the whole vocabulary (not only added_tokens), and model.unk_token names the unknown token.
Specials ResolveSpecials(const Folder& f, const Vocab& v, bool spm) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {"bos", "bos_token_id"},       {"eos", "eos_token_id"},     {"unk", "unknown_token_id"},
      {"sep", "seperator_token_id"}, {"pad", "padding_token_id"}, {"cls", "cls_token_id"},
      {"mask", "mask_token_id"}};
  std::map<std::string, std::string> content;
  if (f.tc.is_object()) {
    for (const auto& [typ, key] : kTypes) {
      const std::string k = std::string(typ) + "_token";
      if (f.tc.contains(k)) content[typ] = TokenContent(f.tc[k]);
    }
    if (content["bos"].empty() && !content["cls"].empty()) content["bos"] = content["cls"];
    if (content["eos"].empty() && !content["sep"].empty()) content["eos"] = content["sep"];
  }
  const PostProcessorSpecials post = ReadPostProcessor(f.tj, &content);
  const auto& template_ids = post.ids;
  auto lookup = [&](const std::string& c) -> int32_t {
    if (auto it = template_ids.find(c); it != template_ids.end()) return it->second;
    return v.id(c);
  };
  Specials s;
  for (const auto& [typ, key] : kTypes) {
    int32_t id = -1;
    if (!content[typ].empty()) id = lookup(content[typ]);
    if (id < 0 && std::string(typ) == "unk") {
      const Json& u = Field(f.tj["model"], "unk_token");
      if (u.is_string()) id = lookup(u.get<std::string>());
    }
    if (id < 0) {
      const std::string k = std::string(typ) + "_token_id";
      std::optional<int64_t> c = IntField(f.mc, k.c_str());
      if (!c && f.mc.is_object() && f.mc.contains("text_config")) {
        c = IntField(f.mc["text_config"], k.c_str());
      }
      if (c && *c >= 0 && *c < v.n) id = static_cast<int32_t>(*c);
    }
    if (id >= 0 && id < v.n) s.ids.emplace_back(std::string("tokenizer.ggml.") + key, id);
  }
  // Unsaid: SentencePiece models add BOS, byte-level ones nothing (llama.cpp's defaults).
  s.add_bos = BoolField(f.tc, "add_bos_token").value_or(post.add_bos.value_or(spm));
  s.add_eos = BoolField(f.tc, "add_eos_token").value_or(post.add_eos.value_or(false));
  return s;
}

// tokenizer_config.json "chat_template" (a string, or a list of {name, template} written as
// gguf-py does: "default" as tokenizer.chat_template, the others as tokenizer.chat_template.<name>
// listed in tokenizer.chat_templates), else chat_template.jinja, else chat_template.json.
Status WriteChatTemplates(const Folder& f, GgufWriter* w) {
  Json ct;
  std::string where = f.tc_path;
  std::error_code ec;
  const std::string jinja = (fs::path(f.dir) / "chat_template.jinja").string();
  const std::string ctjson = (fs::path(f.dir) / "chat_template.json").string();
  if (f.tc.is_object() && f.tc.contains("chat_template") && !f.tc["chat_template"].is_null()) {
    ct = f.tc["chat_template"];
  } else if (fs::is_regular_file(jinja, ec)) {
    MOXIE_ASSIGN_OR_RETURN(std::string text, ReadTextFile(jinja));
    ct = text;
  } else if (fs::is_regular_file(ctjson, ec)) {
    MOXIE_ASSIGN_OR_RETURN(Json j, ReadJsonFile(ctjson));
    where = ctjson;
    if (j.is_object() && j.contains("chat_template")) ct = j["chat_template"];
  }
  if (ct.is_null()) return Status::Ok();
  if (ct.is_string()) {
    w->SetString("tokenizer.chat_template", ct.get<std::string>());
    return Status::Ok();
  }
  if (!ct.is_array()) {
    return InvalidFormat(where + ": chat_template must be a string or a list of {name, template}");
  }
  std::vector<std::string> names;
  std::optional<std::string> def;
  for (const auto& e : ct) {
    if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) {
      return InvalidFormat(where + ": chat_template list entries must be {name, template}");
    }
    std::string name = e.value("name", "");
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    if (name.empty()) continue;
    if (name == "default") {
      def = e["template"].get<std::string>();
    } else {
      w->SetString("tokenizer.chat_template." + name, e["template"].get<std::string>());
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }
  if (!names.empty()) w->SetStrings("tokenizer.chat_templates", names);
  if (def) w->SetString("tokenizer.chat_template", *def);
  return Status::Ok();
}

// tokenizer.json merges as (left, right), accepting "a b" and ["a", "b"].
Result<std::vector<std::pair<std::string, std::string>>> ReadMerges(const Folder& f) {
  std::vector<std::pair<std::string, std::string>> out;
  const Json& merges = Field(f.tj["model"], "merges");
  if (!merges.is_null() && !merges.is_array())
    return InvalidFormat(f.tj_path + ": model.merges is not a list");
  out.reserve(merges.size());
  for (const auto& m : merges) {
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) {
        return InvalidFormat(f.tj_path + ": model.merges[" + std::to_string(out.size()) + "] '" +
                             s + "' has no space");
      }
      out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      return InvalidFormat(f.tj_path + ": model.merges[" + std::to_string(out.size()) +
                           "] is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  return out;
}

std::string PadToken(int32_t id) { return "[PAD" + std::to_string(id) + "]"; }

// Byte-level BPE: tokens (added ones typed control/user-defined, id gaps unused) and merges.
Status SetGpt2Vocab(const Folder& f, const Vocab& v, GgufWriter* w) {
  std::vector<std::string> tokens(v.n);
  std::vector<int32_t> types(v.n, kNormal);
  for (int32_t i = 0; i < v.n; ++i) {
    if (!v.present(i)) {
      tokens[i] = PadToken(i);
      types[i] = kUnused;
      continue;
    }
    tokens[i] = v.piece(i);
    if (auto it = v.added.find(i); it != v.added.end()) {
      types[i] = it->second ? kControl : kUserDefined;
    }
  }
  MOXIE_ASSIGN_OR_RETURN(auto pairs, ReadMerges(f));
  // gguf-py writes a space inside a merge part as U+0120 (it cannot appear in "a b" otherwise).
  auto part = [](const std::string& s) {
    std::string o;
    for (char c : s) {
      if (c == ' ') {
        o += "\xC4\xA0";
      } else {
        o += c;
      }
    }
    return o;
  };
  std::vector<std::string> merges;
  merges.reserve(pairs.size());
  for (const auto& [a, b] : pairs) merges.push_back(part(a) + " " + part(b));
  w->SetStrings("tokenizer.ggml.tokens", tokens);
  w->SetI32s("tokenizer.ggml.token_type", types);
  w->SetStrings("tokenizer.ggml.merges", merges);
  return Status::Ok();
}

bool IsByteToken(const std::string& p) {
  return p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' &&
         std::isxdigit(static_cast<unsigned char>(p[3])) &&
         std::isxdigit(static_cast<unsigned char>(p[4]));
}

// gguf's TextModel.does_token_look_special: tokens llama.cpp treats as control even when
// tokenizer_config.json does not mark them special.
bool LooksSpecial(const std::string& t) {
  auto ends = [&](const std::string& s) {
    return t.size() >= s.size() && t.compare(t.size() - s.size(), s.size(), s) == 0;
  };
  auto starts = [&](const std::string& s) { return t.compare(0, s.size(), s) == 0; };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" ||
         (starts("<|") && ends("|>")) ||
         (starts("<\xEF\xBD\x9C") && ends("\xEF\xBD\x9C>")) ||  // <｜...｜> (DeepSeek)
         (starts("<unused") && ends(">"));
}

// Token type of a SentencePiece-style vocabulary as llama.cpp's converter gives it:
// tokenizer_config.json's added_tokens_decoder decides for the ids it lists (control if special
// or special-looking, else user-defined); otherwise the unknown token, added tokens (control if
// special), <0xXX> byte tokens, normal.
int32_t SpmTokenType(const Folder& f, const Vocab& v, int32_t id, int32_t unk) {
  if (f.tc.is_object() && f.tc.contains("added_tokens_decoder") &&
      f.tc["added_tokens_decoder"].is_object()) {
    const Json& d = f.tc["added_tokens_decoder"];
    const std::string key = std::to_string(id);
    if (d.contains(key) && d[key].is_object()) {
      const bool special = d[key].value("special", false);
      return special || LooksSpecial(v.piece(id)) ? kControl : kUserDefined;
    }
  }
  if (id == unk) return kUnknown;
  if (auto it = v.added.find(id); it != v.added.end()) {
    return it->second ? kControl : kUserDefined;
  }
  if (IsByteToken(v.piece(id))) return kByte;
  return kNormal;
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) {
    s.replace(p, from.size(), to);
  }
  return s;
}

// SentencePiece-style BPE. Tokenizer::FromGguf (like transformers' SentencePieceExtractor)
// derives the merges from the vocabulary: every split of a token into two tokens, ordered by the
// token's score. A score of minus the rank of the first tokenizer.json merge that makes the token
// keeps tokenizer.json's order; that is exact only when the derivable merges are the file's
// merges, which is checked here (tokens that are never made by a merge score below all others).
Status SetLlamaVocab(const Folder& f, const Vocab& v, GgufWriter* w) {
  MOXIE_ASSIGN_OR_RETURN(auto pairs, ReadMerges(f));
  std::unordered_map<std::string, int32_t> first_rank;
  std::unordered_set<std::string> merge_set;
  for (size_t r = 0; r < pairs.size(); ++r) {
    first_rank.emplace(pairs[r].first + pairs[r].second, static_cast<int32_t>(r));
    merge_set.insert(pairs[r].first + '\0' + pairs[r].second);
  }
  const float no_merge = -static_cast<float>(pairs.size()) - 1.0f;
  int32_t unk = -1;
  const Json& u = Field(f.tj["model"], "unk_token");
  if (u.is_string()) {
    unk = v.id(u.get<std::string>());
  }
  std::vector<std::string> tokens(v.n);
  std::vector<int32_t> types(v.n, kNormal);
  std::vector<float> scores(v.n, no_merge);
  std::unordered_map<std::string, int32_t> piece_id;  // as FromGguf: first id of a piece wins
  for (int32_t i = 0; i < v.n; ++i) {
    if (!v.present(i)) {
      tokens[i] = PadToken(i);
      types[i] = kUnused;
    } else {
      tokens[i] = v.piece(i);
      types[i] = SpmTokenType(f, v, i, unk);
      // llama.cpp pre-normalises user-defined tokens: it matches them in the raw text.
      if (types[i] == kUserDefined) tokens[i] = ReplaceAll(tokens[i], kMetaspace, " ");
      if (auto it = first_rank.find(v.piece(i)); it != first_rank.end()) {
        scores[i] = -static_cast<float>(it->second);
      }
    }
    piece_id.emplace(tokens[i], i);
  }
  for (int32_t i = 0; i < v.n; ++i) {
    if (types[i] == kControl || types[i] == kUserDefined || types[i] == kUnused) continue;
    const std::string& p = tokens[i];
    for (size_t k = 1; k < p.size(); ++k) {
      if ((static_cast<uint8_t>(p[k]) & 0xC0) == 0x80) continue;
      const std::string l = p.substr(0, k), r = p.substr(k);
      if (piece_id.count(l) && piece_id.count(r) && !merge_set.count(l + '\0' + r)) {
        return Unsupported(f.tj_path + ": model.merges lacks the merge ('" + l + "', '" + r +
                           "') that its vocabulary implies; GGUF's \"llama\" tokenizer derives "
                           "merges from the vocabulary, so this tokenizer cannot be expressed");
      }
    }
  }
  w->SetStrings("tokenizer.ggml.tokens", tokens);
  w->SetF32s("tokenizer.ggml.scores", scores);
  w->SetI32s("tokenizer.ggml.token_type", types);
  return Status::Ok();
}

// SentencePiece-style: a "▁" Prepend normaliser or a Metaspace pre-tokenizer that prepends.
bool SpmAddsSpacePrefix(const Json& tj) {
  std::vector<const Json*> found;
  FindComponents(Field(tj, "normalizer"), "Prepend", &found);
  for (const Json* p : found) {
    if (p->value("prepend", "") == kMetaspace) return true;
  }
  found.clear();
  FindComponents(Field(tj, "pre_tokenizer"), "Metaspace", &found);
  for (const Json* p : found) {
    const std::string scheme =
        p->value("prepend_scheme", p->value("add_prefix_space", true) ? "always" : "never");
    if (scheme != "never") return true;
  }
  return false;
}

// The tokenizer Tokenizer::FromGguf builds from the metadata in `w`.
Result<std::unique_ptr<Tokenizer>> TokenizerFromMetadata(GgufWriter* w, const std::string& label) {
  MOXIE_ASSIGN_OR_RETURN(std::vector<uint8_t> image, w->MetadataImage());
  MOXIE_ASSIGN_OR_RETURN(auto f, GgufFile::Parse(label, image.data(), image.size()));
  return Tokenizer::FromGguf(*f);
}

// Normalises a regex for comparing tokenizer.json's with the table's: the table writes CR/LF as
// \x{0d}/\x{0a}, tokenizer.json as \r/\n or the characters themselves, and a final "|\s+" after
// "\s+(?!\S)" changes nothing with Isolated splits (what it would match stays a piece anyway).
std::string NormRegex(std::string s) {
  s = ReplaceAll(ReplaceAll(std::move(s), "\\x{0d}", "\\r"), "\\x{0a}", "\\n");
  s = ReplaceAll(ReplaceAll(std::move(s), "\r", "\\r"), "\n", "\\n");
  const std::string tail = "\\s+(?!\\S)|\\s+";
  if (s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0) {
    s.resize(s.size() - 4);
  }
  return s;
}

// The tokenizer.json pre-tokenizer as a list of Isolated split regexes, as the table has them;
// false when some step has no such form.
bool SplitRegexes(const Json& p, std::vector<std::string>* out) {
  if (p.is_null()) return true;
  if (!p.is_object()) return false;
  const std::string type = p.value("type", "");
  if (type == "Sequence") {
    for (const auto& c : Field(p, "pretokenizers")) {
      if (!SplitRegexes(c, out)) return false;
    }
    return true;
  }
  if (type == "Split") {
    const Json& pat = Field(p, "pattern");
    if (!pat.is_object() || !pat.contains("Regex") || !pat["Regex"].is_string() ||
        p.value("behavior", "") != "Isolated" || p.value("invert", false)) {
      return false;
    }
    out->push_back(NormRegex(pat["Regex"].get<std::string>()));
    return true;
  }
  if (type == "ByteLevel") {
    if (p.value("add_prefix_space", false)) return false;
    if (p.value("use_regex", true)) out->push_back(NormRegex(kGpt2Regex));
    return true;
  }
  if (type == "Digits") {
    out->push_back(p.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+");
    return true;
  }
  return false;
}

// Table indices to try, best guess first: entries whose regexes equal tokenizer.json's, then the
// rest; within each, preferred names first; one entry per distinct behaviour.
std::vector<size_t> PreCandidates(const Json& tj) {
  std::vector<std::string> want;
  const bool comparable = SplitRegexes(Field(tj, "pre_tokenizer"), &want);
  const auto& table = PreTable();
  auto pref = [](const char* name) {
    for (size_t i = 0; i < std::size(kPreferredPre); ++i) {
      if (std::string(kPreferredPre[i]) == name) return static_cast<int>(i);
    }
    return INT_MAX;
  };
  std::vector<size_t> exact, rest;
  for (size_t i = 0; i < table.size(); ++i) {
    std::vector<std::string> rx;
    for (const char* r : table[i].regexes) rx.push_back(NormRegex(r));
    (comparable && rx == want ? exact : rest).push_back(i);
  }
  auto by_pref = [&](size_t a, size_t b) { return pref(table[a].name) < pref(table[b].name); };
  std::stable_sort(exact.begin(), exact.end(), by_pref);
  std::stable_sort(rest.begin(), rest.end(), by_pref);
  exact.insert(exact.end(), rest.begin(), rest.end());
  std::vector<size_t> out;
  std::set<std::string> seen;
  for (size_t i : exact) {
    std::string sig =
        std::string(table[i].ignore_merges ? "1" : "0") + (PreAddsNfc(table[i].name) ? "1" : "0");
    for (const char* r : table[i].regexes) sig += std::string("\x01") + r;
    if (seen.insert(sig).second) out.push_back(i);
  }
  return out;
}

// The reference encoding of the probe as the texts between added tokens, each with the byte
// offsets where its tokens end: the only places a pre-tokenizer that reproduces it may cut.
struct Segment {
  std::string text;
  std::vector<uint8_t> token_end;  // per byte offset 0..size
};

std::vector<Segment> Segments(const Tokenizer& ref, const Vocab& v,
                              const std::vector<int32_t>& ids) {
  std::vector<Segment> out(1);
  for (int32_t id : ids) {
    if (v.added.count(id)) {
      out.emplace_back();
      continue;
    }
    Segment& s = out.back();
    s.text += ref.TokenBytes(id, /*first=*/false);
    s.token_end.resize(s.text.size() + 1, 0);
    s.token_end[s.text.size()] = 1;
  }
  return out;
}

// Whether splitting every segment by `regexes` (Isolated, in order, as Tokenizer::FromGguf does)
// cuts only at token ends: necessary for the candidate to reproduce the reference (BPE never
// merges across a cut), and checked without building its tokenizer. False if a regex does not
// compile.
bool CutsOnlyAtTokenEnds(const std::vector<Segment>& segs,
                         const std::vector<const char*>& regexes) {
  std::vector<std::shared_ptr<const Regex>> rx;
  for (const char* r : regexes) {
    auto c = Regex::Compile(r);
    if (!c.ok()) return false;
    rx.push_back(*c);
  }
  for (const Segment& s : segs) {
    std::vector<std::pair<size_t, size_t>> pieces{{0, s.text.size()}};
    for (const auto& r : rx) {
      std::vector<std::pair<size_t, size_t>> next;
      for (auto [b, e] : pieces) {
        size_t last = b;
        for (auto [mb, me] : r->FindAll(std::string_view(s.text).substr(b, e - b))) {
          if (b + mb > last) next.emplace_back(last, b + mb);
          next.emplace_back(b + mb, b + me);
          last = b + me;
        }
        if (e > last) next.emplace_back(last, e);
      }
      pieces = std::move(next);
    }
    for (auto [b, e] : pieces) {
      if (b > 0 && !s.token_end[b]) return false;
    }
  }
  return true;
}

// First table name whose GGUF tokenizer encodes the probe as tokenizer.json does; sets it in `w`.
Result<std::string> ChoosePre(const Folder& f, const Tokenizer& ref, const Vocab& v,
                              const std::vector<int32_t>& want, GgufWriter* w) {
  const auto& table = PreTable();
  const std::vector<size_t> cands = PreCandidates(f.tj);
  const std::vector<Segment> segs = Segments(ref, v, want);
  for (size_t i : cands) {
    if (!CutsOnlyAtTokenEnds(segs, table[i].regexes)) continue;
    w->SetString("tokenizer.ggml.pre", table[i].name);
    auto t = TokenizerFromMetadata(w, f.dir + " (tokenizer.ggml.pre " + table[i].name + ")");
    if (!t.ok()) continue;
    if ((*t)->Encode(ProbeText(), {.add_special = false, .parse_special = false}) == want) {
      return std::string(table[i].name);
    }
  }
  return Unsupported(f.dir +
                     ": the tokenizer.json pre-tokenizer is not expressible in GGUF: none of "
                     "the " +
                     std::to_string(cands.size()) +
                     " distinct llama.cpp pre-tokenizers (tokenizer.ggml.pre) tokenizes a probe "
                     "text as " +
                     f.tj_path + " does");
}

enum class Kind { kGpt2, kLlama };

Result<Kind> Classify(const Folder& f) {
  const Json& m = f.tj["model"];
  const std::string type = m.value("type", "BPE");
  if (type != "BPE") {
    return Unsupported(f.tj_path + ": tokenizer model type '" + type +
                       "' cannot be written as GGUF tokenizer metadata (BPE only: byte-level as "
                       "\"gpt2\", SentencePiece-style as \"llama\")");
  }
  const bool byte_level = HasComponent(Field(f.tj, "pre_tokenizer"), "ByteLevel") ||
                          HasComponent(Field(f.tj, "decoder"), "ByteLevel");
  const bool byte_fallback = m.value("byte_fallback", false);
  if (byte_level && !byte_fallback) return Kind::kGpt2;
  if (byte_fallback && !byte_level) return Kind::kLlama;
  return Unsupported(f.tj_path + ": a BPE tokenizer that is " +
                     (byte_level ? "byte-level with byte_fallback"
                                 : "neither byte-level nor SentencePiece-style (byte_fallback)") +
                     " cannot be written as GGUF tokenizer metadata");
}

Status Write(const Folder& f, GgufWriter* out) {
  MOXIE_ASSIGN_OR_RETURN(Kind kind, Classify(f));
  // The reference: the tokenizer.json pipeline, encoding what the GGUF tokenizer must match.
  MOXIE_ASSIGN_OR_RETURN(auto ref, Tokenizer::FromJson(f.tj_text, f.tj_path));
  const Vocab v = ReadVocab(f, *ref);
  const std::vector<int32_t> want =
      ref->Encode(ProbeText(), {.add_special = false, .parse_special = false});
  const bool spm = kind == Kind::kLlama;
  GgufWriter w;  // keys in gguf-py's order
  w.SetString("tokenizer.ggml.model", spm ? "llama" : "gpt2");
  w.SetString("tokenizer.ggml.pre", "default");
  MOXIE_RETURN_IF_ERROR(spm ? SetLlamaVocab(f, v, &w) : SetGpt2Vocab(f, v, &w));
  const Specials s = ResolveSpecials(f, v, spm);
  for (const auto& [key, id] : s.ids) w.SetU32(key, static_cast<uint32_t>(id));
  w.SetBool("tokenizer.ggml.add_bos_token", s.add_bos);
  w.SetBool("tokenizer.ggml.add_eos_token", s.add_eos);
  if (spm) w.SetBool("tokenizer.ggml.add_space_prefix", SpmAddsSpacePrefix(f.tj));
  MOXIE_RETURN_IF_ERROR(WriteChatTemplates(f, &w));
  if (spm) {
    MOXIE_ASSIGN_OR_RETURN(auto t, TokenizerFromMetadata(&w, f.dir + " (GGUF tokenizer)"));
    if (t->Encode(ProbeText(), {.add_special = false, .parse_special = false}) != want) {
      return Unsupported(f.dir + ": the GGUF \"llama\" tokenizer built from " + f.tj_path +
                         " does not tokenize a probe text as tokenizer.json does (its normalizer "
                         "or pre-tokenizer is not expressible in GGUF)");
    }
  } else {
    MOXIE_RETURN_IF_ERROR(ChoosePre(f, *ref, v, want, &w).status());
  }
  for (const auto& [key, value] : w.kv()) out->Set(key, value);
  return Status::Ok();
}

}  // namespace

Status WriteTokenizerMetadata(const std::string& model_dir, GgufWriter* w) {
  MOXIE_ASSIGN_OR_RETURN(Folder f, LoadFolder(model_dir));
  try {
    return Write(f, w);
  } catch (const Json::exception& e) {  // a field of an unexpected JSON type
    return InvalidFormat(f.tj_path + " / " + f.tc_path + ": unexpected structure: " + e.what());
  }
}

void CopyTokenizerMetadata(const GgufFile& src, GgufWriter* w) {
  for (const auto& [key, value] : src.kv()) {
    if (key.compare(0, 10, "tokenizer.") == 0) w->Set(key, value);
  }
}

}  // namespace moxie
