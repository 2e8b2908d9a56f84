// The emulator's cuBLAS and cuSOLVER: the GEMMs, symmetric eigensolvers and QR libopal_cuda.so
// calls, column-major as the real libraries are (so the backend's row-major mapping is tested),
// on device memory only (a host pointer is an error, as on a device), with their workspace
// sizes checked.
#include <cublas_v2.h>
#include <cusolverDn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include <Eigen/Eigenvalues>
#include <Eigen/QR>

#include "support/bf16.h"
#include "tests/cuda_emu/memory.h"

namespace {

using opal::emu::is_device;
using opal::emu::stream_alive;

// A cuBLAS or cuSOLVER handle: the stream its calls go on.
struct Handle {
  cudaStream_t stream = nullptr;
};
bool on_live_stream(const void* handle) { return stream_alive(static_cast<const Handle*>(handle)->stream); }
struct JacobiInfo {};

bool complain(const char* what) {
  std::fprintf(stderr, "[cuda emulator] %s\n", what);
  return false;
}

float load(const void* p, cudaDataType t, long long i) {
  if (t == CUDA_R_32F) return static_cast<const float*>(p)[i];
  const uint32_t b = uint32_t(static_cast<const uint16_t*>(p)[i]) << 16;  // CUDA_R_16BF
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// bf16 bits, rounded to nearest even (a NaN stays a quiet NaN)
uint16_t to_bf16(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return OPAL_BF16_IS_NAN(b) ? uint16_t((b >> 16) | 0x40u) : uint16_t(OPAL_BF16_ROUND(b) >> 16);
}

// C = alpha op(A) op(B) + beta C, column-major, f32 accumulation in k order.
cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* alpha, const void* A, cudaDataType at, int lda,
                    const void* B, cudaDataType bt, int ldb, const void* beta, void* C, cudaDataType ct, int ldc) {
  if (m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n) || ldc < m || lda < 1 || ldb < 1 || ldc < 1)
    return complain("cublasGemmEx: a size or leading dimension is invalid"), CUBLAS_STATUS_INVALID_VALUE;
  if ((at != CUDA_R_32F && at != CUDA_R_16BF) || bt != at || (ct != CUDA_R_32F && ct != at))
    return complain("cublasGemmEx: operand types the emulator does not have"), CUBLAS_STATUS_NOT_SUPPORTED;
  const size_t es = at == CUDA_R_32F ? 4 : 2, cs = ct == CUDA_R_32F ? 4 : 2;
  const long long a_cols = ta == CUBLAS_OP_N ? k : m, b_cols = tb == CUBLAS_OP_N ? n : k;
  if (!is_device(A, size_t(lda) * size_t(a_cols) * es) || !is_device(B, size_t(ldb) * size_t(b_cols) * es) ||
      !is_device(C, size_t(ldc) * size_t(n) * cs))
    return complain("cublasGemmEx: an operand is not (wholly) in device memory"), CUBLAS_STATUS_INVALID_VALUE;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      float s = 0.f;
      for (int l = 0; l < k; ++l) {
        const float a = ta == CUBLAS_OP_N ? load(A, at, i + (long long)l * lda) : load(A, at, l + (long long)i * lda);
        const float b = tb == CUBLAS_OP_N ? load(B, bt, l + (long long)j * ldb) : load(B, bt, j + (long long)l * ldb);
        s += a * b;
      }
      const long long at_c = i + (long long)j * ldc;
      const float v = be == 0.f ? al * s : al * s + be * load(C, ct, at_c);
      if (ct == CUDA_R_32F) static_cast<float*>(C)[at_c] = v;
      else static_cast<uint16_t*>(C)[at_c] = to_bf16(v);
    }
  return CUBLAS_STATUS_SUCCESS;
}

