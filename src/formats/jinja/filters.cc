// jinja2's builtin filters, tests and globals, plus the chat-template globals transformers adds
// (raise_exception, strftime_now) and HF's tojson.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <map>

#include "formats/jinja/builtins.h"
#include "formats/jinja/pystring.h"

namespace moxie::jinja {
namespace {

using FilterFn = Value (*)(Interp&, const Value& input, CallArgs&);
using TestFn = bool (*)(Interp&, const Value& input, CallArgs&);

// Containers bigger than this many elements are refused: each Value costs ~100 bytes.
size_t MaxElements(Interp&) { return size_t{1} << 24; }

Value AttrPath(Interp& in, Value v, const std::string& path) {
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    v = in.GetItem(v, digits ? Value::Int(std::atoll(part.c_str())) : Value::Str(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

std::string AttrName(const std::optional<Value>& v) {
  if (!v) return "";
  if (v->kind() == Kind::kInt) return std::to_string(v->i());
  if (!v->is_string()) Throw("TypeError", "attribute must be a string");
  return v->str();
}

// Sort key used by sort/unique/min/max/dictsort: lower-cased strings unless case_sensitive.
Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::Str(PyLower(v.str()));
  return v;
}

void SortValues(std::vector<Value>& keys, std::vector<size_t>& order) {
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    int c = 0;
    if (!PyCompare(keys[a], keys[b], &c)) {
      Throw("TypeError", "'<' not supported between instances of '" + TypeName(keys[a]) + "' and '" +
                             TypeName(keys[b]) + "'");
    }
    return c < 0;
  });
}

// ------------------------------------------------------------------------------ filters

Value FTojson(Interp&, const Value& v, CallArgs& a) {
  auto args = BindArgs("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  o.ensure_ascii = args[0] && Truthy(*args[0]);
  o.sort_keys = args[3] && Truthy(*args[3]);
  if (args[1] && !args[1]->is_none()) {
    o.has_indent = true;
    if (args[1]->is_string()) {
      o.indent = args[1]->str();
    } else if (args[1]->kind() == Kind::kInt || args[1]->kind() == Kind::kBool) {
      o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(args[1]->i(), 0, 256)), ' ');
    } else {
      Throw("TypeError", "indent must be an int or a string");
    }
    o.item_sep = ",";  // json.dumps drops the space after "," when indenting
  }
  if (args[2] && !args[2]->is_none()) {
    const Value& s = *args[2];
    if (!s.is_list() || s.list().items.size() != 2 || !s.list().items[0].is_string() ||
        !s.list().items[1].is_string()) {
      Throw("ValueError", "separators must be a (item_separator, key_separator) pair of strings");
    }
    o.item_sep = s.list().items[0].str();
    o.key_sep = s.list().items[1].str();
  }
  return Value::Str(ToJson(v, o));
}

Value FLength(Interp&, const Value& v, CallArgs&) {
  switch (v.kind()) {
    case Kind::kUndefined: return Value::Int(0);
    case Kind::kString: return Value::Int(static_cast<int64_t>(CodePointCount(v.str())));
    case Kind::kList: return Value::Int(static_cast<int64_t>(v.list().items.size()));
    case Kind::kDict: return Value::Int(static_cast<int64_t>(v.dict().items.size()));
    default: Throw("TypeError", "object of type '" + TypeName(v) + "' has no len()");
  }
}

Value FDefault(Interp&, const Value& v, CallArgs& a) {
  auto args = BindArgs("default", a, {"default_value", "boolean"});
  bool boolean = args[1] && Truthy(*args[1]);
  if (v.is_undefined() || (boolean && !Truthy(v))) return args[0] ? *args[0] : Value::Str("");
  return v;
}

Value FTrim(Interp&, const Value& v, CallArgs& a) {
  auto args = BindArgs("trim", a, {"chars"});
  std::optional<std::string> chars;
  if (args[0] && !args[0]->is_none()) chars = ToStr(*args[0]);
  return Value::Str(PyStrip(ToStr(v), chars, StripSide::kBoth));
}

Value FJoin(Interp& in, const Value& v, CallArgs& a) {
  auto args = BindArgs("join", a, {"d", "attribute"});
  std::string sep = args[0] ? ToStr(*args[0]) : "";
  std::string attr = AttrName(args[1]);
  std::string out;
  std::vector<Value> items = in.Iterate(v);
  for (size_t k = 0; k < items.size(); ++k) {
    if (k) out += sep;
    out += ToStr(attr.empty() ? items[k] : AttrPath(in, items[k], attr));
    in.CheckSize(out.size());
  }
  return Value::Str(std::move(out));
}

Value FFirst(Interp& in, const Value& v, CallArgs&) {
  std::vector<Value> items = in.Iterate(v);
  return items.empty() ? Value::Undefined("No first item, sequence was empty.") : items.front();
}
Value FLast(Interp& in, const Value& v, CallArgs&) {
  std::vector<Value> items = in.Iterate(v);
  return items.empty() ? Value::Undefined("No last item, sequence was empty.") : items.back();
}
Value FList(Interp& in, const Value& v, CallArgs&) { return Value::List(in.Iterate(v)); }
Value FString(Interp&, const Value& v, CallArgs&) { return v.is_string() ? v : Value::Str(ToStr(v)); }
Value FUpper(Interp&, const Value& v, CallArgs&) { return Value::Str(PyUpper(ToStr(v))); }
Value FLower(Interp&, const Value& v, CallArgs&) { return Value::Str(PyLower(ToStr(v))); }
Value FTitle(Interp&, const Value& v, CallArgs&) { return Value::Str(JinjaTitle(ToStr(v))); }
Value FCapitalize(Interp&, const Value& v, CallArgs&) { return Value::Str(PyCapitalize(ToStr(v))); }
Value FSafe(Interp&, const Value& v, CallArgs&) { return v; }
Value FPprint(Interp&, const Value& v, CallArgs&) { return Value::Str(Repr(v)); }
Value FWordcount(Interp&, const Value& v, CallArgs&) { return Value::Int(WordCount(ToStr(v))); }

Value FReplace(Interp& in, const Value& v, CallArgs& a) {
  auto args = BindArgs("replace", a, {"old", "new", "count"}, 2);
  int64_t count = args[2] && !args[2]->is_none() ? args[2]->i() : -1;
  std::string r = PyReplace(ToStr(v), ToStr(*args[0]), ToStr(*args[1]), count);
  in.CheckSize(r.size());
  return Value::Str(std::move(r));
}

Value FItems(Interp&, const Value& v, CallArgs&) {
  if (v.is_undefined()) return Value::List({});
  if (!v.is_dict()) Throw("TypeError", "Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, val] : v.dict().items) out.push_back(Value::List({k, val}, true));
  return Value::List(std::move(out));
}

Value FDictsort(Interp&, const Value& v, CallArgs& a) {
  auto args = BindArgs("dictsort", a, {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) Throw("TypeError", "dictsort expects a mapping");
  bool cs = args[0] && Truthy(*args[0]);
  bool by_value = args[1] && args[1]->is_string() && args[1]->str() == "value";
  std::vector<Value> keys;
  std::vector<size_t> order;
  const auto& items = v.dict().items;
  for (size_t k = 0; k < items.size(); ++k) {
    keys.push_back(SortKey(by_value ? items[k].second : items[k].first, cs));
    order.push_back(k);
  }
  SortValues(keys, order);
  if (args[2] && Truthy(*args[2])) std::reverse(order.begin(), order.end());
  std::vector<Value> out;
  for (size_t k : order) out.push_back(Value::List({items[k].first, items[k].second}, true));
  return Value::List(std::move(out));
}

Value ToInt(const Value& v, const Value& def, int base) {
  if (v.kind() == Kind::kInt || v.kind() == Kind::kBool) return Value::Int(v.i());
  if (v.kind() == Kind::kFloat) {
    if (!std::isfinite(v.f())) return def;
    return Value::Int(static_cast<int64_t>(v.f()));
  }
  if (v.is_string()) {
    std::string s = PyStrip(v.str(), std::nullopt, StripSide::kBoth);
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    if (s.empty()) return def;
    char* end = nullptr;
    errno = 0;
    long long r = std::strtoll(s.c_str(), &end, base);
    if (*end == '\0' && errno == 0) return Value::Int(r);
    double d = std::strtod(s.c_str(), &end);
    if (*end == '\0' && std::isfinite(d)) return Value::Int(static_cast<int64_t>(d));
  }
  return def;
}

Value FInt(Interp&, const Value& v, CallArgs& a) {
  auto args = BindArgs("int", a, {"default", "base"});
  if (v.is_undefined()) ThrowUndefined(v);
  int base = static_cast<int>(args[1] ? args[1]->i() : 10);
  return ToInt(v, args[0] ? *args[0] : Value::Int(0), base);
}

Value FFloat(Interp&, const Value& v, CallArgs& a) {
  auto args = BindArgs("float", a, {"default"});
  Value def = args[0] ? *args[0] : Value::Float(0.0);
  if (v.is_undefined()) ThrowUndefined(v);
  if (v.is_number()) return Value::Float(v.f());
  if (v.is_string()) {
    std::string s = PyStrip(v.str(), std::nullopt, StripSide::kBoth);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == '\0') return Value::Float(d);
  }
  return def;
}

Value FAbs(Interp&, const Value& v, CallArgs&) {
  if (v.kind() == Kind::kFloat) return Value::Float(std::fabs(v.f()));
  if (v.is_number()) {
    if (v.i() == INT64_MIN) Throw("OverflowError", "integer overflow");
    return Value::Int(v.i() < 0 ? -v.i() : v.i());
  }
  Throw("TypeError", "bad operand type for abs(): '" + TypeName(v) + "'");
}

Value FRound(Interp&, const Value& v, CallArgs& a) {
  auto args = BindArgs("round", a, {"precision", "method"});
  int64_t prec = args[0] ? args[0]->i() : 0;
  std::string method = args[1] ? ToStr(*args[1]) : "common";
  if (!v.is_number()) Throw("TypeError", "round() needs a number, not " + TypeName(v));
  if (v.kind() != Kind::kFloat && method == "common") return Value::Int(v.i());
  double scale = std::pow(10.0, static_cast<double>(prec));
  double x = v.f() * scale;
  double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::nearbyint(x);
  if (method != "common" && method != "ceil" && method != "floor") {
    Throw("FilterArgumentError", "method must be common, ceil or floor");
  }
  return Value::Float(r / scale);
}

// select/reject and selectattr/rejectattr share this: `attr` empty for the former.
Value SelectImpl(Interp& in, const Value& v, CallArgs& a, bool with_attr, bool keep) {
  std::vector<Value> rest = a.pos;
  std::string attr;
  if (with_attr) {
    if (rest.empty()) Throw("TypeError", "selectattr/rejectattr need an attribute name");
    attr = AttrName(rest.front());
    rest.erase(rest.begin());
  }
  std::string test;
  if (!rest.empty()) {
    test = ToStr(rest.front());
    rest.erase(rest.begin());
  }
  std::vector<Value> out;
  for (const Value& item : in.Iterate(v)) {
    in.Step();
    Value subject = with_attr ? AttrPath(in, item, attr) : item;
    bool r;
    if (test.empty()) {
      r = Truthy(subject);
    } else {
      CallArgs targs;
      targs.pos = rest;
      targs.kw = a.kw;
      r = in.ApplyTest(test, subject, targs);
    }
    if (r == keep) out.push_back(item);
  }
  return Value::List(std::move(out));
}
Value FSelect(Interp& in, const Value& v, CallArgs& a) { return SelectImpl(in, v, a, false, true); }
Value FReject(Interp& in, const Value& v, CallArgs& a) { return SelectImpl(in, v, a, false, false); }
Value FSelectattr(Interp& in, const Value& v, CallArgs& a) { return SelectImpl(in, v, a, true, true); }
Value FRejectattr(Interp& in, const Value& v, CallArgs& a) { return SelectImpl(in, v, a, true, false); }

Value FMap(Interp& in, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  const Value* attribute = nullptr;
  const Value* def = nullptr;
  for (const auto& [k, val] : a.kw) {
    if (k == "attribute") attribute = &val;
    if (k == "default") def = &val;
  }
  for (const Value& item : in.Iterate(v)) {
    in.Step();
    if (attribute) {
      Value r = AttrPath(in, item, AttrName(*attribute));
      out.push_back(r.is_undefined() && def ? *def : r);
    } else {
      if (a.pos.empty()) Throw("FilterArgumentError", "map requires a filter argument");
      CallArgs fargs;
      fargs.pos.assign(a.pos.begin() + 1, a.pos.end());
      fargs.kw = a.kw;
      out.push_back(in.ApplyFilter(ToStr(a.pos[0]), item, fargs));
    }
  }
  return Value::List(std::move(out));
}

Value FUnique(Interp& in, const Value& v, CallArgs& a) {
  auto args = BindArgs("unique", a, {"case_sensitive", "attribute"});
  bool cs = args[0] && Truthy(*args[0]);
  std::string attr = AttrName(args[1]);
  std::vector<Value> out, seen;
  for (const Value& item : in.Iterate(v)) {
    Value key = SortKey(attr.empty() ? item : AttrPath(in, item, attr), cs);
    in.Step(seen.size() + 1);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return Equals(s, key); })) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return Value::List(std::move(out));
}

