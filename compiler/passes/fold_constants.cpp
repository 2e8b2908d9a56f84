// Constant folding and exact algebraic identities.
#include "compiler/passes/fold_constants.h"

#include <cmath>
#include <optional>

#include "compiler/passes/rebuild.h"

namespace opal::passes {

namespace {
using ir::Op;

std::optional<double> eval(Op op, const double* a) {
  switch (op) {
    case Op::Neg: return -a[0];
    case Op::Not: return double(a[0] == 0);
    case Op::Sqrt: return std::sqrt(a[0]);
    case Op::Abs: return std::fabs(a[0]);
    case Op::Sign: return double((a[0] > 0) - (a[0] < 0));
    case Op::Exp: return std::exp(a[0]);
    case Op::Log: return std::log(a[0]);
    case Op::Cos: return std::cos(a[0]);
    case Op::Sin: return std::sin(a[0]);
    case Op::Tanh: return std::tanh(a[0]);
    case Op::Floor: return std::floor(a[0]);
    case Op::Add: return a[0] + a[1];
    case Op::Sub: return a[0] - a[1];
    case Op::Mul: return a[0] * a[1];
    case Op::Div: return a[0] / a[1];
    case Op::Pow: return std::pow(a[0], a[1]);
    case Op::Min: return std::fmin(a[0], a[1]);
    case Op::Max: return std::fmax(a[0], a[1]);
    case Op::Lt: return double(a[0] < a[1]);
    case Op::Le: return double(a[0] <= a[1]);
    case Op::Gt: return double(a[0] > a[1]);
    case Op::Ge: return double(a[0] >= a[1]);
    case Op::Eq: return double(a[0] == a[1]);
    case Op::Ne: return double(a[0] != a[1]);
    case Op::And: return double(a[0] != 0 && a[1] != 0);
    case Op::Or: return double(a[0] != 0 || a[1] != 0);
    case Op::Select: return a[0] != 0 ? a[1] : a[2];
    default: return std::nullopt;
  }
}
}  // namespace

ir::Graph fold_constants(const ir::Graph& g) {
  return rebuild(g, [](ir::Builder& b, const ir::Node& n, const ir::ValueId* ops) -> ir::ValueId {
    const ir::Graph& out = b.graph();
    auto is_const = [&](ir::ValueId v, double c) { return out.at(v).op == Op::Const && out.at(v).fattr == c; };
    auto same_shape = [&](ir::ValueId v) { return out.at(v).shape == n.shape; };
    if (ir::is_elementwise(n.op)) {
      double vals[3];
      bool all = true;
      for (int i = 0; i < n.n_operands; ++i) {
        const ir::Node& o = out.at(ops[i]);
        if (o.op != Op::Const) all = false;
        else vals[i] = o.fattr;
      }
      if (all && n.shape == ir::Shape::Scalar)
        if (auto v = eval(n.op, vals)) return b.constant(*v, n.loc);
      // identities; each keeps the result's shape, so broadcasting is never lost
      switch (n.op) {
        case Op::Mul:
          if (is_const(ops[1], 1) && same_shape(ops[0])) return ops[0];
          if (is_const(ops[0], 1) && same_shape(ops[1])) return ops[1];
          break;
        case Op::Add:
          if (is_const(ops[1], 0) && same_shape(ops[0])) return ops[0];
          if (is_const(ops[0], 0) && same_shape(ops[1])) return ops[1];
          break;
        case Op::Sub:
        case Op::Div:
        case Op::Pow:
          if (is_const(ops[1], n.op == Op::Sub ? 0 : 1) && same_shape(ops[0])) return ops[0];
          break;
        case Op::Neg:
          if (out.at(ops[0]).op == Op::Neg) return out.at(ops[0]).operands[0];
          break;
        case Op::Select:
          if (out.at(ops[0]).op == Op::Const) {
            ir::ValueId pick = out.at(ops[0]).fattr != 0 ? ops[1] : ops[2];
            if (same_shape(pick)) return pick;
          }
          if (ops[1] == ops[2] && same_shape(ops[1])) return ops[1];
          break;
        default: break;
      }
    }
    return {};  // keep the node
  });
}

}  // namespace opal::passes
