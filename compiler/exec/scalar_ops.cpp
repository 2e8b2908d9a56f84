// IR op -> host scalar op.
#include "compiler/exec/scalar_ops.h"

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

}  // namespace opal
