// Tokenizer metadata for GGUF files that Moxie writes: the `tokenizer.ggml.*` keys (and
// `tokenizer.chat_template`) of a Hugging Face model folder, as llama.cpp's convert_hf_to_gguf.py
// writes them, checked by reading them back through Tokenizer::FromGguf.
//
// What can be expressed:
//   - byte-level BPE (GPT-2, Llama 3, Qwen2/3, DeepSeek, OLMoE, ...) -> tokenizer.ggml.model
//     "gpt2": tokens, token types, merges, and the llama.cpp pre-tokenizer name
//     (tokenizer.ggml.pre) whose behaviour equals the tokenizer.json pre-tokenizer;
//   - SentencePiece-style BPE with byte fallback (Llama 2, Mixtral, Phi-3) -> "llama": tokens,
//     scores (minus the rank of the first merge that makes the token, so that the merges derived
//     from scores keep tokenizer.json's order), token types, add_space_prefix.
// Everything else (WordPiece, Unigram, a pre-tokenizer llama.cpp has no name for) is refused with
// an Unsupported status: a GGUF whose tokenizer silently differs from the model's is worse than
// none.
#pragma once

#include <string>

#include "core/status.h"

namespace moxie {

class GgufFile;
class GgufWriter;

// Reads <model_dir>/tokenizer.json, and when present tokenizer_config.json (bos/eos/... tokens,
// add_bos_token/add_eos_token, chat_template), chat_template.jinja / chat_template.json and
// config.json (vocab_size: the token list is padded with "[PAD<id>]" up to the embedding rows;
// *_token_id fallbacks). Writes the tokenizer keys into `w` only if everything succeeded, after
// checking that Tokenizer::FromGguf on them encodes a probe text (whitespace runs, newlines,
// digits, contractions, punctuation, CJK, accents, emoji) exactly as tokenizer.json does.
// Errors name the file (and field); an unrepresentable tokenizer is kUnsupported.
// Takes up to a few seconds for a 150k vocabulary whose pre-tokenizer has no exact regex match.
Status WriteTokenizerMetadata(const std::string& model_dir, GgufWriter* w);

// Copies every `tokenizer.*` key of `src` into `w` (re-quantising a GGUF keeps its tokenizer).
void CopyTokenizerMetadata(const GgufFile& src, GgufWriter* w);

}  // namespace moxie
