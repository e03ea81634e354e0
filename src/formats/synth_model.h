// Random-weight models of real published MoE shapes (`moxie synth`): a config.json and a
// WeightSource whose large tensors are computed row by row from a seeded generator, so a model of
// any size is written to GGUF streaming, in a few MiB of memory. Users size hardware with them
// before downloading; we benchmark on them.
//
// Shapes (values from the models' config.json on the Hugging Face Hub):
//   olmoe-1b-7b        allenai/OLMoE-1B-7B-0924: 16 layers, hidden 2048, 16 heads (MHA, head 128),
//                      64 experts top-8, expert FFN 1024, vocab 50304
//   qwen3-30b-a3b      Qwen/Qwen3-30B-A3B: 48 layers, hidden 2048, 32 q / 4 kv heads of 128,
//                      128 experts top-8, expert FFN 768, vocab 151936
//   qwen1.5-moe-a2.7b  Qwen/Qwen1.5-MoE-A2.7B: 24 layers, hidden 2048, 16 heads, 60 experts top-4,
//                      expert FFN 1408, shared expert 5632 with sigmoid gate, qkv bias, vocab 151936
//   mixtral-8x7b       mistralai/Mixtral-8x7B-v0.1: 32 layers, hidden 4096, 32 q / 8 kv heads,
//                      8 experts top-2, FFN 14336, vocab 32000
//   deepseek-v2-lite   deepseek-ai/DeepSeek-V2-Lite: 27 layers (first dense, FFN 10944), hidden
//                      2048, 16 heads, MLA (kv_lora 512, nope 128, rope 64, v 128, no q
//                      compression), 64 experts top-6 + 2 shared, expert FFN 1408, vocab 102400
//   tiny               a 2-layer model with every dimension a multiple of 256 (tests)
// Architectures: each shape has its own (olmoe, qwen3moe, qwen2moe, mixtral, deepseek_v2);
// `arch` can re-express a shape in another architecture (e.g. olmoe-1b-7b as qwen3moe, which
// every llama.cpp-family engine loads). Weights are uniform with std 0.02, norms 1.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/config_json.h"
#include "formats/weight_source.h"

namespace moxie {

class GgufWriter;

std::vector<std::string> SynthShapeNames();
std::vector<std::string> SynthArchNames();  // olmoe, qwen3moe, qwen2moe, mixtral, deepseek2

struct SynthModel {
  ConfigReader config{nlohmann::json::object(), ""};
  std::unique_ptr<WeightSource> weights;
  std::string arch;  // GGUF architecture name
  int64_t n_vocab = 0;
};

// `arch` empty = the shape's own architecture.
Result<SynthModel> MakeSynthModel(const std::string& shape, const std::string& arch, uint64_t seed);

// A byte-level BPE vocabulary ("gpt2" model, pre "gpt-2") of exactly n_vocab tokens (n_vocab >=
// 258): the 256 byte tokens, then tokens made by merging a token with a byte (two-byte strings
// first, then longer), and "<|endoftext|>" last as BOS/EOS. Every merge is valid, so any engine
// that reads GGUF vocabularies loads it; the text it produces is meaningless.
Status WriteSynthVocab(int64_t n_vocab, GgufWriter* w);

}  // namespace moxie
