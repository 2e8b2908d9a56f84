// IR scalars -> host scalar programs.
#include "compiler/exec/scalar_ops.h"

#include <cstring>

#include "compiler/ir/attrs.h"
#include "support/check.h"

namespace opal {

using exec::ScalarOp;
using ir::Op;

// generated from ops.def: an op marked Host has the host scalar op of its own name
std::optional<exec::ScalarOp> host_scalar_op(ir::Op op) {
  switch (op) {
#define OPAL_HOST_None(name)
#define OPAL_HOST_Host(name) \
  case Op::name:             \
    return ScalarOp::name;
#define OPAL_OP(name, cat, arity, str, spelling, c_double, c_float, host) OPAL_HOST_##host(name)
#include "compiler/ir/ops.def"
#undef OPAL_OP
#undef OPAL_HOST_Host
#undef OPAL_HOST_None
    default: return std::nullopt;
  }
}

namespace {
std::tuple<int, uint32_t, uint32_t, uint32_t, uint64_t> key(const exec::ScalarInstr& in) {
  uint64_t bits = 0;  // the constant's bits: NaN equals itself, -0 is not 0
  std::memcpy(&bits, &in.imm, sizeof bits);
  return {int(in.op), in.a, in.b, in.c, bits};
}
}  // namespace

ScalarCompiler::ScalarCompiler(const ir::Graph& g, exec::ScalarProgram& out, bool share) : g_(g), prog_(out), share_(share) {
  if (share_)
    for (size_t i = 0; i < prog_.code.size(); ++i) equal_.try_emplace(key(prog_.code[i]), uint32_t(i));
}

uint32_t ScalarCompiler::push(const exec::ScalarInstr& in) {
  if (share_) {
    auto [it, fresh] = equal_.try_emplace(key(in), uint32_t(prog_.code.size()));
    if (!fresh) return it->second;
  }
  prog_.code.push_back(in);
  return uint32_t(prog_.code.size() - 1);
}

uint32_t ScalarCompiler::reg(ir::ValueId v) {
  if (auto it = regs_.find(v.v); it != regs_.end()) return it->second;
  const ir::Node& n = g_.at(v);
  OPAL_CHECK(n.shape == ir::Shape::Scalar, "host scalar %%%u is not a scalar", v.v);
  exec::ScalarInstr in;
  switch (n.op) {
    case Op::Const: in.op = ScalarOp::Const, in.imm = n.fattr; break;
    case Op::HParam: in.op = ScalarOp::HParam, in.a = uint32_t(n.iattr); break;
    case Op::Step: in.op = ScalarOp::Step; break;
    case Op::Dim: {
      const ir::DimKind k = ir::dim_kind(n);
      in.op = k == ir::DimKind::Rows ? ScalarOp::Rows : k == ir::DimKind::Cols ? ScalarOp::Cols : ScalarOp::Numel;
      break;
    }
    default: {
      OPAL_CHECK(ir::is_elementwise(n.op), "host scalar %%%u is a %s", v.v, ir::op_name(n.op));
      in.op = *host_scalar_op(n.op);
      uint32_t ops[3] = {0, 0, 0};
      for (int i = 0; i < n.n_operands; ++i) ops[i] = reg(n.operands[i]);
      in.a = ops[0], in.b = ops[1], in.c = ops[2];
    }
  }
  return regs_[v.v] = push(in);
}

exec::Guard ScalarCompiler::guard(const Guard& gd) {
  exec::Guard out;
  for (const auto& l : gd.all) out.all.push_back({reg(l.cond), l.negated});
  return out;
}

}  // namespace opal