Value FSort(Interp& in, const Value& v, CallArgs& a) {
  auto args = BindArgs("sort", a, {"reverse", "case_sensitive", "attribute"});
  std::vector<Value> items = in.Iterate(v);
  std::string attr = AttrName(args[2]);
  std::vector<Value> keys;
  std::vector<size_t> order;
  for (size_t k = 0; k < items.size(); ++k) {
    keys.push_back(SortKey(attr.empty() ? items[k] : AttrPath(in, items[k], attr), args[1] && Truthy(*args[1])));
    order.push_back(k);
  }
  SortValues(keys, order);
  if (args[0] && Truthy(*args[0])) std::reverse(order.begin(), order.end());
  std::vector<Value> out;
  for (size_t k : order) out.push_back(items[k]);
  return Value::List(std::move(out));
}

Value MinMax(Interp& in, const Value& v, CallArgs& a, bool want_max) {
  auto args = BindArgs(want_max ? "max" : "min", a, {"case_sensitive", "attribute"});
  std::vector<Value> items = in.Iterate(v);
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  std::string attr = AttrName(args[1]);
  bool cs = args[0] && Truthy(*args[0]);
  size_t best = 0;
  Value best_key = SortKey(attr.empty() ? items[0] : AttrPath(in, items[0], attr), cs);
  for (size_t k = 1; k < items.size(); ++k) {
    Value key = SortKey(attr.empty() ? items[k] : AttrPath(in, items[k], attr), cs);
    int c = 0;
    if (!PyCompare(key, best_key, &c)) Throw("TypeError", "values are not orderable");
    if (want_max ? c > 0 : c < 0) {
      best = k;
      best_key = key;
    }
  }
  return items[best];
}
Value FMin(Interp& in, const Value& v, CallArgs& a) { return MinMax(in, v, a, false); }
Value FMax(Interp& in, const Value& v, CallArgs& a) { return MinMax(in, v, a, true); }

