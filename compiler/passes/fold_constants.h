// Constant folding: evaluates every node whose operands are constants, applies algebraic
// identities that are exact in IEEE arithmetic (x*1, x+0, x-0, x/1, x^1, select on a constant
// condition, double negation), and merges the results through interning (so folding can expose
// further CSE). Returns the input unchanged when nothing folds.
#pragma once
#include "compiler/ir/ir.h"

namespace opal::passes {
ir::Graph fold_constants(const ir::Graph& g);
}
