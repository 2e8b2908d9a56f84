// Guard inference: the steps on which each value is needed. Walking users before operands,
// each value gets the guard under which it is needed: a `state_write_if` needs its value only
// when its uniform condition holds, a `select` with a uniform condition needs each branch only
// on its side; a value needed under different guards is needed always. Library calls and
// kernels whose sinks are all guarded then run only when their guard holds (every(N)
// refreshes: the eigendecompositions of an every(100) basis run once per 100 steps).
#pragma once
#include <vector>

#include "compiler/plan.h"

namespace opal::passes {

// One guard per node of `g` (by value id).
std::vector<Guard> infer_guards(const ir::Graph& g);

}  // namespace opal::passes
