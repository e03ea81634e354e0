#include "models/blocks/rope.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace moxie {
namespace {

double YarnGetMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

double YarnCorrDim(double n_rot, int dim, double base, double orig) {
  return (dim * std::log(orig / (n_rot * 2.0 * M_PI))) / (2.0 * std::log(base));
}

}  // namespace

Result<Rope> Rope::FromConfig(const ConfigReader& cfg, int dim, RopeLayout layout) {
  Rope r;
  r.dim = dim;
  r.layout = layout;
  if (dim <= 0 || dim % 2 != 0) {
    return InvalidFormat(cfg.path() + ": rotary dimension " + std::to_string(dim) +
                         " must be positive and even");
  }
  // v4 configs: top-level rope_theta + rope_scaling; v5: rope_parameters holds both.
  ConfigReader rs = cfg.Child(cfg.Has("rope_parameters") ? "rope_parameters" : "rope_scaling");
  double theta = 10000.0;
  MOXIE_RETURN_IF_ERROR(cfg.FloatOr("rope_theta", 10000.0, &theta));
  MOXIE_RETURN_IF_ERROR(rs.FloatOr("rope_theta", theta, &theta));
  if (!(theta > 1.0) || !std::isfinite(theta)) return cfg.FieldError("rope_theta", "must be > 1");
  r.theta = theta;
  std::string type = "default";
  if (rs.Has("rope_type")) {
    MOXIE_RETURN_IF_ERROR(rs.String("rope_type", &type));
  } else if (rs.Has("type")) {
    MOXIE_RETURN_IF_ERROR(rs.String("type", &type));
  }
  r.type = type;
  const int half = dim / 2;
  r.inv_freq.resize(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    // As HF: arange(0, dim, 2).float() / dim, then base ** that, in f32.
    const float expo = static_cast<float>(2 * i) / static_cast<float>(dim);
    r.inv_freq[static_cast<size_t>(i)] =
        1.0f / std::pow(static_cast<float>(theta), expo);
  }
  if (type == "default") return r;

  double factor = 1.0;
  MOXIE_RETURN_IF_ERROR(rs.FloatOr("factor", 1.0, &factor));
  if (!(factor > 0.0)) return rs.FieldError("factor", "must be > 0");
  if (type == "linear") {
    for (auto& f : r.inv_freq) f = static_cast<float>(f / factor);
    return r;
  }
  if (type == "yarn") {
    double orig = 0;
    int64_t max_pos = 0;
    MOXIE_RETURN_IF_ERROR(cfg.IntOr("max_position_embeddings", 0, &max_pos));
    MOXIE_RETURN_IF_ERROR(
        rs.FloatOr("original_max_position_embeddings", static_cast<double>(max_pos), &orig));
    if (!(orig > 0)) return rs.FieldError("original_max_position_embeddings", "must be > 0");
    if (!rs.Has("factor")) factor = static_cast<double>(max_pos) / orig;
    double beta_fast = 32, beta_slow = 1, mscale = 0, mscale_all_dim = 0, attn = 0;
    bool truncate = true;
    MOXIE_RETURN_IF_ERROR(rs.FloatOr("beta_fast", 32.0, &beta_fast));
    MOXIE_RETURN_IF_ERROR(rs.FloatOr("beta_slow", 1.0, &beta_slow));
    MOXIE_RETURN_IF_ERROR(rs.FloatOr("mscale", 0.0, &mscale));
    MOXIE_RETURN_IF_ERROR(rs.FloatOr("mscale_all_dim", 0.0, &mscale_all_dim));
    MOXIE_RETURN_IF_ERROR(rs.FloatOr("attention_factor", 0.0, &attn));
    MOXIE_RETURN_IF_ERROR(rs.BoolOr("truncate", true, &truncate));
    if (rs.Has("attention_factor")) {
      r.attention_factor = static_cast<float>(attn);
    } else if (mscale != 0.0 && mscale_all_dim != 0.0) {  // HF: `if mscale and mscale_all_dim`
      r.attention_factor =
          static_cast<float>(YarnGetMscale(factor, mscale) / YarnGetMscale(factor, mscale_all_dim));
    } else {
      r.attention_factor = static_cast<float>(YarnGetMscale(factor, 1.0));
    }
    r.yarn_mscale_all_dim =
        mscale_all_dim != 0.0 ? static_cast<float>(YarnGetMscale(factor, mscale_all_dim)) : 1.0f;
    double low = YarnCorrDim(beta_fast, dim, theta, orig);
    double high = YarnCorrDim(beta_slow, dim, theta, orig);
    if (truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (high == low) high += 0.001;
    for (int i = 0; i < half; ++i) {
      const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      const double extra_w = 1.0 - ramp;  // weight of the unscaled (extrapolated) frequency
      const float base_f = r.inv_freq[static_cast<size_t>(i)];
      const float interp = static_cast<float>(base_f / factor);
      r.inv_freq[static_cast<size_t>(i)] =
          static_cast<float>(interp * (1.0 - extra_w) + base_f * extra_w);
    }
    return r;
  }
  if (type == "llama3") {
    double low_ff = 1, high_ff = 4, orig = 8192;
    MOXIE_RETURN_IF_ERROR(rs.FloatOr("low_freq_factor", 1.0, &low_ff));
    MOXIE_RETURN_IF_ERROR(rs.FloatOr("high_freq_factor", 4.0, &high_ff));
    MOXIE_RETURN_IF_ERROR(rs.FloatOr("original_max_position_embeddings", 8192.0, &orig));
    const double low_wl = orig / low_ff, high_wl = orig / high_ff;
    for (auto& f : r.inv_freq) {
      const double wl = 2.0 * M_PI / f;
      if (wl < high_wl) continue;
      if (wl > low_wl) {
        f = static_cast<float>(f / factor);
      } else {
        const double smooth = (orig / wl - low_ff) / (high_ff - low_ff);
        f = static_cast<float>((1.0 - smooth) * f / factor + smooth * f);
      }
    }
    return r;
  }
  return Unsupported(rs.path() + ": rope scaling type '" + type +
                     "' is not supported (supported: default, linear, yarn, llama3)");
}

void Rope::CosSin(int pos, float* cos, float* sin) const {
  const int half = dim / 2;
  for (int i = 0; i < half; ++i) {
    const float ang = static_cast<float>(pos) * inv_freq[static_cast<size_t>(i)];
    cos[i] = std::cos(ang) * attention_factor;
    sin[i] = std::sin(ang) * attention_factor;
  }
}

void Rope::Apply(float* x, const float* cos, const float* sin) const {
  const int half = dim / 2;
  if (layout == RopeLayout::kNeox) {
    for (int i = 0; i < half; ++i) {
      const float a = x[i], b = x[i + half];
      x[i] = a * cos[i] - b * sin[i];
      x[i + half] = b * cos[i] + a * sin[i];
    }
  } else {
    for (int i = 0; i < half; ++i) {
      const float a = x[2 * i], b = x[2 * i + 1];
      x[2 * i] = a * cos[i] - b * sin[i];
      x[2 * i + 1] = b * cos[i] + a * sin[i];
    }
  }
}

std::string Rope::Describe() const {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%s, %s pairs, dim %d, theta %g%s",
                type.c_str(), layout == RopeLayout::kNeox ? "neox" : "interleaved", dim, theta,
                attention_factor != 1.0f ? (", attn factor " + std::to_string(attention_factor)).c_str()
                                         : "");
  return buf;
}

}  // namespace moxie
