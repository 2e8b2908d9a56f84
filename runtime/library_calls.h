// Library calls (matmul, eigh, qr, ...) of one route, on any backend: the backend runs them
// where it implements them whole (the CPU backend: Eigen, in place; the CUDA one: an eigenbasis
// refresh's eigh, inv_root, qr and sorting); otherwise through its batched GEMM (cuBLAS) or
// eigensolver (a backend that has only that: its raw result made canonical here), tensors of
// equal shape in one call, and on host copies for the rest (triangular solves, the norm bound).
#pragma once
#include <vector>

#include "compiler/exec/description.h"
#include "runtime/backend.h"

namespace opal {

void run_library_call(Backend& backend, const exec::LibraryCall& call, const std::vector<CallTensor>& tensors);

}  // namespace opal
