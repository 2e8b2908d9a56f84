// A row-major GemmBatch as the column-major call cuBLAS takes: row-major C = op(A) op(B) is
// column-major C^T = op(B)^T op(A)^T, so the first cuBLAS operand is B. Header-only, shared by
// the CUDA backend and the test that checks the mapping on the CPU (tests/unit/backend_test).
#pragma once
#include "runtime/backend.h"

namespace opal::cuda {

struct ColumnMajorGemm {
  bool trans_first, trans_second;  // op on B, op on A
  long long m, n, k;               // the column-major result is m x n (= row-major C's n x m)
  long long ld_first, ld_second, ldc;
};

inline ColumnMajorGemm column_major(const GemmBatch& b) { return {b.tb, b.ta, b.n, b.m, b.k, b.tb ? b.k : b.n, b.ta ? b.m : b.k, b.n}; }

}  // namespace opal::cuda
