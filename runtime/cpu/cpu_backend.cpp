// The CPU backend: host memory, kernels built by the host compiler and loaded with dlopen
// (runtime/cpu/host_compile.h), every library call through Eigen in place (runtime/cpu/linalg.h).
#include <algorithm>
#include <cstring>
#include <variant>

#include <fmt/format.h>

#include "runtime/cpu/host_compile.h"
#include "runtime/backend.h"
#include "runtime/host_pool.h"
#include "runtime/cpu/linalg.h"
#include "runtime/error.h"
#include "support/eigen_product.h"

namespace opal {

namespace {

using KernelFn = void (*)(const void* tensors, long long n, const double* uniforms);

// memmove, on the thread pool for buffers of 4 MiB and more that do not overlap (a checked
// step's copies of parameters and state: one thread copies at a fraction of the bandwidth),
// outside a forked child (runtime/host_pool.h).
void move_bytes(void* dst, const void* src, size_t bytes) {
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  if (bytes == 0 || d == s) return;
  constexpr size_t kChunk = size_t(1) << 20;
  if (bytes < 4 * kChunk || (d < s + bytes && s < d + bytes) || !host_pool_usable()) {
    std::memmove(d, s, bytes);
    return;
  }
  const long long chunks = (long long)((bytes + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static)
  for (long long c = 0; c < chunks; ++c) {
    const size_t at = size_t(c) * kChunk;
    std::memcpy(d + at, s + at, bytes - at < kChunk ? bytes - at : kChunk);
  }
}

struct CpuModule final : KernelModule {
  std::shared_ptr<HostModule> so;
  std::vector<KernelFn> fns;
  // the OpenMP runtime the kernels load (none for kernels without parallel loops)
  ForkedChildSerial::SetThreads set_threads = nullptr;
  ForkedChildSerial::GetThreads get_threads = nullptr;
};

class CpuBackend final : public Backend {
 public:
  Device device() const override { return {}; }
  std::string describe() const override { return "cpu"; }
  bool host_memory() const override { return true; }

  float* alloc(size_t n) override { return new float[n == 0 ? 1 : n](); }
  void release(float* p) override { delete[] p; }
  void upload(float* dst, const float* src, size_t n) override { copy(dst, src, n); }
  void download(float* dst, const float* src, size_t n) override { copy(dst, src, n); }
  void copy(float* dst, const float* src, size_t n) override { move_bytes(dst, src, n * sizeof(float)); }
  void copy_bytes(void* dst, const void* src, size_t bytes) override { move_bytes(dst, src, bytes); }
  void download_bytes(void* dst, const void* src, size_t bytes) override { copy_bytes(dst, src, bytes); }
  void zero_bytes(void* dst, size_t bytes) override { std::memset(dst, 0, bytes); }
  void convert(void* dst, exec::DType to, const void* src, exec::DType from, size_t n, const Rounding& r) override {
    convert_host(dst, to, src, from, n, r);
  }
  void zero(const std::vector<std::pair<float*, size_t>>& bufs) override {
    for (auto [p, n] : bufs) std::memset(p, 0, n * sizeof(float));
  }

  std::shared_ptr<KernelModule> compile(const std::string& source, const std::vector<std::string>& symbols) override {
    HostCompileResult hc = compile_host(source);
    if (!hc.module) throw Error(fmt::format("cannot compile the kernels: {}", hc.error));
    auto m = std::make_shared<CpuModule>();
    m->so = hc.module;
    m->from_cache = hc.from_cache;
    m->set_threads = reinterpret_cast<ForkedChildSerial::SetThreads>(hc.module->symbol("omp_set_num_threads"));
    m->get_threads = reinterpret_cast<ForkedChildSerial::GetThreads>(hc.module->symbol("omp_get_max_threads"));
    for (const auto& s : symbols) {
      auto fn = reinterpret_cast<KernelFn>(hc.module->symbol(s));
      if (!fn) throw Error(fmt::format("kernel `{}` is missing from `{}`", s, hc.path));
      m->fns.push_back(fn);
    }
    return m;
  }
  void launch(const KernelModule& m, const exec::KernelLaunch& k, const KernelTensor* tensors, size_t n, size_t, long long, const double* uniforms,
              size_t) override {
    const auto& cm = static_cast<const CpuModule&>(m);
    ForkedChildSerial serial(cm.set_threads, cm.get_threads);  // the kernels' parallel loops (runtime/host_pool.h)
    cm.fns[k.symbol](tensors, (long long)n, uniforms);
  }

  // Products split themselves into panels on the thread pool (support/eigen_product.h). The
  // other calls (eigensolvers, QR, triangular solves) run one tensor a thread, in a team of more
  // than one thread, where Eigen does not split the products inside them: either way a call's
  // bits do not depend on the number of threads.
  bool run_call(const exec::LibraryCall& call, const CallTensor* ts, size_t n) override {
    ForkedChildSerial serial;  // (runtime/host_pool.h)
    auto one = [&](size_t i) {
      const float* in[3] = {nullptr, nullptr, nullptr};
      for (size_t o = 0; o < call.in.size() && o < 3; ++o)
        if (call.in[o].buffer >= 0) in[o] = ts[i].bufs[call.in[o].buffer];
      cpu::run_call(call, in, ts[i].regs, ts[i].bufs[call.out], ts[i].rows, ts[i].cols);
    };
    const bool product = std::holds_alternative<exec::Gemm>(call.op) || std::holds_alternative<exec::Gram>(call.op) ||
                         std::holds_alternative<exec::GramApply>(call.op) || std::holds_alternative<exec::NsSteps>(call.op);
    if (product) {
      for (size_t i = 0; i < n; ++i) one(i);
      return true;
    }
    // a solver holds about four n x n doubles (its input, vectors, work, ours): no more of them
    // at once than kSolverBytes hold (unsplit_each keeps a team of two at least)
    long long side = 1;
    for (size_t i = 0; i < n && !call.in.empty(); ++i) {
      const exec::Dims d = exec::dims_of(call.in[0].extent, ts[i].rows, ts[i].cols);
      side = std::max({side, d.rows, d.cols});
    }
    constexpr double kSolverBytes = double(1 << 30);
    const int most = int(std::clamp(kSolverBytes / (32.0 * double(side) * double(side)), 1.0, 1024.0));
    unsplit_each((long long)n, most, [&](long long i) { one(size_t(i)); });
    return true;
  }
  bool gemm(const GemmBatch&) override { return false; }
  bool eigh(long long, const std::vector<const float*>&, double*, double*) override { return false; }
  void set_stream(void* stream) override {
    if (stream) throw DeviceError("a CUDA stream was given to an optimizer on the CPU");
  }
  void sync() override {}
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace opal
