// The host scalar op computing an elementwise IR op (nullopt for the others): with
// exec::eval_scalar, the one host meaning of each op, used by the executable description's
// scalar programs and by constant folding alike.
#pragma once
#include <optional>

#include "compiler/exec/description.h"
#include "compiler/ir/ir.h"

namespace opal {

std::optional<exec::ScalarOp> host_scalar_op(ir::Op op);

}  // namespace opal
