// Recursive-descent parser for the spec language.
//
//   file      := decl*
//   decl      := component | optimizer | fn | grid
//   grid      := 'grid' IDENT [params] '{' gitem* '}'          ('grid' is contextual)
//   gitem     := IDENT '=' '{' IDENT [params] ':' pipeline {',' ...} [','] '}'     an axis
//              | 'cell' '(' IDENT {',' IDENT} ')' [params] [STRING] [':' (pipeline | 'absent')]
//              | 'sweep' IDENT '=' expr | 'seeds' '=' NUMBER | 'baseline' '(' IDENT {',' IDENT} ')'
//              | route                                          a template route
//   component := 'component' IDENT params '{' stmt* '}'
//   optimizer := 'optimizer' IDENT params '{' route* '}'
//   fn        := 'fn' IDENT params '=' expr
//   params    := '(' [IDENT ['=' expr] [range] {',' ...}] ')'
//   range     := 'in' ('[' | '(') expr ',' expr (']' | ')') ['whole']   ('in', 'whole' are contextual)
//   storage   := 'f32' | 'bf16' | 'q8' ['(' NUMBER ')']   (also a route's `state(storage {, stochastic | master})`)
//   stmt      := 'state' IDENT [':' storage] '=' expr | 'let' IDENT '=' expr | IDENT '=' expr   (';' optional)
//              | 'every' '(' expr ')' '{' stmt* '}'       a refresh block ('every', 'when' and
//              | 'when' '(' expr ')' '{' stmt* '}'        'inverse' are contextual words)
//              | 'inverse' '{' stmt* '}'                  a basis component's map back
//   route     := selector ':' stage {'->' stage}
//   selector  := ('where' '(' expr ')' | term {',' term}) ['view' '(' IDENT ')']
//   term      := 'matrix' | 'vector' | 'other' | STRING | 'embedding' | 'head' | 'norm' | 'bias' | 'conv'
//   stage     := IDENT ['(' args ')'] | 'rotate' '(' IDENT ['(' args ')'] ')' | 'unrotate'
//   args      := [IDENT '='] expr {',' ...}
//   expr      := precedence climbing over || && (== !=) (< <= > >=) (+ -) (* /) unary ^ primary
#include "lang/parser.h"
#include "lang/lexer.h"

#include <fmt/format.h>

#include "support/q8.h"

namespace opal {

namespace {

struct ParseError {};

class Parser {
 public:
  Parser(const SourceFile& file, std::vector<Token> toks, Diagnostics& d) : file_(file), toks_(std::move(toks)), d_(d) {}

  // A whole text that is one state storage (an optimizer's argument).
  StateStorage state_storage_only() {
    try {
      StateStorage s = state_storage();
      if (!at(Tok::Eof))
        d_.report(DiagKind::ExpectedToken, peek().loc, fmt::format("expected `,` or the end, found {}", describe(peek())),
                  "a state storage is `f32`, `bf16` or `q8(BLOCK)`, then options: `bf16, stochastic`, `bf16, master`");
      return s;
    } catch (ParseError&) {
      return {};
    }
  }

  Module run() {
    Module m;
    m.file = &file_;
    while (!at(Tok::Eof)) {
      try {
        if (at(Tok::KwComponent)) m.components.push_back(component());
        else if (at(Tok::KwOptimizer)) m.optimizers.push_back(optimizer());
        else if (at(Tok::KwFn)) m.fns.push_back(fn());
        else if (at_grid()) m.grids.push_back(grid());
        else {
          d_.report(DiagKind::ExpectedDeclaration, peek().loc,
                    fmt::format("expected `component`, `optimizer`, `fn` or `grid`, found {}", describe(peek())),
                    bracket_hint(peek()).empty() ? "every definition starts with one of these keywords" : bracket_hint(peek()));
          throw ParseError{};
        }
      } catch (ParseError&) {
        recover();
      }
    }
    return m;
  }

