// Runtime values of the Jinja interpreter, with Python semantics (truthiness, str(), repr(), ==).
//
// Internal to src/formats/jinja/: nothing here is part of the public API (see jinja.h).
// Values are cheap to copy: strings, lists and dicts are shared and immutable once built (the
// templates run in jinja2's ImmutableSandboxedEnvironment, which forbids mutating them); only
// namespace objects are mutated, through `{% set ns.attr = ... %}`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace moxie::jinja {

// Errors raised while rendering or parsing. Used only inside the interpreter (deep recursion makes
// Status plumbing through every evaluation step noisy); Template::Parse/Render convert it to a
// Status, so no exception crosses the public API. `type` is the Python exception class name.
struct JinjaError {
  std::string type;
  std::string message;
};
[[noreturn]] void Throw(std::string type, std::string message);

class Value;
class Interp;

// Arguments of a call: positional then keyword, in source order.
struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

struct Callable {
  std::string repr;  // what printing the value shows, e.g. "<Macro 'foo'>"
  std::function<Value(Interp&, CallArgs&)> fn;
};

enum class Kind : uint8_t {
  kUndefined,
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kList,  // list or tuple
  kDict,
  kNamespace,  // jinja2 namespace(): the one mutable object
  kCallable,   // macro, global function or bound method
};

struct ListData;
struct DictData;

class Value {
 public:
  Value() = default;  // Undefined with no hint
  static Value Undefined(std::string hint);
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value Str(std::string s);
  static Value List(std::vector<Value> items, bool is_tuple = false);
  static Value Dict(std::shared_ptr<const DictData> d);
  static Value Namespace(std::shared_ptr<DictData> d);
  static Value Func(std::string repr, std::function<Value(Interp&, CallArgs&)> fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }

  bool b() const { return b_; }
  int64_t i() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }
  double f() const { return kind_ == Kind::kFloat ? f_ : static_cast<double>(i()); }
  const std::string& str() const { return *s_; }  // string, or the Undefined's error message
  const ListData& list() const { return *list_; }
  const DictData& dict() const { return *dict_; }
  DictData& ns() const { return *dict_; }
  const Callable& callable() const { return *fn_; }
  size_t depth() const;  // nesting depth of containers (0 for scalars)

  // UndefinedError text for using this Undefined ("'x' is undefined").
  const std::string& undefined_message() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<const ListData> list_;
  std::shared_ptr<DictData> dict_;
  std::shared_ptr<const Callable> fn_;
};

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;
  size_t depth = 1;
};

// Insertion-ordered mapping (Python dict). Lookups are linear: template dicts are small.
struct DictData {
  std::vector<std::pair<Value, Value>> items;
  size_t depth = 1;
  const Value* Find(const Value& key) const;
  const Value* Find(std::string_view key) const;
  void Set(Value key, Value value);
};

// Containers nested deeper than this are rejected: printing, comparing and freeing them recurses.
constexpr size_t kMaxValueDepth = 400;

// Python semantics.
bool Truthy(const Value& v);
std::string ToStr(const Value& v);   // str(v); Undefined prints ""
std::string Repr(const Value& v);    // repr(v)
std::string TypeName(const Value& v);  // type(v).__name__
std::string ObjectTypeRepr(const Value& v);  // jinja2's object_type_repr: "dict object", "None"
bool Equals(const Value& a, const Value& b);
std::string FormatFloat(double f);  // float.__repr__
std::string PyStrRepr(std::string_view s);

// JSON bridge. FromJson fails on nesting deeper than kMaxValueDepth.
Value FromJson(const nlohmann::ordered_json& j);
struct JsonOptions {
  bool ensure_ascii = false;
  bool sort_keys = false;
  bool has_indent = false;
  std::string indent;  // spaces (or the given string) per level when has_indent
  std::string item_sep = ", ";
  std::string key_sep = ": ";
};
std::string ToJson(const Value& v, const JsonOptions& opts);

// UTF-8 <-> code points. Invalid bytes decode to U+DC80+byte and encode back unchanged.
std::u32string DecodeUtf8(std::string_view s);
std::string EncodeUtf8(std::u32string_view s);
void AppendUtf8(std::string& out, char32_t c);
bool IsAscii(std::string_view s);
size_t CodePointCount(std::string_view s);
bool IsPyWhitespace(char32_t c);

}  // namespace moxie::jinja
