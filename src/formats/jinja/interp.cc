#include "formats/jinja/interp.h"

#include <algorithm>
#include <cmath>

#include "formats/jinja/builtins.h"

namespace moxie::jinja {
namespace {

// Eval/Exec frames allowed on the native stack; each is small, so this stays well under 2 MiB.
constexpr int kMaxNativeDepth = 1500;

Value Undef(const std::string& obj_repr, const Value& key) {
  if (key.is_string()) return Value::Undefined("'" + obj_repr + "' has no attribute " + PyStrRepr(key.str()));
  return Value::Undefined("'" + obj_repr + "' has no element " + Repr(key));
}

[[noreturn]] void ThrowUnsupported(const std::string& op, const Value& a, const Value& b) {
  Throw("TypeError", "unsupported operand type(s) for " + op + ": '" + TypeName(a) + "' and '" +
                         TypeName(b) + "'");
}

int64_t CheckedInt(bool overflow, int64_t v) {
  if (overflow) Throw("OverflowError", "integer overflow (Moxie templates use 64-bit integers)");
  return v;
}

// Python's floor division and modulo on integers.
int64_t FloorDiv(int64_t a, int64_t b) {
  if (a == INT64_MIN && b == -1) CheckedInt(true, 0);
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t FloorMod(int64_t a, int64_t b) {
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

Value Arith(const std::string& op, const Value& a, const Value& b) {
  bool is_float = a.kind() == Kind::kFloat || b.kind() == Kind::kFloat;
  int64_t r = 0;
  if (op == "/") {
    if (b.f() == 0) Throw("ZeroDivisionError", "division by zero");
    return Value::Float(a.f() / b.f());
  }
  if (is_float) {
    double x = a.f(), y = b.f();
    if (op == "+") return Value::Float(x + y);
    if (op == "-") return Value::Float(x - y);
    if (op == "*") return Value::Float(x * y);
    if (op == "**") return Value::Float(std::pow(x, y));
    if (y == 0) Throw("ZeroDivisionError", op == "//" ? "float floor division by zero" : "float modulo");
    if (op == "//") return Value::Float(std::floor(x / y));
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    return Value::Float(m);
  }
  int64_t x = a.i(), y = b.i();
  if (op == "+" || op == "-" || op == "*") {
    bool overflow = op == "+"   ? __builtin_add_overflow(x, y, &r)
                    : op == "-" ? __builtin_sub_overflow(x, y, &r)
                                : __builtin_mul_overflow(x, y, &r);
    return Value::Int(CheckedInt(overflow, r));
  }
  if (op == "**") {
    if (y < 0) return Value::Float(std::pow(static_cast<double>(x), static_cast<double>(y)));
    int64_t result = 1;
    for (int64_t base = x; y > 0; y >>= 1) {
      if (y & 1) CheckedInt(__builtin_mul_overflow(result, base, &result), 0);
      if (y > 1) CheckedInt(__builtin_mul_overflow(base, base, &base), 0);
    }
    return Value::Int(result);
  }
  if (y == 0) {
    Throw("ZeroDivisionError", op == "//" ? "integer division or modulo by zero" : "integer modulo by zero");
  }
  return Value::Int(op == "//" ? FloorDiv(x, y) : FloorMod(x, y));
}

}  // namespace

void ThrowUndefined(const Value& v) { Throw("UndefinedError", v.undefined_message()); }

const Value* Scope::Lookup(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return &it->second;
  }
  return nullptr;
}

struct Interp::DepthGuard {
  explicit DepthGuard(Interp* in) : in_(in) {
    if (++in_->depth_ > kMaxNativeDepth) Throw("RecursionError", "maximum recursion depth exceeded");
  }
  ~DepthGuard() { --in_->depth_; }
  Interp* in_;
};

Interp::~Interp() {
  for (const auto& weak : namespaces_) {
    if (auto ns = weak.lock()) ns->items.clear();
  }
}

Value Interp::NewNamespace(std::shared_ptr<DictData> d) {
  namespaces_.push_back(d);
  return Value::Namespace(std::move(d));
}

void Interp::Step(size_t n) {
  steps_ += n;
  if (steps_ > opts_.max_steps) {
    Throw("ResourceLimitError", "template exceeded max_steps (" + std::to_string(opts_.max_steps) + ")");
  }
}

void Interp::CheckSize(size_t bytes) const {
  if (bytes > opts_.max_output_bytes) {
    Throw("ResourceLimitError",
          "rendered output exceeds max_output_bytes (" + std::to_string(opts_.max_output_bytes) + ")");
  }
}

void Interp::Append(std::string& out, std::string_view s) const {
  CheckSize(out.size() + s.size());
  out.append(s);
}

// ------------------------------------------------------------------------------------ statements

Flow Interp::Exec(const NodeList& nodes, const ScopePtr& scope, std::string& out) {
  DepthGuard guard(this);
  for (const NodePtr& n : nodes) {
    Step();
    Flow f = ExecNode(*n, scope, out);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Flow Interp::ExecNode(const Node& n, const ScopePtr& scope, std::string& out) {
  switch (n.kind) {
    case NodeKind::kText:
      Append(out, n.text);
      return Flow::kNormal;
    case NodeKind::kOutput:
      Append(out, ToStr(Eval(*n.expr, scope)));
      return Flow::kNormal;
    case NodeKind::kIf:
      for (const auto& [cond, body] : n.branches) {
        if (!cond || Truthy(Eval(*cond, scope))) return Exec(body, scope, out);
      }
      return Flow::kNormal;
    case NodeKind::kFor:
      return ExecFor(n, scope, out);
    case NodeKind::kSet:
      ExecSet(n, scope, Eval(*n.expr, scope));
      return Flow::kNormal;
    case NodeKind::kSetBlock: {
      std::string body;
      Exec(n.body, std::make_shared<Scope>(scope), body);
      Value v = Value::Str(std::move(body));
      if (n.expr) v = EvalFilterOrTest(*n.expr, scope, &v);
      ExecSet(n, scope, v);
      return Flow::kNormal;
    }
    case NodeKind::kMacro:
      DefineMacro(n, scope);
      return Flow::kNormal;
    case NodeKind::kBreak:
      return Flow::kBreak;
    case NodeKind::kContinue:
      return Flow::kContinue;
    case NodeKind::kFilterBlock: {
      std::string body;
      Exec(n.body, std::make_shared<Scope>(scope), body);
      Value v = Value::Str(std::move(body));
      Append(out, ToStr(EvalFilterOrTest(*n.expr, scope, &v)));
      return Flow::kNormal;
    }
    case NodeKind::kWith: {
      auto inner = std::make_shared<Scope>(scope);
      for (const auto& [name, expr] : n.params) inner->vars[name] = Eval(*expr, inner);
      return Exec(n.body, inner, out);
    }
    case NodeKind::kScope:
      return Exec(n.body, scope, out);
  }
  return Flow::kNormal;
}

void Interp::BindTargets(const Node& n, const Value& item, Scope& scope) {
  if (!n.unpack) {
    scope.vars[n.targets[0]] = item;
    return;
  }
  std::vector<Value> parts = Iterate(item);
  if (parts.size() != n.targets.size()) {
    if (parts.size() < n.targets.size()) {
      Throw("ValueError", "not enough values to unpack (expected " + std::to_string(n.targets.size()) +
                              ", got " + std::to_string(parts.size()) + ")");
    }
    Throw("ValueError", "too many values to unpack (expected " + std::to_string(n.targets.size()) + ")");
  }
  for (size_t k = 0; k < parts.size(); ++k) scope.vars[n.targets[k]] = parts[k];
}

Value Interp::MakeLoop(const std::vector<Value>& items, size_t i) {
  auto d = std::make_shared<DictData>();
  int64_t len = static_cast<int64_t>(items.size());
  int64_t idx = static_cast<int64_t>(i);
  auto set = [&](const char* k, Value v) { d->items.emplace_back(Value::Str(k), std::move(v)); };
  set("index", Value::Int(idx + 1));
  set("index0", Value::Int(idx));
  set("revindex", Value::Int(len - idx));
  set("revindex0", Value::Int(len - idx - 1));
  set("first", Value::Bool(i == 0));
  set("last", Value::Bool(i + 1 == items.size()));
  set("length", Value::Int(len));
  set("depth", Value::Int(1));
  set("depth0", Value::Int(0));
  set("previtem", i > 0 ? items[i - 1] : Value::Undefined("there is no previous item"));
  set("nextitem", i + 1 < items.size() ? items[i + 1] : Value::Undefined("there is no next item"));
  set("cycle", Value::Func("<built-in method cycle of LoopContext object>", [idx](Interp&, CallArgs& a) {
        if (a.pos.empty()) Throw("TypeError", "no items for cycling given");
        return a.pos[static_cast<size_t>(idx) % a.pos.size()];
      }));
  for (const auto& [k, v] : d->items) d->depth = std::max(d->depth, v.depth() + 1);
  return Value::Dict(std::move(d));
}

Flow Interp::ExecFor(const Node& n, const ScopePtr& scope, std::string& out) {
  std::vector<Value> items = Iterate(Eval(*n.expr, scope));
  if (n.cond) {  // `for x in xs if cond`: filtered before loop.* is computed, as in jinja2
    std::vector<Value> kept;
    for (Value& item : items) {
      Step();
      auto s = std::make_shared<Scope>(scope);
      BindTargets(n, item, *s);
      if (Truthy(Eval(*n.cond, s))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return Exec(n.else_body, scope, out);
  for (size_t i = 0; i < items.size(); ++i) {
    Step();
    auto s = std::make_shared<Scope>(scope);
    BindTargets(n, items[i], *s);
    s->vars["loop"] = MakeLoop(items, i);
    if (Exec(n.body, s, out) == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

void Interp::ExecSet(const Node& n, const ScopePtr& scope, const Value& value) {
  if (!n.attr.empty()) {
    const Value* target = scope->Lookup(n.targets[0]);
    if (!target || target->kind() != Kind::kNamespace) {
      Throw("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
    }
    target->ns().Set(Value::Str(n.attr), value);
    return;
  }
  BindTargets(n, value, *scope);
}

void Interp::DefineMacro(const Node& n, const ScopePtr& scope) {
  // The closure is weak: the macro is stored in the scope it captures, and a strong reference
  // would make every render leak that cycle.
  std::weak_ptr<Scope> closure = scope;
  const Node* node = &n;
  scope->vars[n.name] = Value::Func("<Macro '" + n.name + "'>", [node, closure](Interp& in, CallArgs& a) {
    return in.CallMacro(*node, closure, a);
  });
}

Value Interp::CallMacro(const Node& n, const std::weak_ptr<Scope>& closure, CallArgs& args) {
  if (macro_depth_ >= opts_.max_recursion) {
    Throw("RecursionError", "maximum macro recursion depth exceeded (max_recursion=" +
                                std::to_string(opts_.max_recursion) + ")");
  }
  ScopePtr parent = closure.lock();
  auto s = std::make_shared<Scope>(parent ? parent : root_);
  if (args.pos.size() > n.params.size()) {
    Throw("TypeError", "macro '" + n.name + "' takes not more than " + std::to_string(n.params.size()) +
                           " argument(s)");
  }
  std::vector<bool> bound(n.params.size(), false);
  for (size_t k = 0; k < args.pos.size(); ++k) {
    s->vars[n.params[k].first] = args.pos[k];
    bound[k] = true;
  }
  for (auto& [key, v] : args.kw) {
    size_t k = 0;
    while (k < n.params.size() && n.params[k].first != key) ++k;
    if (k == n.params.size()) Throw("TypeError", "macro '" + n.name + "' takes no keyword argument '" + key + "'");
    if (bound[k]) Throw("TypeError", "macro '" + n.name + "' got multiple values for argument '" + key + "'");
    s->vars[key] = v;
    bound[k] = true;
  }
  for (size_t k = 0; k < n.params.size(); ++k) {
    if (bound[k]) continue;
    const auto& [name, def] = n.params[k];
    s->vars[name] = def ? Eval(*def, s) : Value::Undefined("parameter '" + name + "' was not provided");
  }
  ++macro_depth_;
  std::string out;
  struct Restore {
    int& d;
    ~Restore() { --d; }
  } restore{macro_depth_};
  Exec(n.body, s, out);
  return Value::Str(std::move(out));
}

// ------------------------------------------------------------------------------------ expressions

Value Interp::Eval(const Expr& e, const ScopePtr& scope) {
  DepthGuard guard(this);
  Step();
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.literal;
    case ExprKind::kName: {
      const Value* v = scope->Lookup(e.name);
      return v ? *v : Value::Undefined("'" + e.name + "' is undefined");
    }
    case ExprKind::kList:
    case ExprKind::kTuple:
    case ExprKind::kDict:
      return EvalCollection(e, scope);
    case ExprKind::kAttr:
      return GetAttr(Eval(*e.args[0], scope), e.name);
    case ExprKind::kItem: {
      Value obj = Eval(*e.args[0], scope);
      return GetItem(obj, Eval(*e.args[1], scope));
    }
    case ExprKind::kSlice:
      return EvalSlice(e, scope);
    case ExprKind::kCall:
      return EvalCall(e, scope);
    case ExprKind::kFilter:
    case ExprKind::kTest:
      return EvalFilterOrTest(e, scope, nullptr);
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      Value v = Eval(*e.args[0], scope);
      if (v.is_undefined()) ThrowUndefined(v);
      if (!v.is_number()) {
        Throw("TypeError", std::string("bad operand type for unary ") + (e.kind == ExprKind::kNeg ? "-" : "+") +
                               ": '" + TypeName(v) + "'");
      }
      if (e.kind == ExprKind::kPos) return v.kind() == Kind::kBool ? Value::Int(v.i()) : v;
      if (v.kind() == Kind::kFloat) return Value::Float(-v.f());
      return Value::Int(CheckedInt(v.i() == INT64_MIN, -v.i()));
    }
    case ExprKind::kNot:
      return Value::Bool(!Truthy(Eval(*e.args[0], scope)));
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      Value left = Eval(*e.args[0], scope);
      if (Truthy(left) == (e.kind == ExprKind::kOr)) return left;
      return Eval(*e.args[1], scope);
    }
    case ExprKind::kBinary: {
      Value left = Eval(*e.args[0], scope);
      return BinaryOp(e.name, left, Eval(*e.args[1], scope));
    }
    case ExprKind::kCompare: {
      Value left = Eval(*e.args[0], scope);
      for (size_t k = 0; k < e.ops.size(); ++k) {
        Value right = Eval(*e.args[k + 1], scope);
        if (!Compare(e.ops[k], left, right)) return Value::Bool(false);
        left = std::move(right);
      }
      return Value::Bool(true);
    }
    case ExprKind::kCond:
      if (Truthy(Eval(*e.args[0], scope))) return Eval(*e.args[1], scope);
      if (e.args[2]) return Eval(*e.args[2], scope);
      return Value::Undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
  }
  return Value();
}

Value Interp::EvalCollection(const Expr& e, const ScopePtr& scope) {
  if (e.kind != ExprKind::kDict) {
    std::vector<Value> items;
    items.reserve(e.args.size());
    for (const ExprPtr& a : e.args) items.push_back(Eval(*a, scope));
    return Value::List(std::move(items), e.kind == ExprKind::kTuple);
  }
  auto d = std::make_shared<DictData>();
  for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
    Value key = Eval(*e.args[k], scope);
    if (key.is_list() || key.is_dict() || key.kind() == Kind::kNamespace) {
      Throw("TypeError", "unhashable type: '" + TypeName(key) + "'");
    }
    d->Set(std::move(key), Eval(*e.args[k + 1], scope));
  }
  return Value::Dict(std::move(d));
}

void Interp::EvalArgs(const Expr& e, size_t first, const ScopePtr& scope, CallArgs& out) {
  for (size_t k = first; k < e.args.size(); ++k) out.pos.push_back(Eval(*e.args[k], scope));
  for (const auto& [name, expr] : e.kwargs) out.kw.emplace_back(name, Eval(*expr, scope));
}

Value Interp::EvalCall(const Expr& e, const ScopePtr& scope) {
  Value callee = Eval(*e.args[0], scope);
  CallArgs args;
  EvalArgs(e, 1, scope, args);
  return Call(callee, args);
}

// A filter chain in a {% filter %} / {% set x | f %} block has a null innermost input, which
// `block_input` (the rendered body) replaces.
Value Interp::EvalFilterOrTest(const Expr& e, const ScopePtr& scope, const Value* block_input) {
  Value input = e.args[0] ? (block_input && e.args[0]->kind == ExprKind::kFilter
                                 ? EvalFilterOrTest(*e.args[0], scope, block_input)
                                 : Eval(*e.args[0], scope))
                          : *block_input;
  CallArgs args;
  EvalArgs(e, 1, scope, args);
  if (e.kind == ExprKind::kFilter) {
    if (!e.known) Throw("TemplateRuntimeError", "No filter named '" + e.name + "' found.");
    return ApplyFilter(e.name, input, args);
  }
  if (!e.known) Throw("TemplateRuntimeError", "No test named '" + e.name + "' found.");
  bool r = ApplyTest(e.name, input, args);
  return Value::Bool(e.negated ? !r : r);
}

Value Interp::EvalSlice(const Expr& e, const ScopePtr& scope) {
  Value obj = Eval(*e.args[0], scope);
  std::optional<int64_t> parts[3];
  bool bad_index = false;
  for (int k = 0; k < 3; ++k) {
    if (!e.args[k + 1]) continue;
    Value v = Eval(*e.args[k + 1], scope);
    if (v.kind() == Kind::kInt || v.kind() == Kind::kBool) {
      parts[k] = v.i();
    } else if (!v.is_none()) {
      bad_index = true;
    }
  }
  if (obj.is_undefined()) ThrowUndefined(obj);
  if (bad_index || !(obj.is_list() || obj.is_string())) {
    std::string msg = "'";  // built stepwise: g++ 12 -O3 false positive (-Wrestrict) on "'" + str
    msg += ObjectTypeRepr(obj);
    msg += "' has no element slice";
    return Value::Undefined(msg);
  }
  return SliceValue(obj, parts[0], parts[1], parts[2]);
}

// ------------------------------------------------------------------------------------ operations

Value Interp::Call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) ThrowUndefined(callee);
  if (callee.kind() != Kind::kCallable) Throw("TypeError", "'" + TypeName(callee) + "' object is not callable");
  return callee.callable().fn(*this, args);
}

Value Interp::GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) ThrowUndefined(obj);
  Value key = Value::Str(name);
  if (!name.empty() && name[0] == '_') return Undef(ObjectTypeRepr(obj), key);  // sandbox
  Value method = GetMethod(obj, name);
  if (!method.is_undefined()) return method;
  if (obj.is_dict() || obj.kind() == Kind::kNamespace) {
    if (const Value* v = obj.dict().Find(name)) return *v;
  }
  return Undef(ObjectTypeRepr(obj), key);
}

Value Interp::GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) ThrowUndefined(obj);
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().Find(key)) return *v;
  } else if ((obj.is_list() || obj.is_string()) && (key.kind() == Kind::kInt || key.kind() == Kind::kBool)) {
    if (obj.is_list()) {
      const auto& items = obj.list().items;
      int64_t n = static_cast<int64_t>(items.size());
      int64_t i = key.i() < 0 ? key.i() + n : key.i();
      if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
    } else {
      std::u32string cps = DecodeUtf8(obj.str());
      int64_t n = static_cast<int64_t>(cps.size());
      int64_t i = key.i() < 0 ? key.i() + n : key.i();
      if (i >= 0 && i < n) return Value::Str(EncodeUtf8(cps.substr(static_cast<size_t>(i), 1)));
    }
  }
  // jinja2 falls back to attribute lookup for string keys: d['items'] is the method when absent.
  if (key.is_string()) return GetAttr(obj, key.str());
  return Undef(ObjectTypeRepr(obj), key);
}

