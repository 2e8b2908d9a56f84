// An eigenbasis refresh's matrix work on the device, with no host round trip: Eigh and InvRoot
// (cuSOLVER's symmetric eigensolvers in double, made canonical as runtime/cpu/linalg.h says by
// kernels of eigenbasis.cu.inc; InvRoot's V f(lambda) V^T as a DGEMM) and QR (cuSOLVER's
// Householder QR in double, as Eigen's: the same reflectors and signs). Tensors whose operands
// have one shape go together: one batched solve (Jacobi up to 32 x 32), one launch per kernel.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "compiler/exec/description.h"
#include "runtime/backend.h"
#include "runtime/cuda/cuda_support.h"

namespace opal::cuda {

class Eigenbasis {
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
  ~Eigenbasis();

  // Whether `call` is one of these (Eigh, InvRoot, Qr); run runs it for n tensors.
  static bool takes(const exec::LibraryCall& call);
  void run(const Env& env, const exec::LibraryCall& call, const CallTensor* tensors, size_t n);
  // Throws for a solver argument error (info < 0) of an earlier call, found once its result is
  // back on the host (the next refresh, or a sync): a bug of ours, never a property of the data.
  void check_earlier();

 private:
  void eigh(const Env& env, const exec::LibraryCall& call, long long n, const std::vector<const CallTensor*>& ts);
  void qr(const Env& env, const exec::LibraryCall& call, long long r, long long c, const std::vector<const CallTensor*>& ts);
  void launch(const Env& env, int kernel, unsigned blocks_x, unsigned blocks_y, std::vector<void*> args);
  float* const* out_table(const Env& env, size_t slot, const exec::LibraryCall& call, const std::vector<const CallTensor*>& ts);
  const float* const* in_table(const Env& env, size_t slot, const exec::LibraryCall& call, const std::vector<const CallTensor*>& ts);
  int* solver_info(const Env& env, size_t count, int** host);

  std::shared_ptr<CudaModule> kernels_;
  Scratch mats_, work_, info_;
  Pinned info_host_;  // the last calls' solver info, copied back in stream order
  size_t info_used_ = 0;
  cudaEvent_t info_back_ = nullptr;  // recorded after the copies into info_host_
};

}  // namespace opal::cuda
