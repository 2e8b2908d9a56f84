// Fusion: partitions a graph into the fewest kernels the data dependencies allow.
//
// Every elementwise value belongs to the iteration space of its shape (full, rows, cols, or a
// square: left, right, small). Library ops (matmul, eigh, QR, ...) run as calls between
// kernels; their operands are stored by the kernels that compute them. Work needed only on
// the steps an every(N) region names is guarded, and skipped on the others.
// A kernel runs one space at one level; a value is available to a kernel of its own space at
// the level it is computed (it is recomputed there: elementwise work is cheaper than memory),
// and to other spaces or through a reduction one level later, via a temporary buffer. State
// reads and writes fuse into the kernels that use them, so an elementwise-only pipeline (AdamW)
// is one kernel that reads w, g and each state once and writes each once. A state write is
// delayed while any later kernel still reads the old value. Scalars of the parameter (bias
// corrections, reduced norms) are computed once per kernel before its loop.
#pragma once
#include "compiler/plan.h"

namespace opal::passes {
Plan fuse_elementwise(const ir::Graph& g);
}
