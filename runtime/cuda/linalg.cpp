// The CUDA backend's library calls beyond GEMMs, on the device (see linalg.h).
#include "runtime/cuda/linalg.h"

#include <cstring>
#include <limits>
#include <map>
#include <variant>

#include "runtime/cuda/gemm_layout.h"
#include "runtime/cuda/helpers.h"
#include "support/check.h"

namespace opal::cuda {

namespace {

enum Kernel {
  kSymToDouble,
  kPrepare,
  kSigns,
  kNullBasis,
  kVectors,
  kEighOut,
  kInvRootScale,
  kFromDouble,
  kToDouble,
  kF2d,
  kD2f,
  kNormBound,
  kGather,
  kScatter
};
const std::vector<std::string> kSymbols = {"opal_sym_to_double", "opal_eigh_prepare", "opal_eigh_signs",     "opal_eigh_null_basis",
                                           "opal_eigh_vectors",  "opal_eigh_out",     "opal_inv_root_scale", "opal_from_double",
                                           "opal_to_double",     "opal_f2d_many",     "opal_d2f_many",       "opal_norm_lower_bound",
                                           "opal_gather_many",   "opal_scatter_many"};
// table slots (Env::stage): an operand's pointers, the outputs', InvRoot's eps
constexpr size_t kOutSlot = 4, kEpsSlot = 5;

constexpr int kBlock = exec::kCudaBlock;
unsigned blocks_for(long long n) { return unsigned(std::clamp<long long>((n + kBlock - 1) / kBlock, 1, exec::kCudaMaxBlocks)); }

}  // namespace

Linalg::~Linalg() {
  if (info_back_) {
    cudaEventSynchronize(info_back_);
    cudaEventDestroy(info_back_);
  }
  for (Scratch* s : {&mats_, &work_, &info_, &flags_}) s->release();
  info_host_.release();
}

bool Linalg::takes(const exec::LibraryCall& call) {
  const exec::CallOp& op = call.op;
  return std::holds_alternative<exec::Eigh>(op) || std::holds_alternative<exec::InvRoot>(op) || std::holds_alternative<exec::Qr>(op) ||
         std::holds_alternative<exec::TriSolveLeft>(op) || std::holds_alternative<exec::TriSolveRight>(op) ||
         std::holds_alternative<exec::NormLowerBound>(op) || std::holds_alternative<exec::NsSteps>(op);
}

void Linalg::check_earlier() {
  if (!info_back_ || info_used_ == 0) return;
  CK(cudaEventSynchronize(info_back_));  // long done by the next refresh
  const int* info = reinterpret_cast<const int*>(info_host_.p);
  const size_t used = info_used_;
  info_used_ = 0;
  for (size_t i = 0; i < used; ++i)
    if (info[i] < 0)  // argument -info was wrong
      throw Error(fmt::format("cuSOLVER rejected its argument {} in an eigenbasis refresh (info {}): an internal error", -info[i], info[i]));
}

void Linalg::run(const Env& env, const exec::LibraryCall& call, const CallTensor* tensors, size_t n) {
  check_earlier();
  if (!kernels_) kernels_ = env.load(linalg_source(), kSymbols);
  // tensors whose operands have one shape together (eigh's by its factor's side alone)
  const bool per_operand = std::holds_alternative<exec::Eigh>(call.op) || std::holds_alternative<exec::InvRoot>(call.op);
  std::map<std::pair<long long, long long>, std::vector<const CallTensor*>> groups;
  for (size_t t = 0; t < n; ++t) {
    const exec::Dims d = exec::dims_of(call.in[0].extent, tensors[t].rows, tensors[t].cols);
    groups[per_operand ? std::pair{d.rows, d.cols} : std::pair{tensors[t].rows, tensors[t].cols}].push_back(&tensors[t]);
  }
  info_host_.get(std::max<size_t>(2 * n * sizeof(int), 64));  // no copy into it is pending (check_earlier)
  if (!info_back_) CK(cudaEventCreateWithFlags(&info_back_, cudaEventDisableTiming));
  std::lock_guard<std::mutex> lock(env.lib.mu);
  env.lib.make();
  CK(cusolverDnSetStream(env.lib.solver, env.stream));
  CK(cublasSetStream(env.lib.blas, env.stream));
  for (const auto& [dims, ts] : groups) {
    const exec::CallOp& op = call.op;
    const exec::Dims d0 = exec::dims_of(call.in[0].extent, ts[0]->rows, ts[0]->cols);
    if (std::holds_alternative<exec::Qr>(op)) qr(env, call, d0.rows, d0.cols, ts);
    else if (std::holds_alternative<exec::NormLowerBound>(op)) norm_bound(env, call, d0.rows, d0.cols, ts);
    else if (const auto* ns = std::get_if<exec::NsSteps>(&op)) newton_schulz(env, call, *ns, d0.rows, d0.cols, ts);
    else if (per_operand) eigh(env, call, d0.rows, ts);
    else tri_solve(env, call, dims.first, dims.second, ts);
  }
  CK(cudaEventRecord(info_back_, env.stream));
}

void Linalg::launch(const Env& env, int kernel, unsigned blocks_x, unsigned blocks_y, std::initializer_list<void*> args) {
  CK(cudaLaunchKernel(reinterpret_cast<const void*>(kernels_->kernels[size_t(kernel)]), dim3(blocks_x, blocks_y), dim3(kBlock),
                      const_cast<void**>(args.begin()), 0, env.stream));
}

const float* const* Linalg::in_table(const Env& env, size_t operand, const exec::LibraryCall& call, const std::vector<const CallTensor*>& ts) {
  const int32_t buf = call.in[operand].buffer;
  OPAL_CHECK(buf >= 0, "library call operand %zu is not a buffer", operand);
  std::vector<char> host(ts.size() * sizeof(float*));
  for (size_t i = 0; i < ts.size(); ++i) std::memcpy(host.data() + i * sizeof(float*), &ts[i]->bufs[buf], sizeof(float*));
  return reinterpret_cast<const float* const*>(env.stage(operand, ts[0]->bufs[buf], host));
}
float* const* Linalg::out_table(const Env& env, const exec::LibraryCall& call, const std::vector<const CallTensor*>& ts) {
  std::vector<char> host(ts.size() * sizeof(float*));
  for (size_t i = 0; i < ts.size(); ++i) std::memcpy(host.data() + i * sizeof(float*), &ts[i]->bufs[call.out], sizeof(float*));
  return reinterpret_cast<float* const*>(env.stage(kOutSlot, ts[0]->bufs[call.out], host));
}

// `count` solver infos on the device, copied back to the host after the solves (check_earlier)
int* Linalg::solver_info(const Env& env, size_t count, int** host) {
  *host = reinterpret_cast<int*>(info_host_.p) + info_used_;
  info_used_ += count;
  OPAL_CHECK(info_used_ * sizeof(int) <= info_host_.bytes, "solver info past its buffer");
  return static_cast<int*>(info_.get(count * sizeof(int)));
}

void Linalg::eigh(const Env& env, const exec::LibraryCall& call, long long n, const std::vector<const CallTensor*>& ts) {
  const long long count = (long long)ts.size(), nn = n * n;
  // column-major doubles: A (the solver's matrices, then InvRoot's product), V (canonical
  // vectors), Q (null bases, then InvRoot's V f); per matrix W (values), signs, inner products;
  // meta (4 integers per matrix)
  auto* A = static_cast<double*>(mats_.get(size_t(count) * size_t(3 * nn + 3 * n + 4) * sizeof(double)));
  double *V = A + count * nn, *Q = V + count * nn, *W = Q + count * nn, *sign = W + count * n, *dots = sign + count * n;
  auto* meta = reinterpret_cast<long long*>(dots + count * n);
  // per matrix: its input is not finite (zero when made; each prepare leaves it zero again)
  if (size_t(count) * sizeof(int) > flags_.bytes) {
    flags_.get(size_t(count) * sizeof(int));
    CK(cudaMemsetAsync(flags_.p, 0, flags_.bytes, env.stream));
  }
  int* input_bad = static_cast<int*>(flags_.p);
  const float* const* S = in_table(env, 0, call, ts);
  launch(env, kSymToDouble, blocks_for(nn), unsigned(count), {&S, &A, &input_bad, &n});
  int* host_info = nullptr;
  int* info = solver_info(env, size_t(count), &host_info);
  cusolverDnHandle_t solver = env.lib.solver;
  if (n <= 32 && count > 1) {  // batched Jacobi
    int lwork = 0;
    CK(cusolverDnDsyevjBatched_bufferSize(solver, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n), A, int(n), W, &lwork, env.lib.syevj,
                                          int(count)));
    auto* work = static_cast<double*>(work_.get(size_t(lwork) * sizeof(double)));
    CK(cusolverDnDsyevjBatched(solver, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n), A, int(n), W, work, lwork, info, env.lib.syevj,
                               int(count)));
  } else {
    int lwork = 0;
    CK(cusolverDnDsyevd_bufferSize(solver, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n), A, int(n), W, &lwork));
    auto* work = static_cast<double*>(work_.get(size_t(lwork) * sizeof(double)));
    for (long long b = 0; b < count; ++b)
      CK(cusolverDnDsyevd(solver, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n), A + b * nn, int(n), W + b * n, work, lwork, info + b));
  }
  CK(cudaMemcpyAsync(host_info, info, size_t(count) * sizeof(int), cudaMemcpyDeviceToHost, env.stream));
  // canonical form: checks and null blocks, signs, null bases, vectors
  launch(env, kPrepare, unsigned(count), 1, {&W, &info, &input_bad, &meta, &n});
  launch(env, kSigns, blocks_for(n * kBlock), unsigned(count), {&A, &meta, &sign, &n});
  launch(env, kNullBasis, unsigned(count), 1, {&A, &meta, &Q, &dots, &n});
  launch(env, kVectors, blocks_for(nn), unsigned(count), {&A, &meta, &sign, &Q, &V, &n});
  float* const* out = out_table(env, call, ts);
  if (const auto* e = std::get_if<exec::Eigh>(&call.op)) {
    int desc = e->descending ? 1 : 0;
    launch(env, kEighOut, blocks_for(nn), unsigned(count), {&V, &out, &n, &desc});
    return;
  }
  const auto& ir = std::get<exec::InvRoot>(call.op);
  OPAL_CHECK(call.in.size() == 2 && call.in[1].reg >= 0, "InvRoot without its eps");
  std::vector<char> host(size_t(count) * sizeof(double));
  for (long long b = 0; b < count; ++b) std::memcpy(host.data() + b * sizeof(double), &ts[size_t(b)]->regs[call.in[1].reg], sizeof(double));
  const double* eps_dev = reinterpret_cast<const double*>(env.stage(kEpsSlot, ts[0]->bufs[call.out], host));
  double p = double(ir.p);
  int damped = ir.damped ? 1 : 0;
  double* Vf = Q;
  launch(env, kInvRootScale, blocks_for(nn), unsigned(count), {&V, &W, &eps_dev, &Vf, &n, &p, &damped});
  const double one = 1.0, zero = 0.0;  // P = (V f) V^T, into A
  CK(cublasDgemmStridedBatched(env.lib.blas, CUBLAS_OP_N, CUBLAS_OP_T, int(n), int(n), int(n), &one, Vf, int(n), nn, V, int(n), nn, &zero, A, int(n),
                               nn, int(count)));
  launch(env, kFromDouble, blocks_for(nn), unsigned(count), {&A, &out, &n, &n, &n});
}

