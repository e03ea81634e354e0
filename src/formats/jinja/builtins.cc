#include "formats/jinja/builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "formats/jinja/pystring.h"

namespace moxie::jinja {
namespace {

using MethodFn = Value (*)(Interp&, const Value& self, CallArgs&);
using FilterFn = Value (*)(Interp&, const Value& input, CallArgs&);
using TestFn = bool (*)(Interp&, const Value& input, CallArgs&);

std::optional<std::string> OptStr(const std::optional<Value>& v, const char* fn) {
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_string()) Throw("TypeError", std::string(fn) + " arg must be None or str");
  return v->str();
}

int64_t IntArg(const std::optional<Value>& v, int64_t def, const char* what) {
  if (!v) return def;
  if (v->kind() != Kind::kInt && v->kind() != Kind::kBool) {
    Throw("TypeError", std::string("'") + TypeName(*v) + "' object cannot be interpreted as an integer (" +
                           what + ")");
  }
  return v->i();
}

const std::string& StrSelf(const Value& self) { return self.str(); }

Value StrListValue(const std::vector<std::string>& parts) {
  std::vector<Value> out;
  out.reserve(parts.size());
  for (const std::string& p : parts) out.push_back(Value::Str(p));
  return Value::List(std::move(out));
}

// ------------------------------------------------------------------------------ str methods

Value MStrip(const Value& self, CallArgs& a, StripSide side, const char* name) {
  auto args = BindArgs(name, a, {"chars"});
  return Value::Str(PyStrip(StrSelf(self), OptStr(args[0], name), side));
}
Value MSplitImpl(const Value& self, CallArgs& a, bool right) {
  auto args = BindArgs(right ? "rsplit" : "split", a, {"sep", "maxsplit"});
  return StrListValue(PySplit(StrSelf(self), OptStr(args[0], "split"), IntArg(args[1], -1, "maxsplit"), right));
}
bool AffixMatch(const Value& self, CallArgs& a, bool prefix) {
  auto args = BindArgs(prefix ? "startswith" : "endswith", a, {"prefix", "start", "end"}, 1);
  const std::string& s = StrSelf(self);
  auto test = [&](const Value& v) {
    if (!v.is_string()) {
      Throw("TypeError", std::string(prefix ? "startswith" : "endswith") +
                             " first arg must be str or a tuple of str, not " + TypeName(v));
    }
    const std::string& t = v.str();
    if (t.size() > s.size()) return false;
    return prefix ? s.compare(0, t.size(), t) == 0 : s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  if (args[0]->is_list()) {
    for (const Value& v : args[0]->list().items) {
      if (test(v)) return true;
    }
    return false;
  }
  return test(*args[0]);
}
std::string NeedStr(const std::optional<Value>& v, const char* fn) {
  if (!v || !v->is_string()) {
    Throw("TypeError", std::string(fn) + "() argument must be str, not " + (v ? TypeName(*v) : "nothing"));
  }
  return v->str();
}
Value MJoin(Interp& in, const Value& self, CallArgs& a) {
  auto args = BindArgs("join", a, {"iterable"}, 1);
  std::vector<Value> items = in.Iterate(*args[0]);
  std::string out;
  for (size_t k = 0; k < items.size(); ++k) {
    if (!items[k].is_string()) {
      Throw("TypeError", "sequence item " + std::to_string(k) + ": expected str instance, " + TypeName(items[k]) + " found");
    }
    if (k) out += StrSelf(self);
    out += items[k].str();
    in.CheckSize(out.size());
  }
  return Value::Str(std::move(out));
}
Value MPad(Interp& in, const Value& self, CallArgs& a, int mode, const char* name) {  // 0 center, 1 ljust, 2 rjust
  auto args = BindArgs(name, a, {"width", "fillchar"}, 1);
  int64_t width = IntArg(args[0], 0, "width");
  std::string fill = args[1] ? NeedStr(args[1], name) : " ";
  int64_t len = static_cast<int64_t>(CodePointCount(StrSelf(self)));
  if (width <= len) return self;
  in.CheckSize(static_cast<size_t>(width) * fill.size());
  int64_t total = width - len;
  int64_t left = mode == 1 ? 0 : mode == 2 ? total : total / 2 + (total & width & 1);
  std::string out;
  for (int64_t k = 0; k < left; ++k) out += fill;
  out += StrSelf(self);
  for (int64_t k = 0; k < total - left; ++k) out += fill;
  return Value::Str(std::move(out));
}
template <bool (*Pred)(char32_t)>
Value MIs(Interp&, const Value& self, CallArgs&) {
  std::u32string cps = DecodeUtf8(StrSelf(self));
  if (cps.empty()) return Value::Bool(false);
  return Value::Bool(std::all_of(cps.begin(), cps.end(), Pred));
}
bool IsDigitCp(char32_t c) { return c >= '0' && c <= '9'; }
bool IsAlphaCp(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= 0xC0 && !IsPyWhitespace(c)); }
bool IsAlnumCp(char32_t c) { return IsDigitCp(c) || IsAlphaCp(c); }
Value MCased(const Value& self, bool upper) {
  bool any = false;
  for (char c : StrSelf(self)) {
    if (upper ? (c >= 'a' && c <= 'z') : (c >= 'A' && c <= 'Z')) return Value::Bool(false);
    if (upper ? (c >= 'A' && c <= 'Z') : (c >= 'a' && c <= 'z')) any = true;
  }
  return Value::Bool(any);
}
Value MPartition(const Value& self, CallArgs& a, bool right) {
  auto args = BindArgs(right ? "rpartition" : "partition", a, {"sep"}, 1);
  std::string sep = NeedStr(args[0], "partition");
  const std::string& s = StrSelf(self);
  size_t p = right ? s.rfind(sep) : s.find(sep);
  if (p == std::string::npos) {
    return right ? Value::List({Value::Str(""), Value::Str(""), self}, true)
                 : Value::List({self, Value::Str(""), Value::Str("")}, true);
  }
  return Value::List({Value::Str(s.substr(0, p)), Value::Str(sep), Value::Str(s.substr(p + sep.size()))}, true);
}

const std::map<std::string, MethodFn, std::less<>>& StrMethods() {
  static const std::map<std::string, MethodFn, std::less<>> m = {
      {"strip", [](Interp&, const Value& s, CallArgs& a) { return MStrip(s, a, StripSide::kBoth, "strip"); }},
      {"lstrip", [](Interp&, const Value& s, CallArgs& a) { return MStrip(s, a, StripSide::kLeft, "lstrip"); }},
      {"rstrip", [](Interp&, const Value& s, CallArgs& a) { return MStrip(s, a, StripSide::kRight, "rstrip"); }},
      {"split", [](Interp&, const Value& s, CallArgs& a) { return MSplitImpl(s, a, false); }},
      {"rsplit", [](Interp&, const Value& s, CallArgs& a) { return MSplitImpl(s, a, true); }},
      {"splitlines", [](Interp&, const Value& s, CallArgs& a) {
         auto args = BindArgs("splitlines", a, {"keepends"});
         return StrListValue(PySplitLines(StrSelf(s), args[0] && Truthy(*args[0])));
       }},
      {"startswith", [](Interp&, const Value& s, CallArgs& a) { return Value::Bool(AffixMatch(s, a, true)); }},
      {"endswith", [](Interp&, const Value& s, CallArgs& a) { return Value::Bool(AffixMatch(s, a, false)); }},
      {"replace", [](Interp& in, const Value& s, CallArgs& a) {
         auto args = BindArgs("replace", a, {"old", "new", "count"}, 2);
         std::string r = PyReplace(StrSelf(s), NeedStr(args[0], "replace"), NeedStr(args[1], "replace"),
                                   IntArg(args[2], -1, "count"));
         in.CheckSize(r.size());
         return Value::Str(std::move(r));
       }},
      {"upper", [](Interp&, const Value& s, CallArgs&) { return Value::Str(PyUpper(StrSelf(s))); }},
      {"lower", [](Interp&, const Value& s, CallArgs&) { return Value::Str(PyLower(StrSelf(s))); }},
      {"title", [](Interp&, const Value& s, CallArgs&) { return Value::Str(PyTitle(StrSelf(s))); }},
      {"capitalize", [](Interp&, const Value& s, CallArgs&) { return Value::Str(PyCapitalize(StrSelf(s))); }},
      {"swapcase", [](Interp&, const Value& s, CallArgs&) { return Value::Str(PySwapCase(StrSelf(s))); }},
      {"find", [](Interp&, const Value& s, CallArgs& a) {
         auto args = BindArgs("find", a, {"sub"}, 1);
         return Value::Int(PyFind(StrSelf(s), NeedStr(args[0], "find"), false));
       }},
      {"rfind", [](Interp&, const Value& s, CallArgs& a) {
         auto args = BindArgs("rfind", a, {"sub"}, 1);
         return Value::Int(PyFind(StrSelf(s), NeedStr(args[0], "rfind"), true));
       }},
      {"index", [](Interp&, const Value& s, CallArgs& a) {
         auto args = BindArgs("index", a, {"sub"}, 1);
         int64_t r = PyFind(StrSelf(s), NeedStr(args[0], "index"), false);
         if (r < 0) Throw("ValueError", "substring not found");
         return Value::Int(r);
       }},
      {"count", [](Interp&, const Value& s, CallArgs& a) {
         auto args = BindArgs("count", a, {"sub"}, 1);
         return Value::Int(PyCount(StrSelf(s), NeedStr(args[0], "count")));
       }},
      {"join", MJoin},
      {"center", [](Interp& in, const Value& s, CallArgs& a) { return MPad(in, s, a, 0, "center"); }},
      {"ljust", [](Interp& in, const Value& s, CallArgs& a) { return MPad(in, s, a, 1, "ljust"); }},
      {"rjust", [](Interp& in, const Value& s, CallArgs& a) { return MPad(in, s, a, 2, "rjust"); }},
      {"isdigit", MIs<IsDigitCp>},
      {"isalpha", MIs<IsAlphaCp>},
      {"isalnum", MIs<IsAlnumCp>},
      {"isspace", MIs<IsPyWhitespace>},
      {"isupper", [](Interp&, const Value& s, CallArgs&) { return MCased(s, true); }},
      {"islower", [](Interp&, const Value& s, CallArgs&) { return MCased(s, false); }},
      {"removeprefix", [](Interp&, const Value& s, CallArgs& a) {
         auto args = BindArgs("removeprefix", a, {"prefix"}, 1);
         std::string p = NeedStr(args[0], "removeprefix");
         const std::string& str = StrSelf(s);
         return str.compare(0, p.size(), p) == 0 ? Value::Str(str.substr(p.size())) : s;
       }},
      {"removesuffix", [](Interp&, const Value& s, CallArgs& a) {
         auto args = BindArgs("removesuffix", a, {"suffix"}, 1);
         std::string p = NeedStr(args[0], "removesuffix");
         const std::string& str = StrSelf(s);
         bool ends = !p.empty() && str.size() >= p.size() && str.compare(str.size() - p.size(), p.size(), p) == 0;
         return ends ? Value::Str(str.substr(0, str.size() - p.size())) : s;
       }},
      {"partition", [](Interp&, const Value& s, CallArgs& a) { return MPartition(s, a, false); }},
      {"rpartition", [](Interp&, const Value& s, CallArgs& a) { return MPartition(s, a, true); }},
  };
  return m;
}

// ------------------------------------------------------------------------------ dict / list methods

Value PairsOf(const DictData& d, int which) {  // 0 items, 1 keys, 2 values
  std::vector<Value> out;
  out.reserve(d.items.size());
  for (const auto& [k, v] : d.items) {
    out.push_back(which == 0 ? Value::List({k, v}, true) : which == 1 ? k : v);
  }
  return Value::List(std::move(out));
}

const std::map<std::string, MethodFn, std::less<>>& DictMethods() {
  static const std::map<std::string, MethodFn, std::less<>> m = {
      {"items", [](Interp&, const Value& d, CallArgs&) { return PairsOf(d.dict(), 0); }},
      {"keys", [](Interp&, const Value& d, CallArgs&) { return PairsOf(d.dict(), 1); }},
      {"values", [](Interp&, const Value& d, CallArgs&) { return PairsOf(d.dict(), 2); }},
      {"get", [](Interp&, const Value& d, CallArgs& a) {
         auto args = BindArgs("get", a, {"key", "default"}, 1);
         const Value* v = d.dict().Find(*args[0]);
         return v ? *v : (args[1] ? *args[1] : Value::None());
       }},
      {"copy", [](Interp&, const Value& d, CallArgs&) { return d; }},
  };
  return m;
}

const std::map<std::string, MethodFn, std::less<>>& ListMethods() {
  static const std::map<std::string, MethodFn, std::less<>> m = {
      {"index", [](Interp&, const Value& l, CallArgs& a) {
         auto args = BindArgs("index", a, {"value"}, 1);
         const auto& items = l.list().items;
         for (size_t k = 0; k < items.size(); ++k) {
           if (Equals(items[k], *args[0])) return Value::Int(static_cast<int64_t>(k));
         }
         Throw("ValueError", Repr(*args[0]) + " is not in list");
       }},
      {"count", [](Interp&, const Value& l, CallArgs& a) {
         auto args = BindArgs("count", a, {"value"}, 1);
         int64_t n = 0;
         for (const Value& v : l.list().items) n += Equals(v, *args[0]) ? 1 : 0;
         return Value::Int(n);
       }},
      {"copy", [](Interp&, const Value& l, CallArgs&) { return Value::List(l.list().items); }},
  };
  return m;
}

bool IsMutatingMethod(Kind kind, std::string_view name) {
  static const char* kList[] = {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"};
  static const char* kDict[] = {"pop", "popitem", "setdefault", "update", "clear"};
  if (kind == Kind::kList) return std::find(std::begin(kList), std::end(kList), name) != std::end(kList);
  if (kind == Kind::kDict) return std::find(std::begin(kDict), std::end(kDict), name) != std::end(kDict);
  return false;
}

}  // namespace

Value GetMethod(const Value& obj, const std::string& name) {
  const std::map<std::string, MethodFn, std::less<>>* table = nullptr;
  if (obj.is_string()) table = &StrMethods();
  if (obj.is_dict()) table = &DictMethods();
  if (obj.is_list()) table = &ListMethods();
  if (!table) return Value();
  auto it = table->find(name);
  if (it == table->end()) {
    if (IsMutatingMethod(obj.kind(), name)) {
      std::string type = TypeName(obj);
      return Value::Func("<unsafe method>", [name, type](Interp&, CallArgs&) -> Value {
        Throw("SecurityError", "access to attribute '" + name + "' of '" + type + "' object is unsafe.");
      });
    }
    return Value();
  }
  MethodFn fn = it->second;
  return Value::Func("<built-in method " + name + " of " + TypeName(obj) + " object>",
                     [obj, fn](Interp& in, CallArgs& a) { return fn(in, obj, a); });
}

std::vector<std::optional<Value>> BindArgs(const std::string& fn, CallArgs& args,
                                           std::initializer_list<std::string_view> names, size_t required) {
  std::vector<std::optional<Value>> out(names.size());
  if (args.pos.size() > names.size()) {
    Throw("TypeError", fn + "() takes at most " + std::to_string(names.size()) + " argument(s) (" +
                           std::to_string(args.pos.size()) + " given)");
  }
  for (size_t k = 0; k < args.pos.size(); ++k) out[k] = args.pos[k];
  for (auto& [key, v] : args.kw) {
    auto it = std::find(names.begin(), names.end(), key);
    if (it == names.end()) Throw("TypeError", fn + "() got an unexpected keyword argument '" + key + "'");
    size_t k = static_cast<size_t>(it - names.begin());
    if (out[k]) Throw("TypeError", fn + "() got multiple values for argument '" + key + "'");
    out[k] = v;
  }
  for (size_t k = 0; k < required; ++k) {
    if (!out[k]) {
      Throw("TypeError", fn + "() missing required argument '" + std::string(*(names.begin() + k)) + "'");
    }
  }
  return out;
}

Value SliceValue(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
                 std::optional<int64_t> step) {
  int64_t st = step.value_or(1);
  if (st == 0) Throw("ValueError", "slice step cannot be zero");
  std::u32string cps;
  if (obj.is_string()) cps = DecodeUtf8(obj.str());
  int64_t n = obj.is_string() ? static_cast<int64_t>(cps.size()) : static_cast<int64_t>(obj.list().items.size());
  auto adjust = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= n) {
      x = st < 0 ? n - 1 : n;
    }
    return x;
  };
  int64_t b = adjust(start, st < 0 ? n - 1 : 0);
  int64_t e = adjust(stop, st < 0 ? -1 : n);
  std::vector<size_t> idx;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) idx.push_back(static_cast<size_t>(i));
  if (obj.is_string()) {
    std::u32string out;
    for (size_t i : idx) out.push_back(cps[i]);
    return Value::Str(EncodeUtf8(out));
  }
  std::vector<Value> out;
  for (size_t i : idx) out.push_back(obj.list().items[i]);
  return Value::List(std::move(out), obj.list().is_tuple);
}

