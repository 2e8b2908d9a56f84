// IR op -> host scalar op.
#include "compiler/exec/scalar_ops.h"

namespace opal {

using ir::Op;
using exec::ScalarOp;

std::optional<exec::ScalarOp> host_scalar_op(ir::Op op) {
  switch (op) {
    case Op::Neg: return ScalarOp::Neg;
    case Op::Not: return ScalarOp::Not;
    case Op::Sqrt: return ScalarOp::Sqrt;
    case Op::Abs: return ScalarOp::Abs;
    case Op::Sign: return ScalarOp::Sign;
    case Op::Exp: return ScalarOp::Exp;
    case Op::Log: return ScalarOp::Log;
    case Op::Cos: return ScalarOp::Cos;
    case Op::Sin: return ScalarOp::Sin;
    case Op::Tanh: return ScalarOp::Tanh;
    case Op::Floor: return ScalarOp::Floor;
    case Op::Bf16: return ScalarOp::Bf16;
    case Op::Add: return ScalarOp::Add;
    case Op::Sub: return ScalarOp::Sub;
    case Op::Mul: return ScalarOp::Mul;
    case Op::Div: return ScalarOp::Div;
    case Op::Pow: return ScalarOp::Pow;
    case Op::Min: return ScalarOp::Min;
    case Op::Max: return ScalarOp::Max;
    case Op::Mod: return ScalarOp::Mod;
    case Op::Lt: return ScalarOp::Lt;
    case Op::Le: return ScalarOp::Le;
    case Op::Gt: return ScalarOp::Gt;
    case Op::Ge: return ScalarOp::Ge;
    case Op::Eq: return ScalarOp::Eq;
    case Op::Ne: return ScalarOp::Ne;
    case Op::And: return ScalarOp::And;
    case Op::Or: return ScalarOp::Or;
    case Op::Select: return ScalarOp::Select;
    default: return std::nullopt;
  }
}

}  // namespace opal