 private:
  const Token& peek(size_t k = 0) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  bool at(Tok k) const { return peek().kind == k; }
  Token take() {
    Token t = peek();
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool accept(Tok k) {
    if (!at(k)) return false;
    take();
    return true;
  }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Tok::Eof: return "end of file";
      case Tok::Ident: return fmt::format("identifier `{}`", t.text);
      case Tok::Number: return fmt::format("number `{}`", t.text);
      case Tok::String: return fmt::format("string \"{}\"", t.text);
      default: return fmt::format("`{}`", tok_spelling(t.kind));
    }
  }
  // Square brackets only bound a parameter's range: elsewhere, say what they are not.
  static std::string bracket_hint(const Token& t) {
    if (t.kind != Tok::LBracket && t.kind != Tok::RBracket) return {};
    return "the language has no lists or indexing: a sweep lists its values as `values(1e-3, 3e-3, 1e-2)`; brackets only bound a "
           "parameter's range (`beta = 0.9 in [0, 1)`)";
  }
  Token expect(Tok k, const char* context) {
    if (!at(k)) {
      d_.report(DiagKind::ExpectedToken, peek().loc, fmt::format("expected `{}` {}, found {}", tok_spelling(k), context, describe(peek())),
                bracket_hint(peek()));
      throw ParseError{};
    }
    return take();
  }
  // Skip to the next top-level keyword.
  void recover() {
    if (!at(Tok::Eof)) take();
    while (!at(Tok::Eof) && !at(Tok::KwComponent) && !at(Tok::KwOptimizer) && !at(Tok::KwFn) && !at_grid()) take();
  }
  bool at_grid() const { return at(Tok::Ident) && peek().text == "grid" && peek(1).kind == Tok::Ident; }
  bool at_word(const char* w, Tok next) const { return at(Tok::Ident) && peek().text == w && peek(1).kind == next; }
  SourceLoc span(SourceLoc a, SourceLoc b) const {
    if (a.file != b.file || b.offset + b.length < a.offset) return a;
    return {a.file, a.offset, b.offset + b.length - a.offset};
  }
  SourceLoc last_loc() const { return toks_[pos_ > 0 ? pos_ - 1 : 0].loc; }

  std::vector<Param> params() {
    std::vector<Param> ps;
    expect(Tok::LParen, "to open the parameter list");
    if (!at(Tok::RParen)) {
      do {
        Token n = expect(Tok::Ident, "naming a parameter");
        Param p{n.text, n.loc, nullptr, nullptr};
        if (accept(Tok::Assign)) p.default_value = expr();
        if (at(Tok::Ident) && peek().text == "in") p.range = range();
        ps.push_back(std::move(p));
      } while (accept(Tok::Comma));
    }
    expect(Tok::RParen, "to close the parameter list");
    return ps;
  }

  // `in [lo, hi)`: a square bracket closes its end, a parenthesis opens it.
  std::shared_ptr<ParamRange> range() {
    auto r = std::make_shared<ParamRange>();
    SourceLoc in = take().loc;
    if (!at(Tok::LBracket) && !at(Tok::LParen)) {
      d_.report(DiagKind::ExpectedToken, peek().loc, fmt::format("expected `[` or `(` to open the range, found {}", describe(peek())),
                "a range is `in [lo, hi]`, each end closed by a bracket or open by a parenthesis: `beta = 0.9 in [0, 1)`");
      throw ParseError{};
    }
    r->lo_open = take().kind == Tok::LParen;
    r->lo = expr();
    expect(Tok::Comma, "between the ends of the range");
    r->hi = expr();
    if (!at(Tok::RBracket) && !at(Tok::RParen)) {
      d_.report(DiagKind::ExpectedToken, peek().loc, fmt::format("expected `]` or `)` to close the range, found {}", describe(peek())),
                "a range is `in [lo, hi]`, each end closed by a bracket or open by a parenthesis: `beta = 0.9 in [0, 1)`");
      throw ParseError{};
    }
    r->hi_open = take().kind == Tok::RParen;
    if (at(Tok::Ident) && peek().text == "whole") r->whole = take().kind == Tok::Ident;
    r->loc = span(in, last_loc());
    return r;
  }

  ComponentDecl component() {
    take();
    Token n = expect(Tok::Ident, "after `component`");
    ComponentDecl c{n.text, n.loc, params(), {}};
    expect(Tok::LBrace, "to open the component body");
    while (!at(Tok::RBrace) && !at(Tok::Eof)) {
      c.body.push_back(stmt());
      accept(Tok::Semi);
    }
    expect(Tok::RBrace, "to close the component body");
    return c;
  }

