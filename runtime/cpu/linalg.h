// The CPU backend's matrix work: every library call of the executable description, over row-major float
// buffers, through Eigen. Symmetric eigendecompositions run in double precision.
//
// Canonical eigenbases (so that results do not depend on solver noise):
//  - eigenvalues ascending (descending on request);
//  - eigenvalues with |lambda| <= tol = n * eps_f32 * max|lambda| are the numerical null space:
//    their eigenvectors are replaced by the Gram-Schmidt orthonormalization of the projections
//    P e_1, P e_2, ... of the standard basis onto that space (P its projector);
//  - the eigenvalues returned are soft-thresholded, sign(lambda) max(|lambda| - tol, 0): noise
//    is exactly 0 and matrix functions (inv_root) stay continuous at the threshold;
//  - every other eigenvector is signed so that its largest-magnitude entry is positive.
#pragma once
#include <cstdint>
#include <vector>

#include "compiler/exec/description.h"

namespace opal::cpu {

// Runs `call` for one tensor of rows x cols: `in` are its operands' buffers (null for scalar
// operands, read from `regs`, the tensor's scalar registers), `out` its result buffer.
void run_call(const exec::LibraryCall& call, const float* const* in, const double* regs, float* out, long long rows, long long cols);

// C = op(A) op(B), row-major, C m x n, inner dimension k (bf16: operands and result rounded),
// exactly as the MatMul/Gram/GramApply ops compute it.
void matmul(const float* A, bool ta, const float* B, bool tb, long long m, long long n, long long k, bool bf16, float* C);

// The canonical form of a raw decomposition (ascending values, eigenvectors as columns,
// row-major), from any solver: Eigen here, cuSOLVER on the GPU. Non-finite input gives NaN.
void canonicalize_eigh(long long n, const double* raw_values, const double* raw_vectors, bool descending, double* values, double* vectors);

// The result of an Eigh or InvRoot call from the raw decomposition of its n x n operand (`regs`
// as for run_call: InvRoot's eps).
void finish_eigh_call(const exec::LibraryCall& call, long long n, const double* raw_values, const double* raw_vectors, const double* regs,
                      float* out);

// The singular values of a row-major rows x cols matrix, descending: the square roots of the
// eigenvalues of its smaller Gram matrix (A A^T or A^T A; double precision: a value below
// ~1e-8 of the largest is noise). For diagnostics, not for an optimizer's step.
std::vector<double> singular_values(const double* a, long long rows, long long cols);

}  // namespace opal::cpu
