// Recursive-descent parser following jinja2's parser.py (same precedence and quirks: filters bind
// tighter than arithmetic, `**` is left-associative, a test takes one bare argument).
#include <algorithm>
#include <initializer_list>

#include "formats/jinja/ast.h"
#include "formats/jinja/lexer.h"

namespace moxie::jinja {
namespace {

// Nesting limits keep the recursive parser and evaluator far from the native stack's end.
constexpr int kMaxExprDepth = 150;
constexpr int kMaxBlockDepth = 150;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  NodeList ParseRoot() {
    NodeList body = ParseBody({}, "");
    if (Cur().type != Tok::kEof) SyntaxError(Cur().line, "unexpected " + DescribeToken(Cur()));
    return body;
  }

 private:
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Peek(size_t k) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  void Next() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool IsOp(std::string_view op) const { return Cur().type == Tok::kOp && Cur().value == op; }
  bool IsName(std::string_view n) const { return Cur().type == Tok::kName && Cur().value == n; }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view n) {
    if (!IsName(n)) return false;
    Next();
    return true;
  }
  void ExpectOp(std::string_view op) {
    if (!SkipOp(op)) {
      SyntaxError(Cur().line, "expected token '" + std::string(op) + "', got " + DescribeToken(Cur()));
    }
  }
  std::string ExpectName() {
    if (Cur().type != Tok::kName) SyntaxError(Cur().line, "expected token 'name', got " + DescribeToken(Cur()));
    std::string n = Cur().value;
    Next();
    return n;
  }
  void ExpectBlockEnd() {
    if (Cur().type != Tok::kBlockEnd) {
      SyntaxError(Cur().line, "expected token 'end of statement block', got " + DescribeToken(Cur()));
    }
    Next();
  }
  // Consumes "{% name %}" (the end tag ParseBody stopped at).
  void ExpectEndTag(std::string_view name) {
    Next();  // block begin
    if (!SkipName(name)) SyntaxError(Cur().line, "expected '" + std::string(name) + "'");
    ExpectBlockEnd();
  }

  static ExprPtr MakeExpr(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  static NodePtr MakeNode(NodeKind kind, int line) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = line;
    return n;
  }

  // ---------------------------------------------------------------- statements

  // Parses until one of `end_tags` starts a block (left unconsumed) or the template ends.
  NodeList ParseBody(std::initializer_list<std::string_view> end_tags, std::string_view block) {
    if (++block_depth_ > kMaxBlockDepth) SyntaxError(Cur().line, "blocks nested too deeply");
    NodeList body;
    while (true) {
      const Token& t = Cur();
      if (t.type == Tok::kEof) {
        if (end_tags.size() != 0) SyntaxError(t.line, UnclosedMessage("Unexpected end of template.", end_tags, block));
        break;
      }
      if (t.type == Tok::kText) {
        auto n = MakeNode(NodeKind::kText, t.line);
        n->text = t.value;
        body.push_back(std::move(n));
        Next();
      } else if (t.type == Tok::kVarBegin) {
        auto n = MakeNode(NodeKind::kOutput, t.line);
        Next();
        n->expr = ParseTuple(true, false);
        if (Cur().type != Tok::kVarEnd) {
          SyntaxError(Cur().line, "expected token 'end of print statement', got " + DescribeToken(Cur()));
        }
        Next();
        body.push_back(std::move(n));
      } else if (t.type == Tok::kBlockBegin) {
        const Token& tag = Peek(1);
        if (tag.type == Tok::kName &&
            std::find(end_tags.begin(), end_tags.end(), tag.value) != end_tags.end()) {
          break;
        }
        body.push_back(ParseStatement(end_tags, block));
      } else {
        SyntaxError(t.line, "unexpected " + DescribeToken(t));
      }
    }
    --block_depth_;
    return body;
  }

