// S-expression dump of the AST (`opal ast`).
#include <functional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "lang/ast.h"

namespace opal {

namespace {
std::string num(double v) { return fmt::format("{}", v); }

std::string dump_args(const std::vector<Arg>& args) {
  std::string s;
  for (const auto& a : args) s += " " + (a.name.empty() ? "" : a.name + "=") + dump_expr(*a.value);
  return s;
}

std::string dump_params(const std::vector<Param>& ps) {
  std::string s = "(params";
  for (const auto& p : ps) {
    s += " " + p.name + (p.default_value ? "=" + dump_expr(*p.default_value) : "");
    if (const ParamRange* r = p.range.get())
      s += fmt::format(":{}{},{}{}{}", r->lo_open ? '(' : '[', dump_expr(*r->lo), dump_expr(*r->hi), r->hi_open ? ')' : ']', r->whole ? "whole" : "");
  }
  return s + ")";
}
}  // namespace

std::string Route::Term::label() const {
  switch (kind) {
    case Kind::Matrix: return "matrix";
    case Kind::Vector: return "vector";
    case Kind::Other: return "other";
    case Kind::Pattern: return "\"" + text + "\"";
    case Kind::Role: return text;
    case Kind::Where: return "where";
  }
  return "?";
}

std::string Route::label() const {
  if (has(Kind::Where)) return std::string(loc.text());
  std::string s;
  for (const Term& t : terms) s += (s.empty() ? "" : ",") + t.label();
  return s;
}

std::string dump_expr(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::Number: return num(e.number);
    case Expr::Kind::Name: return e.name;
    case Expr::Kind::Unary: return fmt::format("({} {})", e.name, dump_expr(*e.args[0].value));
    case Expr::Kind::Binary: return fmt::format("({} {} {})", e.name, dump_expr(*e.args[0].value), dump_expr(*e.args[1].value));
    case Expr::Kind::Call: return fmt::format("(call {}{})", e.name, dump_args(e.args));
  }
  return "?";
}

std::string dump_ast(const Module& m) {
  std::string s;
  auto at = [](SourceLoc l) { return l.str(); };
  for (const auto& f : m.fns) s += fmt::format("(fn {} {} {})  @{}\n", f.name, dump_params(f.params), dump_expr(*f.body), at(f.loc));
  for (const auto& c : m.components) {
    s += fmt::format("(component {} {}  @{}\n", c.name, dump_params(c.params), at(c.loc));
    std::function<void(const std::vector<Stmt>&, const std::string&)> stmts = [&](const std::vector<Stmt>& body, const std::string& ind) {
      for (const auto& st : body) {
        if (st.kind == Stmt::Kind::Every || st.kind == Stmt::Kind::Inverse) {
          s += fmt::format("{}({}{}  @{}\n", ind, st.name, st.value ? " " + dump_expr(*st.value) : "", at(st.loc));
          stmts(st.body, ind + "  ");
          s += ind + ")\n";
          continue;
        }
        const char* k = st.kind == Stmt::Kind::State ? "state" : st.kind == Stmt::Kind::Let ? "let" : "assign";
        s += fmt::format("{}({} {} {})  @{}\n", ind, k, st.name, dump_expr(*st.value), at(st.loc));
      }
    };
    stmts(c.body, "  ");
    s += ")\n";
  }
  auto pipeline = [](const std::vector<Stage>& p) {
    std::string t;
    for (const auto& st : p) t += fmt::format(" ({} {}{})", st.role == Stage::Role::Rotate ? "rotate" : "stage", st.name, dump_args(st.args));
    return t;
  };
  for (const auto& o : m.optimizers) {
    s += fmt::format("(optimizer {} {}  @{}\n", o.name, dump_params(o.params), at(o.loc));
    for (const auto& r : o.routes) s += fmt::format("  (route {}{})  @{}\n", r.label(), pipeline(r.pipeline), at(r.loc));
    s += ")\n";
  }
  for (const auto& g : m.grids) {
    s += fmt::format("(grid {} {}  @{}\n", g.name, dump_params(g.params), at(g.loc));
    for (const auto& ax : g.axes) {
      s += fmt::format("  (axis {}\n", ax.name);
      for (const auto& a : ax.alts) s += fmt::format("    (alt {} {}{})\n", a.name, dump_params(a.params), pipeline(a.pipeline));
      s += "  )\n";
    }
    for (const auto& r : g.routes) s += fmt::format("  (route {}{})  @{}\n", r.label(), pipeline(r.pipeline), at(r.loc));
    for (const auto& c : g.cells)
      s += fmt::format("  (cell ({}) {}{}{}{})\n", fmt::join(c.coords, " "), dump_params(c.params), c.note.empty() ? "" : " \"" + c.note + "\"",
                       c.absent ? " absent" : "", pipeline(c.pipeline));
    for (const auto& sw : g.sweeps) s += fmt::format("  (sweep {} {})\n", sw.hparam, dump_expr(*sw.value));
    if (g.seeds) s += fmt::format("  (seeds {})\n", g.seeds);
    if (!g.baseline.empty()) s += fmt::format("  (baseline {})\n", fmt::join(g.baseline, " "));
    s += ")\n";
  }
  return s;
}

}  // namespace opal