Value Repeat(Interp& in, const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_string() ? Value::Str("") : Value::List({}, seq.list().is_tuple);
  if (seq.is_string()) {
    size_t len = seq.str().size();
    if (len && static_cast<uint64_t>(n) > (1ull << 40) / len) in.CheckSize(SIZE_MAX);
    in.CheckSize(len * static_cast<size_t>(n));
    std::string out;
    out.reserve(len * static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) out += seq.str();
    return Value::Str(std::move(out));
  }
  const auto& items = seq.list().items;
  in.Step(items.size() * static_cast<size_t>(std::min<int64_t>(n, 1 << 30)));
  std::vector<Value> out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), items.begin(), items.end());
  return Value::List(std::move(out), seq.list().is_tuple);
}

bool PyCompare(const Value& a, const Value& b, int* out) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Kind::kFloat || b.kind() == Kind::kFloat) {
      *out = a.f() < b.f() ? -1 : a.f() > b.f() ? 1 : 0;
    } else {
      *out = a.i() < b.i() ? -1 : a.i() > b.i() ? 1 : 0;
    }
    return true;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.str().compare(b.str());  // UTF-8 byte order is code-point order
    *out = c < 0 ? -1 : c > 0 ? 1 : 0;
    return true;
  }
  if (a.is_list() && b.is_list() && a.list().is_tuple == b.list().is_tuple) {
    const auto& x = a.list().items;
    const auto& y = b.list().items;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (Equals(x[k], y[k])) continue;
      return PyCompare(x[k], y[k], out);
    }
    *out = x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
    return true;
  }
  return false;
}