  Stmt stmt() {
    SourceLoc start = peek().loc;
    // `every(N) { ... }` and `inverse { ... }`: contextual, so both words stay usable as names
    if (at(Tok::Ident) && (((peek().text == "every" || peek().text == "when") && peek(1).kind == Tok::LParen) ||
                           (peek().text == "inverse" && peek(1).kind == Tok::LBrace))) {
      DepthGuard guard(*this, "`every`/`when`/`inverse` blocks");
      Token kw = take();
      Stmt st{kw.text == "inverse" ? Stmt::Kind::Inverse : Stmt::Kind::Every, kw.loc, kw.text, kw.loc, nullptr, {}, {}, {}};
      if (st.kind == Stmt::Kind::Every) {
        take();
        st.value = expr();
        expect(Tok::RParen, kw.text == "every" ? "to close `every(`" : "to close `when(`");
      }
      expect(Tok::LBrace, fmt::format("to open the `{}` block", kw.text).c_str());
      while (!at(Tok::RBrace) && !at(Tok::Eof)) {
        st.body.push_back(stmt());
        accept(Tok::Semi);
      }
      expect(Tok::RBrace, fmt::format("to close the `{}` block", kw.text).c_str());
      st.loc = span(start, last_loc());
      return st;
    }
    Stmt::Kind kind = Stmt::Kind::Assign;
    if (accept(Tok::KwState)) kind = Stmt::Kind::State;
    else if (accept(Tok::KwLet)) kind = Stmt::Kind::Let;
    Token n = expect(Tok::Ident, kind == Stmt::Kind::Assign ? "to start a statement (`state`, `let` or `name = ...`)" : "naming the variable");
    Storage storage;
    if (kind == Stmt::Kind::State && accept(Tok::Colon)) storage = storage_name();
    expect(Tok::Assign, fmt::format("after `{}`", n.text).c_str());
    ExprPtr e = expr();
    Stmt st{kind, span(start, e->loc), n.text, n.loc, std::move(e), {}, storage.name, storage.loc, storage.block};
    return st;
  }

  // A state's storage: `f32`, `bf16`, `q8` or `q8(BLOCK)`.
  struct Storage {
    std::string name;
    SourceLoc loc;
    int block = 0;
  };
  Storage storage_name() {
    Token st = expect(Tok::Ident, "naming the state's storage (`f32`, `bf16` or `q8`)");
    Storage out{st.text, st.loc, st.text == "q8" ? q8::kDefaultBlock : 0};
    if (st.text == "q8" && accept(Tok::LParen)) {
      Token b = expect(Tok::Number, "giving the block size of `q8`");
      if (!q8::valid_block((long long)b.number) || b.number != double((long long)b.number)) {
        d_.report(DiagKind::ExpectedToken, b.loc,
                  fmt::format("`q8` takes a block size that is a power of two from {} to {}", q8::kMinBlock, q8::kMaxBlock),
                  fmt::format("the default is `q8` = `q8({})`", q8::kDefaultBlock));
        throw ParseError{};
      }
      out.block = int(b.number);
      expect(Tok::RParen, "to close the block size");
      out.loc = span(st.loc, last_loc());
    }
    return out;
  }

  // A route's state storage: `storage {, option}` (options `stochastic` for bf16, `master`).
  StateStorage state_storage() {
    const Storage st = storage_name();
    if (st.name != "f32" && st.name != "bf16" && st.name != "q8")
      d_.report(DiagKind::UnknownName, st.loc, fmt::format("unknown storage `{}`", st.name), "a route's state is stored as `f32`, `bf16` or `q8`");
    StateStorage out{st.name, st.loc, st.block};
    while (accept(Tok::Comma)) {
      Token opt = expect(Tok::Ident, "naming an option (`stochastic`, `master`)");
      if ((opt.text == "master" && out.master) || (opt.text == "stochastic" && out.stochastic))
        d_.report(DiagKind::DuplicateArgument, opt.loc, fmt::format("option `{}` given twice", opt.text));
      else if (opt.text == "master") out.master = true;
      else if (opt.text == "stochastic" && st.name == "bf16") out.stochastic = true;
      else
        d_.report(DiagKind::UnknownName, opt.loc, fmt::format("unknown option `{}` of `state({}, ...)`", opt.text, st.name),
                  "`state(bf16, stochastic)` rounds the route's bf16 stores stochastically; `state(..., master)` keeps an f32 master "
                  "copy of each 16-bit parameter");
    }
    return out;
  }

