// Front end: lexer, parser (with recovery), resolver, limits.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "lang/const_eval.h"
#include "lang/lexer.h"
#include "lang/parser.h"
#include "lang/program.h"

using namespace opal;

TEST_SUITE("lang") {
TEST_CASE("lexer: numbers, arrows, comments and locations") {
  SourceFile f("t.opal", "a -> 1e-8 # note\n  b(0.9)");
  Diagnostics d;
  auto toks = lex(f, d);
  REQUIRE(toks.size() == 8);
  CHECK(toks[1].kind == Tok::Arrow);
  CHECK(toks[2].number == doctest::Approx(1e-8));
  CHECK(toks[3].text == "b");
  CHECK(toks[3].loc.str() == "t.opal:2:3");
  CHECK(!d.has_errors());
}

TEST_CASE("lexer: a character that starts no token gets the hint for what was likely meant") {
  const std::vector<std::pair<std::string, std::string>> cases = {{"t % 2", "`mod(a, b)`"},
                                                                  {"'w*':", "strings in double quotes"},
                                                                  {"a & b", "`&&` is logical and"},
                                                                  {"a | b", "`||` is logical or"},
                                                                  {"a $ b", "comments start with `#`"}};
  for (const auto& c : cases) {  // (not a structured binding: clang cannot capture one in CAPTURE's lambda)
    const std::string &text = c.first, &hint = c.second;
    CAPTURE(text);
    SourceFile f("t.opal", text);
    Diagnostics d;
    lex(f, d);
    REQUIRE(d.has_errors());
    CHECK(d.all()[0].kind == DiagKind::UnexpectedCharacter);
    CHECK(d.all()[0].help.find(hint) != std::string::npos);
  }
}

// The first diagnostic of parsing `text`, which must have one.
static Diagnostic first_parse_error(const std::string& text) {
  SourceFile f("t.opal", text);
  Diagnostics d;
  parse(f, d);
  REQUIRE(d.has_errors());
  return d.all()[0];
}

TEST_CASE("parser: a square bracket outside a range gets the hint that there are no lists") {
  for (const std::string text : {"fn f(x) = [1e-3]", "fn f(x) = x[0]", "optimizer o(lr = 1) { other: scale([lr]) }"}) {
    CAPTURE(text);
    const Diagnostic e = first_parse_error(text);
    CHECK((e.kind == DiagKind::ExpectedToken || e.kind == DiagKind::ExpectedDeclaration));
    CHECK(e.help.find("values(1e-3, 3e-3, 1e-2)") != std::string::npos);
  }
}

TEST_CASE("parser: a parameter's range, each end open or closed") {
  SourceFile f("t.opal", "component c(a = 0.5 in [0, 1), b in (0, inf], c = 2 in [-1, 2 * 3] whole, d = 1) { u = u }");
  Diagnostics d;
  Module m = parse(f, d);
  REQUIRE(!d.has_errors());
  REQUIRE(m.components.size() == 1);
  CHECK(dump_ast(m).find("(params a=0.5:[0,1) b:(0,inf] c=2:[(- 1),(* 2 3)]whole d=1)") != std::string::npos);
  const auto& ps = m.components[0].params;
  CHECK(param_interval(ps[0]) == Interval{0, 1, false, true});
  CHECK(param_interval(ps[1])->hi == std::numeric_limits<double>::infinity());
  CHECK(param_interval(ps[2]) == Interval{-1, 6, false, false, true});
  CHECK(!param_interval(ps[3]));
  CHECK(Interval{0, 1, false, true}.contains(0));
  CHECK(!Interval{0, 1, false, true}.contains(1));
  CHECK(!Interval{0, 1, true, true}.contains(0));
  CHECK(!Interval{0, 1, false, false}.contains(std::nan("")));
  CHECK(Interval{1, 1e9, false, true, true}.contains(3));
  CHECK(!Interval{1, 1e9, false, true, true}.contains(2.5));
  CHECK(Interval{1, std::numeric_limits<double>::infinity(), false, true, true}.str() == "whole numbers in [1, inf)");
  // a range that is not closed says what it expected
  for (const std::string bad :
       {"component c(a = 0.5 in 0, 1) { u = u }", "component c(a = 0.5 in [0, 1}) { u = u }", "component c(a = 0.5 in [0 1)) { u = u }"}) {
    CAPTURE(bad);
    CHECK(first_parse_error(bad).kind == DiagKind::ExpectedToken);
  }
}

TEST_CASE("parser: precedence and the AST dump") {
  SourceFile f("t.opal", "fn f(x) = -x ^ 2 + 3 * x / 4");
  Diagnostics d;
  Module m = parse(f, d);
  REQUIRE(m.fns.size() == 1);
  CHECK(dump_expr(*m.fns[0].body) == "(+ (- (^ x 2)) (/ (* 3 x) 4))");
}

TEST_CASE("parser: matrix syntax: @, every/when/inverse blocks, rotate(...) and unrotate") {
  SourceFile f("t.opal", R"(component b(beta = 0.9, every = 10) {
  state Q = eye(rows)
  u = transpose(Q) @ u * 2
  every(every) { Q = eigh(Q) }
  when(t > 3) { let z = 1 }
  inverse { u = Q @ u }
}
optimizer o(lr = 1) { matrix: rotate(b(0.5)) -> sign -> unrotate -> scale(lr) })");
  Diagnostics d;
  Module m = parse(f, d);
  REQUIRE(!d.has_errors());
  REQUIRE(m.components.size() == 1);
  const auto& body = m.components[0].body;
  REQUIRE(body.size() == 5);
  CHECK(dump_expr(*body[1].value) == "(* (@ (call transpose Q) u) 2)");  // @ binds like *
  CHECK(body[2].kind == Stmt::Kind::Every);
  CHECK(body[2].name == "every");
  CHECK(body[3].kind == Stmt::Kind::Every);
  CHECK(body[3].name == "when");
  CHECK(body[4].kind == Stmt::Kind::Inverse);
  const auto& pipe = m.optimizers[0].routes[0].pipeline;
  REQUIRE(pipe.size() == 4);
  CHECK(pipe[0].role == Stage::Role::Rotate);
  CHECK(pipe[0].name == "b");
  CHECK(pipe[0].args.size() == 1);
  CHECK(pipe[2].role == Stage::Role::Unrotate);
  // `every` stays usable as a name
  SourceFile g("u.opal", "fn h(every) = every * 2");
  Module m2 = parse(g, d);
  CHECK(!d.has_errors());
}

