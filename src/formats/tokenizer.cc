#include "formats/tokenizer.h"
#include "formats/json_parse.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <queue>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "core/utf8.h"
#include "formats/gguf.h"

namespace moxie {

using Json = nlohmann::json;

namespace {

const char* kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

// GPT-2's byte <-> unicode table: printable bytes map to themselves, the other 68 to U+0100...
struct ByteMap {
  std::string byte_to_str[256];
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteMap() {
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
      AppendUtf8(&byte_to_str[b], cp);
      cp_to_byte[cp] = static_cast<uint8_t>(b);
    }
  }
};
const ByteMap& Bytes() {
  static const ByteMap m;
  return m;
}

constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct NormStep {
  enum Kind { kNfc, kNfkc, kNfd, kNfkd, kLowercase, kPrepend, kReplace, kStrip } kind;
  std::string a, b;  // prepend text / replace pattern + content
  std::shared_ptr<const Regex> regex;  // Replace with a Regex pattern
  bool left = false, right = false;
};

struct PreStep {
  enum Kind { kSplit, kByteLevel, kMetaspace, kDigits, kWhitespaceSplit } kind;
  std::shared_ptr<const Regex> regex;  // Split / ByteLevel(use_regex)
  std::string literal;                 // Split with a String pattern
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;
  std::string replacement;            // Metaspace
  std::string prepend_scheme = "always";
  bool split = true;
  bool individual_digits = false;
};

struct PreTok {
  std::string text;
  bool at_start;  // begins at offset 0 of the original input (Metaspace prepend_scheme "first")
};

}  // namespace

struct Tokenizer::Impl {
  std::vector<NormStep> norm;
  std::vector<PreStep> pre;
  bool byte_level = false;  // pieces are byte-mapped before BPE
  // BPE model
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (a,b) -> (rank, merged id)
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
  int32_t unk = -1;
  int32_t byte_tokens[256];  // <0xXX> ids for byte fallback, -1 if absent
  // Decoder
  bool dec_byte_level = false;
  std::vector<std::pair<std::string, std::string>> dec_replace;
  bool dec_byte_fallback = false;
  int dec_strip_left = 0;  // leading spaces stripped from the first token

  static uint64_t Key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
};

struct TokenizerBuilder {
  Tokenizer& t;
  const Json& j;
  const std::string& path;

  Status Error(const std::string& what) const { return InvalidFormat(path + ": " + what); }
  Status Unsupported(const std::string& what) const {
    return moxie::Unsupported(path + ": " + what);
  }

  Result<std::shared_ptr<const Regex>> Pattern(const Json& p, std::string* literal) const {
    if (p.is_object() && p.contains("Regex") && p["Regex"].is_string()) {
      auto r = Regex::Compile(p["Regex"].get<std::string>());
      if (!r.ok()) return Error(r.status().message());
      return r;
    }
    if (p.is_object() && p.contains("String") && p["String"].is_string()) {
      *literal = p["String"].get<std::string>();
      return std::shared_ptr<const Regex>();
    }
    return Error("pattern must be {\"Regex\": ...} or {\"String\": ...}");
  }

  Status Normalizer(const Json& n) {
    if (n.is_null()) return Status::Ok();
    const std::string type = n.value("type", "");
    NormStep s{};
    if (type == "Sequence") {
      for (const auto& c : n.value("normalizers", Json::array())) MOXIE_RETURN_IF_ERROR(Normalizer(c));
      return Status::Ok();
    } else if (type == "NFC") {
      s.kind = NormStep::kNfc;
    } else if (type == "NFKC") {
      s.kind = NormStep::kNfkc;
    } else if (type == "NFD") {
      s.kind = NormStep::kNfd;
    } else if (type == "NFKD") {
      s.kind = NormStep::kNfkd;
    } else if (type == "Lowercase") {
      s.kind = NormStep::kLowercase;
    } else if (type == "Prepend") {
      s.kind = NormStep::kPrepend;
      s.a = n.value("prepend", "");
    } else if (type == "Replace") {
      s.kind = NormStep::kReplace;
      MOXIE_ASSIGN_OR_RETURN(s.regex, Pattern(n.value("pattern", Json()), &s.a));
      s.b = n.value("content", "");
    } else if (type == "Strip") {
      s.kind = NormStep::kStrip;
      s.left = n.value("strip_left", false);
      s.right = n.value("strip_right", false);
    } else {
      return Unsupported("normalizer type '" + type +
                         "' is not supported (Sequence, NFC, NFKC, NFD, NFKD, Lowercase, Prepend, "
                         "Replace, Strip)");
    }
    t.impl_->norm.push_back(std::move(s));
    return Status::Ok();
  }

