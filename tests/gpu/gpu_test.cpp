// GPU tests (CTest label `gpu`): every stdlib optimizer steps the same on CUDA as on the CPU,
// and checkpoints move between the two. Exits 77 (CTest: skipped) where no CUDA device can be
// had, printing why.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <unistd.h>

#include <cuda_runtime.h>
#include <fmt/format.h>

#include "compiler/exec/describe.h"
#include "compiler/pipeline.h"
#include "driver/build.h"
#include "runtime/backend.h"
#include "runtime/cpu/linalg.h"
#include "runtime/error.h"
#include "support/bf16.h"
#include "runtime/optimizer.h"
#include "tests/numerics/harness.h"
#include "tests/unit/trajectory.h"
#ifdef OPAL_CUDA_EMULATOR
#include "tests/cuda_emu/engine.h"
#endif

using namespace opal;
using opal::testing::init_params;
using opal::testing::rel_err;
using opal::testing::run_steps;

namespace {

const Device kCuda{DeviceKind::Cuda, 0};

// Matrices of three shapes (two of each of two shapes: batched launches and GEMMs, and the
// batched Jacobi eigensolver of two 24 x 24 factors), a square one, a vector.
std::vector<ParamDesc> params(bool vectors) {
  std::vector<ParamDesc> ps = {{"h.0.w", {64, 48}}, {"h.1.w", {64, 48}}, {"wide.w", {24, 96}}, {"wide.1.w", {24, 96}}, {"sq.w", {32, 32}}};
  if (vectors) ps.push_back({"h.0.b", {48}});
  return ps;
}

// Any bf16 rounding in the optimizer's matrix work (Newton-Schulz `bf16 = true`)?
bool uses_bf16(const exec::Description& d) {
  for (const auto& r : d.routes)
    for (const auto& c : r.calls) {
      if (const auto* g = std::get_if<exec::Gemm>(&c.op); g && g->bf16) return true;
      if (const auto* g = std::get_if<exec::Gram>(&c.op); g && g->bf16) return true;
      if (const auto* g = std::get_if<exec::NsSteps>(&c.op); g && g->bf16) return true;
      if (const auto* g = std::get_if<exec::GramApply>(&c.op); g && g->bf16) return true;
    }
  return false;
}

std::unique_ptr<Optimizer> make(const std::string& name, Device d, bool& vectors) {
  try {
    return make_optimizer(compile_spec(SpecRef{name, "", ""}), params(vectors), d);
  } catch (const DeviceError&) {
    throw;
  } catch (const Error&) {  // a matrix-only optimizer
    vectors = false;
    return make_optimizer(compile_spec(SpecRef{name, "", ""}), params(false), d);
  }
}

// The eigenbasis optimizers (SOAP, Shampoo, SPlus, ...) cannot be compared from their first
// step: the first gradients' rotated moments are diagonal in exact arithmetic, their other
// entries rounding noise that Adam-style normalization turns into updates of size lr, so two
// correct backends (or two GEMM summation orders) differ by about lr in every element. Seen on
// the CUDA emulator: 1-2% of the parameters after 30 steps, while both backends started from
// the same 12-step state agree to 1e-5. Even so, SPlus's sign of the rotated momentum flips
// where an entry is within rounding of 0: resumed, they get 2e-3, and their states (SPA's second
// moment of those signs moves by 10-25%) only a check for gross errors.
bool noise_sensitive(const exec::Description& d) {
  for (const auto& r : d.routes)
    for (const auto& c : r.calls)
      if (std::holds_alternative<exec::Eigh>(c.op) || std::holds_alternative<exec::InvRoot>(c.op) || std::holds_alternative<exec::Qr>(c.op))
        return true;
  return false;
}

void check_agree(Optimizer& gpu, Optimizer& cpu, const std::string& name, double tol, double state_tol) {
  for (size_t p = 0; p < cpu.num_params(); ++p) {
    const std::string& n = cpu.param_name(p);
    INFO(name << " on " << gpu.describe_device() << ", parameter " << n << " (route " << cpu.route_of(n) << ")");
    CHECK(rel_err(gpu.read_param(n), cpu.read_param(n)) <= tol);
    for (const auto& s : cpu.slots(n)) {
      INFO("state " << s);
      CHECK(rel_err(gpu.read_state(n, s), cpu.read_state(n, s)) <= state_tol);
    }
  }
}

// Every parameter and state slot equal bit for bit.
void check_same(Optimizer& gpu, Optimizer& cpu, const std::string& what) {
  for (size_t p = 0; p < cpu.num_params(); ++p) {
    const std::string& n = cpu.param_name(p);
    INFO(what << ", parameter " << n);
    CHECK(gpu.read_param(n) == cpu.read_param(n));
    for (const auto& s : cpu.slots(n)) {
      INFO("state " << s);
      CHECK(gpu.read_state(n, s) == cpu.read_state(n, s));
    }
  }
}

}  // namespace

