// opal routes.
#include "driver/routes.h"

#include <cmath>

#include <fmt/format.h>

#include "lang/ast.h"
#include "compiler/exec/describe.h"

namespace opal {

namespace {

// Evaluates a scale expression made of numbers, rows, cols, numel and arithmetic.
std::optional<double> eval_sized(const Expr& e, double rows, double cols) {
  switch (e.kind) {
    case Expr::Kind::Number: return e.number;
    case Expr::Kind::Name:
      if (e.name == "rows") return rows;
      if (e.name == "cols") return cols;
      if (e.name == "numel") return rows * cols;
      return std::nullopt;
    case Expr::Kind::Unary: {
      auto a = eval_sized(*e.args[0].value, rows, cols);
      if (!a || e.name != "-") return std::nullopt;
      return -*a;
    }
    case Expr::Kind::Binary: {
      auto a = eval_sized(*e.args[0].value, rows, cols), b = eval_sized(*e.args[1].value, rows, cols);
      if (!a || !b) return std::nullopt;
      if (e.name == "+") return *a + *b;
      if (e.name == "-") return *a - *b;
      if (e.name == "*") return *a * *b;
      if (e.name == "/") return *a / *b;
      if (e.name == "^") return std::pow(*a, *b);
      return std::nullopt;
    }
    case Expr::Kind::Call: {
      std::vector<double> v;
      for (const auto& a : e.args) {
        auto x = eval_sized(*a.value, rows, cols);
        if (!x) return std::nullopt;
        v.push_back(*x);
      }
      if (e.name == "sqrt" && v.size() == 1) return std::sqrt(v[0]);
      if (e.name == "max" && v.size() == 2) return std::max(v[0], v[1]);
      if (e.name == "min" && v.size() == 2) return std::min(v[0], v[1]);
      return std::nullopt;
    }
  }
  return std::nullopt;
}

// an expression as its source text
std::string text(const Expr& e) {
  if (e.loc.valid() && e.loc.offset + e.loc.length <= e.loc.file->text().size()) return std::string(e.loc.file->text().substr(e.loc.offset, e.loc.length));
  return dump_expr(e);
}

}  // namespace

std::vector<RouteInfo> describe_routes(const Optimizer& opt, const CompiledOptimizer& co) {
  std::vector<RouteInfo> out;
  const exec::Description& d = opt.description();
  for (size_t i = 0; i < opt.num_params(); ++i) {
    const std::string& name = opt.param_name(i);
    RouteInfo r;
    r.param = name;
    r.shape = opt.param_shape(name);
    r.route = opt.route_of(name);
    int64_t numel = 1;
    for (auto d : r.shape) numel *= d;
    const int64_t rows = r.shape.size() >= 2 ? r.shape[0] : 1, cols = numel / rows;
    r.view = fmt::format("{} {} x {}", r.shape.size() >= 2 ? "matrix" : "vector", rows, cols);
    for (size_t i = 0; i < d.routes.size(); ++i)
      if (d.routes[i].label == r.route) {
        r.pipeline = d.routes[i].pipeline;
        const RouteStep& last = co.routes.at(i).path.back();
        for (const auto& s : last.optimizer->routes[last.route].pipeline)
          if (s.name == "scale" && s.args.size() == 1)
            r.scales.push_back({text(*s.args[0].value), eval_sized(*s.args[0].value, double(rows), double(cols))});
        break;
      }
    for (const auto& slot : opt.slots(name)) {
      auto shape = opt.state_shape(name, slot);
      int64_t n = 1;
      for (auto d : shape) n *= d;
      r.state_bytes += n * 4;
      r.slots.push_back(fmt::format("{} [{}]", slot, fmt::join(shape, ", ")));
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string format_routes(const std::vector<RouteInfo>& routes) {
  std::string s;
  int64_t total = 0;
  for (const auto& r : routes) {
    s += fmt::format("{} [{}]\n", r.param, fmt::join(r.shape, ", "));
    s += fmt::format("  route:    {}\n  view:     {}\n  pipeline: {}\n", r.route, r.view, r.pipeline);
    for (const auto& sc : r.scales)
      s += sc.value ? fmt::format("  scale:    {} = {:.6g}\n", sc.expr, *sc.value) : fmt::format("  scale:    {}\n", sc.expr);
    s += fmt::format("  state:    {} ({} bytes)\n", r.slots.empty() ? "none" : fmt::format("{}", fmt::join(r.slots, ", ")), r.state_bytes);
    total += r.state_bytes;
  }
  s += fmt::format("{} parameters, {} bytes of optimizer state\n", routes.size(), total);
  return s;
}

}  // namespace opal