void Linalg::qr(const Env& env, const exec::LibraryCall& call, long long r, long long c, const std::vector<const CallTensor*>& ts) {
  const long long count = (long long)ts.size(), rc = r * c;
  long long q = std::min(r, c);
  auto* A = static_cast<double*>(mats_.get(size_t(count) * size_t(rc + q) * sizeof(double)));
  double* tau = A + count * rc;
  const float* const* S = in_table(env, 0, call, ts);
  launch(env, kToDouble, blocks_for(rc), unsigned(count), {&S, &A, &r, &c});
  int* host_info = nullptr;
  int* info = solver_info(env, 2 * size_t(count), &host_info);
  cusolverDnHandle_t solver = env.lib.solver;
  int l1 = 0, l2 = 0;
  CK(cusolverDnDgeqrf_bufferSize(solver, int(r), int(c), A, int(r), &l1));
  CK(cusolverDnDorgqr_bufferSize(solver, int(r), int(q), int(q), A, int(r), tau, &l2));
  const int lwork = std::max(l1, l2);
  auto* work = static_cast<double*>(work_.get(size_t(lwork) * sizeof(double)));
  for (long long b = 0; b < count; ++b) {  // the reflectors, then the first q columns of Q
    CK(cusolverDnDgeqrf(solver, int(r), int(c), A + b * rc, int(r), tau + b * q, work, lwork, info + 2 * b));
    CK(cusolverDnDorgqr(solver, int(r), int(q), int(q), A + b * rc, int(r), tau + b * q, work, lwork, info + 2 * b + 1));
  }
  CK(cudaMemcpyAsync(host_info, info, 2 * size_t(count) * sizeof(int), cudaMemcpyDeviceToHost, env.stream));
  float* const* out = out_table(env, call, ts);
  launch(env, kFromDouble, blocks_for(rc), unsigned(count), {&A, &out, &r, &c, &q});
}

