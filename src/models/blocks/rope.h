// Rotary position embeddings: inv_freq for every HF rope type we support, and the two pair
// layouts (moe-architectures.md §2.3, §2.4).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "formats/config_json.h"

namespace moxie {

enum class RopeLayout {
  kNeox,         // pairs (x[i], x[i + d/2]) — HF rotate_half
  kInterleaved,  // pairs (x[2i], x[2i+1]) — DeepSeek, GGUF "NORM"
};

struct Rope {
  int dim = 0;  // rotary dims (even)
  RopeLayout layout = RopeLayout::kNeox;
  std::vector<float> inv_freq;   // [dim / 2]
  float attention_factor = 1.0f;  // multiplies cos and sin (YaRN)
  std::string type = "default";
  double theta = 10000.0;
  // YaRN: DeepSeek's softmax-scale multiplier m = 0.1 * mscale_all_dim * ln(factor) + 1 (or 1).
  float yarn_mscale_all_dim = 1.0f;

  // Reads rope_theta and rope_scaling / rope_parameters from a config.json.
  static Result<Rope> FromConfig(const ConfigReader& cfg, int dim, RopeLayout layout);

  // cos/sin for one position: [dim / 2] each, already multiplied by attention_factor.
  void CosSin(int pos, float* cos, float* sin) const;
  // Rotates one head vector x[0 .. dim) in place.
  void Apply(float* x, const float* cos, const float* sin) const;
  std::string Describe() const;
};

}  // namespace moxie