  static std::string UnclosedMessage(const std::string& head, std::initializer_list<std::string_view> end_tags,
                                     std::string_view block) {
    std::string msg = head;
    if (end_tags.size() == 0) return msg;
    msg += " Jinja was looking for the following tags: ";
    size_t k = 0;
    for (std::string_view tag : end_tags) {
      msg += (k == 0 ? "'" : (k + 1 == end_tags.size() ? " or '" : ", '")) + std::string(tag) + "'";
      ++k;
    }
    return msg + ". The innermost block that needs to be closed is '" + std::string(block) + "'.";
  }

  NodePtr ParseStatement(std::initializer_list<std::string_view> end_tags, std::string_view block) {
    Next();  // block begin
    const Token& tag = Cur();
    if (tag.type != Tok::kName) SyntaxError(tag.line, "tag name expected");
    std::string name = tag.value;
    int line = tag.line;
    Next();
    if (name == "if") return ParseIf(line);
    if (name == "for") return ParseFor(line);
    if (name == "set") return ParseSet(line);
    if (name == "macro") return ParseMacro(line);
    if (name == "filter") return ParseFilterBlock(line);
    if (name == "with") return ParseWith(line);
    if (name == "generation") {
      auto n = MakeNode(NodeKind::kScope, line);
      ExpectBlockEnd();
      n->body = ParseBody({"endgeneration"}, "generation");
      ExpectEndTag("endgeneration");
      return n;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) SyntaxError(line, "'" + name + "' outside of a loop");
      ExpectBlockEnd();
      return MakeNode(name == "break" ? NodeKind::kBreak : NodeKind::kContinue, line);
    }
    if (name == "call" || name == "include" || name == "import" || name == "from" || name == "extends" ||
        name == "block" || name == "autoescape") {
      SyntaxError(line, "the '" + name + "' tag is not supported by Moxie's chat-template engine");
    }
    SyntaxError(line, UnclosedMessage("Encountered unknown tag '" + name + "'.", end_tags, block));
  }

  NodePtr ParseIf(int line) {
    auto n = MakeNode(NodeKind::kIf, line);
    ExprPtr cond = ParseTuple(false, false);
    ExpectBlockEnd();
    ++if_depth_;
    while (true) {
      NodeList body = ParseBody({"elif", "else", "endif"}, "if");
      n->branches.emplace_back(std::move(cond), std::move(body));
      Next();  // block begin
      std::string tag = ExpectName();
      if (tag == "elif") {
        cond = ParseTuple(false, false);
        ExpectBlockEnd();
        continue;
      }
      ExpectBlockEnd();
      if (tag == "else") {
        NodeList else_body = ParseBody({"endif"}, "if");
        n->branches.emplace_back(nullptr, std::move(else_body));
        ExpectEndTag("endif");
      }
      break;
    }
    --if_depth_;
    return n;
  }

  // Assignment targets: "x", "a, b", "(a, b)".
  void ParseTargets(Node& n) {
    bool paren = SkipOp("(");
    while (true) {
      n.targets.push_back(ExpectName());
      if (!SkipOp(",")) break;
      n.unpack = true;
      if (paren ? IsOp(")") : (IsName("in") || IsOp("="))) break;
    }
    if (paren) {
      ExpectOp(")");
      n.unpack = true;
    }
  }

  NodePtr ParseFor(int line) {
    auto n = MakeNode(NodeKind::kFor, line);
    ParseTargets(*n);
    if (!SkipName("in")) SyntaxError(Cur().line, "expected 'in', got " + DescribeToken(Cur()));
    n->expr = ParseTuple(false, false);
    if (SkipName("if")) n->cond = ParseExpression(true);
    if (IsName("recursive")) SyntaxError(Cur().line, "recursive for loops are not supported");
    ExpectBlockEnd();
    ++loop_depth_;
    n->body = ParseBody({"endfor", "else"}, "for");
    --loop_depth_;
    Next();  // block begin
    if (ExpectName() == "else") {
      ExpectBlockEnd();
      n->else_body = ParseBody({"endfor"}, "for");
      ExpectEndTag("endfor");
    } else {
      ExpectBlockEnd();
    }
    return n;
  }

  NodePtr ParseSet(int line) {
    auto n = MakeNode(NodeKind::kSet, line);
    std::string first = ExpectName();
    if (SkipOp(".")) {
      n->targets.push_back(first);
      n->attr = ExpectName();
    } else {
      n->targets.push_back(first);
      while (SkipOp(",")) {
        n->unpack = true;
        if (IsOp("=")) break;
        n->targets.push_back(ExpectName());
      }
    }
    if (SkipOp("=")) {
      n->expr = ParseTuple(true, false);
      ExpectBlockEnd();
      return n;
    }
    if (n->unpack || !n->attr.empty()) SyntaxError(line, "expected '=' in set with several targets");
    n->kind = NodeKind::kSetBlock;
    if (IsOp("|")) n->expr = ParseFilter(nullptr, false);
    ExpectBlockEnd();
    n->body = ParseBody({"endset"}, "set");
    ExpectEndTag("endset");
    return n;
  }

  NodePtr ParseMacro(int line) {
    auto n = MakeNode(NodeKind::kMacro, line);
    n->name = ExpectName();
    ExpectOp("(");
    while (!IsOp(")")) {
      if (!n->params.empty()) ExpectOp(",");
      if (IsOp(")")) break;
      std::string param = ExpectName();
      ExprPtr def;
      if (SkipOp("=")) def = ParseExpression(true);
      n->params.emplace_back(std::move(param), std::move(def));
    }
    ExpectOp(")");
    ExpectBlockEnd();
    int saved_loop = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot leave a macro
    n->body = ParseBody({"endmacro"}, "macro");
    loop_depth_ = saved_loop;
    ExpectEndTag("endmacro");
    return n;
  }

  NodePtr ParseFilterBlock(int line) {
    auto n = MakeNode(NodeKind::kFilterBlock, line);
    n->expr = ParseFilter(nullptr, true);
    ExpectBlockEnd();
    n->body = ParseBody({"endfilter"}, "filter");
    ExpectEndTag("endfilter");
    return n;
  }

  NodePtr ParseWith(int line) {
    auto n = MakeNode(NodeKind::kWith, line);
    while (Cur().type != Tok::kBlockEnd) {
      if (!n->params.empty()) ExpectOp(",");
      std::string name = ExpectName();
      ExpectOp("=");
      n->params.emplace_back(std::move(name), ParseExpression(true));
    }
    ExpectBlockEnd();
    n->body = ParseBody({"endwith"}, "with");
    ExpectEndTag("endwith");
    return n;
  }

  // ---------------------------------------------------------------- expressions

  struct DepthGuard {
    explicit DepthGuard(Parser* p) : p_(p) {
      if (++p_->expr_depth_ > kMaxExprDepth) SyntaxError(p_->Cur().line, "expression nested too deeply");
    }
    ~DepthGuard() { --p_->expr_depth_; }
    Parser* p_;
  };

  bool IsTupleEnd() const {
    return Cur().type == Tok::kVarEnd || Cur().type == Tok::kBlockEnd || IsOp(")") || Cur().type == Tok::kEof;
  }

  // Comma-separated expressions; a single one without a comma is returned as is.
  ExprPtr ParseTuple(bool with_condexpr, bool explicit_parens) {
    int line = Cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) {
        if (!SkipOp(",")) break;
        is_tuple = true;
      }
      if (IsTupleEnd()) break;
      items.push_back(with_condexpr ? ParseExpression(true) : ParseOr());
    }
    if (!is_tuple) {
      if (items.size() == 1) return std::move(items[0]);
      if (!explicit_parens) SyntaxError(line, "Expected an expression, got " + DescribeToken(Cur()));
    }
    auto t = MakeExpr(ExprKind::kTuple, line);
    t->args = std::move(items);
    return t;
  }

  ExprPtr ParseExpression(bool with_condexpr) {
    DepthGuard guard(this);
    if (!with_condexpr) return ParseOr();
    ExprPtr expr = ParseOr();
    while (IsName("if")) {
      int line = Cur().line;
      Next();
      auto c = MakeExpr(ExprKind::kCond, line);
      ExprPtr cond = ParseOr();
      ExprPtr other = SkipName("else") ? ParseExpression(true) : nullptr;
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(expr));
      c->args.push_back(std::move(other));
      expr = std::move(c);
    }
    return expr;
  }

  ExprPtr Binary(ExprKind kind, std::string op, ExprPtr a, ExprPtr b, int line) {
    auto e = MakeExpr(kind, line);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  ExprPtr ParseOr() {
    ExprPtr left = ParseAnd();
    while (IsName("or")) {
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::kOr, "or", std::move(left), ParseAnd(), line);
    }
    return left;
  }

  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (IsName("and")) {
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::kAnd, "and", std::move(left), ParseNot(), line);
    }
    return left;
  }

  ExprPtr ParseNot() {
    if (IsName("not")) {
      DepthGuard guard(this);
      auto e = MakeExpr(ExprKind::kNot, Cur().line);
      Next();
      e->args.push_back(ParseNot());
      return e;
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    int line = Cur().line;
    ExprPtr first = ParseMath1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      std::string op;
      if (Cur().type == Tok::kOp &&
          (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp(">") || IsOp("<=") || IsOp(">="))) {
        op = Cur().value;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && Peek(1).type == Tok::kName && Peek(1).value == "in") {
        op = "notin";
        Next();
        Next();
      } else {
        break;
      }
      ops.push_back(op);
      operands.push_back(ParseMath1());
    }
    if (ops.empty()) return first;
    auto e = MakeExpr(ExprKind::kCompare, line);
    e->args.push_back(std::move(first));
    for (auto& o : operands) e->args.push_back(std::move(o));
    e->ops = std::move(ops);
    return e;
  }

  ExprPtr ParseMath1() {
    ExprPtr left = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      std::string op = Cur().value;
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::kBinary, op, std::move(left), ParseConcat(), line);
    }
    return left;
  }

  ExprPtr ParseConcat() {
    ExprPtr left = ParseMath2();
    while (IsOp("~")) {
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::kBinary, "~", std::move(left), ParseMath2(), line);
    }
    return left;
  }

  ExprPtr ParseMath2() {
    ExprPtr left = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      std::string op = Cur().value;
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::kBinary, op, std::move(left), ParsePow(), line);
    }
    return left;
  }

  ExprPtr ParsePow() {
    ExprPtr left = ParseUnary(true);
    while (IsOp("**")) {
      int line = Cur().line;
      Next();
      left = Binary(ExprKind::kBinary, "**", std::move(left), ParseUnary(true), line);
    }
    return left;
  }

  ExprPtr ParseUnary(bool with_filter) {
    DepthGuard guard(this);
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      node = MakeExpr(IsOp("-") ? ExprKind::kNeg : ExprKind::kPos, Cur().line);
      Next();
      node->args.push_back(ParseUnary(false));
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  ExprPtr ParsePrimary() {
    const Token& t = Cur();
    int line = t.line;
    if (t.type == Tok::kName) {
      auto e = MakeExpr(ExprKind::kLiteral, line);
      const std::string& v = t.value;
      if (v == "true" || v == "True") {
        e->literal = Value::Bool(true);
      } else if (v == "false" || v == "False") {
        e->literal = Value::Bool(false);
      } else if (v == "none" || v == "None") {
        e->literal = Value::None();
      } else {
        e->kind = ExprKind::kName;
        e->name = v;
      }
      Next();
      return e;
    }
    if (t.type == Tok::kString) {
      std::string s;
      while (Cur().type == Tok::kString) {  // adjacent literals concatenate, as in Python
        s += Cur().value;
        Next();
      }
      auto e = MakeExpr(ExprKind::kLiteral, line);
      e->literal = Value::Str(std::move(s));
      return e;
    }
    if (t.type == Tok::kInt || t.type == Tok::kFloat) {
      auto e = MakeExpr(ExprKind::kLiteral, line);
      e->literal = t.type == Tok::kInt ? Value::Int(t.int_value) : Value::Float(t.float_value);
      Next();
      return e;
    }
    if (SkipOp("(")) {
      ExprPtr e = ParseTuple(true, true);
      ExpectOp(")");
      return e;
    }
    if (IsOp("[")) return ParseListLiteral();
    if (IsOp("{")) return ParseDictLiteral();
    SyntaxError(line, "unexpected " + DescribeToken(t));
  }

  ExprPtr ParseListLiteral() {
    auto e = MakeExpr(ExprKind::kList, Cur().line);
    ExpectOp("[");
    while (!IsOp("]")) {
      if (!e->args.empty()) ExpectOp(",");
      if (IsOp("]")) break;
      e->args.push_back(ParseExpression(true));
    }
    ExpectOp("]");
    return e;
  }

  ExprPtr ParseDictLiteral() {
    auto e = MakeExpr(ExprKind::kDict, Cur().line);
    ExpectOp("{");
    while (!IsOp("}")) {
      if (!e->args.empty()) ExpectOp(",");
      if (IsOp("}")) break;
      e->args.push_back(ParseExpression(true));
      ExpectOp(":");
      e->args.push_back(ParseExpression(true));
    }
    ExpectOp("}");
    return e;
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    while (true) {
      int line = Cur().line;
      if (SkipOp(".")) {
        if (Cur().type == Tok::kInt) {
          auto e = MakeExpr(ExprKind::kItem, line);
          e->args.push_back(std::move(node));
          auto idx = MakeExpr(ExprKind::kLiteral, line);
          idx->literal = Value::Int(Cur().int_value);
          e->args.push_back(std::move(idx));
          Next();
          node = std::move(e);
        } else {
          auto e = MakeExpr(ExprKind::kAttr, line);
          e->name = ExpectName();
          e->args.push_back(std::move(node));
          node = std::move(e);
        }
      } else if (SkipOp("[")) {
        node = ParseSubscript(std::move(node), line);
      } else if (IsOp("(")) {
        auto e = MakeExpr(ExprKind::kCall, line);
        e->args.push_back(std::move(node));
        ParseCallArgs(*e);
        node = std::move(e);
      } else {
        return node;
      }
    }
  }

  // After "[": an index, a slice, or a tuple of indices.
  ExprPtr ParseSubscript(ExprPtr obj, int line) {
    std::vector<ExprPtr> keys;
    while (!IsOp("]")) {
      if (!keys.empty()) {
        ExpectOp(",");
        if (IsOp("]")) break;
      }
      keys.push_back(ParseSubscribed());
    }
    ExpectOp("]");
    if (keys.empty()) SyntaxError(line, "expected subscript expression");
    if (keys.size() == 1 && keys[0]->kind == ExprKind::kSlice) {
      keys[0]->args[0] = std::move(obj);
      return std::move(keys[0]);
    }
    auto e = MakeExpr(ExprKind::kItem, line);
    e->args.push_back(std::move(obj));
    if (keys.size() == 1) {
      e->args.push_back(std::move(keys[0]));
    } else {
      auto t = MakeExpr(ExprKind::kTuple, line);
      t->args = std::move(keys);
      e->args.push_back(std::move(t));
    }
    return e;
  }

  ExprPtr ParseSubscribed() {
    int line = Cur().line;
    ExprPtr start;
    if (!IsOp(":")) {
      start = ParseExpression(true);
      if (!IsOp(":")) return start;
    }
    Next();  // ':'
    auto s = MakeExpr(ExprKind::kSlice, line);
    s->args.push_back(nullptr);  // the sliced object, filled in by the caller
    s->args.push_back(std::move(start));
    s->args.push_back((IsOp("]") || IsOp(",") || IsOp(":")) ? nullptr : ParseExpression(true));
    ExprPtr step;
    if (SkipOp(":") && !IsOp("]") && !IsOp(",")) step = ParseExpression(true);
    s->args.push_back(std::move(step));
    return s;
  }

  // "(" args ")" appended to e.args / e.kwargs.
  void ParseCallArgs(Expr& e) {
    ExpectOp("(");
    bool first = true;
    while (!IsOp(")")) {
      if (!first) {
        ExpectOp(",");
        if (IsOp(")")) break;
      }
      first = false;
      if (IsOp("*") || IsOp("**")) SyntaxError(Cur().line, "*args / **kwargs in calls are not supported");
      if (Cur().type == Tok::kName && Peek(1).type == Tok::kOp && Peek(1).value == "=") {
        std::string key = Cur().value;
        Next();
        Next();
        e.kwargs.emplace_back(std::move(key), ParseExpression(true));
      } else {
        if (!e.kwargs.empty()) SyntaxError(Cur().line, "positional argument follows keyword argument");
        e.args.push_back(ParseExpression(true));
      }
    }
    ExpectOp(")");
  }

  std::string ParseDottedName() {
    std::string name = ExpectName();
    while (IsOp(".") && Peek(1).type == Tok::kName) {
      Next();
      name += '.';
      name += ExpectName();
    }
    return name;
  }

  void CheckKnown(Expr& e, bool filter) {
    if (filter ? IsKnownFilter(e.name) : IsKnownTest(e.name)) return;
    // jinja2 reports unknown filters at compile time, except inside conditional blocks.
    if (if_depth_ > 0) {
      e.known = false;
      return;
    }
    SyntaxError(e.line, std::string(filter ? "No filter named '" : "No test named '") + e.name + "'.");
  }

  ExprPtr ParseFilter(ExprPtr node, bool start_inline) {
    while (start_inline || IsOp("|")) {
      if (!start_inline) Next();
      start_inline = false;
      auto e = MakeExpr(ExprKind::kFilter, Cur().line);
      e->name = ParseDottedName();
      e->args.push_back(std::move(node));
      if (IsOp("(")) ParseCallArgs(*e);
      CheckKnown(*e, true);
      node = std::move(e);
    }
    return node;
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        node = ParseFilter(std::move(node), false);
      } else if (IsName("is")) {
        node = ParseTest(std::move(node));
      } else if (IsOp("(")) {
        auto e = MakeExpr(ExprKind::kCall, Cur().line);
        e->args.push_back(std::move(node));
        ParseCallArgs(*e);
        node = std::move(e);
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseTest(ExprPtr node) {
    auto e = MakeExpr(ExprKind::kTest, Cur().line);
    Next();  // is
    e->negated = SkipName("not");
    e->name = ParseDottedName();
    e->args.push_back(std::move(node));
    const Token& t = Cur();
    if (IsOp("(")) {
      ParseCallArgs(*e);
    } else if ((t.type == Tok::kName || t.type == Tok::kString || t.type == Tok::kInt ||
                t.type == Tok::kFloat || IsOp("[") || IsOp("{")) &&
               !IsName("else") && !IsName("or") && !IsName("and")) {
      if (IsName("is")) SyntaxError(t.line, "You cannot chain multiple tests with is");
      e->args.push_back(ParsePostfix(ParsePrimary()));
    }
    CheckKnown(*e, false);
    return e;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int expr_depth_ = 0;
  int block_depth_ = 0;
  int loop_depth_ = 0;
  int if_depth_ = 0;
};

}  // namespace

Result<NodeList> ParseTemplate(std::string_view source) {
  try {
    return Parser(Tokenize(source)).ParseRoot();
  } catch (const JinjaError& e) {
    return InvalidFormat(e.message);
  }
}

}  // namespace moxie::jinja