TEST_CASE("every stdlib optimizer steps on CUDA as on the CPU (1e-4 relative in fp32, 2e-2 with bf16 Newton-Schulz, 2e-3 resumed eigenbases)") {
  namespace fs = std::filesystem;
  Diagnostics d;
  auto program = load_program({}, d);
  REQUIRE_FALSE(d.has_errors());
  const std::string path = (fs::temp_directory_path() / ("opal-gpu-test-" + std::to_string(::getpid()) + ".safetensors")).string();
  for (const auto& entry : program->optimizers) {
    const std::string name = entry.first;  // (not a structured binding: clang 14 cannot capture one in INFO)
    bool vectors = true;
    auto cpu = make(name, {}, vectors);
    const double tol = uses_bf16(cpu->description()) ? 2e-2 : 1e-4;
    // from the first step: 30 steps (all but the noise-sensitive ones)
    if (!noise_sensitive(cpu->description())) {
      auto gpu = make_optimizer(compile_spec(SpecRef{name, "", ""}), params(vectors), kCuda);
      init_params(*cpu);
      init_params(*gpu);
      run_steps(*cpu, 30);
      run_steps(*gpu, 30);
      check_agree(*gpu, *cpu, name, tol, tol * 10);
    }
    // from the CPU's state after 12 steps: 6 more on each
    auto warm = make(name, {}, vectors);
    init_params(*warm);
    run_steps(*warm, 12);
    warm->save(path, {.params = true});
    auto gpu = make_optimizer(compile_spec(SpecRef{name, "", ""}), params(vectors), kCuda);
    gpu->load(path);
    const bool noisy = noise_sensitive(cpu->description());
    // one step from equal states: the state is tight even with bf16 Newton-Schulz (a GEMM's
    // summation order moves a bf16-rounded product by at most an ulp here and there), so a wrong
    // momentum shows
    run_steps(*warm, 1);
    run_steps(*gpu, 1);
    const double param_tol = noisy ? std::max(tol, 2e-3) : tol;
    check_agree(*gpu, *warm, name + " (one step after resuming)", param_tol, noisy ? 0.5 : uses_bf16(cpu->description()) ? 1e-2 : tol * 10);
    run_steps(*warm, 5);
    run_steps(*gpu, 5);
    check_agree(*gpu, *warm, name + " (resumed at step 12)", param_tol, noisy ? 0.5 : tol * 10);
  }
  fs::remove(path);
}

TEST_CASE("a checkpoint saved on CUDA loads on the CPU and back") {
  namespace fs = std::filesystem;
  bool vectors = true;
  auto gpu = make("soap", kCuda, vectors);
  init_params(*gpu);
  run_steps(*gpu, 12);
  std::string path = (fs::temp_directory_path() / "opal-gpu-test.safetensors").string();
  gpu->save(path, {.params = true});
  auto cpu = make_optimizer(compile_spec(SpecRef{"soap", "", ""}), params(vectors));
  cpu->load(path);
  for (size_t p = 0; p < gpu->num_params(); ++p) {
    const std::string& n = gpu->param_name(p);
    CHECK(cpu->read_param(n) == gpu->read_param(n));
    for (const auto& s : gpu->slots(n)) CHECK(cpu->read_state(n, s) == gpu->read_state(n, s));
  }
  run_steps(*cpu, 1);
  cpu->save(path, {.params = true});
  gpu->load(path);
  CHECK(gpu->step_count() == 13);
  CHECK(gpu->read_param("h.0.w") == cpu->read_param("h.0.w"));
  fs::remove(path);
}

