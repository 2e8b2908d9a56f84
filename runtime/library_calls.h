// Library calls (matmul, eigh, qr, ...) of one route, on any backend: the backend runs them
// where it implements them whole (the CPU backend: Eigen, in place; the CUDA one: diag, argsort
// and the permutations, with kernels of its own); otherwise through its batched GEMM and
// eigendecomposition (cuBLAS, cuSOLVER), tensors of equal shape in one call, and on host copies
// for the rest (QR, triangular solves, the norm bound).
#pragma once
#include <vector>

#include "compiler/exec/description.h"
#include "runtime/backend.h"

namespace opal {

void run_library_call(Backend& backend, const exec::LibraryCall& call, const std::vector<CallTensor>& tensors);

}  // namespace opal
