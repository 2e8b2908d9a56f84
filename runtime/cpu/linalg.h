// The CPU backend's matrix work: one function per IR library op, over row-major float
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

#include "compiler/ir/ir.h"

namespace opal::cpu {

// Rows and columns of a value of shape `s` for a parameter of rows x cols.
void shape_dims(ir::Shape s, long long rows, long long cols, long long& r, long long& c);

// Runs library op `n` for one tensor: `in` are its operands' buffers, `out` its result buffer.
// Scalar operands (uniform) arrive evaluated in `scalars`, by operand position.
void run_library_op(const ir::Node& n, const ir::Shape* in_shapes, const float* const* in, const double* scalars, float* out, long long rows,
                    long long cols);

// C = op(A) op(B), row-major, C m x n, inner dimension k (bf16: operands and result rounded),
// exactly as the MatMul/Gram/GramApply ops compute it.
void matmul(const float* A, bool ta, const float* B, bool tb, long long m, long long n, long long k, bool bf16, float* C);

// The canonical form of a raw decomposition (ascending values, eigenvectors as columns,
// row-major), from any solver: Eigen here, cuSOLVER on the GPU. Non-finite input gives NaN.
void canonicalize_eigh(long long n, const double* raw_values, const double* raw_vectors, bool descending, double* values, double* vectors);

// The result of an Eigh or InvRoot node from the raw decomposition of its n x n operand
// (`scalars` as for run_library_op).
void finish_eigh_op(const ir::Node& n, long long r0, const double* raw_values, const double* raw_vectors, const double* scalars, float* out);

}  // namespace opal::cpu
