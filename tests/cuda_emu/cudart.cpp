// The emulator's CUDA runtime and NVRTC: the functions libopal_cuda.so and the GPU tests call,
// with the CUDA headers' signatures, on host memory. NVRTC "compiles" to the source itself and
// cudaLibraryLoadData builds that with the host compiler (engine.h). What a real device would
// reject is rejected: a copy whose direction does not match its pointers, a free of an unknown
// pointer, a destroyed stream or event, a device ordinal out of range.
#include <cuda_runtime_api.h>
#include <nvrtc.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "tests/cuda_emu/engine.h"
#include "tests/cuda_emu/memory.h"

namespace opal::emu {

namespace {

thread_local cudaError_t last_error = cudaSuccess;
thread_local int current_device = 0;

cudaError_t fail(cudaError_t e, const std::string& why = "") {
  if (!why.empty()) std::fprintf(stderr, "[cuda emulator] %s\n", why.c_str());
  last_error = e;
  return e;
}

int device_count() {
  const char* s = std::getenv("OPAL_EMU_DEVICES");
  const int n = s && *s ? std::atoi(s) : 1;
  return n > 0 ? n : 1;
}

// Streams and events: handles stay known after destruction, so that a use after it is caught.
std::mutex handles_mu;
std::map<const void*, bool> streams, events;  // handle -> alive
struct Handle {
  int device = 0;
};

}  // namespace

bool stream_alive(const void* s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
  std::lock_guard<std::mutex> lock(handles_mu);
  auto it = streams.find(s);
  return it != streams.end() && it->second;
}

namespace {

cudaError_t check_stream(cudaStream_t s, const char* what) {
  return stream_alive(s) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle, std::string(what) + ": the stream is destroyed or was never created");
}

struct Library {
  std::unique_ptr<Module> module;
};
std::mutex kernels_mu;
std::set<const Kernel*> kernels;

struct Program {
  std::string source;
};

std::atomic<unsigned long long> g_host_waits{0};

}  // namespace

unsigned long long host_waits() { return g_host_waits.load(); }

}  // namespace opal::emu

using namespace opal::emu;

