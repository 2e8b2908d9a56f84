// The backend interface: where an optimizer's memory lives and how its kernels and matrix work
// run. The runtime (runtime/optimizer.cpp) drives it and does not know which backend it has:
// the CPU one (host memory, kernels from the host compiler, Eigen) or the CUDA one (device
// memory, kernels from NVRTC, cuBLAS and cuSOLVER), which lives in a plugin (libopal_cuda.so)
// so that builds and processes without a GPU never load the CUDA libraries.
//
// This header and the executable description's plain data are all the plugin shares with the
// core: plain data and one abstract class.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "compiler/exec/description.h"

namespace opal {

// The generated kernels' `opal_tensor_t` (compiler/exec/kernel_abi.h). `buf` points at the
// tensor's buffer table (w, g, state slots, scratch), in host memory: a device backend copies
// the tables it launches with.
using KernelTensor = exec::KernelTensor;

enum class DeviceKind { Cpu, Cuda };
struct Device {
  DeviceKind kind = DeviceKind::Cpu;
  int ordinal = 0;
};
// "cpu", "cuda", "cuda:1"; throws opal::Error for anything else.
Device parse_device(const std::string& s);
std::string device_name(Device d);

// Kernels compiled for one backend (a loaded shared object, a CUDA module).
class KernelModule {
 public:
  virtual ~KernelModule() = default;
  bool from_cache = false;
};

// C_b = op(A_b) op(B_b) for every b, row-major; C is m x n, the inner dimension k. `bf16`:
// operands rounded to bf16, f32 accumulation, result rounded to bf16 (Newton-Schulz `@bf16`).
struct GemmBatch {
  bool ta = false, tb = false, bf16 = false;
  long long m = 0, n = 0, k = 0;
  std::vector<const float*> A, B;
  std::vector<float*> C;
};

// One tensor's view of a library call: its buffer table, its size, and the registers of its
// route's host scalar program for this step (scalar operands: exec::Operand::reg).
struct CallTensor {
  float* const* bufs;
  long long rows, cols;
  const double* regs;
};

// How a conversion into bf16 rounds: to nearest even, or stochastically with the bits the
// kernels draw for element base + i of tensor `id` at step t (support/half.h), so a staged
// parameter rounds exactly as one stepped in place.
struct Rounding {
  bool stochastic = false;
  uint64_t id = 0;
  double t = 0;
  long long base = 0;
};
// dst = src converted, n elements, both in host memory (the CPU backend's convert; the runtime's
// reads and writes of 16-bit parameters).
void convert_host(void* dst, exec::DType to, const void* src, exec::DType from, size_t n, const Rounding& r = {});

// Increased whenever this interface changes: a plugin built against another one is refused.
inline constexpr int kBackendAbi = 9;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string describe() const = 0;  // "cpu", "cuda:0 NVIDIA H100 80GB HBM3 (sm_90)"
  virtual bool host_memory() const = 0;      // buffers are plain host memory

  // Memory, in floats. alloc returns zeroed memory; transfers are ordered with the kernels.
  virtual float* alloc(size_t n) = 0;
  virtual void release(float* p) = 0;
  virtual void upload(float* dst, const float* src, size_t n) = 0;    // host -> backend
  virtual void download(float* dst, const float* src, size_t n) = 0;  // backend -> host (waits)
  virtual void copy(float* dst, const float* src, size_t n) = 0;      // backend -> backend
  // The same in bytes, for memory that need not end on a whole float: a caller's 16-bit tensor
  // of odd length, q8 codes. Ordered with the kernels, as above.
  virtual void copy_bytes(void* dst, const void* src, size_t bytes) = 0;      // backend -> backend
  virtual void download_bytes(void* dst, const void* src, size_t bytes) = 0;  // backend -> host (waits)
  virtual void zero_bytes(void* dst, size_t bytes) = 0;
  // n elements of `from` at src into `to` at dst (backend memory; f32, bf16, f16), ordered with
  // the kernels. dst and src do not overlap.
  virtual void convert(void* dst, exec::DType to, const void* src, exec::DType from, size_t n, const Rounding& r) = 0;
  // Zeroes every (pointer, length) pair, in one launch where the backend can.
  virtual void zero(const std::vector<std::pair<float*, size_t>>& bufs) = 0;

  // Compiles the generated translation unit for this backend (cached on disk) and resolves
  // `symbols`; throws opal::Error with the compiler's log when it does not compile.
  virtual std::shared_ptr<KernelModule> compile(const std::string& source, const std::vector<std::string>& symbols) = 0;
  // Runs kernel `k` (its symbol index into `m`) over `n` tensors (one launch for all of them),
  // each with a buffer table of `n_buffers` pointers. `max_n` bounds every tensor's iteration
  // space (grid sizing); `uniforms` is `opal_uniforms_t`. A device backend gives a kernel with
  // reductions its partial-sums buffers (k.partials) and launches a chunked one as a flat list
  // of chunks (exec::KernelChunk); the CPU's kernels loop over the tensors and add up serially.
  virtual void launch(const KernelModule& m, const exec::KernelLaunch& k, const KernelTensor* tensors, size_t n, size_t n_buffers, long long max_n,
                      const double* uniforms, size_t n_uniforms) = 0;

  // Matrix work on backend memory. run_call runs a whole library call for `n` tensors; false
  // where the backend leaves it to the runtime's generic path (runtime/library_calls.h), which
  // uses gemm and eigh where they return true, and the host implementation on copies otherwise.
  virtual bool run_call(const exec::LibraryCall& call, const CallTensor* tensors, size_t n) { return false; }
  virtual bool gemm(const GemmBatch& b) = 0;
  // The largest matrix side (and leading dimension) its library calls take: a parameter whose
  // view is larger cannot go to a route with library calls (refused when the optimizer is built).
  virtual long long max_call_side() const { return std::numeric_limits<long long>::max(); }
  // Symmetric eigendecompositions of n x n matrices (read as symmetrized), in double: values
  // ascending into `values` (count * n) and eigenvectors as columns, row-major, into `vectors`
  // (count * n * n), both host memory. The runtime makes the basis canonical (runtime/cpu/linalg.h).
  virtual bool eigh(long long n, const std::vector<const float*>& in, double* values, double* vectors) = 0;

  // The stream a step's work goes on (a cudaStream_t; nullptr: the backend's default), after
  // everything issued before. Work is asynchronous on it; `sync` waits for everything issued.
  virtual void set_stream(void* stream) = 0;
  // The step's work is issued: the backend keeps no handle to the caller's stream past this
  // (CUDA: later work waits for the step through an event on it).
  virtual void end_step() {}
  virtual void sync() = 0;
};

// The backend for `d`: the CPU one, or the CUDA plugin (opal::Error when this build has none,
// the plugin does not load, or there is no such device, with the reason).
std::unique_ptr<Backend> make_backend(Device d);
std::unique_ptr<Backend> make_cpu_backend();
// The ordinal of the CUDA device whose memory `p` points into (device or managed memory);
// DeviceError for host memory, an unknown pointer, or a build or machine without CUDA.
int cuda_device_of(const void* p);

// The path the CUDA plugin is loaded from: $OPAL_CUDA_PLUGIN, else libopal_cuda.so beside the
// library or executable holding the runtime, else the build tree's.
std::string cuda_plugin_path();

}  // namespace opal