TEST_CASE("parser: one run reports every broken declaration") {
  SourceFile f("t.opal", "optimizer a(lr = 1) { other: scale(lr }\noptimizer b(lr = 1) { other: : }\noptimizer c(lr = 1) { other: scale(lr) }");
  Diagnostics d;
  Module m = parse(f, d);
  CHECK(d.error_count() == 2);
  REQUIRE(m.optimizers.size() == 1);
  CHECK(m.optimizers[0].name == "c");
}

TEST_CASE("resolver: user definitions shadow the stdlib; unknown stages get suggestions") {
  Diagnostics d;
  LoadRequest req;
  req.texts.push_back({"u.opal", "component sign() { u = u }\noptimizer o(lr = 1) { other: sgin -> scale(lr) }"});
  auto p = load_program(req, d);
  REQUIRE(d.error_count() == 1);
  CHECK(d.all()[0].kind == DiagKind::UnknownComponent);
  CHECK(d.all()[0].help == "did you mean `sign`?");
  CHECK(p->components.at("sign")->loc.file->path() == "u.opal");
}

TEST_CASE("a user definition shadows the stdlib for the user's specs only, never inside the stdlib") {
  // the user's `decay` does nothing; stdlib `adamw` must keep its own `decay`
  Diagnostics d;
  LoadRequest req;
  req.texts.push_back({"u.opal",
                       "component decay(wd = 0.0) { u = u }\n"
                       "optimizer mine(lr = 1, wd = 0.5) { other: decay(wd) -> scale(lr) }\n"
                       "optimizer o(wd = 0.5) { other: adamw(wd = wd) }"});
  auto p = load_program(req, d);
  REQUIRE_FALSE(d.has_errors());
  const OptimizerDecl* mine = p->find_optimizer("mine");
  const OptimizerDecl* adamw = p->find_optimizer("adamw");
  REQUIRE(mine);
  REQUIRE(adamw);
  const Stage& user_stage = mine->routes[0].pipeline[0];
  const Stage& std_stage = adamw->routes[0].pipeline[2];
  REQUIRE(std_stage.name == "decay");
  CHECK(p->find_component("decay", user_stage.loc)->loc.file->path() == "u.opal");
  CHECK(p->find_component("decay", std_stage.loc)->loc.file->path().find("decay.opal") != std::string::npos);
  CHECK(p->in_stdlib(std_stage.loc));
  CHECK_FALSE(p->in_stdlib(user_stage.loc));
}

TEST_CASE("a name defined in two spec files loaded together names the first definition") {
  Diagnostics d;
  LoadRequest req;
  req.texts.push_back({"a.opal", "optimizer o(lr = 1) { other: scale(lr) }"});
  req.texts.push_back({"b.opal", "optimizer o(lr = 1) { other: scale(lr) }"});
  auto p = load_program(req, d);  // owns the files the locations point into
  REQUIRE(d.error_count() == 1);
  CHECK(d.all()[0].kind == DiagKind::Redefinition);
  CHECK(d.all()[0].loc.file->path() == "b.opal");
  CHECK(d.all()[0].message == "`o` is already defined at a.opal:1:11");
  CHECK(d.all()[0].help.find("rename one") != std::string::npos);
}

