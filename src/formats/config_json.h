// Typed, validated access to a JSON config (config.json). Every error names the file and field.
// `null` counts as absent (HF writes null for "use the default").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace moxie {

class ConfigReader {
 public:
  // Parses JSON text; `path` is used in messages.
  static Result<ConfigReader> Parse(const std::string& text, const std::string& path);
  static Result<ConfigReader> Load(const std::string& path);
  ConfigReader(nlohmann::json j, std::string path) : j_(std::move(j)), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  const nlohmann::json& json() const { return j_; }
  bool Has(const std::string& key) const;  // present and not null
  ConfigReader Child(const std::string& key) const;  // nested object (empty if absent)

  // Required fields: error if absent/null or of the wrong type.
  Status Int(const std::string& key, int64_t* out) const;
  Status Float(const std::string& key, double* out) const;
  Status String(const std::string& key, std::string* out) const;
  // Optional fields: `def` if absent or null; error if present with the wrong type.
  Status IntOr(const std::string& key, int64_t def, int64_t* out) const;
  Status FloatOr(const std::string& key, double def, double* out) const;
  Status BoolOr(const std::string& key, bool def, bool* out) const;
  Status StringOr(const std::string& key, const std::string& def, std::string* out) const;
  Status IntListOr(const std::string& key, std::vector<int64_t>* out) const;  // default: empty

  // "config.json: field 'x': <msg>"
  Status FieldError(const std::string& key, const std::string& msg) const;

 private:
  nlohmann::json j_;
  std::string path_;
};

}  // namespace moxie
