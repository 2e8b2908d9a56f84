// Front end: lexer, parser (with recovery), resolver, limits.
#include <doctest/doctest.h>

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

TEST_CASE("parser: precedence and the AST dump") {
  SourceFile f("t.opal", "fn f(x) = -x ^ 2 + 3 * x / 4");
  Diagnostics d;
  Module m = parse(f, d);
  REQUIRE(m.fns.size() == 1);
  CHECK(dump_expr(*m.fns[0].body) == "(+ (- (^ x 2)) (/ (* 3 x) 4))");
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

TEST_CASE("a spec beyond the size limit is refused with the limit named") {
  Diagnostics d;
  LoadRequest req;
  req.texts.push_back({"big.opal", std::string(kMaxSpecBytes + 1, ' ')});
  load_program(req, d);
  REQUIRE(d.has_errors());
  CHECK(d.all().back().kind == DiagKind::LimitExceeded);
  CHECK(d.all().back().message.find(std::to_string(kMaxSpecBytes)) != std::string::npos);
}

TEST_CASE("closest_match suggests within a small edit distance only") {
  CHECK(closest_match("adpat", {"adapt", "scale"}) == "adapt");
  CHECK(closest_match("momentun", {"momentum", "sign"}) == "momentum");
  CHECK(closest_match("zzzzzz", {"adapt", "scale"}).empty());
}
}