// The symmetric eigensystem of the lower triangle of column-major A (n x n, lda): eigenvectors
// into A's columns, values ascending into W; info > 0 where the matrix is not finite.
void eigh(int n, double* A, int lda, double* W, int* info) {
  Eigen::MatrixXd S(n, n);
  bool finite = true;
  for (int j = 0; j < n; ++j)
    for (int i = j; i < n; ++i) {
      S(i, j) = S(j, i) = A[i + (long long)j * lda];
      finite = finite && std::isfinite(S(i, j));
    }
  if (!finite) {
    *info = n + 1;
    return;
  }
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(S);
  // Another solver's answer, as valid: every other eigenvector negated, and pairs of vectors of
  // the numerical null space (|lambda| <= 1e-9 max|lambda|) rotated by 30 degrees into another
  // basis of it. The backend must make both canonical to agree with the CPU.
  Eigen::MatrixXd V = es.eigenvectors();
  for (int j = 1; j < n; j += 2) V.col(j) = -V.col(j);
  const double mx = es.eigenvalues().cwiseAbs().maxCoeff();
  for (int j = 0; j + 1 < n; ++j)
    if (std::abs(es.eigenvalues()(j)) <= 1e-9 * mx && std::abs(es.eigenvalues()(j + 1)) <= 1e-9 * mx) {
      const Eigen::VectorXd a = V.col(j), b = V.col(j + 1);
      V.col(j) = std::sqrt(0.75) * a + 0.5 * b;
      V.col(j + 1) = -0.5 * a + std::sqrt(0.75) * b;
      ++j;
    }
  for (int j = 0; j < n; ++j) {
    W[j] = es.eigenvalues()(j);
    for (int i = 0; i < n; ++i) A[i + (long long)j * lda] = V(i, j);
  }
  *info = 0;
}

int eigh_work(int n) { return 2 * n * n + 6 * n + 1; }

}  // namespace