cudaError_t cudaGetDeviceCount(int* count) {
  *count = device_count();
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  current_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = current_device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "Opal CUDA emulator");
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 8;
  p->maxThreadsPerBlock = 1024;
  p->warpSize = 32;
  p->totalGlobalMem = size_t(16) << 30;
  p->sharedMemPerBlock = 48 << 10;
  p->maxGridSize[0] = 0x7fffffff;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorInvalidKernelImage: return "device kernel image is invalid";
    case cudaErrorSymbolNotFound: return "named symbol not found";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    default: return "unknown error (CUDA emulator)";
  }
}
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInvalidKernelImage: return "cudaErrorInvalidKernelImage";
    case cudaErrorSymbolNotFound: return "cudaErrorSymbolNotFound";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    default: return "cudaErrorUnknown";
  }
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = allocate(bytes, current_device);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  return deallocate(p) ? cudaSuccess : fail(cudaErrorInvalidValue, "cudaFree of a pointer cudaMalloc did not return");
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (!is_device(p, bytes)) return fail(cudaErrorInvalidValue, "cudaMemset outside device memory");
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (cudaError_t e = check_stream(s, "cudaMemsetAsync")) return e;
  return cudaMemset(p, value, bytes);
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (cudaError_t e = check_stream(s, "cudaMemcpyAsync")) return e;
  if (bytes == 0) return cudaSuccess;
  const bool dst_dev = is_device(dst, bytes), src_dev = is_device(src, bytes);
  const bool ok = kind == cudaMemcpyDefault || (kind == cudaMemcpyHostToDevice && dst_dev && !src_dev) ||
                  (kind == cudaMemcpyDeviceToHost && src_dev && !dst_dev) || (kind == cudaMemcpyDeviceToDevice && src_dev && dst_dev) ||
                  (kind == cudaMemcpyHostToHost && !src_dev && !dst_dev);
  if (!ok) return fail(cudaErrorInvalidValue, "cudaMemcpyAsync: the pointers do not match the copy's direction " + std::to_string(int(kind)));
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
// Pinned host memory: host memory CUDA knows of (cudaPointerGetAttributes says "host").
static std::mutex pinned_mu;
static std::map<const char*, size_t> pinned;
static bool is_pinned(const void* p) {
  std::lock_guard<std::mutex> lock(pinned_mu);
  auto it = pinned.upper_bound(static_cast<const char*>(p));
  return it != pinned.begin() && static_cast<const char*>(p) < std::prev(it)->first + std::prev(it)->second;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int) {
  *p = std::aligned_alloc(4096, (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096);
  if (!*p) return fail(cudaErrorMemoryAllocation);
  std::lock_guard<std::mutex> lock(pinned_mu);
  pinned[static_cast<const char*>(*p)] = bytes;
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }
cudaError_t cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(pinned_mu);
  if (!pinned.erase(static_cast<const char*>(p))) return fail(cudaErrorInvalidValue, "cudaFreeHost of a pointer cudaHostAlloc did not return");
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  ++g_host_waits;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  ++g_host_waits;
  return check_stream(s, "cudaStreamSynchronize");
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
  *s = reinterpret_cast<cudaStream_t>(new Handle{current_device});
  std::lock_guard<std::mutex> lock(handles_mu);
  streams[*s] = true;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (cudaError_t e = check_stream(s, "cudaStreamDestroy")) return e;
  std::lock_guard<std::mutex> lock(handles_mu);
  streams[s] = false;  // the handle stays known (not freed): a later use is an error, not a crash
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) {
  *e = reinterpret_cast<cudaEvent_t>(new Handle{current_device});
  std::lock_guard<std::mutex> lock(handles_mu);
  events[*e] = true;
  return cudaSuccess;
}
static cudaError_t check_event(cudaEvent_t e, const char* what) {
  std::lock_guard<std::mutex> lock(handles_mu);
  auto it = events.find(e);
  return it != events.end() && it->second ? cudaSuccess : fail(cudaErrorInvalidResourceHandle, std::string(what) + ": an unknown or destroyed event");
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  if (cudaError_t r = check_event(e, "cudaEventDestroy")) return r;
  std::lock_guard<std::mutex> lock(handles_mu);
  events[e] = false;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (cudaError_t r = check_event(e, "cudaEventRecord")) return r;
  return check_stream(s, "cudaEventRecord");
}
// (the emulator runs work as it is queued: an event is always complete)
cudaError_t cudaEventQuery(cudaEvent_t e) { return check_event(e, "cudaEventQuery"); }
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  ++g_host_waits;
  return check_event(e, "cudaEventSynchronize");
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  if (cudaError_t r = check_event(e, "cudaStreamWaitEvent")) return r;
  return check_stream(s, "cudaStreamWaitEvent");
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  std::memset(a, 0, sizeof *a);
  const int d = device_of(p);
  if (d >= 0) {
    a->type = cudaMemoryTypeDevice;
    a->device = d;
    a->devicePointer = const_cast<void*>(p);
  } else if (is_pinned(p)) {
    a->type = cudaMemoryTypeHost;
    a->device = 0;
    a->hostPointer = const_cast<void*>(p);
  } else {
    a->type = cudaMemoryTypeUnregistered;
    a->device = -2;
    a->hostPointer = const_cast<void*>(p);
  }
  return cudaSuccess;
}