  OptimizerDecl optimizer() {
    take();
    Token n = expect(Tok::Ident, "after `optimizer`");
    OptimizerDecl o{n.text, n.loc, params(), {}};
    expect(Tok::LBrace, "to open the optimizer body");
    while (!at(Tok::RBrace) && !at(Tok::Eof)) {
      o.routes.push_back(route());
      accept(Tok::Semi);
    }
    expect(Tok::RBrace, "to close the optimizer body");
    return o;
  }

  // One term of a selector list: a quoted name pattern, a class or a role.
  Route::Term selector_term() {
    if (at(Tok::String)) return {Route::Kind::Pattern, expect(Tok::String, "as a name pattern").text};
    Token sel = expect(Tok::Ident, "to start a route (`matrix:`, `vector:`, `other:`, a role such as `embedding:` or \"pattern\":)");
    if (sel.text == "matrix") return {Route::Kind::Matrix, {}};
    if (sel.text == "vector") return {Route::Kind::Vector, {}};
    if (sel.text == "other") return {Route::Kind::Other, {}};
    for (const char* role : kRouteRoles)
      if (sel.text == role) return {Route::Kind::Role, sel.text};
    d_.report(DiagKind::ExpectedToken, sel.loc, fmt::format("unknown parameter class `{}`", sel.text),
              sel.text == "where" ? "`where(COND)` stands alone: give it a route of its own"
                                  : "routes start with `matrix:`, `vector:`, `other:`, a role (`embedding`, `head`, `norm`, `bias`, `conv`), "
                                    "`where(rank == 2):` or a quoted name pattern like \"embed*\":; a comma joins several: `embedding, head:`");
    throw ParseError{};
  }

  Route route() {
    Route r;
    r.loc = peek().loc;
    if (at(Tok::Ident) && peek().text == "where" && peek(1).kind == Tok::LParen) {
      take();
      take();
      r.terms.push_back({Route::Kind::Where, {}});
      r.condition = expr();
      expect(Tok::RParen, "to close the route's condition");
    } else {
      do r.terms.push_back(selector_term());
      while (accept(Tok::Comma));
    }
    r.loc = span(r.loc, last_loc());
    if (at(Tok::Ident) && peek().text == "view" && peek(1).kind == Tok::LParen) {
      take();
      take();
      Token v = expect(Tok::Ident, "naming the view (`first`, `last`, `batch` or `largest`)");
      if (v.text == "first") r.view = Route::View::First;
      else if (v.text == "last") r.view = Route::View::Last;
      else if (v.text == "batch") r.view = Route::View::Batch;
      else if (v.text == "largest") r.view = Route::View::Largest;
      else
        d_.report(DiagKind::ExpectedToken, v.loc, fmt::format("unknown view `{}`", v.text),
                  "`view(first)`: dim 0 by the rest (the default); `view(last)`: the leading dims by the last; `view(batch)`: a matrix "
                  "per index of the leading dims; `view(largest)`: a matrix of the two largest axes per index of the others");
      expect(Tok::RParen, "to close the view");
    }
    if (at(Tok::KwState) && peek(1).kind == Tok::LParen) {  // `state(bf16)`: the route's state storage
      take();
      take();
      r.state = state_storage();
      expect(Tok::RParen, "to close `state(`");
    }
    expect(Tok::Colon, "after the route's parameter class");
    r.pipeline = pipeline();
    return r;
  }

  Stage stage() {
    Token n = expect(Tok::Ident, "naming a pipeline stage");
    if (n.text == "rotate" && at(Tok::LParen)) {
      take();
      Stage inner = stage();
      expect(Tok::RParen, "to close `rotate(`");
      inner.role = Stage::Role::Rotate;
      inner.loc = span(n.loc, last_loc());
      inner.text = inner.loc;
      return inner;
    }
    Stage s{n.text, n.loc, {}, Stage::Role::Plain, {}};
    if (n.text == "unrotate") s.role = Stage::Role::Unrotate;
    else if (accept(Tok::LParen)) s.args = args();
    s.text = span(n.loc, last_loc());
    return s;
  }