Value PercentFormat(const std::string& fmt, const Value& args) {
  std::vector<Value> values;
  const DictData* mapping = args.is_dict() ? &args.dict() : nullptr;
  if (args.is_list() && args.list().is_tuple) {
    values = args.list().items;
  } else if (!mapping) {
    values.push_back(args);
  }
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) Throw("ValueError", "incomplete format");
    const Value* arg = nullptr;
    if (fmt[i] == '(' && mapping) {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos) Throw("ValueError", "incomplete format key");
      std::string key = fmt.substr(i + 1, close - i - 1);
      arg = mapping->Find(key);
      if (!arg) Throw("KeyError", PyStrRepr(key));
      i = close + 1;
    }
    std::string spec = "%";
    while (i < fmt.size() && std::string_view("-+ #0123456789.").find(fmt[i]) != std::string_view::npos) spec += fmt[i++];
    if (i >= fmt.size()) Throw("ValueError", "incomplete format");
    char conv = fmt[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (!arg) {
      if (next >= values.size()) Throw("TypeError", "not enough arguments for format string");
      arg = &values[next++];
    }
    char buf[512];
    if (conv == 's' || conv == 'r') {
      std::string text = conv == 's' ? ToStr(*arg) : Repr(*arg);
      size_t dot = spec.find('.');
      if (dot != std::string::npos) {  // precision truncates (by code point)
        std::u32string cps = DecodeUtf8(text);
        text = EncodeUtf8(cps.substr(0, static_cast<size_t>(std::atoi(spec.c_str() + dot + 1))));
      }
      size_t digits = spec.find_first_of("123456789");
      size_t width = digits < dot ? static_cast<size_t>(std::atoi(spec.c_str() + digits)) : 0;
      size_t len = CodePointCount(text);
      std::string pad = width > len ? std::string(std::min<size_t>(width - len, 4096), ' ') : "";
      out += spec.find('-') != std::string::npos ? text + pad : pad + text;
    } else if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
      if (!arg->is_number()) Throw("TypeError", std::string("%") + conv + " format: a real number is required, not " + TypeName(*arg));
      long long v = arg->kind() == Kind::kFloat ? static_cast<long long>(arg->f()) : static_cast<long long>(arg->i());
      std::snprintf(buf, sizeof(buf), (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(), v);
      out += buf;
    } else if (conv == 'f' || conv == 'F' || conv == 'e' || conv == 'E' || conv == 'g' || conv == 'G') {
      if (!arg->is_number()) Throw("TypeError", "must be real number, not " + TypeName(*arg));
      std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), arg->f());
      out += buf;
    } else {
      Throw("ValueError", std::string("unsupported format character '") + conv + "'");
    }
  }
  if (!mapping && next < values.size()) Throw("TypeError", "not all arguments converted during string formatting");
  return Value::Str(std::move(out));
}

}  // namespace moxie::jinja
