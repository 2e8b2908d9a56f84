// The emulator's engine: CUDA C++ built by the host compiler (with shim.h in front) and its
// kernels run on the CPU, a grid one block at a time. Threads of a kernel that synchronizes
// (`__syncthreads`, `__syncwarp`, warp shuffles) run as fibers that meet at each barrier; the
// others run one after another. A schedule seed shuffles the order blocks, threads and fibers
// run in, so that a result depending on the order of atomics shows it.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace opal::emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

struct Kernel {
  std::string name;
  void (*trampoline)(void** args) = nullptr;
  bool cooperative = false;  // the module synchronizes threads: fibers
};

struct Module {
  void* handle = nullptr;
  std::vector<Kernel> kernels;
  ~Module();
};

// Builds `source` (cached on disk by content). Null with the compiler's output in `log` when it
// does not compile.
std::unique_ptr<Module> load_module(const std::string& source, std::string& log);

// Runs `k` over `grid` x `block` with cudaLaunchKernel's arguments. Returns an error message, or
// "" (a deadlock: threads waiting at barriers no one else reaches).
std::string run(const Kernel& k, Dim3 grid, Dim3 block, void** args);

// The order blocks and threads run in: 0 (the default: in order) or a seed ($OPAL_EMU_SCHEDULE).
void set_schedule_seed(unsigned long long seed);

// How many times the host has waited for the device so far (cudaEventSynchronize,
// cudaStreamSynchronize, cudaDeviceSynchronize): a step that waits stops the host from queueing
// the trainer's next work while the device is busy.
unsigned long long host_waits();

}  // namespace opal::emu