Value FSum(Interp& in, const Value& v, CallArgs& a) {
  auto args = BindArgs("sum", a, {"attribute", "start"});
  std::string attr = AttrName(args[0]);
  Value total = args[1] ? *args[1] : Value::Int(0);
  for (const Value& item : in.Iterate(v)) total = in.BinaryOp("+", total, attr.empty() ? item : AttrPath(in, item, attr));
  return total;
}

Value FReverse(Interp& in, const Value& v, CallArgs&) {
  if (v.is_string()) return SliceValue(v, std::nullopt, std::nullopt, -1);
  std::vector<Value> items = in.Iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::List(std::move(items));
}

Value FIndent(Interp& in, const Value& v, CallArgs& a) {
  auto args = BindArgs("indent", a, {"width", "first", "blank"});
  std::string pad = !args[0] ? "    " : args[0]->is_string() ? args[0]->str()
                                                          : std::string(static_cast<size_t>(std::clamp<int64_t>(args[0]->i(), 0, 1024)), ' ');
  bool first = args[1] && Truthy(*args[1]);
  bool blank = args[2] && Truthy(*args[2]);
  std::vector<std::string> lines = PySplitLines(ToStr(v) + "\n", false);
  std::string out;
  for (size_t k = 0; k < lines.size(); ++k) {
    if (k) out += "\n";
    if ((k > 0 || first) && (blank || !lines[k].empty())) out += pad;
    out += lines[k];
    in.CheckSize(out.size());
  }
  return Value::Str(std::move(out));
}