  Status PreTokenizer(const Json& p) {
    if (p.is_null()) return Status::Ok();
    const std::string type = p.value("type", "");
    PreStep s{};
    if (type == "Sequence") {
      for (const auto& c : p.value("pretokenizers", Json::array())) MOXIE_RETURN_IF_ERROR(PreTokenizer(c));
      return Status::Ok();
    } else if (type == "Split") {
      s.kind = PreStep::kSplit;
      MOXIE_ASSIGN_OR_RETURN(s.regex, Pattern(p.value("pattern", Json()), &s.literal));
      const std::string b = p.value("behavior", "Isolated");
      if (b == "Isolated") {
        s.behavior = SplitBehavior::kIsolated;
      } else if (b == "Removed") {
        s.behavior = SplitBehavior::kRemoved;
      } else if (b == "MergedWithPrevious") {
        s.behavior = SplitBehavior::kMergedWithPrevious;
      } else if (b == "MergedWithNext") {
        s.behavior = SplitBehavior::kMergedWithNext;
      } else if (b == "Contiguous") {
        s.behavior = SplitBehavior::kContiguous;
      } else {
        return Unsupported("Split behavior '" + b + "'");
      }
      s.invert = p.value("invert", false);
      if (s.invert) return Unsupported("Split with invert = true");
    } else if (type == "ByteLevel") {
      s.kind = PreStep::kByteLevel;
      s.add_prefix_space = p.value("add_prefix_space", false);
      if (p.value("use_regex", true)) {
        auto r = Regex::Compile(kGpt2Regex);
        if (!r.ok()) return r.status();
        s.regex = *r;
      }
      t.impl_->byte_level = true;
    } else if (type == "Metaspace") {
      s.kind = PreStep::kMetaspace;
      s.replacement = p.value("replacement", std::string(kMetaspace));
      s.prepend_scheme = p.value("prepend_scheme", p.value("add_prefix_space", true) ? "always" : "never");
      s.split = p.value("split", true);
    } else if (type == "Digits") {
      s.kind = PreStep::kDigits;
      s.individual_digits = p.value("individual_digits", false);
    } else if (type == "WhitespaceSplit") {
      s.kind = PreStep::kWhitespaceSplit;
    } else {
      return Unsupported("pre_tokenizer type '" + type +
                         "' is not supported (Sequence, Split, ByteLevel, Metaspace, Digits, "
                         "WhitespaceSplit)");
    }
    t.impl_->pre.push_back(std::move(s));
    return Status::Ok();
  }

  Status Decoder(const Json& d) {
    if (d.is_null()) return Status::Ok();
    const std::string type = d.value("type", "");
    auto& I = *t.impl_;
    if (type == "Sequence") {
      for (const auto& c : d.value("decoders", Json::array())) MOXIE_RETURN_IF_ERROR(Decoder(c));
    } else if (type == "ByteLevel") {
      I.dec_byte_level = true;
    } else if (type == "Replace") {
      std::string lit;
      MOXIE_ASSIGN_OR_RETURN(auto rx, Pattern(d.value("pattern", Json()), &lit));
      if (rx) return Unsupported("Replace decoder with a regex pattern");
      I.dec_replace.emplace_back(lit, d.value("content", ""));
    } else if (type == "ByteFallback") {
      I.dec_byte_fallback = true;
    } else if (type == "Fuse") {
      // Concatenation: what TokenBytes-by-token decoding does anyway.
    } else if (type == "Strip") {
      if (d.value("content", " ") != " " || d.value("stop", 0) != 0) {
        return Unsupported("Strip decoder other than leading spaces");
      }
      I.dec_strip_left = d.value("start", 0);
    } else if (type == "Metaspace") {
      I.dec_replace.emplace_back(d.value("replacement", std::string(kMetaspace)), " ");
      const std::string scheme =
          d.value("prepend_scheme", d.value("add_prefix_space", true) ? "always" : "never");
      if (scheme != "never") I.dec_strip_left = 1;
    } else {
      return Unsupported("decoder type '" + type +
                         "' is not supported (Sequence, ByteLevel, Replace, ByteFallback, Fuse, "
                         "Strip, Metaspace)");
    }
    return Status::Ok();
  }

