// Syntax tree of a parsed template (internal to src/formats/jinja/).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "formats/jinja/value.h"

namespace moxie::jinja {

enum class ExprKind {
  kLiteral,  // literal
  kName,     // name
  kList,     // args = items
  kTuple,    // args = items
  kDict,     // args = key0, value0, key1, value1, ...
  kAttr,     // args[0].name
  kItem,     // args[0][args[1]]
  kSlice,    // args[0][args[1]:args[2]:args[3]], missing parts are null
  kCall,     // args[0](args[1..], kwargs)
  kFilter,   // args[0] | name(args[1..], kwargs); args[0] null in {% filter %} blocks
  kTest,     // args[0] is [not] name(args[1..], kwargs)
  kNeg,      // -args[0]
  kPos,      // +args[0]
  kNot,      // not args[0]
  kAnd,      // args[0] and args[1]
  kOr,       // args[0] or args[1]
  kBinary,   // args[0] <name> args[1], name one of + - * / // % ** ~
  kCompare,  // args[0] ops[0] args[1] ops[1] args[2] ... (Python chained comparison)
  kCond,     // args[1] if args[0] else args[2] (args[2] may be null)
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  int line = 0;
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::string> ops;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;  // "is not"
  bool known = true;     // false: unknown filter/test inside a conditional, fails when reached
};

enum class NodeKind {
  kText,        // text
  kOutput,      // {{ expr }}
  kIf,          // branches (a null condition is the else branch)
  kFor,         // for targets in expr [if cond]: body [else else_body]
  kSet,         // set targets = expr, or set targets[0].attr = expr
  kSetBlock,    // set targets[0] [| filter] %}body{% endset
  kMacro,       // macro name(params): body
  kBreak,
  kContinue,
  kFilterBlock,  // filter expr (a kFilter chain whose innermost input is null): body
  kWith,         // with params: body
  kScope,        // body rendered as is ({% generation %})
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

struct Node {
  NodeKind kind = NodeKind::kText;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  std::vector<std::pair<ExprPtr, NodeList>> branches;
  std::vector<std::string> targets;
  bool unpack = false;  // targets form a tuple ("for k, v in ...")
  std::string attr;     // namespace attribute assignment
  NodeList body;
  NodeList else_body;
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro params (default may be null), with
};

struct ParsedTemplate {
  NodeList nodes;
};

// Parses template source (already newline-normalized by the parser itself). Errors read
// "line N: <message>".
Result<NodeList> ParseTemplate(std::string_view source);

bool IsKnownFilter(std::string_view name);
bool IsKnownTest(std::string_view name);

}  // namespace moxie::jinja