Value FCenter(Interp& in, const Value& v, CallArgs& a) {
  auto args = BindArgs("center", a, {"width"});
  CallArgs m;
  m.pos.push_back(args[0] ? *args[0] : Value::Int(80));
  return in.Call(GetMethod(Value::Str(ToStr(v)), "center"), m);
}

Value FEscape(Interp&, const Value& v, CallArgs&) {
  std::string out;
  for (char c : ToStr(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return Value::Str(std::move(out));
}

Value FFormat(Interp&, const Value& v, CallArgs& a) {
  if (!a.kw.empty()) {
    auto d = std::make_shared<DictData>();
    for (const auto& [k, val] : a.kw) d->Set(Value::Str(k), val);
    return PercentFormat(ToStr(v), Value::Dict(std::move(d)));
  }
  return PercentFormat(ToStr(v), Value::List(a.pos, true));
}

Value FAttr(Interp& in, const Value& v, CallArgs& a) {
  auto args = BindArgs("attr", a, {"name"}, 1);
  std::string name = ToStr(*args[0]);
  if (v.kind() == Kind::kNamespace) return in.GetAttr(v, name);
  Value m = GetMethod(v, name);
  return m.is_undefined() ? Value::Undefined("'" + ObjectTypeRepr(v) + "' has no attribute " + PyStrRepr(name)) : m;
}

Value FBatch(Interp& in, const Value& v, CallArgs& a) {
  auto args = BindArgs("batch", a, {"linecount", "fill_with"}, 1);
  int64_t n = args[0]->i();
  if (n <= 0) Throw("ValueError", "batch size must be positive");
  std::vector<Value> out, cur;
  for (const Value& item : in.Iterate(v)) {
    cur.push_back(item);
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(Value::List(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    while (args[1] && static_cast<int64_t>(cur.size()) < n) cur.push_back(*args[1]);
    out.push_back(Value::List(std::move(cur)));
  }
  return Value::List(std::move(out));
}

const std::map<std::string, FilterFn, std::less<>>& Filters() {
  static const std::map<std::string, FilterFn, std::less<>> m = {
      {"abs", FAbs},         {"attr", FAttr},           {"batch", FBatch},
      {"capitalize", FCapitalize}, {"center", FCenter}, {"count", FLength},
      {"d", FDefault},       {"default", FDefault},     {"dictsort", FDictsort},
      {"e", FEscape},        {"escape", FEscape},       {"first", FFirst},
      {"float", FFloat},     {"forceescape", FEscape},  {"format", FFormat},
      {"indent", FIndent},   {"int", FInt},             {"items", FItems},
      {"join", FJoin},       {"last", FLast},           {"length", FLength},
      {"list", FList},       {"lower", FLower},         {"map", FMap},
      {"max", FMax},         {"min", FMin},             {"pprint", FPprint},
      {"reject", FReject},   {"rejectattr", FRejectattr}, {"replace", FReplace},
      {"reverse", FReverse}, {"round", FRound},         {"safe", FSafe},
      {"select", FSelect},   {"selectattr", FSelectattr}, {"sort", FSort},
      {"string", FString},   {"sum", FSum},             {"title", FTitle},
      {"tojson", FTojson},   {"trim", FTrim},           {"unique", FUnique},
      {"upper", FUpper},     {"wordcount", FWordcount},
  };
  return m;
}

// ------------------------------------------------------------------------------ tests

const Value& Arg0(CallArgs& a, const char* test) {
  if (a.pos.empty()) Throw("TypeError", std::string(test) + " test needs an argument");
  return a.pos[0];
}
bool TCompare(Interp& in, const Value& v, CallArgs& a, const char* op) { return in.Compare(op, v, Arg0(a, op)); }

const std::map<std::string, TestFn, std::less<>>& Tests() {
  static const std::map<std::string, TestFn, std::less<>> m = {
      {"defined", [](Interp&, const Value& v, CallArgs&) { return !v.is_undefined(); }},
      {"undefined", [](Interp&, const Value& v, CallArgs&) { return v.is_undefined(); }},
      {"none", [](Interp&, const Value& v, CallArgs&) { return v.is_none(); }},
      {"boolean", [](Interp&, const Value& v, CallArgs&) { return v.kind() == Kind::kBool; }},
      {"true", [](Interp&, const Value& v, CallArgs&) { return v.kind() == Kind::kBool && v.b(); }},
      {"false", [](Interp&, const Value& v, CallArgs&) { return v.kind() == Kind::kBool && !v.b(); }},
      {"integer", [](Interp&, const Value& v, CallArgs&) { return v.kind() == Kind::kInt; }},
      {"float", [](Interp&, const Value& v, CallArgs&) { return v.kind() == Kind::kFloat; }},
      {"number", [](Interp&, const Value& v, CallArgs&) { return v.is_number(); }},
      {"string", [](Interp&, const Value& v, CallArgs&) { return v.is_string(); }},
      {"mapping", [](Interp&, const Value& v, CallArgs&) { return v.is_dict(); }},
      {"iterable", [](Interp&, const Value& v, CallArgs&) {
         return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
       }},
      {"sequence", [](Interp&, const Value& v, CallArgs&) {
         return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
       }},
      {"callable", [](Interp&, const Value& v, CallArgs&) { return v.kind() == Kind::kCallable; }},
      {"sameas", [](Interp&, const Value& v, CallArgs& a) {
         const Value& o = Arg0(a, "sameas");
         if (v.kind() != o.kind()) return false;
         if (v.is_none() || v.is_undefined()) return true;
         if (v.kind() == Kind::kBool) return v.b() == o.b();
         if (v.kind() == Kind::kInt) return v.i() == o.i() && v.i() >= -5 && v.i() <= 256;
         if (v.is_list()) return &v.list() == &o.list();
         if (v.is_dict() || v.kind() == Kind::kNamespace) return &v.dict() == &o.dict();
         return Equals(v, o);
       }},
      {"eq", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, "=="); }},
      {"equalto", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, "=="); }},
      {"==", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, "=="); }},
      {"ne", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, "!="); }},
      {"!=", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, "!="); }},
      {"lt", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, "<"); }},
      {"lessthan", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, "<"); }},
      {"<", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, "<"); }},
      {"le", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, "<="); }},
      {"<=", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, "<="); }},
      {"gt", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, ">"); }},
      {"greaterthan", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, ">"); }},
      {">", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, ">"); }},
      {"ge", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, ">="); }},
      {">=", [](Interp& in, const Value& v, CallArgs& a) { return TCompare(in, v, a, ">="); }},
      {"in", [](Interp& in, const Value& v, CallArgs& a) { return in.Contains(Arg0(a, "in"), v); }},
      {"odd", [](Interp&, const Value& v, CallArgs&) { return v.is_number() && (v.i() % 2) != 0; }},
      {"even", [](Interp&, const Value& v, CallArgs&) { return v.is_number() && (v.i() % 2) == 0; }},
      {"divisibleby", [](Interp&, const Value& v, CallArgs& a) {
         const Value& d = Arg0(a, "divisibleby");
         if (!d.is_number() || d.i() == 0) Throw("ZeroDivisionError", "integer division or modulo by zero");
         return v.i() % d.i() == 0;
       }},
      {"lower", [](Interp&, const Value& v, CallArgs&) { return v.is_string() && PyLower(v.str()) == v.str(); }},
      {"upper", [](Interp&, const Value& v, CallArgs&) { return v.is_string() && PyUpper(v.str()) == v.str(); }},
      {"escaped", [](Interp&, const Value&, CallArgs&) { return false; }},
      {"filter", [](Interp&, const Value& v, CallArgs&) { return v.is_string() && IsKnownFilter(v.str()); }},
      {"test", [](Interp&, const Value& v, CallArgs&) { return v.is_string() && IsKnownTest(v.str()); }},
  };
  return m;
}

