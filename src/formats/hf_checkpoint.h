// A Hugging Face model folder: config.json plus model.safetensors or a sharded
// model.safetensors.index.json. All shards are mmap'd; tensors are served in place.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/config_json.h"
#include "formats/safetensors.h"
#include "formats/weight_source.h"

namespace moxie {

class HfCheckpoint : public WeightSource {
 public:
  static Result<std::unique_ptr<HfCheckpoint>> Open(const std::string& dir);

  const ConfigReader& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  const std::vector<std::string>& files() const { return file_names_; }
  uint64_t total_file_bytes() const { return total_bytes_; }

  const WeightRef* Find(const std::string& name) const override;
  std::vector<std::string> Names() const override;
  std::string Describe() const override { return dir_; }
  // A tensor the loader copied (re-laid out or onto huge pages) leaves the resident set, so the
  // copy does not double it.
  void Release(const WeightRef& ref) const override {
    for (const auto& f : files_) f->Release(ref.view.data, ref.view.nbytes());
  }
  bool CanRelease() const override { return true; }

 private:
  explicit HfCheckpoint(ConfigReader config) : config_(std::move(config)) {}
  Status AddFile(const std::string& file_name, const std::vector<std::string>* only);

  ConfigReader config_;
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<std::string> file_names_;
  std::map<std::string, WeightRef> tensors_;
  uint64_t total_bytes_ = 0;
};

// True if `path` looks like a Hugging Face model folder (has config.json).
bool IsHfModelDir(const std::string& path);

}  // namespace moxie