cublasStatus_t cublasCreate_v2(cublasHandle_t* h) {
  *h = reinterpret_cast<cublasHandle_t>(new Handle);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
  delete reinterpret_cast<Handle*>(h);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
  reinterpret_cast<Handle*>(h)->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusString(cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_ERROR (CUDA emulator)";
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* alpha, const void* A,
                            cudaDataType at, int lda, const void* B, cudaDataType bt, int ldb, const void* beta, void* C, cudaDataType ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (!on_live_stream(h)) return complain("cublasGemmEx on a destroyed stream"), CUBLAS_STATUS_EXECUTION_FAILED;
  if (compute != CUBLAS_COMPUTE_32F) return complain("cublasGemmEx: compute type other than 32F"), CUBLAS_STATUS_NOT_SUPPORTED;
  return gemm(ta, tb, m, n, k, alpha, A, at, lda, B, bt, ldb, beta, C, ct, ldc);
}

cublasStatus_t cublasGemmBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* alpha,
                                   const void* const A[], cudaDataType at, int lda, const void* const B[], cudaDataType bt, int ldb, const void* beta,
                                   void* const C[], cudaDataType ct, int ldc, int count, cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (!on_live_stream(h)) return complain("cublasGemmBatchedEx on a destroyed stream"), CUBLAS_STATUS_EXECUTION_FAILED;
  if (compute != CUBLAS_COMPUTE_32F) return complain("cublasGemmBatchedEx: compute type other than 32F"), CUBLAS_STATUS_NOT_SUPPORTED;
  if (count < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const size_t bytes = size_t(count) * sizeof(void*);
  if (!is_device(A, bytes) || !is_device(B, bytes) || !is_device(C, bytes))
    return complain("cublasGemmBatchedEx: the pointer arrays must be in device memory"), CUBLAS_STATUS_INVALID_VALUE;
  for (int b = 0; b < count; ++b)
    if (cublasStatus_t s = gemm(ta, tb, m, n, k, alpha, A[b], at, lda, B[b], bt, ldb, beta, C[b], ct, ldc)) return s;
  return CUBLAS_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t* h) {
  *h = reinterpret_cast<cusolverDnHandle_t>(new Handle);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t h) {
  delete reinterpret_cast<Handle*>(h);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSetStream(cusolverDnHandle_t h, cudaStream_t s) {
  reinterpret_cast<Handle*>(h)->stream = s;
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnCreateSyevjInfo(syevjInfo_t* info) {
  *info = reinterpret_cast<syevjInfo_t>(new JacobiInfo);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDestroySyevjInfo(syevjInfo_t info) {
  delete reinterpret_cast<JacobiInfo*>(info);
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDsyevd_bufferSize(cusolverDnHandle_t, cusolverEigMode_t, cublasFillMode_t, int n, const double*, int, const double*,
                                             int* lwork) {
  *lwork = eigh_work(n);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDsyevd(cusolverDnHandle_t h, cusolverEigMode_t jobz, cublasFillMode_t uplo, int n, double* A, int lda, double* W,
                                  double* work, int lwork, int* info) {
  if (!on_live_stream(h)) return complain("cusolverDnDsyevd on a destroyed stream"), CUSOLVER_STATUS_EXECUTION_FAILED;
  if (jobz != CUSOLVER_EIG_MODE_VECTOR || uplo != CUBLAS_FILL_MODE_LOWER || n < 0 || lda < n)
    return complain("cusolverDnDsyevd: arguments the emulator does not have"), CUSOLVER_STATUS_INVALID_VALUE;
  if (lwork < eigh_work(n) || !is_device(work, size_t(lwork) * 8) || !is_device(A, size_t(lda) * n * 8) || !is_device(W, size_t(n) * 8) ||
      !is_device(info, 4))
    return complain("cusolverDnDsyevd: a workspace is too small or not in device memory"), CUSOLVER_STATUS_INVALID_VALUE;
  eigh(n, A, lda, W, info);
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDsyevjBatched_bufferSize(cusolverDnHandle_t, cusolverEigMode_t, cublasFillMode_t, int n, const double*, int, const double*,
                                                    int* lwork, syevjInfo_t, int count) {
  *lwork = eigh_work(n) * count;
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDsyevjBatched(cusolverDnHandle_t h, cusolverEigMode_t jobz, cublasFillMode_t uplo, int n, double* A, int lda, double* W,
                                         double* work, int lwork, int* info, syevjInfo_t, int count) {
  if (!on_live_stream(h)) return complain("cusolverDnDsyevjBatched on a destroyed stream"), CUSOLVER_STATUS_EXECUTION_FAILED;
  if (jobz != CUSOLVER_EIG_MODE_VECTOR || uplo != CUBLAS_FILL_MODE_LOWER || n < 1 || n > 32 || lda < n || count < 1)
    return complain("cusolverDnDsyevjBatched: arguments the real one refuses (n must be at most 32)"), CUSOLVER_STATUS_INVALID_VALUE;
  if (lwork < eigh_work(n) * count || !is_device(work, size_t(lwork) * 8) || !is_device(A, size_t(lda) * n * count * 8) ||
      !is_device(W, size_t(n) * count * 8) || !is_device(info, size_t(count) * 4))
    return complain("cusolverDnDsyevjBatched: a workspace is too small or not in device memory"), CUSOLVER_STATUS_INVALID_VALUE;
  for (int b = 0; b < count; ++b) eigh(n, A + (long long)b * lda * n, lda, W + (long long)b * n, info + b);
  return CUSOLVER_STATUS_SUCCESS;
}

cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const double* alpha,
                                         const double* A, int lda, long long sa, const double* B, int ldb, long long sb, const double* beta,
                                         double* C, int ldc, long long sc, int count) {
  if (!on_live_stream(h)) return complain("cublasDgemmStridedBatched on a destroyed stream"), CUBLAS_STATUS_EXECUTION_FAILED;
  if (m < 0 || n < 0 || k < 0 || count < 0 || lda < std::max(1, ta == CUBLAS_OP_N ? m : k) || ldb < std::max(1, tb == CUBLAS_OP_N ? k : n) ||
      ldc < std::max(1, m))
    return complain("cublasDgemmStridedBatched: a size or leading dimension is invalid"), CUBLAS_STATUS_INVALID_VALUE;
  const long long a_cols = ta == CUBLAS_OP_N ? k : m, b_cols = tb == CUBLAS_OP_N ? n : k;
  for (int b = 0; b < count; ++b) {
    const double *a = A + b * sa, *bb = B + b * sb;
    double* c = C + b * sc;
    if (!is_device(a, size_t(lda) * a_cols * 8) || !is_device(bb, size_t(ldb) * b_cols * 8) || !is_device(c, size_t(ldc) * n * 8))
      return complain("cublasDgemmStridedBatched: an operand is not (wholly) in device memory"), CUBLAS_STATUS_INVALID_VALUE;
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        double s = 0.0;
        for (int l = 0; l < k; ++l)
          s += (ta == CUBLAS_OP_N ? a[i + (long long)l * lda] : a[l + (long long)i * lda]) *
               (tb == CUBLAS_OP_N ? bb[l + (long long)j * ldb] : bb[j + (long long)l * ldb]);
        double& out = c[i + (long long)j * ldc];
        out = *beta == 0.0 ? *alpha * s : *alpha * s + *beta * out;
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}

// Householder QR as LAPACK stores it (R on and above the diagonal, the reflectors' essential
// parts below, tau), which is Eigen's HouseholderQR storage too; orgqr forms Q's first n columns.
cusolverStatus_t cusolverDnDgeqrf_bufferSize(cusolverDnHandle_t, int m, int n, double*, int, int* lwork) {
  *lwork = std::max(1, n);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDgeqrf(cusolverDnHandle_t h, int m, int n, double* A, int lda, double* tau, double* work, int lwork, int* info) {
  if (!on_live_stream(h)) return complain("cusolverDnDgeqrf on a destroyed stream"), CUSOLVER_STATUS_EXECUTION_FAILED;
  if (m < 0 || n < 0 || lda < std::max(1, m)) return complain("cusolverDnDgeqrf: a size is invalid"), CUSOLVER_STATUS_INVALID_VALUE;
  if (lwork < std::max(1, n) || !is_device(work, size_t(lwork) * 8) || !is_device(A, size_t(lda) * n * 8) ||
      !is_device(tau, size_t(std::max(1, std::min(m, n))) * 8) || !is_device(info, 4))
    return complain("cusolverDnDgeqrf: a workspace is too small or not in device memory"), CUSOLVER_STATUS_INVALID_VALUE;
  Eigen::MatrixXd M(m, n);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) M(i, j) = A[i + (long long)j * lda];
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(M);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) A[i + (long long)j * lda] = qr.matrixQR()(i, j);
  for (int i = 0; i < std::min(m, n); ++i) tau[i] = qr.hCoeffs()(i);
  *info = 0;
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDorgqr_bufferSize(cusolverDnHandle_t, int m, int n, int k, const double*, int, const double*, int* lwork) {
  *lwork = std::max(1, n);
  return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDorgqr(cusolverDnHandle_t h, int m, int n, int k, double* A, int lda, const double* tau, double* work, int lwork,
                                  int* info) {
  if (!on_live_stream(h)) return complain("cusolverDnDorgqr on a destroyed stream"), CUSOLVER_STATUS_EXECUTION_FAILED;
  if (m < 0 || n < 0 || n > m || k < 0 || k > n || lda < std::max(1, m))
    return complain("cusolverDnDorgqr: sizes LAPACK refuses (m >= n >= k >= 0)"), CUSOLVER_STATUS_INVALID_VALUE;
  if (lwork < std::max(1, n) || !is_device(work, size_t(lwork) * 8) || !is_device(A, size_t(lda) * n * 8) ||
      !is_device(tau, size_t(std::max(1, k)) * 8) || !is_device(info, 4))
    return complain("cusolverDnDorgqr: a workspace is too small or not in device memory"), CUSOLVER_STATUS_INVALID_VALUE;
  Eigen::MatrixXd V(m, k);
  for (int j = 0; j < k; ++j)
    for (int i = 0; i < m; ++i) V(i, j) = A[i + (long long)j * lda];
  Eigen::VectorXd t = Eigen::Map<const Eigen::VectorXd>(tau, k);
  Eigen::MatrixXd Q = Eigen::MatrixXd::Identity(m, n);
  if (k > 0) Q.applyOnTheLeft(Eigen::HouseholderSequence<Eigen::MatrixXd, Eigen::VectorXd>(V, t).setLength(k));
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) A[i + (long long)j * lda] = Q(i, j);
  *info = 0;
  return CUSOLVER_STATUS_SUCCESS;
}

// op(A) X = alpha B (left) or X op(A) = alpha B (right), A triangular (its `uplo` triangle read)
cublasStatus_t cublasDtrsm_v2(cublasHandle_t h, cublasSideMode_t side, cublasFillMode_t uplo, cublasOperation_t trans, cublasDiagType_t diag, int m,
                              int n, const double* alpha, const double* A, int lda, double* B, int ldb) {
  if (!on_live_stream(h)) return complain("cublasDtrsm on a destroyed stream"), CUBLAS_STATUS_EXECUTION_FAILED;
  const int na = side == CUBLAS_SIDE_LEFT ? m : n;
  if (m < 0 || n < 0 || lda < std::max(1, na) || ldb < std::max(1, m))
    return complain("cublasDtrsm: a size or leading dimension is invalid"), CUBLAS_STATUS_INVALID_VALUE;
  if (!is_device(A, size_t(lda) * na * 8) || !is_device(B, size_t(ldb) * n * 8))
    return complain("cublasDtrsm: an operand is not (wholly) in device memory"), CUBLAS_STATUS_INVALID_VALUE;
  Eigen::MatrixXd T = Eigen::MatrixXd::Zero(na, na), X(m, n);
  for (int j = 0; j < na; ++j)
    for (int i = 0; i < na; ++i)
      if (uplo == CUBLAS_FILL_MODE_LOWER ? i >= j : i <= j) T(i, j) = i == j && diag == CUBLAS_DIAG_UNIT ? 1.0 : A[i + (long long)j * lda];
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) X(i, j) = *alpha * B[i + (long long)j * ldb];
  if (trans != CUBLAS_OP_N) T.transposeInPlace();
  const bool lower = (uplo == CUBLAS_FILL_MODE_LOWER) == (trans == CUBLAS_OP_N);
  if (side == CUBLAS_SIDE_LEFT) {
    if (lower) T.triangularView<Eigen::Lower>().solveInPlace(X);
    else T.triangularView<Eigen::Upper>().solveInPlace(X);
  } else {
    if (lower) T.triangularView<Eigen::Lower>().solveInPlace<Eigen::OnTheRight>(X);
    else T.triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(X);
  }
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) B[i + (long long)j * ldb] = X(i, j);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* alpha,
                                          const void* A, cudaDataType at, int lda, long long sa, const void* B, cudaDataType bt, int ldb,
                                          long long sb, const void* beta, void* C, cudaDataType ct, int ldc, long long sc, int count,
                                          cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (!on_live_stream(h)) return complain("cublasGemmStridedBatchedEx on a destroyed stream"), CUBLAS_STATUS_EXECUTION_FAILED;
  if (compute != CUBLAS_COMPUTE_32F) return complain("cublasGemmStridedBatchedEx: compute type other than 32F"), CUBLAS_STATUS_NOT_SUPPORTED;
  if (count < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const size_t es = at == CUDA_R_32F ? 4 : 2, cs = ct == CUDA_R_32F ? 4 : 2;
  for (int b = 0; b < count; ++b)
    if (cublasStatus_t s = gemm(ta, tb, m, n, k, alpha, static_cast<const char*>(A) + b * sa * es, at, lda, static_cast<const char*>(B) + b * sb * es,
                                bt, ldb, beta, static_cast<char*>(C) + b * sc * cs, ct, ldc))
      return s;
  return CUBLAS_STATUS_SUCCESS;
}