TEST_CASE("a parameter declared twice in one list is a redefinition, for components, optimizers, grids and fns") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"component c(b = 1, b = 2) {\n  u = b * u\n}\noptimizer o(lr = 1) { other: c -> scale(lr) }", "parameter `b` of component `c`"},
      {"optimizer o(lr = 1, lr = 2) { other: scale(lr) }", "parameter `lr` of optimizer `o`"},
      {"fn f(x, y, x) = x * y\ncomponent c() {\n  u = f(u, 2, 3)\n}\noptimizer o(lr = 1) { other: c -> scale(lr) }", "parameter `x` of fn `f`"},
      {"grid g(lr = 1, lr = 2) {\n  a = {x: adamw, y: sgd}\n  other: a\n}", "parameter `lr` of grid `g`"}};
  for (const auto& c : cases) {
    const std::string &text = c.first, &what = c.second;
    CAPTURE(text);
    Diagnostics d;
    LoadRequest req;
    req.texts.push_back({"d.opal", text});
    auto p = load_program(req, d);
    REQUIRE(d.error_count() >= 1);
    CHECK(d.all()[0].kind == DiagKind::Redefinition);
    CHECK(d.all()[0].message.find(what + " is declared twice (first at d.opal:1:") != std::string::npos);
  }
}

TEST_CASE("a spec beyond the size limit is refused with the limit named") {
  Diagnostics d;
  LoadRequest req;
  req.texts.push_back({"big.opal", std::string(kMaxSpecBytes + 1, ' ')});
  load_program(req, d);
  REQUIRE(d.has_errors());
  CHECK(d.all().back().kind == DiagKind::LimitExceeded);
  CHECK(d.all().back().message.find(std::to_string(kMaxSpecBytes)) != std::string::npos);
}

TEST_CASE("chains of fns and of delegating optimizers are bounded (no recursion a spec can overflow)") {
  auto load = [](const std::string& text, Diagnostics& d) {
    LoadRequest req;
    req.texts.push_back({"chain.opal", text});
    return load_program(req, d);
  };
  auto fns = [](size_t n) {
    std::string s = "fn f0(x) = x * 2\n";
    for (size_t i = 1; i < n; ++i) s += fmt::format("fn f{}(x) = f{}(x) + 1\n", i, i - 1);
    return s;
  };
  Diagnostics ok;
  load(fns(kMaxCallDepth), ok);
  CHECK_FALSE(ok.has_errors());
  // 20000 deep, however the search enters the chain: one error, at the fn where it gets too deep
  Diagnostics d;
  load(fns(20000), d);
  REQUIRE(d.error_count() == 1);
  CHECK(d.all()[0].kind == DiagKind::LimitExceeded);
  CHECK(d.all()[0].message == fmt::format("fn `f{}` starts a chain of calls deeper than the limit of {}", kMaxCallDepth, kMaxCallDepth));
  std::string opts = "optimizer o0(lr = 1) {\n  other: scale(lr)\n}\n";
  for (int i = 1; i < 5000; ++i) opts += fmt::format("optimizer o{}(lr = 1) {{\n  other: o{}(lr)\n}}\n", i, i - 1);
  Diagnostics d2;
  load(opts, d2);
  REQUIRE(d2.error_count() == 1);
  CHECK(d2.all()[0].message ==
        fmt::format("optimizer `o{}` starts a chain of delegations deeper than the limit of {}", kMaxCallDepth, kMaxCallDepth));
}

TEST_CASE("blocks nested past the limit are an error, not a stack overflow") {
  std::string s = "component c() {\n";
  for (int i = 0; i < 5000; ++i) s += "every(1) {\n";
  s += "u = u\n";
  for (int i = 0; i < 5000; ++i) s += "}\n";
  s += "}\n";
  SourceFile f("deep.opal", s);
  Diagnostics d;
  parse(f, d);
  REQUIRE(d.has_errors());
  CHECK(d.all()[0].kind == DiagKind::NestingTooDeep);
}

TEST_CASE("closest_match suggests within a small edit distance only") {
  CHECK(closest_match("adpat", {"adapt", "scale"}) == "adapt");
  CHECK(closest_match("momentun", {"momentum", "sign"}) == "momentum");
  CHECK(closest_match("adamW", {"adam", "adamw", "lion"}) == "adamw");  // a case slip before a nearer name
  CHECK(closest_match("zzzzzz", {"adapt", "scale"}).empty());
}
}