// Y = Q^-T X (left) or X Q^-1 (right), Q upper triangular (its upper triangle read), in double.
// Row-major buffers read column-major are transposes: Q is the lower triangular L = Q^T and X
// is X^T, so the solves are Y^T L^T = X^T (left) and L Y^T = X^T (right), in place in X^T.
void Linalg::tri_solve(const Env& env, const exec::LibraryCall& call, long long rows, long long cols, const std::vector<const CallTensor*>& ts) {
  const bool left = std::holds_alternative<exec::TriSolveLeft>(call.op);
  const size_t qi = left ? 0 : 1, xi = left ? 1 : 0;
  const exec::Dims dq = exec::dims_of(call.in[qi].extent, rows, cols), dx = exec::dims_of(call.in[xi].extent, rows, cols);
  long long count = (long long)ts.size(), nq = dq.count(), nx = dx.count();
  auto* Qd = static_cast<double*>(mats_.get(size_t(count) * size_t(nq + nx) * sizeof(double)));
  double* Xd = Qd + count * nq;
  const float* const* Q = in_table(env, qi, call, ts);
  const float* const* X = in_table(env, xi, call, ts);
  launch(env, kF2d, blocks_for(nq), unsigned(count), {&Q, &Qd, &nq});
  launch(env, kF2d, blocks_for(nx), unsigned(count), {&X, &Xd, &nx});
  const double one = 1.0;
  const int n = int(dq.rows), m = int(dx.cols), k = int(dx.rows);  // X^T is m x k (ld m)
  for (long long b = 0; b < count; ++b) {
    if (left)
      CK(cublasDtrsm(env.lib.blas, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, CUBLAS_DIAG_NON_UNIT, m, k, &one, Qd + b * nq, n,
                     Xd + b * nx, m));
    else
      CK(cublasDtrsm(env.lib.blas, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT, m, k, &one, Qd + b * nq, n,
                     Xd + b * nx, m));
  }
  float* const* out = out_table(env, call, ts);
  launch(env, kD2f, blocks_for(nx), unsigned(count), {&Xd, &out, &nx});
}

