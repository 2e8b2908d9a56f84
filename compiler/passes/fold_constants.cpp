// Constant folding and exact algebraic identities.
#include "compiler/passes/fold_constants.h"

#include <cmath>
#include <optional>

#include "compiler/exec/scalar_ops.h"
#include "compiler/passes/rebuild.h"

namespace opal::passes {

using ir::Op;

std::optional<double> eval_op(Op op, const double* a) {
  auto s = host_scalar_op(op);
  if (!s) return std::nullopt;
  return exec::eval_scalar(*s, a);
}

std::optional<double> constant_value(const ir::Graph& g, ir::ValueId v) {
  const ir::Node& n = g.at(v);
  if (n.op == Op::Const) return n.fattr;
  if (n.shape != ir::Shape::Scalar || !ir::is_elementwise(n.op)) return std::nullopt;
  double a[3];
  for (int i = 0; i < n.n_operands; ++i) {
    auto x = constant_value(g, n.operands[i]);
    if (!x) return std::nullopt;
    a[i] = *x;
  }
  return eval_op(n.op, a);
}

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
        if (auto v = eval_op(n.op, vals)) return b.constant(*v, n.loc);
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
        case Op::And:  // false && x, x && false (logical values are exactly 0 or 1)
          if (n.shape == ir::Shape::Scalar && (is_const(ops[0], 0) || is_const(ops[1], 0))) return b.constant(0, n.loc);
          break;
        case Op::Or:
          if (n.shape == ir::Shape::Scalar &&
              ((out.at(ops[0]).op == Op::Const && out.at(ops[0]).fattr != 0) || (out.at(ops[1]).op == Op::Const && out.at(ops[1]).fattr != 0)))
            return b.constant(1, n.loc);
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
    // a region whose condition is a constant: always (the value itself) or never (the select
    // around it picks the other side)
    if (n.op == Op::Guard && out.at(ops[1]).op == Op::Const && out.at(ops[1]).fattr != 0) return ops[0];
    // writing back the value just read is a conditional write: no copy on the other steps
    if (n.op == Op::StateWrite) {
      const ir::Node& v = out.at(ops[0]);
      if (v.op == Op::Select && v.shape == n.shape) {
        const ir::Node& keep = out.at(v.operands[2]);
        if (keep.op == Op::StateRead && keep.iattr == n.iattr)
          return b.add(Op::StateWriteIf, n.shape, {v.operands[1], v.operands[0]}, n.iattr, 0, n.loc);
      }
    }
    // a write under a constant condition: always (a plain write) or never (dropped)
    if (n.op == Op::StateWriteIf && out.at(ops[1]).op == Op::Const) {
      if (out.at(ops[1]).fattr == 0) return b.constant(0);  // the slot keeps its value
      return b.add(Op::StateWrite, n.shape, {ops[0]}, n.iattr, 0, n.loc);
    }
    return {};  // keep the node
  });
}

}  // namespace opal::passes
