// What the CUDA backend's files share (plugin only: runtime/cuda): error checks, loaded kernel
// modules, the device's library handles, growing device and pinned host buffers.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "runtime/backend.h"
#include "runtime/error.h"

namespace opal::cuda {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(fmt::format("CUDA: {} failed: {} ({})", what, cudaGetErrorString(e), cudaGetErrorName(e)));
}
inline void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(fmt::format("cuBLAS: {} failed: {}", what, cublasGetStatusString(s)));
}
inline void check(cusolverStatus_t s, const char* what) {
  if (s != CUSOLVER_STATUS_SUCCESS) throw Error(fmt::format("cuSOLVER: {} failed (status {})", what, int(s)));
}
#define CK(expr) check((expr), #expr)

struct CudaModule final : KernelModule {
  cudaLibrary_t lib = nullptr;
  std::vector<cudaKernel_t> kernels;
  ~CudaModule() override {
    if (lib) cudaLibraryUnload(lib);
  }
};

// cuBLAS and cuSOLVER handles, one set per device for the whole process, shared by every
// optimizer there (each handle costs device memory and start-up time). A call sets the
// handle's stream, so the calls of one backend hold `mu` from that until they are queued.
struct LibraryHandles {
  std::mutex mu;
  cublasHandle_t blas = nullptr;
  cusolverDnHandle_t solver = nullptr;
  syevjInfo_t syevj = nullptr;
  // Makes the handles at their first use, with `mu` held and the device current: an optimizer
  // without library calls (AdamW, Lion) never pays for them.
  void make();
  ~LibraryHandles() {
    if (syevj) cusolverDnDestroySyevjInfo(syevj);
    if (solver) cusolverDnDestroy(solver);
    if (blas) cublasDestroy(blas);
  }
};

// The device's handles (made by make() at their first use); alive while a backend holds them.
std::shared_ptr<LibraryHandles> library_handles(int ordinal);

// Device memory that grows and is reused (staging tables, workspaces).
struct Scratch {
  void* p = nullptr;
  size_t bytes = 0;
  void* get(size_t n) {
    if (n > bytes) {
      if (p) cudaFree(p);
      p = nullptr;
      bytes = 0;
      CK(cudaMalloc(&p, std::max<size_t>(n, 4096)));
      bytes = std::max<size_t>(n, 4096);
    }
    return p;
  }
  void release() {
    if (p) cudaFree(p);
    p = nullptr;
    bytes = 0;
  }
};

// Pinned host memory (cudaHostAlloc) that grows: a table's copy source. From pageable memory
// cudaMemcpyAsync copies synchronously, through a driver buffer; from pinned memory it is a DMA
// queued on the stream.
struct Pinned {
  char* p = nullptr;
  size_t bytes = 0;
  void get(size_t n) {
    if (n <= bytes) return;
    release();
    void* q = nullptr;
    CK(cudaHostAlloc(&q, n, cudaHostAllocDefault));
    p = static_cast<char*>(q);
    bytes = n;
  }
  void release() {
    if (p) cudaFreeHost(p);
    p = nullptr;
    bytes = 0;
  }
};

}  // namespace opal::cuda
