// Tokenizer: Hugging Face `tokenizer.json` BPE tokenizers, exact to the `tokenizers` library for
// the families Moxie runs:
//   - byte-level BPE (GPT-2, Qwen2/3, DeepSeek, Llama 3, GPT-NeoX/OLMoE): Split regexes (PCRE2,
//     UTF + UCP) and the ByteLevel pre-tokenizer, GPT-2 byte<->unicode map, merges by rank,
//     ignore_merges;
//   - SentencePiece-style BPE (Mixtral, Llama 2, Phi-3): Prepend/Replace normalizers or the
//     Metaspace pre-tokenizer, byte fallback to <0xXX>, fuse_unk;
//   - added tokens matched before normalisation (longest first, lstrip/rstrip), NFC/NFKC
//     normalizers, TemplateProcessing BOS/EOS, and the matching decoders.
// Encode/Decode are const and thread-safe. Invalid UTF-8 in the input is replaced by U+FFFD
// before encoding (the text a model sees is always valid UTF-8).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "formats/regex.h"

namespace moxie {

class GgufFile;

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool single_word = false;
};

struct EncodeOptions {
  bool add_special = false;   // BOS/EOS as the post-processor and tokenizer_config say
  bool parse_special = true;  // match special added tokens written in the text (HF default)
};

class Tokenizer {
 public:
  // tokenizer.json text; `path` is used in messages.
  static Result<std::unique_ptr<Tokenizer>> FromJson(const std::string& text,
                                                     const std::string& path);
  // <dir>/tokenizer.json plus, when present, <dir>/tokenizer_config.json (add_bos_token,
  // add_eos_token, bos_token, eos_token, chat_template).
  static Result<std::unique_ptr<Tokenizer>> FromModelDir(const std::string& dir);
  // From GGUF metadata (tokenizer.ggml.*): model "gpt2" (byte-level BPE with merges; the
  // pre-tokenizer regexes chosen by tokenizer.ggml.pre) or "llama" (SentencePiece-style BPE:
  // merges derived from the scores as transformers does, byte fallback).
  static Result<std::unique_ptr<Tokenizer>> FromGguf(const GgufFile& f);
  // A model folder (tokenizer.json) or a .gguf file (its metadata).
  static Result<std::unique_ptr<Tokenizer>> FromPath(const std::string& path);
  ~Tokenizer();

  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& opts = {}) const;
  // HF `decode`: tokens through the decoder; invalid UTF-8 becomes U+FFFD.
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // The raw bytes one token contributes when it is (or is not) the first decoded token; may end
  // inside a UTF-8 character (streaming decoders buffer that).
  std::string TokenBytes(int32_t id, bool first) const;
  // The vocabulary string of a token ("Ġthe", "▁the", "<|im_start|>"); empty if unknown.
  const std::string& Piece(int32_t id) const;
  std::optional<int32_t> TokenId(const std::string& piece) const;

  int32_t n_vocab() const { return static_cast<int32_t>(id_to_piece_.size()); }
  bool IsSpecial(int32_t id) const;
  bool IsControl(int32_t id) const { return IsSpecial(id); }
  int32_t bos() const { return bos_; }  // -1 if none
  int32_t eos() const { return eos_; }  // -1 if none
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  const std::string& chat_template() const { return chat_template_; }
  // Special-token strings for chat templates (bos_token, eos_token, pad_token, unk_token).
  const std::vector<std::pair<std::string, std::string>>& special_token_strings() const {
    return special_strings_;
  }
  const std::vector<AddedToken>& added_tokens() const { return added_; }

  struct Impl;  // pipeline details (tokenizer.cc)

 private:
  Tokenizer();
  std::unique_ptr<Impl> impl_;
  std::vector<std::string> id_to_piece_;
  std::unordered_map<std::string, int32_t> piece_to_id_;
  std::vector<AddedToken> added_;  // sorted longest content first
  std::vector<uint8_t> special_;   // per id: special added token
  int32_t bos_ = -1, eos_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::string chat_template_;
  std::vector<std::pair<std::string, std::string>> special_strings_;

  friend struct TokenizerBuilder;
};

// Streams decoded text token by token without ever emitting half a UTF-8 character. Bytes that
// can never become valid UTF-8 are emitted as U+FFFD.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tok, bool skip_special = true)
      : tok_(tok), skip_special_(skip_special) {}
  // Text that became complete with this token (possibly empty).
  std::string Push(int32_t id);
  // Whatever is left (incomplete bytes as U+FFFD).
  std::string Flush();

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace moxie