TEST_CASE("host views of device memory are refused with a message; copies work") {
  bool vectors = true;
  auto gpu = make("adamw", kCuda, vectors);
  CHECK_THROWS_WITH_AS(gpu->param("h.0.w"), doctest::Contains("read_param"), Error);
  CHECK_THROWS_AS(gpu->state("h.0.w", gpu->slots("h.0.w")[0]), Error);
  CHECK_THROWS_AS(gpu->write_param("h.0.w", std::vector<float>(3)), Error);
  CHECK(gpu->read_param("h.0.w").size() == 64u * 48u);
}

TEST_CASE("a step on a stream the caller then destroys; the caller's current device is left as it was") {
  int count = 0;
  REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess);
  const int callers = count > 1 ? 1 : 0;  // with two devices, the caller's thread sits on the other one
  bool vectors = true;
  auto cpu = make("adamw", {}, vectors);
  auto gpu = make("adamw", kCuda, vectors);
  init_params(*cpu);
  init_params(*gpu);
  REQUIRE(cudaSetDevice(callers) == cudaSuccess);
  for (int t = 0; t < 3; ++t) {
    for (Optimizer* o : {cpu.get(), gpu.get()})
      for (size_t p = 0; p < o->num_params(); ++p) {
        const std::string& n = o->param_name(p);
        std::vector<float> g(o->read_param(n).size());
        for (size_t i = 0; i < g.size(); ++i) g[i] = std::sin(0.37f * float(i) + float(t));
        o->write_grad(n, g);
      }
    cudaStream_t s = nullptr;
    REQUIRE(cudaSetDevice(0) == cudaSuccess);
    REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
    REQUIRE(cudaSetDevice(callers) == cudaSuccess);
    cpu->step();
    gpu->step(s);
    REQUIRE(cudaStreamDestroy(s) == cudaSuccess);  // right away: the optimizer keeps no handle to it
    int now = -1;
    CHECK(cudaGetDevice(&now) == cudaSuccess);
    CHECK(now == callers);
  }
  gpu->sync();
  for (size_t p = 0; p < cpu->num_params(); ++p) CHECK(rel_err(gpu->read_param(cpu->param_name(p)), cpu->read_param(cpu->param_name(p))) <= 1e-4);
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("optimizers on one device share its cuBLAS and cuSOLVER handles, stepping from two threads at once") {
  namespace fs = std::filesystem;
  // from the CPU's state after 12 steps (SOAP from its first step: see noise_sensitive)
  bool vectors = true;
  auto cpu = make("soap", {}, vectors);
  init_params(*cpu);
  run_steps(*cpu, 12);
  const std::string path = (fs::temp_directory_path() / ("opal-gpu-threads-" + std::to_string(::getpid()) + ".safetensors")).string();
  cpu->save(path, {.params = true});
  std::vector<std::unique_ptr<Optimizer>> gpus;
  for (int i = 0; i < 2; ++i) {
    gpus.push_back(make("soap", kCuda, vectors));
    gpus.back()->load(path);
  }
  fs::remove(path);
  auto grads = [](Optimizer& o, int t) {
    for (size_t p = 0; p < o.num_params(); ++p) {
      const std::string& n = o.param_name(p);
      std::vector<float> w = o.read_param(n), grad(w.size());
      for (size_t i = 0; i < w.size(); ++i) grad[i] = 0.3f * w[i] + std::sin(0.37f * float(i) + 0.11f * float(t) * float(p + 1));
      o.write_grad(n, grad);
    }
  };
  for (int t = 0; t < 6; ++t) {
    grads(*cpu, t);
    cpu->step();
  }
  std::vector<std::thread> threads;
  for (auto& g : gpus)
    threads.emplace_back([&g, &grads] {
      cudaStream_t s = nullptr;
      cudaSetDevice(0);
      cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
      for (int t = 0; t < 6; ++t) {
        grads(*g, t);
        g->step(s);
      }
      g->sync();
      cudaStreamDestroy(s);
    });
  for (auto& t : threads) t.join();
  for (auto& g : gpus)
    for (size_t p = 0; p < cpu->num_params(); ++p) CHECK(rel_err(g->read_param(cpu->param_name(p)), cpu->read_param(cpu->param_name(p))) <= 1e-4);
}

