// The families Moxie runs: one line each.
#include <algorithm>

#include "formats/gguf_model.h"
#include "models/family_common.h"

namespace moxie {

Result<std::unique_ptr<Model>> LoadMixtral(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts);
Result<std::unique_ptr<Model>> LoadQwen2Moe(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts);
Result<std::unique_ptr<Model>> LoadQwen3Moe(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts);
Result<std::unique_ptr<Model>> LoadOlmoe(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts);
Result<std::unique_ptr<Model>> LoadDeepSeekV2(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts);
Result<std::unique_ptr<Model>> LoadDeepSeekV3(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts);

namespace {

struct Family {
  const char* model_type;
  FamilyLoader load;
};

constexpr Family kFamilies[] = {
    {"deepseek_v2", LoadDeepSeekV2},
    {"deepseek_v3", LoadDeepSeekV3},
    {"mixtral", LoadMixtral},
    {"olmoe", LoadOlmoe},
    {"qwen2_moe", LoadQwen2Moe},
    {"qwen3_moe", LoadQwen3Moe},
};

}  // namespace

std::vector<std::string> SupportedModelTypes() {
  std::vector<std::string> v;
  for (const auto& f : kFamilies) v.emplace_back(f.model_type);
  return v;
}

namespace {

Result<std::unique_ptr<Model>> Dispatch(const ConfigReader& cfg, std::unique_ptr<WeightSource> src, const LoadOptions& opts) {
  std::string model_type;
  MOXIE_RETURN_IF_ERROR(cfg.String("model_type", &model_type));
  MOXIE_RETURN_IF_ERROR(CheckNoQuantization(cfg));
  for (const auto& f : kFamilies) {
    if (model_type == f.model_type) return f.load(cfg, std::move(src), opts);
  }
  std::string list;
  for (const auto& t : SupportedModelTypes()) list += (list.empty() ? "" : ", ") + t;
  return Unsupported(cfg.path() + ": model_type '" + model_type +
                     "' is not supported; supported: " + list);
}

}  // namespace

Result<std::unique_ptr<Model>> LoadModel(const std::string& path, const LoadOptions& opts) {
  if (LooksLikeGguf(path)) {
    MOXIE_ASSIGN_OR_RETURN(GgufModel g, OpenGgufModel(path));
    return Dispatch(g.config, std::move(g.weights), opts);
  }
  if (!IsHfModelDir(path)) {
    return NotFound(path + ": not a Hugging Face model folder (no config.json) or a GGUF file");
  }
  MOXIE_ASSIGN_OR_RETURN(auto ck, HfCheckpoint::Open(path));
  const ConfigReader cfg = ck->config();
  return Dispatch(cfg, std::move(ck), opts);
}

}  // namespace moxie
