// The emulator's engine (engine.h): builds CUDA C++ with the host compiler and runs kernels.
#include "tests/cuda_emu/engine.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>

#include "compiler/exec/kernel_abi.h"
#include "tests/cuda_emu/shim.h"

namespace opal::emu {

namespace {

namespace fs = std::filesystem;

// The layout of the shim's `opal_emu_state`.
struct State {
  Dim3 thread, block, block_dim, grid_dim;
  void (*sync_block)(void);
  void (*sync_warp)(void);
  unsigned long long* exchange;
};

enum class At { Running, BlockBarrier, WarpBarrier, Done };
struct Fiber {
  void* sp = nullptr;  // its saved stack pointer while it waits
  std::unique_ptr<char[]> stack;
  At at = At::Done;
};
constexpr size_t kStack = 256 << 10;
constexpr unsigned kMaxThreads = 1024;

// One launch at a time: the modules' bound state, the fibers and `__shared__` arrays are global.
std::mutex launch_mu;
State state;
std::vector<unsigned long long> exchange(kMaxThreads);
std::vector<Fiber> fibers;
void* scheduler = nullptr;
size_t current = 0;
const Kernel* running = nullptr;
void** running_args = nullptr;
const char* misuse = nullptr;

unsigned long long schedule_seed() {
  const char* s = std::getenv("OPAL_EMU_SCHEDULE");
  return s && *s ? std::strtoull(s, nullptr, 0) : 0;
}
unsigned long long seed = schedule_seed(), launches = 0;

}  // namespace

// Switches stacks: saves the callee-saved registers, the SSE and x87 control words and the
// return address on this stack, stores its pointer into *from, and resumes the stack `to`.
// (glibc's swapcontext also saves the signal mask: a system call per switch, 20x slower.)
extern "C" void opal_emu_switch(void** from, void* to);
asm(R"(
  .text
  .globl opal_emu_switch
  .type opal_emu_switch, @function
opal_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size opal_emu_switch, .-opal_emu_switch
  .section .note.GNU-stack, "", @progbits
  .text
)");

namespace {

void yield(At at) {
  fibers[current].at = at;
  opal_emu_switch(&fibers[current].sp, scheduler);
}
void sync_block() { yield(At::BlockBarrier); }
void sync_warp() { yield(At::WarpBarrier); }
void no_sync() { misuse = "a kernel synchronized threads in a module the engine did not run as fibers"; }
[[noreturn]] void fiber_main() {
  running->trampoline(running_args);
  fibers[current].at = At::Done;
  opal_emu_switch(&fibers[current].sp, scheduler);  // never resumed
  __builtin_unreachable();
}

// A fresh stack whose first switch "returns" into fiber_main, with the ABI's alignment (rsp is
// 8 mod 16 at a function's entry) and default control words.
void* fresh_stack(char* base) {
  auto top = reinterpret_cast<uintptr_t>(base + kStack) & ~uintptr_t(15);
  auto* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = 0;                                        // fiber_main's return address: none
  *--sp = reinterpret_cast<uint64_t>(&fiber_main);  // where the switch returns
  for (int r = 0; r < 6; ++r) *--sp = 0;            // rbp rbx r12-r15
  *--sp = 0x1f80ull | (uint64_t(0x037f) << 32);     // mxcsr, x87 control word
  return sp;
}

Dim3 index_of(unsigned t, Dim3 d) { return {t % d.x, (t / d.x) % d.y, t / (d.x * d.y)}; }

// Runs one block's threads as fibers until all return; false on a deadlock.
bool run_fibers(unsigned n, std::mt19937_64& rng) {
  if (fibers.size() < n) fibers.resize(n);
  for (unsigned t = 0; t < n; ++t) {
    Fiber& f = fibers[t];
    if (!f.stack) f.stack.reset(new char[kStack]);
    f.sp = fresh_stack(f.stack.get());
    f.at = At::Running;
  }
  std::vector<unsigned> order(n);
  for (unsigned t = 0; t < n; ++t) order[t] = t;
  for (;;) {
    if (seed) std::shuffle(order.begin(), order.end(), rng);
    for (unsigned t : order)
      if (fibers[t].at == At::Running) {
        current = t;
        state.thread = index_of(t, state.block_dim);
        opal_emu_switch(&scheduler, fibers[t].sp);
      }
    unsigned live = 0, at_block = 0;
    bool released = false;
    for (unsigned w = 0; w < n; w += 32) {  // a warp whose live lanes all wait at its barrier goes on
      unsigned lanes = 0, waiting = 0;
      for (unsigned t = w; t < std::min(n, w + 32); ++t) {
        lanes += fibers[t].at != At::Done;
        waiting += fibers[t].at == At::WarpBarrier;
        at_block += fibers[t].at == At::BlockBarrier;
      }
      live += lanes;
      if (waiting && waiting == lanes) {
        for (unsigned t = w; t < std::min(n, w + 32); ++t) fibers[t].at = At::Running;
        released = true;
      }
    }
    if (live == 0) return true;
    if (!released && at_block == live) {
      for (unsigned t = 0; t < n; ++t)
        if (fibers[t].at == At::BlockBarrier) fibers[t].at = At::Running;
      released = true;
    }
    if (!released) return false;
  }
}

std::string cache_dir() {
  const char* d = std::getenv("OPAL_CACHE_DIR");
  fs::path p = d && *d ? fs::path(d) : fs::temp_directory_path() / "opal-emu-cache";
  fs::create_directories(p);
  return p.string();
}

unsigned long long fnv1a(const std::string& s) {
  unsigned long long h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

Module::~Module() {
  if (handle) dlclose(handle);
}

void set_schedule_seed(unsigned long long s) {
  std::lock_guard<std::mutex> lock(launch_mu);
  seed = s;
}

std::unique_ptr<Module> load_module(const std::string& source, std::string& log) {
  std::vector<std::string> names;
  static const std::regex kernel(R"(__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s*)?([A-Za-z_]\w*)\s*\()");
  for (std::sregex_iterator it(source.begin(), source.end(), kernel), end; it != end; ++it) names.push_back((*it)[1]);
  const bool cooperative = source.find("__syncthreads") != std::string::npos || source.find("__syncwarp") != std::string::npos ||
                           source.find("__shfl_") != std::string::npos;
  std::string text = std::string(exec::kCMathDeclarations) + kShim + source + "\n";
  for (const auto& n : names)
    text += "extern \"C\" __attribute__((visibility(\"default\"))) void opal_emu_k_" + n + "(void** a) { opal_emu_invoke(" + n + ", a); }\n";
  const char* cxx = std::getenv("OPAL_CXX");
  const std::string compiler = cxx && *cxx ? cxx : "c++";
  const std::string flags = "-std=c++17 -O1 -ffp-contract=off -fno-math-errno -fno-trapping-math -fPIC -shared -w";
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", fnv1a(compiler + "\n" + flags + "\n" + text));
  const std::string dir = cache_dir(), so = dir + "/emu-" + hex + ".so";
  if (!fs::exists(so)) {
    const std::string tmp = dir + "/emu-" + hex + "." + std::to_string(getpid()) + "." + std::to_string(std::random_device{}());
    std::ofstream(tmp + ".cpp") << text;
    const std::string cmd =
        compiler + " " + flags + " -o " + quoted(tmp + ".so") + " " + quoted(tmp + ".cpp") + " > " + quoted(tmp + ".log") + " 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream in(tmp + ".log");
    std::stringstream ss;
    ss << in.rdbuf();
    fs::remove(tmp + ".cpp");
    fs::remove(tmp + ".log");
    if (rc != 0) {
      log = "the host compiler could not build the CUDA source (" + cmd + "):\n" + ss.str();
      fs::remove(tmp + ".so");
      return nullptr;
    }
    fs::rename(tmp + ".so", so);
  }
  auto m = std::make_unique<Module>();
  m->handle = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!m->handle) {
    log = std::string("dlopen: ") + dlerror();
    return nullptr;
  }
  auto bind = reinterpret_cast<void (*)(State*)>(dlsym(m->handle, "opal_emu_bind"));
  bind(&state);
  for (const auto& n : names) {
    Kernel k;
    k.name = n;
    k.trampoline = reinterpret_cast<void (*)(void**)>(dlsym(m->handle, ("opal_emu_k_" + n).c_str()));
    k.cooperative = cooperative;
    m->kernels.push_back(k);
  }
  return m;
}

std::string run(const Kernel& k, Dim3 grid, Dim3 block, void** args) {
  std::lock_guard<std::mutex> lock(launch_mu);
  const unsigned long long nthreads = 1ull * block.x * block.y * block.z;
  if (nthreads == 0 || nthreads > kMaxThreads) return "invalid block size";
  if (1ull * grid.x * grid.y * grid.z == 0 || grid.y > 65535 || grid.z > 65535) return "invalid grid size";
  state.grid_dim = grid;
  state.block_dim = block;
  state.exchange = exchange.data();
  state.sync_block = k.cooperative ? sync_block : no_sync;
  state.sync_warp = k.cooperative ? sync_warp : no_sync;
  running = &k;
  running_args = args;
  misuse = nullptr;
  std::mt19937_64 rng(seed ^ (++launches * 0x9e3779b97f4a7c15ull));
  std::vector<Dim3> blocks;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) blocks.push_back({x, y, z});
  if (seed) std::shuffle(blocks.begin(), blocks.end(), rng);
  std::vector<unsigned> order(nthreads);
  for (unsigned t = 0; t < nthreads; ++t) order[t] = t;
  for (const Dim3& b : blocks) {
    state.block = b;
    if (k.cooperative) {
      if (!run_fibers(unsigned(nthreads), rng)) return "deadlock in `" + k.name + "`: threads wait at barriers the others never reach";
      continue;
    }
    if (seed) std::shuffle(order.begin(), order.end(), rng);
    for (unsigned t : order) {
      state.thread = index_of(t, block);
      k.trampoline(args);
    }
    if (misuse) return misuse;
  }
  return "";
}

}  // namespace opal::emu
