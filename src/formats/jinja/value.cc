#include "formats/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace moxie::jinja {

void Throw(std::string type, std::string message) {
  throw JinjaError{std::move(type), std::move(message)};
}

namespace {

std::shared_ptr<const std::string> SharedStr(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

void CheckDepth(size_t depth) {
  if (depth > kMaxValueDepth) {
    Throw("RecursionError", "maximum nesting depth of values exceeded (" +
                                std::to_string(kMaxValueDepth) + ")");
  }
}

}  // namespace

Value Value::Undefined(std::string hint) {
  Value v;
  v.s_ = SharedStr(std::move(hint));
  return v;
}
Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  return v;
}
Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}
Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}
Value Value::Str(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = SharedStr(std::move(s));
  return v;
}
Value Value::List(std::vector<Value> items, bool is_tuple) {
  auto data = std::make_shared<ListData>();
  size_t depth = 0;
  for (const Value& item : items) depth = std::max(depth, item.depth());
  CheckDepth(depth + 1);
  data->items = std::move(items);
  data->is_tuple = is_tuple;
  data->depth = depth + 1;
  Value v;
  v.kind_ = Kind::kList;
  v.list_ = std::move(data);
  return v;
}
Value Value::Dict(std::shared_ptr<const DictData> d) {
  CheckDepth(d->depth);
  Value v;
  v.kind_ = Kind::kDict;
  v.dict_ = std::const_pointer_cast<DictData>(std::move(d));  // never mutated through kDict
  return v;
}
Value Value::Namespace(std::shared_ptr<DictData> d) {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.dict_ = std::move(d);
  return v;
}
Value Value::Func(std::string repr, std::function<Value(Interp&, CallArgs&)> fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.fn_ = std::make_shared<const Callable>(Callable{std::move(repr), std::move(fn)});
  return v;
}

size_t Value::depth() const {
  if (kind_ == Kind::kList) return list_->depth;
  if (kind_ == Kind::kDict || kind_ == Kind::kNamespace) return dict_->depth;
  return 0;
}

const std::string& Value::undefined_message() const {
  static const std::string kGeneric = "value is undefined";
  return s_ ? *s_ : kGeneric;
}

const Value* DictData::Find(const Value& key) const {
  for (const auto& [k, v] : items) {
    if (Equals(k, key)) return &v;
  }
  return nullptr;
}

const Value* DictData::Find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k.is_string() && k.str() == key) return &v;
  }
  return nullptr;
}

void DictData::Set(Value key, Value value) {
  depth = std::max(depth, value.depth() + 1);
  CheckDepth(depth);
  for (auto& [k, v] : items) {
    if (Equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

// ---------------------------------------------------------------------------------------------
// UTF-8

void AppendUtf8(std::string& out, char32_t c) {
  if (c >= 0xDC80 && c <= 0xDCFF) {  // surrogate-escaped invalid byte: emit it back unchanged
    out.push_back(static_cast<char>(c - 0xDC00));
  } else if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::u32string DecodeUtf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
               cp > 0x10FFFF)) {
      ok = false;  // overlong or out of range
    }
    if (!ok) {
      out.push_back(0xDC00 + c);
      ++i;
    } else {
      out.push_back(cp);
      i += len;
    }
  }
  return out;
}

std::string EncodeUtf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) AppendUtf8(out, c);
  return out;
}

bool IsAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

size_t CodePointCount(std::string_view s) {
  if (IsAscii(s)) return s.size();
  return DecodeUtf8(s).size();
}

bool IsPyWhitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// ---------------------------------------------------------------------------------------------
// Python semantics

bool Truthy(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return v.b();
    case Kind::kInt:
      return v.i() != 0;
    case Kind::kFloat:
      return v.f() != 0.0;
    case Kind::kString:
      return !v.str().empty();
    case Kind::kList:
      return !v.list().items.empty();
    case Kind::kDict:
      return !v.dict().items.empty();
    case Kind::kNamespace:
    case Kind::kCallable:
      return true;
  }
  return false;
}

std::string FormatFloat(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  if (f == 0) return std::signbit(f) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: exponent form when exp < -4 or exp >= 16.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e_pos = sci.find('e');
  int exp = std::stoi(sci.substr(e_pos + 1));
  std::string digits = sci.substr(0, e_pos);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  std::string out = neg ? "-" : "";
  if (exp < -4 || exp >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + ebuf;
  }
  if (exp < 0) return out + "0." + std::string(-exp - 1, '0') + digits;
  if (static_cast<int>(digits.size()) <= exp + 1) {
    return out + digits + std::string(exp + 1 - digits.size(), '0') + ".0";
  }
  return out + digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
}

