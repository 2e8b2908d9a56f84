// Macro expansion: replaces each Newton-Schulz macro-op by its iteration written in matmuls
// (Gram, MatMul, GramApply) and elementwise ops, so that fusion, batching and precision are
// decided by the ordinary passes and backends. bf16 compute rounds every matmul operand and
// result and every elementwise intermediate to bfloat16 (Keller Jordan's Muon runs the whole
// iteration in bf16).
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
