// The constant evaluator (see const_eval.h).
#include "lang/const_eval.h"

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

namespace opal {

std::optional<double> eval_constant(const Expr& e, const ConstantNames& names) {
  switch (e.kind) {
    case Expr::Kind::Number: return e.number;
    case Expr::Kind::Name:
      if (e.name == "true") return 1.0;
      if (e.name == "false") return 0.0;
      if (e.name == "pi") return std::numbers::pi;
      if (names) return names(e.name);
      return std::nullopt;
    case Expr::Kind::Unary: {
      auto a = eval_constant(*e.args[0].value, names);
      if (!a) return std::nullopt;
      return e.name == "-" ? -*a : double(*a == 0);
    }
    case Expr::Kind::Binary: {
      auto a = eval_constant(*e.args[0].value, names), b = eval_constant(*e.args[1].value, names);
      if (!a || !b) return std::nullopt;
      const std::string& op = e.name;
      if (op == "+") return *a + *b;
      if (op == "-") return *a - *b;
      if (op == "*") return *a * *b;
      if (op == "/") return *a / *b;
      if (op == "^") return std::pow(*a, *b);
      if (op == "<") return double(*a < *b);
      if (op == "<=") return double(*a <= *b);
      if (op == ">") return double(*a > *b);
      if (op == ">=") return double(*a >= *b);
      if (op == "==") return double(*a == *b);
      if (op == "!=") return double(*a != *b);
      if (op == "&&") return double(*a != 0 && *b != 0);
      if (op == "||") return double(*a != 0 || *b != 0);
      return std::nullopt;
    }
    case Expr::Kind::Call: {
      std::vector<double> v;
      for (const auto& a : e.args) {
        auto x = a.name.empty() ? eval_constant(*a.value, names) : std::nullopt;
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

std::optional<double> eval_range_end(const Expr& e) {
  return eval_constant(e, [](const std::string& n) -> std::optional<double> {
    if (n == "inf") return std::numeric_limits<double>::infinity();
    return std::nullopt;
  });
}

std::optional<Interval> param_interval(const Param& p) {
  if (!p.range) return std::nullopt;
  auto lo = eval_range_end(*p.range->lo), hi = eval_range_end(*p.range->hi);
  if (!lo || !hi) return std::nullopt;
  return Interval{*lo, *hi, p.range->lo_open, p.range->hi_open, p.range->whole};
}

}  // namespace opal
