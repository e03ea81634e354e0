// Tree-walking evaluator of parsed templates (internal to src/formats/jinja/).
//
// One Interp renders one template once; it is not shared between threads. All limits of
// RenderOptions are enforced here: steps, macro recursion, native recursion, output and string size.
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "formats/jinja/ast.h"
#include "formats/jinja/jinja.h"
#include "formats/jinja/value.h"

namespace moxie::jinja {

// Variables of one frame. Loop iterations, macro calls and `with` blocks get a child scope;
// `if` does not (as in jinja2, where `set` inside a loop body does not outlive the iteration).
struct Scope {
  explicit Scope(std::shared_ptr<Scope> p) : parent(std::move(p)) {}
  std::shared_ptr<Scope> parent;
  std::unordered_map<std::string, Value> vars;
  const Value* Lookup(const std::string& name) const;
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { kNormal, kBreak, kContinue };

class Interp {
 public:
  Interp(const RenderOptions& opts, const std::tm& now) : opts_(opts), now_(now) {}
  ~Interp();
  Interp(const Interp&) = delete;
  Interp& operator=(const Interp&) = delete;

  Flow Exec(const NodeList& nodes, const ScopePtr& scope, std::string& out);
  Value Eval(const Expr& e, const ScopePtr& scope);

  // Python/jinja2 operations, also used by the builtins.
  Value Call(const Value& callee, CallArgs& args);
  Value GetAttr(const Value& obj, const std::string& name);
  Value GetItem(const Value& obj, const Value& key);
  std::vector<Value> Iterate(const Value& v);  // list(v); TypeError for non-iterables
  Value BinaryOp(const std::string& op, const Value& a, const Value& b);
  bool Compare(const std::string& op, const Value& a, const Value& b);
  bool Contains(const Value& container, const Value& item);
  Value ApplyFilter(const std::string& name, const Value& input, CallArgs& args);
  bool ApplyTest(const std::string& name, const Value& input, CallArgs& args);

  void Step(size_t n = 1);             // counts work against max_steps
  void CheckSize(size_t bytes) const;  // a string about to be built must fit max_output_bytes
  void Append(std::string& out, std::string_view s) const;
  const std::tm& now() const { return now_; }
  void set_root(const ScopePtr& root) { root_ = root; }
  // Namespaces are the only mutable values, so the only way to build a reference cycle
  // (`{% set ns.me = ns %}`); the ones still alive are emptied when the render ends.
  Value NewNamespace(std::shared_ptr<DictData> d);

 private:
  struct DepthGuard;

  Value EvalCall(const Expr& e, const ScopePtr& scope);
  Value EvalFilterOrTest(const Expr& e, const ScopePtr& scope, const Value* block_input);
  Value EvalSlice(const Expr& e, const ScopePtr& scope);
  Value EvalCollection(const Expr& e, const ScopePtr& scope);
  void EvalArgs(const Expr& e, size_t first, const ScopePtr& scope, CallArgs& out);
  Flow ExecNode(const Node& n, const ScopePtr& scope, std::string& out);
  Flow ExecFor(const Node& n, const ScopePtr& scope, std::string& out);
  void ExecSet(const Node& n, const ScopePtr& scope, const Value& value);
  void DefineMacro(const Node& n, const ScopePtr& scope);
  Value CallMacro(const Node& n, const std::weak_ptr<Scope>& closure, CallArgs& args);
  void BindTargets(const Node& n, const Value& item, Scope& scope);
  Value MakeLoop(const std::vector<Value>& items, size_t i);

  const RenderOptions& opts_;
  std::tm now_;
  ScopePtr root_;
  std::vector<std::weak_ptr<DictData>> namespaces_;
  size_t steps_ = 0;
  int depth_ = 0;        // native recursion (Eval/Exec frames)
  int macro_depth_ = 0;  // template-level recursion
};

// Raises jinja2's UndefinedError for using `v` (an Undefined) in an operation that needs a value.
[[noreturn]] void ThrowUndefined(const Value& v);

}  // namespace moxie::jinja
