#include "formats/config_json.h"
#include "formats/json_parse.h"

#include "core/mapped_file.h"

namespace moxie {

using Json = nlohmann::json;

Result<ConfigReader> ConfigReader::Parse(const std::string& text, const std::string& path) {
  MOXIE_ASSIGN_OR_RETURN(Json j, ParseJson<Json>(text, path));
  if (!j.is_object()) return InvalidFormat(path + ": top level is not a JSON object");
  return ConfigReader(std::move(j), path);
}

Result<ConfigReader> ConfigReader::Load(const std::string& path) {
  MOXIE_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  return Parse(text, path);
}

bool ConfigReader::Has(const std::string& key) const {
  auto it = j_.find(key);
  return it != j_.end() && !it->is_null();
}

ConfigReader ConfigReader::Child(const std::string& key) const {
  auto it = j_.find(key);
  if (it == j_.end() || !it->is_object()) return ConfigReader(Json::object(), path_ + ":" + key);
  return ConfigReader(*it, path_ + ":" + key);
}

Status ConfigReader::FieldError(const std::string& key, const std::string& msg) const {
  return InvalidFormat(path_ + ": field '" + key + "': " + msg);
}

Status ConfigReader::Int(const std::string& key, int64_t* out) const {
  if (!Has(key)) return NotFound(path_ + ": missing required field '" + key + "'");
  return IntOr(key, 0, out);
}

Status ConfigReader::Float(const std::string& key, double* out) const {
  if (!Has(key)) return NotFound(path_ + ": missing required field '" + key + "'");
  return FloatOr(key, 0, out);
}

Status ConfigReader::String(const std::string& key, std::string* out) const {
  if (!Has(key)) return NotFound(path_ + ": missing required field '" + key + "'");
  return StringOr(key, "", out);
}

Status ConfigReader::IntOr(const std::string& key, int64_t def, int64_t* out) const {
  if (!Has(key)) {
    *out = def;
    return Status::Ok();
  }
  const Json& v = j_.at(key);
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return Status::Ok();
  }
  if (v.is_number_float()) {  // 8.0 is accepted as 8
    const double d = v.get<double>();
    if (d == static_cast<double>(static_cast<int64_t>(d))) {
      *out = static_cast<int64_t>(d);
      return Status::Ok();
    }
  }
  return FieldError(key, "expected an integer, got " + DumpJson(v));
}

Status ConfigReader::FloatOr(const std::string& key, double def, double* out) const {
  if (!Has(key)) {
    *out = def;
    return Status::Ok();
  }
  const Json& v = j_.at(key);
  if (!v.is_number()) return FieldError(key, "expected a number, got " + DumpJson(v));
  *out = v.get<double>();
  return Status::Ok();
}

Status ConfigReader::BoolOr(const std::string& key, bool def, bool* out) const {
  if (!Has(key)) {
    *out = def;
    return Status::Ok();
  }
  const Json& v = j_.at(key);
  if (!v.is_boolean()) return FieldError(key, "expected true/false, got " + DumpJson(v));
  *out = v.get<bool>();
  return Status::Ok();
}

Status ConfigReader::StringOr(const std::string& key, const std::string& def,
                              std::string* out) const {
  if (!Has(key)) {
    *out = def;
    return Status::Ok();
  }
  const Json& v = j_.at(key);
  if (!v.is_string()) return FieldError(key, "expected a string, got " + DumpJson(v));
  *out = v.get<std::string>();
  return Status::Ok();
}

Status ConfigReader::IntListOr(const std::string& key, std::vector<int64_t>* out) const {
  out->clear();
  if (!Has(key)) return Status::Ok();
  const Json& v = j_.at(key);
  if (!v.is_array()) return FieldError(key, "expected a list of integers, got " + DumpJson(v));
  for (const auto& e : v) {
    if (!e.is_number_integer()) return FieldError(key, "expected a list of integers");
    out->push_back(e.get<int64_t>());
  }
  return Status::Ok();
}

}  // namespace moxie