namespace {

// Python's str.isprintable() for the characters repr() keeps; approximated for non-ASCII as
// "everything except C0/C1 controls, NBSP, soft hyphen, line/paragraph separators".
bool ReprKeeps(char32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c >= 0x80 && c <= 0xA0) return false;
  if (c == 0xAD || c == 0x2028 || c == 0x2029) return false;
  if (c >= 0xD800 && c <= 0xDFFF) return false;
  return true;
}

std::string ReprImpl(const Value& v, int depth);

std::string ReprItems(const std::vector<Value>& items, int depth) {
  std::string out;
  for (size_t k = 0; k < items.size(); ++k) {
    if (k) out += ", ";
    out += ReprImpl(items[k], depth + 1);
  }
  return out;
}

std::string ReprDictBody(const DictData& d, int depth) {
  std::string out = "{";
  for (size_t k = 0; k < d.items.size(); ++k) {
    if (k) out += ", ";
    out += ReprImpl(d.items[k].first, depth + 1) + ": " + ReprImpl(d.items[k].second, depth + 1);
  }
  return out + "}";
}

std::string ReprImpl(const Value& v, int depth) {
  if (depth > static_cast<int>(kMaxValueDepth)) {
    Throw("RecursionError", "maximum recursion depth exceeded while getting the repr of an object");
  }
  switch (v.kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return v.b() ? "True" : "False";
    case Kind::kInt:
      return std::to_string(v.i());
    case Kind::kFloat:
      return FormatFloat(v.f());
    case Kind::kString:
      return PyStrRepr(v.str());
    case Kind::kList: {
      const ListData& l = v.list();
      if (l.is_tuple) {
        return "(" + ReprItems(l.items, depth) + (l.items.size() == 1 ? ",)" : ")");
      }
      return "[" + ReprItems(l.items, depth) + "]";
    }
    case Kind::kDict:
      return ReprDictBody(v.dict(), depth);
    case Kind::kNamespace:
      return "<Namespace " + ReprDictBody(v.ns(), depth) + ">";
    case Kind::kCallable:
      return v.callable().repr;
  }
  return "";
}

}  // namespace

std::string PyStrRepr(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : DecodeUtf8(s)) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == static_cast<char32_t>(quote)) {
      out += '\\';
      out += quote;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (ReprKeeps(c)) {
      AppendUtf8(out, c);
    } else {
      char buf[16];
      if (c >= 0xDC80 && c <= 0xDCFF) {
        std::snprintf(buf, sizeof(buf), "\\udc%02x", static_cast<unsigned>(c & 0xFF));
      } else if (c < 0x100) {
        std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      }
      out += buf;
    }
  }
  out += quote;
  return out;
}

std::string Repr(const Value& v) { return ReprImpl(v, 0); }

std::string ToStr(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return v.str();
    default:
      return Repr(v);
  }
}

std::string TypeName(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return v.list().is_tuple ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
  }
  return "object";
}

std::string ObjectTypeRepr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.kind() == Kind::kNamespace) return "jinja2.utils.Namespace object";
  return TypeName(v) + " object";
}

namespace {

bool EqualsImpl(const Value& a, const Value& b, int depth) {
  if (depth > static_cast<int>(kMaxValueDepth)) {
    Throw("RecursionError", "maximum recursion depth exceeded in comparison");
  }
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Kind::kFloat || b.kind() == Kind::kFloat) return a.f() == b.f();
    return a.i() == b.i();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.str() == b.str();
    case Kind::kList: {
      const ListData& la = a.list();
      const ListData& lb = b.list();
      if (la.is_tuple != lb.is_tuple || la.items.size() != lb.items.size()) return false;
      for (size_t k = 0; k < la.items.size(); ++k) {
        if (!EqualsImpl(la.items[k], lb.items[k], depth + 1)) return false;
      }
      return true;
    }
    case Kind::kDict: {
      const DictData& da = a.dict();
      const DictData& db = b.dict();
      if (da.items.size() != db.items.size()) return false;
      for (const auto& [k, v] : da.items) {
        const Value* other = db.Find(k);
        if (!other || !EqualsImpl(v, *other, depth + 1)) return false;
      }
      return true;
    }
    case Kind::kNamespace:
      return &a.ns() == &b.ns();
    case Kind::kCallable:
      return &a.callable() == &b.callable();
    default:
      return false;
  }
}