  Status PostProcessor(const Json& p) {
    if (p.is_null()) return Status::Ok();
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
      for (const auto& c : p.value("processors", Json::array())) MOXIE_RETURN_IF_ERROR(PostProcessor(c));
      return Status::Ok();
    }
    if (type != "TemplateProcessing") return Status::Ok();  // ByteLevel etc. add nothing
    bool seen_seq = false;
    for (const auto& item : p.value("single", Json::array())) {
      if (item.contains("Sequence")) {
        seen_seq = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].value("id", "");
        int32_t id = -1;
        auto st = p.value("special_tokens", Json::object());
        if (st.contains(name) && st[name].contains("ids") && !st[name]["ids"].empty()) {
          id = st[name]["ids"][0].get<int32_t>();
        } else if (auto f = t.piece_to_id_.find(name); f != t.piece_to_id_.end()) {
          id = f->second;
        }
        if (id < 0) return Error("post_processor names unknown special token '" + name + "'");
        if (!seen_seq) {
          t.add_bos_ = true;
          t.bos_ = id;
        } else {
          t.add_eos_ = true;
          t.eos_ = id;
        }
      }
    }
    return Status::Ok();
  }

  Status Model(const Json& m) {
    const std::string type = m.value("type", "BPE");
    if (type != "BPE") {
      return Unsupported("tokenizer model type '" + type + "' is not supported (BPE only)");
    }
    auto set = [&](const char* k) {  // null and "" both mean "none"
      const Json v = m.value(k, Json());
      return !v.is_null() && !(v.is_string() && v.get<std::string>().empty());
    };
    if (set("continuing_subword_prefix") || set("end_of_word_suffix")) {
      return Unsupported("BPE continuing_subword_prefix / end_of_word_suffix");
    }
    auto& I = *t.impl_;
    const Json& vocab = m.value("vocab", Json::object());
    if (!vocab.is_object() || vocab.empty()) return Error("model.vocab is missing or empty");
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      if (!it->is_number_integer()) return Error("model.vocab['" + it.key() + "'] is not an id");
      const int64_t id = it->get<int64_t>();
      if (id < 0 || id >= (1 << 24)) return Error("model.vocab id out of range: " + std::to_string(id));
      AddPiece(static_cast<int32_t>(id), it.key());
    }
    I.byte_fallback = m.value("byte_fallback", false);
    I.fuse_unk = m.value("fuse_unk", false);
    I.ignore_merges = m.value("ignore_merges", false);
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      auto f = t.piece_to_id_.find(m["unk_token"].get<std::string>());
      if (f != t.piece_to_id_.end()) I.unk = f->second;
    }
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      auto f = t.piece_to_id_.find(name);
      I.byte_tokens[b] = f == t.piece_to_id_.end() ? -1 : f->second;
    }
    const Json& merges = m.value("merges", Json::array());
    int32_t rank = 0;
    for (const auto& mg : merges) {
      std::string a, b;
      if (mg.is_string()) {
        const std::string s = mg.get<std::string>();
        const size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) return Error("merge " + std::to_string(rank) + " '" + s + "' has no space");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
        a = mg[0].get<std::string>();
        b = mg[1].get<std::string>();
      } else {
        return Error("merge " + std::to_string(rank) + " is neither \"a b\" nor [a, b]");
      }
      auto fa = t.piece_to_id_.find(a), fb = t.piece_to_id_.find(b), fm = t.piece_to_id_.find(a + b);
      if (fa == t.piece_to_id_.end() || fb == t.piece_to_id_.end() || fm == t.piece_to_id_.end()) {
        return Error("merge " + std::to_string(rank) + " ('" + a + "', '" + b +
                     "') uses or makes a token that is not in the vocabulary");
      }
      I.merges.emplace(Tokenizer::Impl::Key(fa->second, fb->second), std::make_pair(rank, fm->second));
      ++rank;
    }
    return Status::Ok();
  }

  void AddPiece(int32_t id, const std::string& piece) {
    if (static_cast<size_t>(id) >= t.id_to_piece_.size()) t.id_to_piece_.resize(id + 1);
    t.id_to_piece_[id] = piece;
    t.piece_to_id_[piece] = id;
  }

  Status AddedTokens(const Json& arr) {
    for (const auto& a : arr) {
      AddedToken at;
      if (!a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string()) {
        return Error("added_tokens entry without integer 'id' and string 'content'");
      }
      at.id = a["id"].get<int32_t>();
      if (at.id < 0 || at.id >= (1 << 24)) return Error("added token id out of range");
      at.content = a["content"].get<std::string>();
      if (at.content.empty()) return Error("added token " + std::to_string(at.id) + " is empty");
      at.special = a.value("special", false);
      at.lstrip = a.value("lstrip", false);
      at.rstrip = a.value("rstrip", false);
      at.normalized = a.value("normalized", !at.special);
      at.single_word = a.value("single_word", false);
      AddPiece(at.id, at.content);
      t.added_.push_back(std::move(at));
    }
    std::stable_sort(t.added_.begin(), t.added_.end(), [](const AddedToken& x, const AddedToken& y) {
      return x.content.size() > y.content.size();
    });
    t.special_.assign(t.id_to_piece_.size(), 0);
    for (const auto& a : t.added_) t.special_[a.id] = a.special ? 1 : 0;
    return Status::Ok();
  }

  Status Build() {
    if (!j.is_object()) return Error("not a JSON object");
    MOXIE_RETURN_IF_ERROR(Model(j.value("model", Json::object())));
    MOXIE_RETURN_IF_ERROR(AddedTokens(j.value("added_tokens", Json::array())));
    MOXIE_RETURN_IF_ERROR(Normalizer(j.value("normalizer", Json())));
    // Each Replace can multiply the text's length by up to 1 + its content's length (a match is
    // at least one byte, or empty); chained, they could grow a prompt without bound. Real
    // tokenizers replace a character or two (" " -> "▁": x4).
    double growth = 1;
    for (const auto& step : t.impl_->norm) {
      if (step.kind == NormStep::kReplace) growth *= 1.0 + static_cast<double>(step.b.size());
    }
    constexpr double kMaxNormGrowth = 4096;
    if (growth > kMaxNormGrowth) {
      char g[32];
      std::snprintf(g, sizeof g, "%.3g", growth);
      return Error(std::string("the normalizer's Replace steps could grow a text up to ") + g + "-fold (limit " +
                   std::to_string(static_cast<int>(kMaxNormGrowth)) + ")");
    }
    MOXIE_RETURN_IF_ERROR(PreTokenizer(j.value("pre_tokenizer", Json())));
    MOXIE_RETURN_IF_ERROR(Decoder(j.value("decoder", Json())));
    MOXIE_RETURN_IF_ERROR(PostProcessor(j.value("post_processor", Json())));
    // Any id without a piece (gaps) stays empty; make sure special_ covers every id.
    t.special_.resize(t.id_to_piece_.size(), 0);
    return Status::Ok();
  }
};

