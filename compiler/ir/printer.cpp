// Textual IR: one node a line, with its source location.
#include <fmt/format.h>

#include "compiler/ir/attrs.h"
#include "compiler/ir/ir.h"

namespace opal::ir {

std::string print_node(const Graph& g, ValueId id, bool locations) {
  const Node& n = g.at(id);
  std::string s = fmt::format("%{} = {}", id.v, op_name(n.op));
  switch (n.op) {
    case Op::Const: s += fmt::format(" {}", n.fattr); break;
    case Op::HParam: s += fmt::format(" {}", n.iattr < (int64_t)g.hparams.size() ? g.hparams[n.iattr] : "?"); break;
    case Op::Dim: s += dim_kind(n) == DimKind::Rows ? " rows" : dim_kind(n) == DimKind::Cols ? " cols" : " numel"; break;
    case Op::StateRead:
    case Op::StateWrite:
    case Op::StateWriteIf: s += fmt::format(" {}", n.iattr < (int64_t)g.slots.size() ? g.slots[n.iattr].name : "?"); break;
    case Op::MatMul:
    case Op::Gram:
    case Op::GramApply:
      if (matmul_attrs(n).ta) s += " ta";
      if (matmul_attrs(n).tb) s += " tb";
      if (matmul_attrs(n).bf16) s += " bf16";
      break;
    case Op::Eigh:
    case Op::Argsort: s += order_attrs(n).descending ? " desc" : " asc"; break;
    case Op::InvRoot: s += fmt::format(" p={}{}", inv_root_attrs(n).p, inv_root_attrs(n).damped ? " damped" : ""); break;
    case Op::NewtonSchulz:
    case Op::NsSteps: {
      const NewtonSchulzAttrs a = newton_schulz_attrs(n);
      s += fmt::format(" steps={} coeffs={}{}", a.steps, a.coeffs ? "you" : "keller", a.bf16 ? " bf16" : "");
    } break;
    default: break;
  }
  bool named = n.op == Op::StateWrite || n.op == Op::StateWriteIf;
  for (int i = 0; i < n.n_operands; ++i) s += fmt::format("{}%{}", i == 0 && !named ? " " : ", ", n.operands[i].v);
  s += fmt::format(" : {}", shape_name(n.shape));
  if (locations && n.loc.valid()) s += "   @" + n.loc.short_str();
  return s;
}

std::string print(const Graph& g, bool locations) {
  std::string s = fmt::format("graph {}", g.name);
  if (g.matrix_only) s += " (matrix only)";
  s += "\n";
  for (size_t i = 0; i < g.slots.size(); ++i) s += fmt::format("  slot {} {} : {}\n", i, g.slots[i].name, shape_name(g.slots[i].shape));
  for (uint32_t i = 0; i < g.nodes.size(); ++i) s += "  " + print_node(g, ValueId{i}, locations) + "\n";
  return s;
}

}  // namespace opal::ir