  std::vector<Stage> pipeline() {
    std::vector<Stage> p;
    do p.push_back(stage());
    while (accept(Tok::Arrow));
    return p;
  }

  GridDecl grid() {
    take();
    Token n = expect(Tok::Ident, "after `grid`");
    GridDecl g{n.text, n.loc, {}, {}, {}, {}, {}, 0, {}, {}, {}};
    if (at(Tok::LParen)) g.params = params();
    expect(Tok::LBrace, "to open the grid body");
    while (!at(Tok::RBrace) && !at(Tok::Eof)) {
      grid_item(g);
      accept(Tok::Semi);
    }
    expect(Tok::RBrace, "to close the grid body");
    return g;
  }

  std::vector<std::string> name_list(std::vector<SourceLoc>* locs, const char* what) {
    std::vector<std::string> names;
    expect(Tok::LParen, what);
    do {
      Token t = expect(Tok::Ident, "naming an alternative");
      names.push_back(t.text);
      if (locs) locs->push_back(t.loc);
    } while (accept(Tok::Comma));
    expect(Tok::RParen, "to close the list of alternatives");
    return names;
  }

  void grid_item(GridDecl& g) {
    if (at_word("cell", Tok::LParen)) {
      GridCell c;
      c.loc = take().loc;
      c.coords = name_list(&c.coord_locs, "after `cell`");
      if (at(Tok::LParen)) c.params = params();
      if (at(Tok::String)) c.note = take().text;
      if (accept(Tok::Colon)) {
        if (at(Tok::Ident) && peek().text == "absent" && peek(1).kind != Tok::LParen && peek(1).kind != Tok::Arrow) {
          take();
          c.absent = true;
        } else {
          c.pipeline = pipeline();
          c.has_pipeline = true;
        }
      }
      c.loc = span(c.loc, last_loc());
      g.cells.push_back(std::move(c));
    } else if (at_word("sweep", Tok::Ident)) {
      take();
      Token h = expect(Tok::Ident, "naming the hyperparameter to sweep");
      expect(Tok::Assign, "after the swept hyperparameter");
      g.sweeps.push_back({h.text, h.loc, expr()});
    } else if (at_word("seeds", Tok::Assign)) {
      g.seeds_loc = take().loc;
      take();
      Token v = expect(Tok::Number, "giving the number of seeds");
      if (v.number < 1 || v.number > 1000 || v.number != int(v.number)) {
        d_.report(DiagKind::ExpectedToken, v.loc, "`seeds` takes a whole number from 1 to 1000");
        throw ParseError{};
      }
      g.seeds = int(v.number);
    } else if (at_word("baseline", Tok::LParen)) {
      g.baseline_loc = take().loc;
      g.baseline = name_list(nullptr, "after `baseline`");
      g.baseline_loc = span(g.baseline_loc, last_loc());
    } else if (at(Tok::Ident) && peek(1).kind == Tok::Assign) {
      Token n = take();
      take();
      GridAxis ax{n.text, n.loc, {}};
      expect(Tok::LBrace, "to open the axis' alternatives");
      while (!at(Tok::RBrace)) {
        Token an = expect(Tok::Ident, "naming an alternative");
        GridAlt alt{an.text, an.loc, {}, {}};
        if (at(Tok::LParen)) alt.params = params();
        expect(Tok::Colon, "after the alternative's name");
        alt.pipeline = pipeline();
        ax.alts.push_back(std::move(alt));
        if (!accept(Tok::Comma)) break;
      }
      expect(Tok::RBrace, "to close the axis' alternatives");
      g.axes.push_back(std::move(ax));
    } else {
      g.routes.push_back(route());
    }
  }

  std::vector<Arg> args() {
    std::vector<Arg> as;
    if (!at(Tok::RParen)) {
      do {
        Arg a;
        if (at(Tok::Ident) && peek(1).kind == Tok::Assign) {
          Token n = take();
          take();
          a.name = n.text;
          a.name_loc = n.loc;
        }
        a.value = expr();
        if (a.name.empty()) a.name_loc = a.value->loc;
        as.push_back(std::move(a));
      } while (accept(Tok::Comma));
    }
    expect(Tok::RParen, "to close the argument list");
    return as;
  }

