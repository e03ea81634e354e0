// The families Moxie runs: one line each.
#include <algorithm>

#include "models/family_common.h"

namespace moxie {

Result<std::unique_ptr<Model>> LoadMixtral(std::unique_ptr<HfCheckpoint> ck);
Result<std::unique_ptr<Model>> LoadQwen2Moe(std::unique_ptr<HfCheckpoint> ck);
Result<std::unique_ptr<Model>> LoadQwen3Moe(std::unique_ptr<HfCheckpoint> ck);
Result<std::unique_ptr<Model>> LoadOlmoe(std::unique_ptr<HfCheckpoint> ck);
Result<std::unique_ptr<Model>> LoadDeepSeekV2(std::unique_ptr<HfCheckpoint> ck);
Result<std::unique_ptr<Model>> LoadDeepSeekV3(std::unique_ptr<HfCheckpoint> ck);

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

Result<std::unique_ptr<Model>> LoadModel(const std::string& path) {
  if (!IsHfModelDir(path)) {
    return NotFound(path + ": not a Hugging Face model folder (no config.json)");
  }
  MOXIE_ASSIGN_OR_RETURN(auto ck, HfCheckpoint::Open(path));
  std::string model_type;
  MOXIE_RETURN_IF_ERROR(ck->config().String("model_type", &model_type));
  MOXIE_RETURN_IF_ERROR(CheckNoQuantization(ck->config()));
  for (const auto& f : kFamilies) {
    if (model_type == f.model_type) return f.load(std::move(ck));
  }
  std::string list;
  for (const auto& t : SupportedModelTypes()) list += (list.empty() ? "" : ", ") + t;
  return Unsupported(ck->config().path() + ": model_type '" + model_type +
                     "' is not supported; supported: " + list);
}

}  // namespace moxie