Value FromJsonImpl(const nlohmann::ordered_json& j, size_t depth) {
  CheckDepth(depth);
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::None();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::Float(static_cast<double>(u));
      return Value::Int(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::Float(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::Str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(FromJsonImpl(item, depth + 1));
      return Value::List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<DictData>();
      d->items.reserve(j.size());
      for (const auto& [k, item] : j.items()) {
        Value v = FromJsonImpl(item, depth + 1);
        d->depth = std::max(d->depth, v.depth() + 1);
        d->items.emplace_back(Value::Str(k), std::move(v));  // JSON keys are already unique
      }
      return Value::Dict(std::move(d));
    }
    default:
      Throw("TypeError", "unsupported JSON value (binary) in render context");
  }
}

void JsonString(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  auto hex4 = [&](unsigned v) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "\\u%04x", v & 0xFFFFu);
    out += buf;
  };
  for (char32_t c : DecodeUtf8(s)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          hex4(static_cast<unsigned>(c));
        } else if (ensure_ascii && c >= 0x80) {
          if (c >= 0x10000) {
            hex4(0xD800 + ((c - 0x10000) >> 10));
            hex4(0xDC00 + ((c - 0x10000) & 0x3FF));
          } else {
            hex4(static_cast<unsigned>(c));
          }
        } else {
          AppendUtf8(out, c);
        }
    }
  }
  out += '"';
}

std::string JsonKey(const Value& k) {
  switch (k.kind()) {
    case Kind::kString: return k.str();
    case Kind::kNone: return "null";
    case Kind::kBool: return k.b() ? "true" : "false";
    case Kind::kInt: return std::to_string(k.i());
    case Kind::kFloat: return FormatFloat(k.f());
    default:
      Throw("TypeError", "keys must be str, int, float, bool or None, not " + TypeName(k));
  }
}

void ToJsonImpl(std::string& out, const Value& v, const JsonOptions& o, size_t level);

void JsonNewline(std::string& out, const JsonOptions& o, size_t level) {
  if (!o.has_indent) return;
  out += '\n';
  for (size_t k = 0; k < level; ++k) out += o.indent;
}

void ToJsonObject(std::string& out, const DictData& d, const JsonOptions& o, size_t level) {
  if (d.items.empty()) {
    out += "{}";
    return;
  }
  std::vector<std::pair<std::string, const Value*>> entries;
  for (const auto& [k, item] : d.items) entries.emplace_back(JsonKey(k), &item);
  if (o.sort_keys) {
    std::stable_sort(entries.begin(), entries.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  out += '{';
  for (size_t k = 0; k < entries.size(); ++k) {
    if (k) out += o.item_sep;
    JsonNewline(out, o, level + 1);
    JsonString(out, entries[k].first, o.ensure_ascii);
    out += o.key_sep;
    ToJsonImpl(out, *entries[k].second, o, level + 1);
  }
  JsonNewline(out, o, level);
  out += '}';
}

void ToJsonImpl(std::string& out, const Value& v, const JsonOptions& o, size_t level) {
  if (level > kMaxValueDepth) Throw("RecursionError", "maximum recursion depth exceeded in tojson");
  switch (v.kind()) {
    case Kind::kNone: out += "null"; return;
    case Kind::kBool: out += v.b() ? "true" : "false"; return;
    case Kind::kInt: out += std::to_string(v.i()); return;
    case Kind::kFloat: {
      double f = v.f();
      if (std::isnan(f)) out += "NaN";
      else if (std::isinf(f)) out += f > 0 ? "Infinity" : "-Infinity";
      else out += FormatFloat(f);
      return;
    }
    case Kind::kString: JsonString(out, v.str(), o.ensure_ascii); return;
    case Kind::kList: {
      const auto& items = v.list().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += o.item_sep;
        JsonNewline(out, o, level + 1);
        ToJsonImpl(out, items[k], o, level + 1);
      }
      JsonNewline(out, o, level);
      out += ']';
      return;
    }
    case Kind::kDict: ToJsonObject(out, v.dict(), o, level); return;
    default:
      Throw("TypeError", "Object of type " + TypeName(v) + " is not JSON serializable");
  }
}

}  // namespace

bool Equals(const Value& a, const Value& b) { return EqualsImpl(a, b, 0); }

Value FromJson(const nlohmann::ordered_json& j) { return FromJsonImpl(j, 0); }

std::string ToJson(const Value& v, const JsonOptions& opts) {
  std::string out;
  ToJsonImpl(out, v, opts, 0);
  return out;
}

}  // namespace moxie::jinja