  FnDecl fn() {
    take();
    Token n = expect(Tok::Ident, "after `fn`");
    FnDecl f{n.text, n.loc, params(), nullptr};
    expect(Tok::Assign, "before the fn body");
    f.body = expr();
    return f;
  }

  // ---- expressions ----
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& p_, const char* what = "expression") : p(p_) {
      if (++p.depth_ > kMaxNesting) {
        p.d_.report(DiagKind::NestingTooDeep, p.peek().loc, fmt::format("{} nested deeper than {} levels", what, kMaxNesting),
                    std::string(what) == "expression" ? "split it with `let` bindings" : "merge the conditions into one block");
        --p.depth_;
        throw ParseError{};
      }
    }
    ~DepthGuard() { --p.depth_; }
  };

  static int precedence(Tok k) {
    switch (k) {
      case Tok::OrOr: return 1;
      case Tok::AndAnd: return 2;
      case Tok::EqEq:
      case Tok::NotEq: return 3;
      case Tok::Lt:
      case Tok::Le:
      case Tok::Gt:
      case Tok::Ge: return 4;
      case Tok::Plus:
      case Tok::Minus: return 5;
      case Tok::Star:
      case Tok::Slash:
      case Tok::At: return 6;
      default: return 0;
    }
  }

  ExprPtr make_binary(const Token& op, ExprPtr l, ExprPtr r) {
    auto e = std::make_unique<Expr>();
    e->kind = Expr::Kind::Binary;
    e->loc = span(l->loc, r->loc);
    e->name = tok_spelling(op.kind);
    e->args.push_back({"", {}, std::move(l)});
    e->args.push_back({"", {}, std::move(r)});
    return e;
  }

  ExprPtr expr(int min_prec = 1) {
    DepthGuard g(*this);
    ExprPtr lhs = unary();
    while (true) {
      int p = precedence(peek().kind);
      if (p < min_prec || p == 0) return lhs;
      Token op = take();
      ExprPtr rhs = expr(p + 1);
      lhs = make_binary(op, std::move(lhs), std::move(rhs));
    }
  }

  ExprPtr unary() {
    DepthGuard g(*this);
    if (at(Tok::Minus) || at(Tok::Bang)) {
      Token op = take();
      ExprPtr operand = unary();
      auto e = std::make_unique<Expr>();
      e->kind = Expr::Kind::Unary;
      e->loc = span(op.loc, operand->loc);
      e->name = tok_spelling(op.kind);
      e->args.push_back({"", {}, std::move(operand)});
      return e;
    }
    return power();
  }

  // `^` binds tighter than unary minus on its left (-x^2 = -(x^2)) and is right-associative.
  ExprPtr power() {
    ExprPtr base = primary();
    if (at(Tok::Caret)) {
      Token op = take();
      ExprPtr exp = unary();
      return make_binary(op, std::move(base), std::move(exp));
    }
    return base;
  }

  ExprPtr primary() {
    DepthGuard g(*this);
    auto e = std::make_unique<Expr>();
    if (at(Tok::Number)) {
      Token t = take();
      e->kind = Expr::Kind::Number;
      e->loc = t.loc;
      e->number = t.number;
      return e;
    }
    if (at(Tok::Ident)) {
      Token t = take();
      e->loc = t.loc;
      e->name = t.text;
      if (accept(Tok::LParen)) {
        e->kind = Expr::Kind::Call;
        e->args = args();
        e->loc = span(t.loc, last_loc());
      } else {
        e->kind = Expr::Kind::Name;
      }
      return e;
    }
    if (at(Tok::LParen)) {
      SourceLoc open = take().loc;
      ExprPtr inner = expr();
      expect(Tok::RParen, "to close the parenthesis");
      inner->loc = span(open, last_loc());  // the parentheses belong to the expression's text
      return inner;
    }
    d_.report(DiagKind::ExpectedToken, peek().loc, fmt::format("expected an expression, found {}", describe(peek())), bracket_hint(peek()));
    throw ParseError{};
  }

  const SourceFile& file_;
  std::vector<Token> toks_;
  Diagnostics& d_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

Module parse(const SourceFile& file, Diagnostics& diags) { return Parser(file, lex(file, diags), diags).run(); }

StateStorage parse_state_storage(const SourceFile& file, Diagnostics& diags) { return Parser(file, lex(file, diags), diags).state_storage_only(); }

}  // namespace opal
