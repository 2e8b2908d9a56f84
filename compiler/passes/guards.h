// Guard inference: the steps on which each value is needed. Walking users before operands,
// each value gets the guard under which it is needed: a region op guard(v, cond) (an every/when
// block's assignment) needs v only when cond holds, as does a `state_write_if` its value; a
// `select` with a uniform condition needs each branch only on its side; a value needed under
// different guards is needed always. Library calls and
// kernels whose sinks are all guarded then run only when their guard holds (every(N)
// refreshes: the eigendecompositions of an every(100) basis run once per 100 steps).
#pragma once
#include <vector>

#include "compiler/plan.h"

namespace opal::passes {

// One guard per node of `g` (by value id). `skip_writes` false: conditional state writes are
// never guarded (conditional stores in whichever kernel computes their value; their values are
// then computed on every step): the fallback for routes whose guarded writes cannot be ordered.
std::vector<Guard> infer_guards(const ir::Graph& g, bool skip_writes = true);

// The graph kernels are formed from: `g` with its region ops replaced by their values, and the
// guard of each of its nodes, inferred while the regions were still there.
struct GuardedGraph {
  ir::Graph graph;
  std::vector<Guard> guards;
};
GuardedGraph lower_regions(const ir::Graph& g, bool skip_writes = true);

}  // namespace opal::passes