void Linalg::norm_bound(const Env& env, const exec::LibraryCall& call, long long r, long long c, const std::vector<const CallTensor*>& ts) {
  auto* work = static_cast<double*>(mats_.get(ts.size() * size_t(std::max(r, c)) * sizeof(double)));
  const float* const* S = in_table(env, 0, call, ts);
  float* const* out = out_table(env, call, ts);
  launch(env, kNormBound, unsigned(ts.size()), 1, {&S, &out, &work, &r, &c});
}

// Newton-Schulz's steps on contiguous per-shape buffers (bf16 or f32), three strided batched
// GEMMs a step with the step's scalars in their epilogues, written in the buffers' type:
//   A = X X^T (X^T X when tall);  B = c A A + b A (C: a copy of A);  X' = B X + a X (X B + a X
// when tall; C: a copy of X), X and X' alternating. Row-major products as column-major calls
// (gemm_layout.h).
void Linalg::newton_schulz(const Env& env, const exec::LibraryCall& call, const exec::NsSteps& ns, long long rows, long long cols,
                           const std::vector<const CallTensor*>& ts) {
  const long long count = (long long)ts.size(), mn = rows * cols, k = std::min(rows, cols), kk = k * k;
  const bool wide = rows <= cols;
  int bf16 = ns.bf16 ? 1 : 0;
  const size_t es = ns.bf16 ? 2 : 4;
  const cudaDataType_t type = ns.bf16 ? CUDA_R_16BF : CUDA_R_32F;
  char* base = static_cast<char*>(mats_.get(size_t(count) * size_t(2 * mn + 2 * kk) * es));
  char* X[2] = {base, base + size_t(count * mn) * es};
  char* A = base + size_t(2 * count * mn) * es;
  char* B = A + size_t(count * kk) * es;
  long long n = mn;
  const float* const* S = in_table(env, 0, call, ts);
  launch(env, kGather, blocks_for(mn), unsigned(count), {&S, &X[0], &n, &bf16});
  // one row-major product for every tensor: C = alpha op(P) op(Q) + beta C
  auto gemm = [&](bool tp, bool tq, long long m, long long nn, long long inner, const char* P, long long sp, const char* Q, long long sq, float alpha,
                  float beta, char* C, long long sc) {
    GemmBatch g;
    g.ta = tp;
    g.tb = tq;
    g.m = m;
    g.n = nn;
    g.k = inner;
    const ColumnMajorGemm cm = column_major(g);
    for (long long v : {cm.m, cm.n, cm.k, cm.ld_first, cm.ld_second, cm.ldc})
      if (v > std::numeric_limits<int>::max())
        throw Error(fmt::format("a {} x {} Newton-Schulz is too large for cuBLAS's 32-bit sizes [LimitExceeded]", rows, cols));
    CK(cublasGemmStridedBatchedEx(env.lib.blas, cm.trans_first ? CUBLAS_OP_T : CUBLAS_OP_N, cm.trans_second ? CUBLAS_OP_T : CUBLAS_OP_N, int(cm.m),
                                  int(cm.n), int(cm.k), &alpha, Q, type, int(cm.ld_first), sq, P, type, int(cm.ld_second), sp, &beta, C, type,
                                  int(cm.ldc), sc, int(count), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  };
  int at = 0;
  for (const auto& [ka, kb, kc] : ns.coeffs) {
    const char* x = X[at];
    char* y = X[1 - at];
    gemm(!wide, wide, k, k, wide ? cols : rows, x, mn, x, mn, 1.f, 0.f, A, kk);
    CK(cudaMemcpyAsync(B, A, size_t(count * kk) * es, cudaMemcpyDeviceToDevice, env.stream));
    gemm(false, false, k, k, k, A, kk, A, kk, float(kc), float(kb), B, kk);
    CK(cudaMemcpyAsync(y, x, size_t(count * mn) * es, cudaMemcpyDeviceToDevice, env.stream));
    if (wide) gemm(false, false, rows, cols, rows, B, kk, x, mn, 1.f, float(ka), y, mn);
    else gemm(false, false, rows, cols, cols, x, mn, B, kk, 1.f, float(ka), y, mn);
    at = 1 - at;
  }
  float* const* out = out_table(env, call, ts);
  launch(env, kScatter, blocks_for(mn), unsigned(count), {&X[at], &out, &n, &bf16});
}

}  // namespace opal::cuda