std::vector<Value> Interp::Iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return {};
    case Kind::kList:
      return v.list().items;
    case Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& [k, val] : v.dict().items) keys.push_back(k);
      return keys;
    }
    case Kind::kString: {
      std::vector<Value> chars;
      for (char32_t c : DecodeUtf8(v.str())) chars.push_back(Value::Str(EncodeUtf8(std::u32string(1, c))));
      return chars;
    }
    default:
      Throw("TypeError", "'" + TypeName(v) + "' object is not iterable");
  }
}

Value Interp::BinaryOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = ToStr(a);
    std::string t = ToStr(b);
    CheckSize(s.size() + t.size());
    return Value::Str(s + t);
  }
  if (a.is_undefined()) ThrowUndefined(a);
  if (b.is_undefined()) ThrowUndefined(b);
  if (a.is_number() && b.is_number()) return Arith(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      CheckSize(a.str().size() + b.str().size());
      return Value::Str(a.str() + b.str());
    }
    if (a.is_list() && b.is_list() && a.list().is_tuple == b.list().is_tuple) {
      std::vector<Value> items = a.list().items;
      Step(items.size() + b.list().items.size());
      items.insert(items.end(), b.list().items.begin(), b.list().items.end());
      return Value::List(std::move(items), a.list().is_tuple);
    }
    if (a.is_string() || a.is_list()) {
      Throw("TypeError", "can only concatenate " + TypeName(a) + " (not \"" + TypeName(b) + "\") to " + TypeName(a));
    }
    ThrowUnsupported(op, a, b);
  }
  if (op == "*") {
    bool a_seq = a.is_string() || a.is_list();
    bool b_seq = b.is_string() || b.is_list();
    if (a_seq != b_seq) {
      const Value& seq = a_seq ? a : b;
      const Value& count = a_seq ? b : a;
      if (count.kind() != Kind::kInt && count.kind() != Kind::kBool) {
        Throw("TypeError", "can't multiply sequence by non-int of type '" + TypeName(count) + "'");
      }
      return Repeat(*this, seq, count.i());
    }
  }
  if (op == "%" && a.is_string()) return PercentFormat(a.str(), b);
  ThrowUnsupported(op, a, b);
}

bool Interp::Compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return Equals(a, b);
  if (op == "!=") return !Equals(a, b);
  if (op == "in") return Contains(b, a);
  if (op == "notin") return !Contains(b, a);
  if (a.is_undefined()) ThrowUndefined(a);
  if (b.is_undefined()) ThrowUndefined(b);
  int c = 0;
  if (!PyCompare(a, b, &c)) {
    Throw("TypeError", "'" + op + "' not supported between instances of '" + TypeName(a) + "' and '" +
                           TypeName(b) + "'");
  }
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

bool Interp::Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::kUndefined:
      return false;  // Undefined iterates as empty
    case Kind::kString:
      if (!item.is_string()) {
        Throw("TypeError", "'in <string>' requires string as left operand, not " + TypeName(item));
      }
      return container.str().find(item.str()) != std::string::npos;
    case Kind::kList:
      Step(container.list().items.size());
      for (const Value& v : container.list().items) {
        if (Equals(v, item)) return true;
      }
      return false;
    case Kind::kDict:
      return container.dict().Find(item) != nullptr;
    default:
      Throw("TypeError", "argument of type '" + TypeName(container) + "' is not iterable");
  }
}

}  // namespace moxie::jinja
