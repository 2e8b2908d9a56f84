// Macro expansion: replaces each Newton-Schulz macro-op by its normalization X / (|X|_F + eps),
// elementwise ops that fuse with what comes before, and one NsSteps library call for the
// quintic steps, which a backend runs as three GEMMs a step with the step's scalars in their
// epilogues (exec::NsSteps: cuBLAS's alpha/beta on a GPU). bf16 compute rounds X and each GEMM's
// result to bfloat16 once, as torch's addmm form of Muon's iteration does.
#pragma once
#include <array>
#include <vector>

#include "compiler/ir/ir.h"

namespace opal::passes {

ir::Graph expand_macros(const ir::Graph& g);

// (a, b, c) of each quintic step for coefficient set 0 (Keller Jordan: one triple) or 1 (Jiacheng
// You's per-step triples, as the seed paper's code; steps past the fifth repeat the last).
std::vector<std::array<double, 3>> ns_coefficients(int set, int steps);

}  // namespace opal::passes