// ------------------------------------------------------------------------------ globals

Value GRange(Interp& in, CallArgs& a) {
  if (!a.kw.empty() || a.pos.empty() || a.pos.size() > 3) Throw("TypeError", "range expected 1 to 3 integer arguments");
  int64_t args[3] = {0, 0, 1};
  for (size_t k = 0; k < a.pos.size(); ++k) {
    if (a.pos[k].kind() != Kind::kInt && a.pos[k].kind() != Kind::kBool) {
      Throw("TypeError", "'" + TypeName(a.pos[k]) + "' object cannot be interpreted as an integer");
    }
  }
  if (a.pos.size() == 1) {
    args[1] = a.pos[0].i();
  } else {
    args[0] = a.pos[0].i();
    args[1] = a.pos[1].i();
    if (a.pos.size() == 3) args[2] = a.pos[2].i();
  }
  if (args[2] == 0) Throw("ValueError", "range() arg 3 must not be zero");
  double count = std::ceil((static_cast<double>(args[1]) - static_cast<double>(args[0])) / static_cast<double>(args[2]));
  if (count > static_cast<double>(MaxElements(in))) {
    Throw("ResourceLimitError", "range() too large for a template (" + FormatFloat(count) + " items)");
  }
  std::vector<Value> out;
  for (int64_t i = args[0]; args[2] > 0 ? i < args[1] : i > args[1]; i += args[2]) out.push_back(Value::Int(i));
  in.Step(out.size());
  return Value::List(std::move(out));
}

