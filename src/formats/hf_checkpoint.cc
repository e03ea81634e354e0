#include "formats/hf_checkpoint.h"

#include <filesystem>
#include <set>

#include "core/mapped_file.h"

namespace moxie {

namespace fs = std::filesystem;

bool IsHfModelDir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(fs::path(path) / "config.json", ec);
}

Result<std::unique_ptr<HfCheckpoint>> HfCheckpoint::Open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFound(dir + ": not a directory");
  const std::string config_path = (fs::path(dir) / "config.json").string();
  MOXIE_ASSIGN_OR_RETURN(ConfigReader config, ConfigReader::Load(config_path));
  std::unique_ptr<HfCheckpoint> ck(new HfCheckpoint(std::move(config)));
  ck->dir_ = dir;

  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index, ec)) {
    MOXIE_ASSIGN_OR_RETURN(ConfigReader idx, ConfigReader::Load(index.string()));
    auto wm = idx.json().find("weight_map");
    if (wm == idx.json().end() || !wm->is_object()) {
      return InvalidFormat(index.string() + ": missing object 'weight_map'");
    }
    std::map<std::string, std::vector<std::string>> by_file;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string()) {
        return InvalidFormat(index.string() + ": weight_map['" + it.key() + "'] is not a string");
      }
      const std::string f = it->get<std::string>();
      // Shards must sit in the model folder: refuse paths that could escape it.
      if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos ||
          f == "." || f == "..") {
        return InvalidFormat(index.string() + ": weight_map['" + it.key() +
                             "'] names an invalid shard file '" + f + "'");
      }
      by_file[f].push_back(it.key());
    }
    if (by_file.empty()) return InvalidFormat(index.string() + ": weight_map is empty");
    for (const auto& [file, names] : by_file) {
      MOXIE_RETURN_IF_ERROR(ck->AddFile(file, &names).WithContext(index.string()));
    }
  } else if (fs::exists(single, ec)) {
    MOXIE_RETURN_IF_ERROR(ck->AddFile("model.safetensors", nullptr));
  } else {
    return NotFound(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  return ck;
}

Status HfCheckpoint::AddFile(const std::string& file_name, const std::vector<std::string>* only) {
  const std::string path = (fs::path(dir_) / file_name).string();
  MOXIE_ASSIGN_OR_RETURN(auto st, SafetensorsFile::Open(path));
  std::set<std::string> wanted;
  if (only != nullptr) {
    wanted.insert(only->begin(), only->end());
    for (const auto& n : *only) {
      if (st->Find(n) == nullptr) {
        return InvalidFormat("weight_map places tensor '" + n + "' in " + file_name +
                             ", but that file has no such tensor");
      }
    }
  }
  for (const auto& t : st->tensors()) {
    if (only != nullptr && wanted.count(t.name) == 0) continue;
    if (tensors_.count(t.name) != 0) {
      return InvalidFormat("tensor '" + t.name + "' appears in more than one shard");
    }
    WeightRef r;
    r.name = t.name;
    r.view = t.view();
    r.dtype_name = t.dtype_name;
    r.dtype_supported = t.dtype_supported;
    r.file = path;
    tensors_.emplace(t.name, std::move(r));
  }
  std::error_code ec;
  total_bytes_ += static_cast<uint64_t>(fs::file_size(path, ec));
  file_names_.push_back(file_name);
  files_.push_back(std::move(st));
  return Status::Ok();
}

const WeightRef* HfCheckpoint::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<std::string> HfCheckpoint::Names() const {
  std::vector<std::string> v;
  v.reserve(tensors_.size());
  for (const auto& [n, r] : tensors_) v.push_back(n);
  return v;
}

}  // namespace moxie