// Sums (Adafactor's row, column and total sums, adamw_clip's global norm: every kind of
// reduction) add up in a fixed order: two runs give the same bits. On the emulator the
// second run has its blocks and threads in another order, which changes any result that
// depends on the order of atomics. A 40 x 16400 matrix is more than one grid (1024 blocks of
// 256 threads): the grid-stride loops go round three times, and its 1026 tiles of 32 x 32 (row
// and column sums) make a block take two; a row strip has 513 tiles, a column strip 2.
TEST_CASE("sums are deterministic: two runs give the same bits, blocks run in any order") {
  for (const char* name : {"adafactor", "adamw_clip"}) {
    std::vector<ParamDesc> ps = {{"wide.w", {40, 16400}}, {"h.0.w", {64, 48}}, {"h.0.b", {48}}};
    std::vector<std::vector<std::vector<float>>> runs;
    for (unsigned long long schedule : {0ull, 0x5eedull}) {
#ifdef OPAL_CUDA_EMULATOR
      opal::emu::set_schedule_seed(schedule);
#endif
      auto gpu = make_optimizer(compile_spec(SpecRef{name, "", ""}), ps, kCuda);
      init_params(*gpu);
      run_steps(*gpu, 3);
      std::vector<std::vector<float>> values;
      for (size_t p = 0; p < gpu->num_params(); ++p) {
        const std::string& n = gpu->param_name(p);
        values.push_back(gpu->read_param(n));
        for (const auto& s : gpu->slots(n)) values.push_back(gpu->read_state(n, s));
      }
      runs.push_back(std::move(values));
      if (schedule == 0) {  // and the CPU's, to 1e-4: the parameters and the states (Adafactor's r and c are row and column sums)
        auto cpu = make_optimizer(compile_spec(SpecRef{name, "", ""}), ps);
        init_params(*cpu);
        run_steps(*cpu, 3);
        for (size_t p = 0; p < cpu->num_params(); ++p) {
          const std::string& n = cpu->param_name(p);
          INFO(std::string(name) << " " << n);
          CHECK(rel_err(gpu->read_param(n), cpu->read_param(n)) <= 1e-4);
          for (const auto& slot : cpu->slots(n)) {
            INFO(slot);
            CHECK(rel_err(gpu->read_state(n, slot), cpu->read_state(n, slot)) <= 1e-4);
          }
        }
      }
    }
#ifdef OPAL_CUDA_EMULATOR
    opal::emu::set_schedule_seed(0);
#endif
    INFO(std::string(name));
    REQUIRE(runs[0].size() == runs[1].size());
    for (size_t i = 0; i < runs[0].size(); ++i) CHECK(runs[0][i] == runs[1][i]);
  }
}

// An elementwise optimizer (no library call, no sum, no transcendental function per element)
// steps bit for bit as on the CPU: both compile with IEEE division and square roots and without
// fused multiply-adds (--fmad=false, -ffp-contract=off), and both read the step's scalars (bias
// corrections: pow) from the same host computation instead of the device's and the C library's
// own pow.
bool elementwise_exact(const std::string& name) {
  auto c = compile_spec(SpecRef{name, "", ""});
  const exec::Description d = describe(*c);
  for (const auto& r : d.routes) {
    if (!r.calls.empty()) return false;
    for (const auto& k : r.kernels)
      if (k.partials.any()) return false;
  }
  const std::string text = emit_optimizer(*c, Target::Cuda);
  const size_t kernels = text.find("extern \"C\" __global__");
  for (const char* f : {"expf(", "logf(", "powf(", "tanhf(", "cosf(", "sinf(", "opal_randn(opal_key", "pow("})
    if (text.find(f, kernels) != std::string::npos) return false;
  return true;
}

TEST_CASE("elementwise optimizers step bit for bit as on the CPU") {
  Diagnostics d;
  auto program = load_program({}, d);
  REQUIRE_FALSE(d.has_errors());
  size_t exact = 0;
  for (const auto& entry : program->optimizers) {
    const std::string name = entry.first;
    if (!elementwise_exact(name)) continue;
    ++exact;
    bool vectors = true;
    auto cpu = make(name, {}, vectors);
    // and one of 2.3 chunks (exec::kCudaChunk): its chunked launches have three blocks, the last partial
    std::vector<ParamDesc> ps = params(vectors);
    ps.push_back({"big.w", {300, 128}});
    cpu = make_optimizer(compile_spec(SpecRef{name, "", ""}), ps);
    auto gpu = make_optimizer(compile_spec(SpecRef{name, "", ""}), ps, kCuda);
    init_params(*cpu);
    init_params(*gpu);
    run_steps(*cpu, 30);
    run_steps(*gpu, 30);
    check_same(*gpu, *cpu, name);
  }
  MESSAGE(exact << " of " << program->optimizers.size() << " stdlib optimizers are elementwise: compared bit for bit");
  CHECK(exact >= 5);  // adam, adamw, lion, signum, sgd at least
}