// dict(**kw), dict(mapping), namespace(...) all build an insertion-ordered mapping.
std::shared_ptr<DictData> MappingFromArgs(Interp& in, CallArgs& a, const char* fn) {
  auto d = std::make_shared<DictData>();
  if (a.pos.size() > 1) Throw("TypeError", std::string(fn) + " expected at most 1 positional argument");
  if (!a.pos.empty()) {
    const Value& src = a.pos[0];
    if (src.is_dict() || src.kind() == Kind::kNamespace) {
      for (const auto& [k, v] : src.dict().items) d->Set(k, v);
    } else {
      for (const Value& pair : in.Iterate(src)) {
        std::vector<Value> kv = in.Iterate(pair);
        if (kv.size() != 2) Throw("ValueError", "dictionary update sequence element has wrong length");
        d->Set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : a.kw) d->Set(Value::Str(k), v);
  return d;
}

Value GStrftime(Interp& in, CallArgs& a) {
  auto args = BindArgs("strftime_now", a, {"format"}, 1);
  std::string fmt = ToStr(*args[0]);
  if (fmt.size() > 256) Throw("ValueError", "strftime format too long");
  if (fmt.empty()) return Value::Str("");
  char buf[2048];
  size_t n = std::strftime(buf, sizeof(buf), fmt.c_str(), &in.now());
  return Value::Str(std::string(buf, n));
}

}  // namespace

bool IsKnownFilter(std::string_view name) { return Filters().count(name) > 0; }
bool IsKnownTest(std::string_view name) { return Tests().count(name) > 0; }

Value Interp::ApplyFilter(const std::string& name, const Value& input, CallArgs& args) {
  auto it = Filters().find(name);
  if (it == Filters().end()) Throw("TemplateRuntimeError", "No filter named '" + name + "' found.");
  return it->second(*this, input, args);
}

bool Interp::ApplyTest(const std::string& name, const Value& input, CallArgs& args) {
  auto it = Tests().find(name);
  if (it == Tests().end()) Throw("TemplateRuntimeError", "No test named '" + name + "' found.");
  return it->second(*this, input, args);
}

void AddGlobals(Scope& scope) {
  scope.vars["range"] = Value::Func("<class 'range'>", GRange);
  scope.vars["dict"] = Value::Func("<class 'dict'>", [](Interp& in, CallArgs& a) {
    return Value::Dict(MappingFromArgs(in, a, "dict"));
  });
  scope.vars["namespace"] = Value::Func("<class 'jinja2.utils.Namespace'>", [](Interp& in, CallArgs& a) {
    return in.NewNamespace(MappingFromArgs(in, a, "namespace"));
  });
  scope.vars["raise_exception"] = Value::Func("<function raise_exception>", [](Interp&, CallArgs& a) -> Value {
    auto args = BindArgs("raise_exception", a, {"message"}, 1);
    Throw("TemplateError", ToStr(*args[0]));
  });
  scope.vars["strftime_now"] = Value::Func("<function strftime_now>", GStrftime);
}

}  // namespace moxie::jinja
