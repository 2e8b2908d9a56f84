// The CUDA backend's library calls beyond GEMMs, on the device with no host round trip, each as
// runtime/cpu/linalg.h computes it: Eigh and InvRoot (cuSOLVER's symmetric eigensolvers in
// double, made canonical by kernels of linalg.cu.inc; InvRoot's V f(lambda) V^T as a DGEMM), QR
// (cuSOLVER's Householder QR in double, as Eigen's: the same reflectors and signs), the
// triangular solves (cuBLAS's DTRSM), the norm lower bound (a kernel) and Newton-Schulz's steps
// (strided batched GEMMs with the scalars in their epilogues). Tensors of one shape go together:
// one batched solve (Jacobi up to 32 x 32) or GEMM, one launch per kernel.
#pragma once
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "compiler/exec/description.h"
#include "runtime/backend.h"
#include "runtime/cuda/cuda_support.h"

namespace opal::cuda {

class Linalg {
 public:
  // What a call runs with: the step's stream, the device's handles (held by the caller), the
  // kernels (loaded on first use by `load`) and the backend's staging of small tables
  // (`stage(slot, first, bytes)`: a device copy, stable for that key and content).
  struct Env {
    cudaStream_t stream;
    LibraryHandles& lib;
    std::function<std::shared_ptr<CudaModule>(const std::string& source, const std::vector<std::string>& symbols)> load;
    std::function<char*(size_t slot, const void* first, const std::vector<char>& bytes)> stage;
  };
  ~Linalg();

  // Whether `call` is one of these; run runs it for n tensors.
  static bool takes(const exec::LibraryCall& call);
  void run(const Env& env, const exec::LibraryCall& call, const CallTensor* tensors, size_t n);
  // Throws for a solver argument error (info < 0) of an earlier call, found once its result is
  // back on the host (the next refresh, or a sync): a bug of ours, never a property of the data.
  void check_earlier();

 private:
  void eigh(const Env& env, const exec::LibraryCall& call, long long n, const std::vector<const CallTensor*>& ts);
  void qr(const Env& env, const exec::LibraryCall& call, long long r, long long c, const std::vector<const CallTensor*>& ts);
  void tri_solve(const Env& env, const exec::LibraryCall& call, long long rows, long long cols, const std::vector<const CallTensor*>& ts);
  void newton_schulz(const Env& env, const exec::LibraryCall& call, const exec::NsSteps& ns, long long rows, long long cols,
                     const std::vector<const CallTensor*>& ts);
  void norm_bound(const Env& env, const exec::LibraryCall& call, long long r, long long c, const std::vector<const CallTensor*>& ts);
  void launch(const Env& env, int kernel, unsigned blocks_x, unsigned blocks_y, std::initializer_list<void*> args);
  float* const* out_table(const Env& env, const exec::LibraryCall& call, const std::vector<const CallTensor*>& ts);
  const float* const* in_table(const Env& env, size_t operand, const exec::LibraryCall& call, const std::vector<const CallTensor*>& ts);
  int* solver_info(const Env& env, size_t count, int** host);

  std::shared_ptr<CudaModule> kernels_;
  Scratch mats_, work_, info_, flags_;
  Pinned info_host_;  // the last calls' solver info, copied back in stream order
  size_t info_used_ = 0;
  cudaEvent_t info_back_ = nullptr;  // recorded after the copies into info_host_
};

}  // namespace opal::cuda
