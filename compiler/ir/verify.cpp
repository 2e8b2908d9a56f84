// The IR verifier, run after every pass.
#include <fmt/format.h>

#include "compiler/ir/ir.h"

namespace opal::ir {

std::string verify(const Graph& g) {
  std::vector<int> writes(g.slots.size(), 0);
  int param_writes = 0;
  for (uint32_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    auto where = [&] { return fmt::format("%{} ({})", i, op_name(n.op)); };
    if (n.n_operands != arity(n.op)) return fmt::format("{}: {} operands, expected {}", where(), n.n_operands, arity(n.op));
    Shape expect = Shape::Scalar;
    bool fits = true;
    Shape in[3];
    for (int k = 0; k < n.n_operands; ++k) {
      if (n.operands[k].v >= i) return fmt::format("{}: operand %{} does not precede its user", where(), n.operands[k].v);
      in[k] = g.nodes[n.operands[k].v].shape;
      if (fits) fits = try_broadcast(expect, in[k], expect);
    }
    switch (category(n.op)) {
      case Category::Leaf:
        if (n.op == Op::StateRead && (n.iattr < 0 || n.iattr >= (int64_t)g.slots.size())) return where() + ": no such slot";
        if (n.op == Op::StateRead && n.shape != g.slots[n.iattr].shape) return where() + ": shape differs from its slot";
        if (n.op == Op::HParam && (n.iattr < 0 || n.iattr >= (int64_t)g.hparams.size())) return where() + ": no such hyperparameter";
        if ((n.op == Op::Param || n.op == Op::Grad) && n.shape != Shape::Full) return where() + ": inputs are full tensors";
        if (n.op == Op::Eye && n.shape != Shape::Left && n.shape != Shape::Right) return where() + ": eye is left or right";
        if (n.op == Op::RandN && n.shape != Shape::Full) return where() + ": randn is full";
        break;
      case Category::Unary:
      case Category::Binary:
      case Category::Ternary:
        if (!fits) return where() + ": operand shapes do not broadcast";
        if (n.op == Op::Triu && !is_square(n.shape)) return where() + ": triu takes a square matrix";
        if (n.shape != expect) return fmt::format("{}: shape {} but operands broadcast to {}", where(), shape_name(n.shape), shape_name(expect));
        break;
      case Category::Reduce: {
        Shape in = g.nodes[n.operands[0].v].shape;
        if ((n.op == Op::RowSum || n.op == Op::ColSum) && in != Shape::Full) return where() + ": reduces a full tensor only";
        Shape out = n.op == Op::RowSum ? Shape::Rows : n.op == Op::ColSum ? Shape::Cols : Shape::Scalar;
        if (n.shape != out) return where() + ": wrong result shape";
        if (n.op == Op::Sum && in == Shape::Scalar) return where() + ": sum of a scalar";
        break;
      }
      case Category::Library:
      case Category::Macro: {
        Shape out;
        if (!library_shape(n.op, n.iattr, in, n.n_operands, out)) return where() + ": operand shapes do not fit";
        if (out != n.shape) return fmt::format("{}: shape {} but the operands give {}", where(), shape_name(n.shape), shape_name(out));
        break;
      }
      case Category::Region:
        if (in[1] != Shape::Scalar || !is_uniform(g, n.operands[1])) return where() + ": the guard's condition is a uniform scalar";
        if (n.shape != in[0]) return where() + ": a guard has its value's shape";
        break;
      case Category::Effect:
        if (n.op == Op::StateWriteIf && in[1] != Shape::Scalar) return where() + ": the condition is a scalar";
        if (n.op == Op::StateWrite || n.op == Op::StateWriteIf) {
          if (n.iattr < 0 || n.iattr >= (int64_t)g.slots.size()) return where() + ": no such slot";
          Shape b;
          if (!try_broadcast(g.nodes[n.operands[0].v].shape, g.slots[n.iattr].shape, b) || b != g.slots[n.iattr].shape)
            return where() + ": value does not fit its slot";
          if (++writes[n.iattr] > 1) return where() + ": slot written twice";
        } else if (n.op == Op::GlobalPut) {
          if (in[0] != Shape::Scalar) return where() + ": a share of a global sum is a scalar";
          if (n.iattr < 0 || n.iattr >= int64_t(g.n_globals)) return where() + ": no such global sum";
        } else if (++param_writes > 1) {
          return where() + ": parameter written twice";
        }
        break;
    }
  }
  for (ValueId e : g.effects)
    if (e.v >= g.nodes.size() || category(g.nodes[e.v].op) != Category::Effect) return fmt::format("effect list names %{}, not an effect", e.v);
  return {};
}

}  // namespace opal::ir