// Memory the host owns, 4 bytes past an aligned address (a view into a larger buffer): the
// chunked kernels' 16-byte loads cannot be used, and their plain loop runs instead.
TEST_CASE("elementwise kernels on unaligned memory take the plain loop, and agree bit for bit") {
  for (const char* name : {"adamw", "lion"}) {
    std::vector<ParamDesc> ps = {{"big.w", {300, 128}}, {"h.0.b", {48}}};
    std::vector<void*> owned;
    auto cpu = make_optimizer(compile_spec(SpecRef{name, "", ""}), ps);
    for (auto& p : ps) {
      const size_t n = size_t(p.shape[0] * (p.shape.size() > 1 ? p.shape[1] : 1));
      for (void** at : {&p.data, &p.grad}) {
        void* base = nullptr;
        REQUIRE(cudaMalloc(&base, (n + 1) * sizeof(float)) == cudaSuccess);
        owned.push_back(base);
        *at = static_cast<float*>(base) + 1;
      }
    }
    auto gpu = make_optimizer(compile_spec(SpecRef{name, "", ""}), ps, kCuda);
    init_params(*cpu);
    init_params(*gpu);
    run_steps(*cpu, 10);
    run_steps(*gpu, 10);
    check_same(*gpu, *cpu, name);
    gpu.reset();
    for (void* b : owned) cudaFree(b);
  }
}

// The mixed program: 16-bit parameters and gradients (8-byte loads of 4), bf16 state, rounding
// to nearest and stochastic (keyed by tensor, step and element: the same bits on every backend).
TEST_CASE("16-bit parameters, gradients and states step bit for bit as on the CPU") {
  struct Case {
    const char* name;
    DType w, g;
    const char* state;
    bool stochastic;
  };
  for (const Case& c : {Case{"adamw", DType::BF16, DType::BF16, "", false}, Case{"adamw", DType::BF16, DType::F32, "bf16", true},
                        Case{"lion", DType::F16, DType::F16, "", false}, Case{"adamw", DType::F32, DType::BF16, "bf16", false},
                        // every buffer 16-bit (the vector loop's 8-byte loads of each), with and without
                        // stochastic rounding
                        Case{"adamw", DType::BF16, DType::BF16, "bf16", false}, Case{"lion", DType::F16, DType::F16, "bf16", true}}) {
    // (1001: a tail short of 4, after the vector loop)
    std::vector<ParamDesc> ps = {{"big.w", {300, 128}}, {"h.0.w", {64, 48}}, {"h.0.b", {48}}, {"odd", {1001}}};
    for (auto& p : ps) p.dtype = c.w, p.grad_dtype = c.g;
    auto cpu = make_optimizer(compile_spec(SpecRef{c.name, "", "", c.state}), ps);
    auto gpu = make_optimizer(compile_spec(SpecRef{c.name, "", "", c.state}), ps, kCuda);
    for (Optimizer* o : {cpu.get(), gpu.get()}) {
      o->set_stochastic_rounding(c.stochastic, 7);
      init_params(*o);
      run_steps(*o, 10);
    }
    check_same(*gpu, *cpu, fmt::format("{} w {} g {} state `{}`", c.name, exec::dtype_name(c.w), exec::dtype_name(c.g), c.state));
  }
}

// q8 state: a warp quantizes each block (absmax and sign by shuffles, order-free), in chunks of
// whole blocks: the codes and scales equal the CPU's byte for byte.
TEST_CASE("q8 state steps bit for bit as on the CPU, blocks of 256 and of 4096") {
  for (const char* state : {"q8", "q8(4096)"}) {
    // 300 x 128: 2.3 chunks of 16384 (150 blocks of 256); 2 chunks of 32768 (10 blocks of 4096)
    std::vector<ParamDesc> ps = {{"big.w", {300, 128}}, {"h.0.w", {64, 48}}, {"h.0.b", {48}}};
    auto cpu = make_optimizer(compile_spec(SpecRef{"adamw", "", "", state}), ps);
    auto gpu = make_optimizer(compile_spec(SpecRef{"adamw", "", "", state}), ps, kCuda);
    for (Optimizer* o : {cpu.get(), gpu.get()}) {
      init_params(*o);
      run_steps(*o, 6);
    }
    check_same(*gpu, *cpu, state);
  }
}