namespace {

std::string Utf8procMap(const std::string& s, int options) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                          static_cast<utf8proc_ssize_t>(s.size()), &out,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0 || out == nullptr) return s;  // input is valid UTF-8 here; keep it unchanged
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

std::string ReplaceAll(const std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  std::string out;
  size_t i = 0;
  for (size_t f; (f = s.find(from, i)) != std::string::npos; i = f + from.size()) {
    out.append(s, i, f - i);
    out += to;
  }
  out.append(s, i, std::string::npos);
  return out;
}

std::string Normalize(const Tokenizer::Impl& I, std::string s) {
  for (const auto& n : I.norm) {
    switch (n.kind) {
      case NormStep::kNfc:
        s = Utf8procMap(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        break;
      case NormStep::kNfkc:
        s = Utf8procMap(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        break;
      case NormStep::kNfd:
        s = Utf8procMap(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
        break;
      case NormStep::kNfkd:
        s = Utf8procMap(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
        break;
      case NormStep::kLowercase:
        s = Utf8procMap(s, UTF8PROC_CASEFOLD);
        break;
      case NormStep::kPrepend:
        if (!s.empty()) s = n.a + s;  // HF prepends only to non-empty text
        break;
      case NormStep::kReplace:
        if (n.regex) {
          std::string out;
          size_t last = 0;
          for (auto [b, e] : n.regex->FindAll(s)) {
            out.append(s, last, b - last);
            out += n.b;
            last = e;
          }
          out.append(s, last, std::string::npos);
          s = out;
        } else {
          s = ReplaceAll(s, n.a, n.b);
        }
        break;
      case NormStep::kStrip: {
        size_t b = 0, e = s.size();
        if (n.left) while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
        if (n.right) while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
        s = s.substr(b, e - b);
        break;
      }
    }
  }
  return s;
}

// Splits one piece by matches of `ranges` (byte ranges within `text`) per HF SplitDelimiterBehavior.
void SplitByMatches(const PreTok& p, const std::vector<std::pair<size_t, size_t>>& m,
                    SplitBehavior beh, std::vector<PreTok>* out) {
  const std::string& s = p.text;
  auto emit = [&](size_t b, size_t e) {
    if (e > b) out->push_back({s.substr(b, e - b), p.at_start && b == 0});
  };
  size_t last = 0;
  size_t pending_from = std::string::npos;  // kMergedWithNext: start of a match awaiting its tail
  for (size_t i = 0; i < m.size(); ++i) {
    auto [b, e] = m[i];
    switch (beh) {
      case SplitBehavior::kIsolated:
        emit(last, b);
        emit(b, e);
        last = e;
        break;
      case SplitBehavior::kRemoved:
        emit(last, b);
        last = e;
        break;
      case SplitBehavior::kMergedWithPrevious:
        emit(last, e);
        last = e;
        break;
      case SplitBehavior::kMergedWithNext:
        if (pending_from == std::string::npos) {
          emit(last, b);
        } else {
          emit(pending_from, b);
        }
        pending_from = b;
        last = e;
        break;
      case SplitBehavior::kContiguous: {
        size_t j = i;
        while (j + 1 < m.size() && m[j + 1].first == m[j].second) ++j;
        emit(last, b);
        emit(b, m[j].second);
        last = m[j].second;
        i = j;
        break;
      }
    }
  }
  if (beh == SplitBehavior::kMergedWithNext && pending_from != std::string::npos) {
    emit(pending_from, s.size());
  } else {
    emit(last, s.size());
  }
}

std::vector<std::pair<size_t, size_t>> LiteralMatches(const std::string& s, const std::string& lit) {
  std::vector<std::pair<size_t, size_t>> m;
  if (lit.empty()) return m;
  for (size_t f = s.find(lit); f != std::string::npos; f = s.find(lit, f + lit.size())) {
    m.emplace_back(f, f + lit.size());
  }
  return m;
}

std::vector<PreTok> PreTokenize(const Tokenizer::Impl& I, PreTok whole) {
  std::vector<PreTok> pieces{std::move(whole)};
  for (const auto& st : I.pre) {
    std::vector<PreTok> next;
    for (auto& p : pieces) {
      switch (st.kind) {
        case PreStep::kSplit:
          SplitByMatches(p, st.regex ? st.regex->FindAll(p.text) : LiteralMatches(p.text, st.literal),
                         st.behavior, &next);
          break;
        case PreStep::kByteLevel: {
          PreTok q = p;
          if (st.add_prefix_space && !q.text.empty() && q.text[0] != ' ') q.text = " " + q.text;
          if (st.regex) {
            SplitByMatches(q, st.regex->FindAll(q.text), SplitBehavior::kIsolated, &next);
          } else {
            next.push_back(std::move(q));
          }
          break;
        }
        case PreStep::kMetaspace: {
          if (p.text.empty()) break;
          PreTok q = p;
          q.text = ReplaceAll(q.text, " ", st.replacement);
          const bool prepend = st.prepend_scheme == "always" ||
                               (st.prepend_scheme == "first" && q.at_start);
          if (prepend && q.text.compare(0, st.replacement.size(), st.replacement) != 0) {
            q.text = st.replacement + q.text;
          }
          if (st.split) {
            SplitByMatches(q, LiteralMatches(q.text, st.replacement), SplitBehavior::kMergedWithNext,
                           &next);
          } else {
            next.push_back(std::move(q));
          }
          break;
        }
        case PreStep::kDigits: {
          static const auto rx = Regex::Compile(R"(\p{N}+)");
          static const auto rx1 = Regex::Compile(R"(\p{N})");
          const auto& r = st.individual_digits ? rx1 : rx;
          SplitByMatches(p, r.value()->FindAll(p.text), SplitBehavior::kIsolated, &next);
          break;
        }
        case PreStep::kWhitespaceSplit: {
          static const auto rx = Regex::Compile(R"(\s+)");
          SplitByMatches(p, rx.value()->FindAll(p.text), SplitBehavior::kRemoved, &next);
          break;
        }
      }
    }
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace

// BPE over one pre-tokenized piece (already byte-mapped for byte-level vocabularies).
static void BpePiece(const Tokenizer::Impl& I,
                     const std::unordered_map<std::string, int32_t>& p2i, const std::string& word,
                     std::vector<int32_t>* out) {
  if (word.empty()) return;
  if (I.ignore_merges) {
    auto f = p2i.find(word);
    if (f != p2i.end()) {
      out->push_back(f->second);
      return;
    }
  }
  // Initial symbols: one per character (or per byte via <0xXX> when the character is unknown).
  std::vector<int32_t> sym;
  for (size_t i = 0; i < word.size();) {
    size_t len = Utf8SeqLen(word, i);
    if (len == 0) len = 1;
    auto f = p2i.find(word.substr(i, len));
    if (f != p2i.end()) {
      sym.push_back(f->second);
    } else if (I.byte_fallback) {
      bool all = true;
      for (size_t k = 0; k < len; ++k) all &= I.byte_tokens[static_cast<uint8_t>(word[i + k])] >= 0;
      if (all) {
        for (size_t k = 0; k < len; ++k) sym.push_back(I.byte_tokens[static_cast<uint8_t>(word[i + k])]);
      } else if (I.unk >= 0) {
        sym.push_back(I.unk);
      }
    } else if (I.unk >= 0) {
      if (!(I.fuse_unk && !sym.empty() && sym.back() == I.unk)) sym.push_back(I.unk);
    }
    i += len;
  }
  const size_t n = sym.size();
  if (n == 0) return;
  // Doubly linked list + min-heap of (rank, position) candidates; stale entries are skipped.
  std::vector<int32_t> prev(n), next(n);
  std::vector<uint8_t> alive(n, 1);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  using Cand = std::tuple<int32_t, int32_t, int32_t, int32_t>;  // rank, pos, left id, right id
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t pos) {
    const int32_t nx = next[pos];
    if (pos < 0 || nx < 0) return;
    auto f = I.merges.find(Tokenizer::Impl::Key(sym[pos], sym[nx]));
    if (f != I.merges.end()) heap.emplace(f->second.first, pos, sym[pos], sym[nx]);
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    auto [rank, pos, a, b] = heap.top();
    heap.pop();
    const int32_t nx = next[pos];
    if (!alive[pos] || nx < 0 || sym[pos] != a || sym[nx] != b) continue;
    sym[pos] = I.merges.at(Tokenizer::Impl::Key(a, b)).second;
    alive[nx] = 0;
    next[pos] = next[nx];
    if (next[nx] >= 0) prev[next[nx]] = pos;
    if (prev[pos] >= 0) push(prev[pos]);
    push(pos);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out->push_back(sym[i]);
}

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(const std::string& text,
                                                       const std::string& path) {
  MOXIE_ASSIGN_OR_RETURN(Json j, ParseJson<Json>(text, path));
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  try {
    TokenizerBuilder b{*t, j, path};
    MOXIE_RETURN_IF_ERROR(b.Build());
  } catch (const Json::exception& e) {  // a field of the wrong JSON type
    return InvalidFormat(path + ": unexpected structure: " + e.what());
  }
  return t;
}

namespace {

// tokenizer_config.json writes special tokens as "str" or {"content": "str", ...}.
std::string TokenString(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return "";
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromModelDir(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string tj = (fs::path(dir) / "tokenizer.json").string();
  std::error_code ec;
  if (!fs::exists(tj, ec)) {
    return NotFound(dir + ": no tokenizer.json (Moxie reads Hugging Face tokenizer.json files)");
  }
  MOXIE_ASSIGN_OR_RETURN(std::string text, ReadTextFile(tj));
  MOXIE_ASSIGN_OR_RETURN(auto t, FromJson(text, tj));
  const std::string cfg_path = (fs::path(dir) / "tokenizer_config.json").string();
  if (fs::exists(cfg_path, ec)) {
    MOXIE_ASSIGN_OR_RETURN(std::string ctext, ReadTextFile(cfg_path));
    MOXIE_ASSIGN_OR_RETURN(Json c, ParseJson<Json>(ctext, cfg_path));
    if (!c.is_object()) return InvalidFormat(cfg_path + ": not a JSON object");
    for (const char* key : {"bos_token", "eos_token", "pad_token", "unk_token"}) {
      if (!c.contains(key)) continue;
      const std::string s = TokenString(c[key]);
      if (s.empty()) continue;
      t->special_strings_.emplace_back(key, s);
      auto id = t->TokenId(s);
      if (id && std::string(key) == "bos_token") t->bos_ = *id;
      if (id && std::string(key) == "eos_token") t->eos_ = *id;
    }
    if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean()) {
      t->add_bos_ = c["add_bos_token"].get<bool>() && t->bos_ >= 0;
    }
    if (c.contains("add_eos_token") && c["add_eos_token"].is_boolean()) {
      t->add_eos_ = c["add_eos_token"].get<bool>() && t->eos_ >= 0;
    }
    if (c.contains("chat_template")) {
      const Json& ct = c["chat_template"];
      if (ct.is_string()) {
        t->chat_template_ = ct.get<std::string>();
      } else if (ct.is_array()) {  // [{"name": "default", "template": "..."}, ...]
        for (const auto& e : ct) {
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template")) {
            t->chat_template_ = e["template"].get<std::string>();
          }
        }
      }
    }
  }
  const std::string jinja_path = (fs::path(dir) / "chat_template.jinja").string();
  if (t->chat_template_.empty() && fs::exists(jinja_path, ec)) {
    MOXIE_ASSIGN_OR_RETURN(t->chat_template_, ReadTextFile(jinja_path));
  }
  return t;
}


namespace {

struct GgufPre {
  const char* name;
  bool ignore_merges;
  std::vector<const char*> regexes;
};

const std::vector<GgufPre>& GgufPreTable() {
  static const std::vector<GgufPre> table = {
#include "formats/gguf_pre_table.inc"
  };
  return table;
}

Result<std::vector<std::string>> StringArray(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.Find(key);
  if (v == nullptr) return NotFound(f.path() + ": missing metadata key '" + key + "'");
  if (!v->is_array() || v->as_array().type != GgufType::kString) {
    return InvalidFormat(f.path() + ": '" + key + "' is not an array of strings");
  }
  std::vector<std::string> out;
  out.reserve(v->as_array().items.size());
  for (const auto& x : v->as_array().items) out.push_back(x.as_string());
  return out;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& f) {
  MOXIE_ASSIGN_OR_RETURN(std::string model, f.GetString("tokenizer.ggml.model"));
  MOXIE_ASSIGN_OR_RETURN(auto tokens, StringArray(f, "tokenizer.ggml.tokens"));
  if (tokens.empty() || tokens.size() > (1u << 24)) {
    return InvalidFormat(f.path() + ": tokenizer.ggml.tokens has " + std::to_string(tokens.size()) +
                         " entries");
  }
  std::vector<int64_t> types(tokens.size(), 1);
  if (const GgufValue* tv = f.Find("tokenizer.ggml.token_type")) {
    if (!tv->is_array() || tv->as_array().items.size() != tokens.size()) {
      return InvalidFormat(f.path() + ": tokenizer.ggml.token_type must have one entry per token");
    }
    for (size_t i = 0; i < tokens.size(); ++i) types[i] = tv->as_array().items[i].as_int();
  }
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  Impl& I = *t->impl_;
  for (size_t i = 0; i < tokens.size(); ++i) {
    t->id_to_piece_.push_back(tokens[i]);
    t->piece_to_id_.emplace(tokens[i], static_cast<int32_t>(i));
    // 3 = control (special added token), 4 = user-defined (added token matched in text).
    if (types[i] == 3 || types[i] == 4) {
      AddedToken a;
      a.id = static_cast<int32_t>(i);
      a.content = tokens[i];
      a.special = types[i] == 3;
      if (!a.content.empty()) t->added_.push_back(std::move(a));
    }
  }
  std::stable_sort(t->added_.begin(), t->added_.end(), [](const AddedToken& x, const AddedToken& y) {
    return x.content.size() > y.content.size();
  });
  t->special_.assign(tokens.size(), 0);
  for (const auto& a : t->added_) t->special_[a.id] = a.special ? 1 : 0;
  auto merge_rank = [&](const std::string& a, const std::string& b, int32_t rank) {
    auto fa = t->piece_to_id_.find(a), fb = t->piece_to_id_.find(b), fm = t->piece_to_id_.find(a + b);
    if (fa == t->piece_to_id_.end() || fb == t->piece_to_id_.end() || fm == t->piece_to_id_.end()) {
      return false;
    }
    I.merges.emplace(Impl::Key(fa->second, fb->second), std::make_pair(rank, fm->second));
    return true;
  };
  const int64_t n = static_cast<int64_t>(tokens.size());
  auto id_or = [&](const char* key, int64_t def) {
    const int64_t v = f.GetIntOr(key, def);
    return v >= 0 && v < n ? static_cast<int32_t>(v) : static_cast<int32_t>(-1);
  };
  t->bos_ = id_or("tokenizer.ggml.bos_token_id", -1);
  t->eos_ = id_or("tokenizer.ggml.eos_token_id", -1);
  I.unk = id_or("tokenizer.ggml.unknown_token_id", -1);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = t->piece_to_id_.find(name);
    I.byte_tokens[b] = it == t->piece_to_id_.end() ? -1 : it->second;
  }
  if (model == "gpt2") {
    MOXIE_ASSIGN_OR_RETURN(auto merges, StringArray(f, "tokenizer.ggml.merges"));
    for (size_t r = 0; r < merges.size(); ++r) {
      const size_t sp = merges[r].find(' ', 1);
      if (sp == std::string::npos ||
          !merge_rank(merges[r].substr(0, sp), merges[r].substr(sp + 1), static_cast<int32_t>(r))) {
        return InvalidFormat(f.path() + ": tokenizer.ggml.merges[" + std::to_string(r) + "] '" +
                             merges[r] + "' is malformed or names tokens not in the vocabulary");
      }
    }
    const std::string pre = f.GetStringOr("tokenizer.ggml.pre", "default");
    const GgufPre* entry = nullptr;
    for (const auto& e : GgufPreTable()) {
      if (pre == e.name) entry = &e;
    }
    if (entry == nullptr) {
      return moxie::Unsupported(f.path() + ": tokenizer.ggml.pre '" + pre + "' is not supported");
    }
    for (const char* rx : entry->regexes) {
      auto r = Regex::Compile(rx);
      if (!r.ok()) return r.status();
      PreStep s{};
      s.kind = PreStep::kSplit;
      s.regex = *r;
      I.pre.push_back(std::move(s));
    }
    I.byte_level = true;
    I.dec_byte_level = true;
    I.ignore_merges = entry->ignore_merges;
    // Hugging Face normalises these vocabularies to NFC (llama.cpp does not).
    if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "mpt") {
      I.norm.push_back(NormStep{NormStep::kNfc, "", "", nullptr, false, false});
    }
    t->add_bos_ = f.GetBoolOr("tokenizer.ggml.add_bos_token", false) && t->bos_ >= 0;
  } else if (model == "llama") {
    std::vector<double> scores(tokens.size(), 0.0);
    if (const GgufValue* sv = f.Find("tokenizer.ggml.scores")) {
      if (!sv->is_array() || sv->as_array().items.size() != tokens.size()) {
        return InvalidFormat(f.path() + ": tokenizer.ggml.scores must have one entry per token");
      }
      for (size_t i = 0; i < tokens.size(); ++i) scores[i] = sv->as_array().items[i].as_float();
    }
    // Merges from scores (transformers' SentencePieceExtractor): every split of a piece into two
    // pieces of the vocabulary is a merge; order by the merged piece's score, best first.
    struct M {
      int32_t l, r;
      double score;
    };
    std::vector<M> ms;
    // Each split of a piece hashes both halves, so a piece costs its length squared: pieces over
    // kMaxMergePiece bytes (none in real vocabularies; a crafted 400 000-byte token took minutes)
    // get no merges, so BPE never builds them.
    constexpr size_t kMaxMergePiece = 1024;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string& p = tokens[i];
      if (p.size() > kMaxMergePiece) continue;
      std::vector<M> local;
      for (size_t k = 1; k < p.size(); ++k) {
        if ((static_cast<uint8_t>(p[k]) & 0xC0) == 0x80) continue;  // split at characters only
        auto fl = t->piece_to_id_.find(p.substr(0, k)), fr = t->piece_to_id_.find(p.substr(k));
        if (fl != t->piece_to_id_.end() && fr != t->piece_to_id_.end()) {
          local.push_back({fl->second, fr->second, scores[i]});
        }
      }
      std::sort(local.begin(), local.end(),
                [](const M& a, const M& b) { return a.l != b.l ? a.l < b.l : a.r < b.r; });
      ms.insert(ms.end(), local.begin(), local.end());
    }
    std::stable_sort(ms.begin(), ms.end(), [](const M& a, const M& b) { return a.score > b.score; });
    for (size_t r = 0; r < ms.size(); ++r) {
      merge_rank(tokens[ms[r].l], tokens[ms[r].r], static_cast<int32_t>(r));
    }
    I.byte_fallback = true;
    const bool space_prefix = f.GetBoolOr("tokenizer.ggml.add_space_prefix", true);
    if (space_prefix) I.norm.push_back(NormStep{NormStep::kPrepend, kMetaspace, "", nullptr, false, false});
    I.norm.push_back(NormStep{NormStep::kReplace, " ", kMetaspace, nullptr, false, false});
    I.dec_replace.emplace_back(kMetaspace, " ");
    I.dec_byte_fallback = true;
    I.dec_strip_left = space_prefix ? 1 : 0;
    t->add_bos_ = f.GetBoolOr("tokenizer.ggml.add_bos_token", true) && t->bos_ >= 0;
  } else {
    return moxie::Unsupported(f.path() + ": tokenizer.ggml.model '" + model +
                              "' is not supported (gpt2, llama)");
  }
  t->add_eos_ = f.GetBoolOr("tokenizer.ggml.add_eos_token", false) && t->eos_ >= 0;
  t->chat_template_ = f.GetStringOr("tokenizer.chat_template", "");
  if (t->bos_ >= 0) t->special_strings_.emplace_back("bos_token", tokens[t->bos_]);
  if (t->eos_ >= 0) t->special_strings_.emplace_back("eos_token", tokens[t->eos_]);
  return t;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromPath(const std::string& path) {
  if (LooksLikeGguf(path)) {
    MOXIE_ASSIGN_OR_RETURN(auto f, GgufFile::Open(path));
    return FromGguf(*f);
  }
  return FromModelDir(path);
}

std::vector<int32_t> Tokenizer::Encode(std::string_view raw, const EncodeOptions& opts) const {
  const std::string text = IsValidUtf8(raw) ? std::string(raw) : RepairUtf8(raw);
  std::vector<int32_t> out;
  if (opts.add_special && add_bos_ && bos_ >= 0) out.push_back(bos_);
  // 1. Split off added tokens (longest match at the earliest position).
  struct Seg {
    size_t b, e;
    int32_t id;  // -1 = text
  };
  std::vector<Seg> segs;
  size_t last = 0;
  for (size_t i = 0; i < text.size();) {
    const AddedToken* hit = nullptr;
    for (const auto& a : added_) {
      if (a.special && !opts.parse_special) continue;
      if (text.compare(i, a.content.size(), a.content) == 0) {
        hit = &a;
        break;  // sorted longest first
      }
    }
    if (hit == nullptr) {
      size_t len = Utf8SeqLen(text, i);
      i += len == 0 ? 1 : len;
      continue;
    }
    size_t b = i, e = i + hit->content.size();
    size_t tb = b;
    if (hit->lstrip) {
      while (tb > last && std::isspace(static_cast<unsigned char>(text[tb - 1]))) --tb;
    }
    if (tb > last) segs.push_back({last, tb, -1});
    segs.push_back({b, e, hit->id});
    if (hit->rstrip) {
      while (e < text.size() && std::isspace(static_cast<unsigned char>(text[e]))) ++e;
    }
    last = e;
    i = e;
  }
  if (last < text.size()) segs.push_back({last, text.size(), -1});
  // 2. Normalise, pre-tokenise and BPE each text segment.
  const ByteMap& bm = Bytes();
  for (const Seg& s : segs) {
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    const std::string norm = Normalize(*impl_, text.substr(s.b, s.e - s.b));
    for (const PreTok& p : PreTokenize(*impl_, PreTok{norm, s.b == 0})) {
      if (impl_->byte_level) {
        std::string mapped;
        for (unsigned char c : p.text) mapped += bm.byte_to_str[c];
        BpePiece(*impl_, piece_to_id_, mapped, &out);
      } else {
        BpePiece(*impl_, piece_to_id_, p.text, &out);
      }
    }
  }
  if (opts.add_special && add_eos_ && eos_ >= 0) out.push_back(eos_);
  return out;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < special_.size() && special_[id] != 0;
}

const std::string& Tokenizer::Piece(int32_t id) const {
  static const std::string kEmpty;
  if (id < 0 || static_cast<size_t>(id) >= id_to_piece_.size()) return kEmpty;
  return id_to_piece_[id];
}

std::optional<int32_t> Tokenizer::TokenId(const std::string& piece) const {
  auto f = piece_to_id_.find(piece);
  if (f == piece_to_id_.end()) return std::nullopt;
  return f->second;
}

std::string Tokenizer::TokenBytes(int32_t id, bool first) const {
  const std::string& p = Piece(id);
  const Impl& I = *impl_;
  std::string s;
  if (I.dec_byte_level) {
    // HF: map every character back to its byte; a token with any unmapped character (an added
    // token such as "<｜begin▁of▁sentence｜>") is emitted as its raw UTF-8.
    const ByteMap& bm = Bytes();
    bool ok = true;
    for (size_t i = 0; i < p.size() && ok;) {
      size_t len;
      const uint32_t cp = DecodeUtf8At(p, i, &len);
      auto f = bm.cp_to_byte.find(cp);
      if (f == bm.cp_to_byte.end()) {
        ok = false;
      } else {
        s.push_back(static_cast<char>(f->second));
      }
      i += len;
    }
    if (!ok) s = p;
  } else {
    s = p;
    auto hex = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    };
    // "<0xHH>" with two hex digits is a byte; anything else (e.g. "<0xZZ>") is plain text.
    if (I.dec_byte_fallback && p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && hex(p[3]) >= 0 &&
        hex(p[4]) >= 0) {
      s = std::string(1, static_cast<char>(hex(p[3]) * 16 + hex(p[4])));
    } else {
      for (const auto& [from, to] : I.dec_replace) s = ReplaceAll(s, from, to);
    }
  }
  if (first) {
    for (int k = 0; k < I.dec_strip_left && !s.empty() && s[0] == ' '; ++k) s.erase(0, 1);
  }
  return s;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  bool first = true;
  for (int32_t id : ids) {
    if (skip_special && IsSpecial(id)) continue;
    bytes += TokenBytes(id, first);
    first = false;
  }
  return RepairUtf8(bytes);
}

std::string StreamingDecoder::Push(int32_t id) {
  if (skip_special_ && tok_.IsSpecial(id)) return "";
  pending_ += tok_.TokenBytes(id, first_);
  first_ = false;
  const size_t n = Utf8CompletePrefix(pending_);
  std::string out = RepairUtf8(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string StreamingDecoder::Flush() {
  std::string out = RepairUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace moxie