cudaError_t cudaLibraryLoadData(cudaLibrary_t* lib, const void* code, cudaJitOption*, void**, unsigned int, cudaLibraryOption*, void**,
                                unsigned int) {
  std::string log;
  auto m = load_module(static_cast<const char*>(code), log);
  if (!m) return fail(cudaErrorInvalidKernelImage, log);
  auto* l = new Library{std::move(m)};
  std::lock_guard<std::mutex> lock(kernels_mu);
  for (const Kernel& k : l->module->kernels) kernels.insert(&k);
  *lib = reinterpret_cast<cudaLibrary_t>(l);
  return cudaSuccess;
}
cudaError_t cudaLibraryUnload(cudaLibrary_t lib) {
  auto* l = reinterpret_cast<Library*>(lib);
  {
    std::lock_guard<std::mutex> lock(kernels_mu);
    for (const Kernel& k : l->module->kernels) kernels.erase(&k);
  }
  delete l;
  return cudaSuccess;
}
cudaError_t cudaLibraryGetKernel(cudaKernel_t* k, cudaLibrary_t lib, const char* name) {
  for (const Kernel& kn : reinterpret_cast<Library*>(lib)->module->kernels)
    if (kn.name == name) {
      *k = reinterpret_cast<cudaKernel_t>(const_cast<Kernel*>(&kn));
      return cudaSuccess;
    }
  return fail(cudaErrorSymbolNotFound);
}
cudaError_t cudaLaunchKernel(const void* func, dim3 grid, dim3 block, void** args, size_t, cudaStream_t s) {
  if (cudaError_t e = check_stream(s, "cudaLaunchKernel")) return e;
  const auto* k = static_cast<const Kernel*>(func);
  {
    std::lock_guard<std::mutex> lock(kernels_mu);
    if (!kernels.count(k)) return fail(cudaErrorInvalidResourceHandle, "cudaLaunchKernel of an unknown or unloaded kernel");
  }
  const std::string err = run(*k, Dim3{grid.x, grid.y, grid.z}, Dim3{block.x, block.y, block.z}, args);
  if (!err.empty()) return fail(err.find("invalid") == 0 ? cudaErrorInvalidConfiguration : cudaErrorLaunchFailure, k->name + ": " + err);
  return cudaSuccess;
}

// NVRTC: the "image" is the source, built when it is loaded.
nvrtcResult nvrtcVersion(int* major, int* minor) {
  *major = 0;  // "0.0": no real NVRTC's cache entries match
  *minor = 0;
  return NVRTC_SUCCESS;
}
const char* nvrtcGetErrorString(nvrtcResult r) { return r == NVRTC_SUCCESS ? "NVRTC_SUCCESS" : "NVRTC_ERROR (CUDA emulator)"; }
nvrtcResult nvrtcCreateProgram(nvrtcProgram* p, const char* src, const char*, int, const char* const*, const char* const*) {
  *p = reinterpret_cast<nvrtcProgram>(new Program{src});
  return NVRTC_SUCCESS;
}
nvrtcResult nvrtcDestroyProgram(nvrtcProgram* p) {
  delete reinterpret_cast<Program*>(*p);
  *p = nullptr;
  return NVRTC_SUCCESS;
}
nvrtcResult nvrtcCompileProgram(nvrtcProgram, int, const char* const*) { return NVRTC_SUCCESS; }
nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram, size_t* n) {
  *n = 1;
  return NVRTC_SUCCESS;
}
nvrtcResult nvrtcGetProgramLog(nvrtcProgram, char* log) {
  *log = '\0';
  return NVRTC_SUCCESS;
}
nvrtcResult nvrtcGetCUBINSize(nvrtcProgram p, size_t* n) {
  *n = reinterpret_cast<Program*>(p)->source.size();
  return NVRTC_SUCCESS;
}
nvrtcResult nvrtcGetCUBIN(nvrtcProgram p, char* out) {
  const std::string& s = reinterpret_cast<Program*>(p)->source;
  std::memcpy(out, s.data(), s.size());
  return NVRTC_SUCCESS;
}
nvrtcResult nvrtcGetPTXSize(nvrtcProgram p, size_t* n) { return nvrtcGetCUBINSize(p, n); }
nvrtcResult nvrtcGetPTX(nvrtcProgram p, char* out) { return nvrtcGetCUBIN(p, out); }
