// Constant folding: evaluates every node whose operands are constants, applies algebraic
// identities that are exact in IEEE arithmetic (x*1, x+0, x-0, x/1, x^1, select on a constant
// condition, double negation), and merges the results through interning (so folding can expose
// further CSE). Returns the input unchanged when nothing folds.
#pragma once
#include "compiler/ir/ir.h"

#include <optional>

namespace opal::passes {
ir::Graph fold_constants(const ir::Graph& g);
// The value of an elementwise op on constant operands (nullopt for other ops).
std::optional<double> eval_op(ir::Op op, const double* operands);
// The value of a scalar subgraph of constants, if it is one.
std::optional<double> constant_value(const ir::Graph& g, ir::ValueId v);

}