// An eigenbasis refresh sorts its basis (SOAP: argsort(diag(Q^T S Q)), then permutes rows or
// columns): those calls run on the device (run_call takes them), equal bit for bit to the CPU's,
// with ties (equal values and -0 / +0) kept in index order, and an index that is not one
// (NaN, negative, too large) giving NaN.
namespace {

// A library call of `op` on operands `in` into buffer `out`
exec::LibraryCall call_of(exec::CallOp op, std::vector<exec::Operand> in, uint32_t out, exec::Extent out_extent) {
  exec::LibraryCall c;
  c.op = std::move(op);
  c.in = std::move(in);
  c.out = out;
  c.out_extent = out_extent;
  return c;
}

}  // namespace

TEST_CASE("diag, argsort and the permutations run on the device, bit for bit as on the CPU") {
  auto be = make_backend(kCuda);
  const long long rows = 6, cols = 5;
  std::vector<std::vector<float>> host = {
      {},
      {},
      std::vector<float>(36),                     // 2: a 6 x 6 (left) matrix
      std::vector<float>(6),                      // 3: its diagonal
      {0.5f, -1.f, 0.5f, 0.f, -0.f, 3.f},         // 4: values to sort
      std::vector<float>(30),                     // 5: a 6 x 5 matrix
      {2.f, 0.f, std::nanf(""), 5.f, 6.f, -1.f},  // 6: row indices
      {4.f, 1.f, 1.f, 0.f, 7.f},                  // 7: column indices
      std::vector<float>(30),                     // 8: an output
  };
  for (size_t i = 0; i < host[2].size(); ++i) host[2][i] = float(i % 7) - 2.5f;
  for (size_t i = 0; i < host[5].size(); ++i) host[5][i] = float(i) * 0.25f - 1.f;
  std::vector<float*> dev(host.size(), nullptr);
  for (size_t b = 2; b < host.size(); ++b) {
    dev[b] = be->alloc(host[b].size());
    be->upload(dev[b], host[b].data(), host[b].size());
  }
  using exec::Extent;
  const std::vector<exec::LibraryCall> calls = {
      call_of(exec::Diag{}, {{Extent::Left, 2, -1}}, 3, Extent::Rows),
      call_of(exec::Argsort{false}, {{Extent::Rows, 4, -1}}, 8, Extent::Rows),
      call_of(exec::Argsort{true}, {{Extent::Rows, 4, -1}}, 8, Extent::Rows),
      call_of(exec::PermuteRows{}, {{Extent::Full, 5, -1}, {Extent::Rows, 6, -1}}, 8, Extent::Full),
      call_of(exec::PermuteCols{}, {{Extent::Full, 5, -1}, {Extent::Cols, 7, -1}}, 8, Extent::Full),
  };
  for (const auto& call : calls) {
    INFO(exec::call_name(call.op));
    const CallTensor t{dev.data(), rows, cols, nullptr};
    REQUIRE(be->run_call(call, &t, 1));  // on the device, not through host copies
    const size_t n = size_t(exec::dims_of(call.out_extent, rows, cols).count());
    std::vector<float> got(n), want(n);
    be->download(got.data(), dev[call.out], n);
    const float* in[3] = {nullptr, nullptr, nullptr};
    for (size_t o = 0; o < call.in.size(); ++o) in[o] = host[call.in[o].buffer].data();
    cpu::run_call(call, in, nullptr, want.data(), rows, cols);
    CHECK(std::memcmp(got.data(), want.data(), n * sizeof(float)) == 0);
  }
  // a NaN sorts after every number: still a permutation
  const std::vector<float> with_nan = {1.f, std::nanf(""), -2.f, std::nanf(""), 0.f, 1.f};
  be->upload(dev[4], with_nan.data(), with_nan.size());
  const CallTensor t{dev.data(), rows, cols, nullptr};
  REQUIRE(be->run_call(calls[1], &t, 1));
  std::vector<float> order(6);
  be->download(order.data(), dev[8], 6);
  CHECK(order == std::vector<float>{2.f, 4.f, 0.f, 5.f, 1.f, 3.f});
  for (size_t b = 2; b < dev.size(); ++b) be->release(dev[b]);
}

namespace {

// Keller Jordan's coefficients, `steps` times
std::vector<std::array<double, 3>> keller(int steps) { return std::vector<std::array<double, 3>>(size_t(steps), {3.4445, -4.7750, 2.0315}); }

// A symmetric n x n matrix: G G^T of a random n x rank G (rank < n: a null space), or a random
// symmetric one of both signs (rank 0)
std::vector<float> symmetric(long long n, long long rank, unsigned seed) {
  std::vector<float> g(size_t(n * std::max(rank, n))), s(size_t(n * n));
  for (size_t i = 0; i < g.size(); ++i) g[i] = float(int((i * 2654435761u + seed * 40503u) % 1999u) - 999) / 999.f;
  for (long long i = 0; i < n; ++i)
    for (long long j = 0; j < n; ++j) {
      double v = 0;
      if (rank == 0) v = g[size_t(i * n + j)] + g[size_t(j * n + i)];
      else
        for (long long l = 0; l < rank; ++l) v += double(g[size_t(i * rank + l)]) * g[size_t(j * rank + l)];
      s[size_t(i * n + j)] = float(v);
    }
  return s;
}

}  // namespace

TEST_CASE(
    "eigh, inv_root, qr, the triangular solves and the norm bound run on the device as on the CPU: canonical bases, null spaces, NaN, batches") {
  // The emulator's eigensolver negates every other eigenvector and rotates null-space pairs (a
  // different, equally valid answer): the device's canonical form must undo both to agree.
  auto be = make_backend(kCuda);
  struct Case {
    long long rows, cols, rank;
    bool nan;
  };
  // three 6 x 6 factors in one batch (the batched Jacobi solver), one of them NaN; a 40 x 40
  // factor of rank 3 (syevd, a null space of 37); a wide QR (zero columns past the rows); a zero
  // matrix (QR: the identity's columns, norm bound 0)
  const std::vector<Case> cases = {{6, 3, 0, false}, {6, 3, 2, false}, {6, 3, 0, true}, {40, 3, 3, false}, {5, 8, 0, false}};
  struct Tensor {
    std::vector<std::vector<float>> host;
    std::vector<float*> dev;
    double regs[1] = {1e-3};
  };
  std::vector<Tensor> ts(cases.size());
  for (size_t t = 0; t < cases.size(); ++t) {
    const Case& c = cases[t];
    Tensor& T = ts[t];
    T.host = {symmetric(c.rows, c.rank, unsigned(t) + 1), std::vector<float>(size_t(c.rows * c.rows)),
              symmetric(std::max(c.rows, c.cols), 0, unsigned(t) + 7), std::vector<float>(size_t(c.rows * c.cols))};
    T.host[2].resize(size_t(c.rows * c.cols));  // a rows x cols matrix to factor
    if (t == 1) std::fill(T.host[2].begin(), T.host[2].end(), 0.f);
    if (c.nan) T.host[0][7] = T.host[2][3] = std::nanf("");
    // upper triangular factors (rows x rows, cols x cols); what is below the diagonal is never read
    for (long long side : {c.rows, c.cols}) {
      std::vector<float> q(size_t(side * side));
      for (long long i = 0; i < side; ++i)
        for (long long j = 0; j < side; ++j) q[size_t(i * side + j)] = i > j ? 1e30f : i == j ? 1.f + 0.1f * float(i % 3) : 0.3f / float(1 + i + j);
      T.host.push_back(q);
    }
    T.host.push_back({0.f});  // a scalar
    // 7: the rows x cols matrix as Newton-Schulz takes it: of norm at most 1, bf16 values
    std::vector<float> x = T.host[2];
    double norm = 0;
    for (float v : x) norm += double(v) * v;
    for (float& v : x) v = round_bf16(float(v / (std::sqrt(norm) + 1e-7)));
    T.host.push_back(x);
    for (auto& h : T.host) {
      T.dev.push_back(be->alloc(h.size()));
      be->upload(T.dev.back(), h.data(), h.size());
    }
  }
  using exec::Extent;
  const std::vector<exec::LibraryCall> calls = {
      call_of(exec::Eigh{false}, {{Extent::Left, 0, -1}}, 1, Extent::Left),
      call_of(exec::Eigh{true}, {{Extent::Left, 0, -1}}, 1, Extent::Left),
      call_of(exec::InvRoot{4, false}, {{Extent::Left, 0, -1}, {Extent::Scalar, -1, 0}}, 1, Extent::Left),
      call_of(exec::InvRoot{2, true}, {{Extent::Left, 0, -1}, {Extent::Scalar, -1, 0}}, 1, Extent::Left),
      call_of(exec::Qr{}, {{Extent::Full, 2, -1}}, 3, Extent::Full),
      call_of(exec::TriSolveLeft{}, {{Extent::Left, 4, -1}, {Extent::Full, 2, -1}}, 3, Extent::Full),
      call_of(exec::TriSolveRight{}, {{Extent::Full, 2, -1}, {Extent::Right, 5, -1}}, 3, Extent::Full),
      call_of(exec::NormLowerBound{}, {{Extent::Full, 2, -1}}, 6, Extent::Scalar),
      call_of(exec::NormLowerBound{}, {{Extent::Left, 0, -1}}, 6, Extent::Scalar),
      call_of(exec::NsSteps{keller(5), false}, {{Extent::Full, 7, -1}}, 3, Extent::Full),
      call_of(exec::NsSteps{keller(5), true}, {{Extent::Full, 7, -1}}, 3, Extent::Full),
  };
  for (const auto& call : calls) {
    std::vector<CallTensor> cts;
    for (size_t t = 0; t < cases.size(); ++t) cts.push_back({ts[t].dev.data(), cases[t].rows, cases[t].cols, ts[t].regs});
    REQUIRE(be->run_call(call, cts.data(), cts.size()));  // whole, on the device: no host copies
    for (size_t t = 0; t < cases.size(); ++t) {
      INFO(std::string(exec::call_name(call.op)) << " of case " << t << " (" << cases[t].rows << " x " << cases[t].cols << ", rank " << cases[t].rank
                                                 << ")");
      const size_t n = size_t(exec::dims_of(call.out_extent, cases[t].rows, cases[t].cols).count());
      std::vector<float> got(n), want(n);
      be->download(got.data(), ts[t].dev[call.out], n);
      const float* in[3] = {nullptr, nullptr, nullptr};
      for (size_t o = 0; o < call.in.size(); ++o)
        if (call.in[o].buffer >= 0) in[o] = ts[t].host[size_t(call.in[o].buffer)].data();
      cpu::run_call(call, in, ts[t].regs, want.data(), cases[t].rows, cases[t].cols);
      double scale = 1e-30, worst = 0;
      size_t nan_mismatch = 0;
      for (size_t i = 0; i < n; ++i) {
        if (std::isnan(want[i]) != std::isnan(got[i])) ++nan_mismatch;
        if (std::isnan(want[i]) || std::isnan(got[i])) continue;
        scale = std::max(scale, double(std::abs(want[i])));
        worst = std::max(worst, double(std::abs(want[i] - got[i])));
      }
      CHECK(nan_mismatch == 0);
      // (bf16 Newton-Schulz: a summation-order difference can flip the last bit of an entry of A
      // or B, 2^-8 of it, and five steps carry it on)
      const auto* ns = std::get_if<exec::NsSteps>(&call.op);
      CHECK(worst <= (ns && ns->bf16 ? 1e-2 : 1e-5) * scale);
      if (cases[t].nan) CHECK(std::any_of(got.begin(), got.end(), [](float v) { return std::isnan(v); }));
    }
  }
  be->sync();  // and no solver reported an argument error
  for (auto& T : ts)
    for (float* p : T.dev) be->release(p);
}

TEST_CASE("which device memory is on: from the pointer, on every device; host memory is refused") {
  int count = 0;
  REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess);
  for (int d = 0; d < count; ++d) {
    void* p = nullptr;
    REQUIRE(cudaSetDevice(d) == cudaSuccess);
    REQUIRE(cudaMalloc(&p, 256) == cudaSuccess);
    CHECK(cuda_device_of(p) == d);
    cudaFree(p);
  }
  std::vector<float> host(4);
  CHECK_THROWS_WITH_AS(cuda_device_of(host.data()), doctest::Contains("not a CUDA device's"), DeviceError);
}

int main(int argc, char** argv) {
  try {
    auto b = make_backend(kCuda);
    std::printf("gpu tests on %s\n", b->describe().c_str());
  } catch (const Error& e) {
    std::printf("skipped: %s\n", e.what());
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
