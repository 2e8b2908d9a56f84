// The runtime's device code paths, checked on the CPU: a stand-in backend keeps host memory but
// says it does not (so the runtime batches library calls by shape, copies through
// upload/download and refuses host views), multiplies with the column-major cuBLAS call the
// CUDA backend makes (runtime/cuda/gemm_layout.h), and returns eigenvectors with scrambled
// signs, as any solver may. Every stdlib optimizer must step exactly as on the CPU backend.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include "support/eigen.h"
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "driver/build.h"
#include "support/bf16.h"
#include "runtime/backend.h"
#include "runtime/cpu/linalg.h"
#include "runtime/cuda/gemm_layout.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"
#include "tests/numerics/harness.h"
#include "tests/unit/policy_cases.h"
#include "tests/unit/trajectory.h"

using namespace opal;
using opal::testing::diagnostics_agree;
using opal::testing::init_params;
using opal::testing::overflow_cases;
using opal::testing::PolicyStep;
using opal::testing::rel_err;
using opal::testing::run_steps;
using opal::testing::state_of;
using opal::testing::step_with;

namespace {

class DeviceLike final : public Backend {
 public:
  int gemm_calls = 0, gemm_matrices = 0, eigh_calls = 0, launches = 0, layout_mismatches = 0;
  void* stream = nullptr;             // as a device backend holds it: the caller's during a step only
  std::vector<void*> launch_streams;  // where each launch went
  bool fail_gemm = false;
  Device device() const override { return {}; }  // CPU kernels: the generated code runs here
  std::string describe() const override { return "device-like test backend"; }
  bool host_memory() const override { return false; }
  float* alloc(size_t n) override { return cpu_->alloc(n); }
  void release(float* p) override { cpu_->release(p); }
  void upload(float* d, const float* s, size_t n) override { std::memcpy(d, s, n * 4); }
  void download(float* d, const float* s, size_t n) override { std::memcpy(d, s, n * 4); }
  void copy(float* d, const float* s, size_t n) override { std::memmove(d, s, n * 4); }
  void copy_bytes(void* d, const void* s, size_t n) override { std::memmove(d, s, n); }
  void download_bytes(void* d, const void* s, size_t n) override { std::memcpy(d, s, n); }
  void zero_bytes(void* d, size_t n) override { std::memset(d, 0, n); }
  void zero(const std::vector<std::pair<float*, size_t>>& b) override { cpu_->zero(b); }
  void convert(void* d, exec::DType to, const void* s, exec::DType from, size_t n, const Rounding& r) override {
    cpu_->convert(d, to, s, from, n, r);
  }
  std::shared_ptr<KernelModule> compile(const std::string& src, const std::vector<std::string>& syms) override { return cpu_->compile(src, syms); }
  void launch(const KernelModule& m, const exec::KernelLaunch& k, const KernelTensor* t, size_t n, size_t nb, long long mx, const double* u,
              size_t nu) override {
    ++launches;
    launch_streams.push_back(stream);
    cpu_->launch(m, k, t, n, nb, mx, u, nu);
  }
  // The column-major call (what cuBLAS computes) must equal the row-major product; the
  // stored result is Eigen's, summed as the CPU backend sums, so that inverse roots, which
  // amplify rounding differences, see the same numbers on both sides.
  bool gemm(const GemmBatch& b) override {
    if (fail_gemm) throw Error("device-like test backend: a GEMM failed");
    ++gemm_calls;
    using M = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const cuda::ColumnMajorGemm c = cuda::column_major(b);
    auto rnd = [&](M m) { return b.bf16 ? M(m.unaryExpr([](float x) { return round_bf16(x); })) : m; };
    using CMap = Eigen::Map<const M>;
    using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    for (size_t q = 0; q < b.C.size(); ++q) {
      ++gemm_matrices;
      const long long ar = b.ta ? b.k : b.m, ac = b.ta ? b.m : b.k, br = b.tb ? b.n : b.k, bc = b.tb ? b.k : b.n;
      M keepA, keepB;  // bf16: the rounded operands, as the CPU backend keeps them
      if (b.bf16) {
        keepA = rnd(CMap(b.A[q], ar, ac));
        keepB = rnd(CMap(b.B[q], br, bc));
      }
      CMap A(b.bf16 ? keepA.data() : b.A[q], ar, ac), B(b.bf16 ? keepB.data() : b.B[q], br, bc);
      // the reference in double, and the column-major loops cuBLAS would run, also in double
      MatD Ad = A.cast<double>(), Bd = B.cast<double>();
      MatD ref = (b.ta ? MatD(Ad.transpose()) : Ad) * (b.tb ? MatD(Bd.transpose()) : Bd);
      auto X = [&](long long i, long long l) { return at(b.B[q], c.trans_first, i, l, c.ld_first, b.bf16); };
      auto Y = [&](long long l, long long j) { return at(b.A[q], c.trans_second, l, j, c.ld_second, b.bf16); };
      const double scale = std::max(1e-30, ref.cwiseAbs().maxCoeff());
      for (long long i = 0; i < c.m; ++i)
        for (long long j = 0; j < c.n; ++j) {
          double s = 0;
          for (long long l = 0; l < c.k; ++l) s += double(X(i, l)) * double(Y(l, j));
          // column-major (i, j) of C^T is row-major C(j, i)
          if (std::abs(s - ref(j, i)) > 1e-9 * scale) ++layout_mismatches;
        }
      // the stored result: the CPU backend's own product (Eigen's summation order depends on
      // the flags it was compiled with), so that inverse roots, which amplify rounding
      // differences, see the same numbers on both sides
      cpu::matmul(b.A[q], b.ta, b.B[q], b.tb, b.m, b.n, b.k, b.bf16, b.C[q]);
    }
    return true;
  }
  bool eigh(long long n, const std::vector<const float*>& in, double* values, double* vectors) override {
    ++eigh_calls;
    using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    for (size_t q = 0; q < in.size(); ++q) {
      MatD A = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(in[q], n, n).cast<double>();
      A = 0.5 * (A + A.transpose());
      Eigen::SelfAdjointEigenSolver<MatD> es(A);
      MatD V = es.eigenvectors();
      for (long long i = 1; i < n; i += 2) V.col(i) = -V.col(i);  // another solver, other signs
      Eigen::Map<Eigen::VectorXd>(values + q * n, n) = es.eigenvalues();
      Eigen::Map<MatD>(vectors + q * n * n, n, n) = V;
    }
    return true;
  }
  void set_stream(void* s) override { stream = s; }
  void end_step() override { stream = nullptr; }
  void sync() override {}

 private:
  static float at(const float* p, bool trans, long long r, long long c, long long ld, bool bf) {
    float v = trans ? p[c + r * ld] : p[r + c * ld];
    return bf ? round_bf16(v) : v;
  }
  std::unique_ptr<Backend> cpu_ = make_cpu_backend();
};

std::vector<ParamDesc> params(bool vectors) {
  std::vector<ParamDesc> ps = {{"h.0.w", {12, 8}}, {"h.1.w", {12, 8}}, {"wide.w", {6, 16}}, {"sq.w", {8, 8}}};
  if (vectors) ps.push_back({"h.0.b", {8}});
  return ps;
}

// An optimizer on the stand-in backend, its kernels built for it.
std::unique_ptr<Optimizer> on(std::unique_ptr<Backend> b, const std::string& spec, std::vector<ParamDesc> ps) {
  auto exe = build_executable(compile_spec({spec, "", ""}), false, b.get());
  return std::make_unique<Optimizer>(std::move(b), std::move(exe), std::move(ps));
}

void run(Optimizer& o, int steps) {
  init_params(o);
  run_steps(o, steps);
}

}  // namespace

TEST_SUITE("backend") {
TEST_CASE("every stdlib optimizer steps on a device-like backend as on the CPU (batched GEMMs, canonical eigenbases)") {
  Diagnostics d;
  auto program = load_program({}, d);
  REQUIRE_FALSE(d.has_errors());
  int gemms = 0, batched = 0, eighs = 0;
  for (const auto& entry : program->optimizers) {
    const std::string name = entry.first;  // (not a structured binding: clang 14 cannot capture one in INFO)
    bool vectors = true;
    std::unique_ptr<Optimizer> cpu;
    try {
      cpu = std::make_unique<Optimizer>(build_executable(SpecRef{name, "", ""}), params(true));
    } catch (const Error&) {
      vectors = false;
      cpu = std::make_unique<Optimizer>(build_executable(SpecRef{name, "", ""}), params(false));
    }
    auto dev_backend = std::make_unique<DeviceLike>();
    DeviceLike* dev = dev_backend.get();
    auto gpu = on(std::move(dev_backend), name, params(vectors));
    run(*cpu, 12);
    run(*gpu, 12);
    for (size_t p = 0; p < cpu->num_params(); ++p) {
      const std::string& n = cpu->param_name(p);
      INFO(name << ", parameter " << n);
      CHECK(rel_err(gpu->read_param(n), cpu->read_param(n)) <= 1e-5);
      for (const auto& s : cpu->slots(n)) {
        INFO("state " << s);
        CHECK(rel_err(gpu->read_state(n, s), cpu->read_state(n, s)) <= 1e-4);
      }
    }
    CHECK(dev->layout_mismatches == 0);
    gemms += dev->gemm_calls;
    batched += dev->gemm_matrices - dev->gemm_calls;
    eighs += dev->eigh_calls;
  }
  CHECK(gemms > 0);
  CHECK(batched > 0);  // h.0.w and h.1.w share a shape: one call for both
  CHECK(eighs > 0);
}

TEST_CASE("one launch per kernel covers every tensor of a route") {
  auto b = std::make_unique<DeviceLike>();
  DeviceLike* dev = b.get();
  auto o = on(std::move(b), "adamw", params(true));
  size_t kernels = 0;
  for (const auto& r : o->description().routes) kernels += r.kernels.size();
  const int before = dev->launches;
  o->step();
  CHECK(size_t(dev->launches - before) <= kernels);
}

TEST_CASE("device memory: host views are refused with a hint, copies are size-checked, checkpoints round-trip") {
  namespace fs = std::filesystem;
  auto dev = on(std::make_unique<DeviceLike>(), "soap", params(true));
  Optimizer& o = *dev;
  CHECK_THROWS_WITH_AS(o.param("h.0.w"), doctest::Contains("read_param"), Error);
  CHECK_THROWS_AS(o.grad("h.0.w"), Error);
  CHECK_THROWS_AS(o.state("h.0.w", o.slots("h.0.w")[0]), Error);
  CHECK_THROWS_AS(o.write_param("h.0.w", std::vector<float>(5)), Error);
  CHECK_THROWS_AS(o.write_state("h.0.w", o.slots("h.0.w")[0], std::vector<float>(5)), Error);
  run(o, 5);
  std::string path = (fs::temp_directory_path() / "opal-backend-test.safetensors").string();
  o.save(path, {.params = true});
  Optimizer cpu(build_executable(SpecRef{"soap", "", ""}), params(true));
  cpu.load(path);
  for (const auto& s : o.slots("h.0.w")) CHECK(cpu.read_state("h.0.w", s) == o.read_state("h.0.w", s));
  CHECK(cpu.read_param("wide.w") == o.read_param("wide.w"));
  fs::remove(path);
}

// The checked step keeps its copies and flags in the backend's memory: on a device it steps,
// undoes, zeroes and reports exactly as on the CPU. bf16 parameters of odd length (copies that
// end mid-word), a stage going non-finite from a finite gradient, and f16 parameters whose new
// value overflows, stored in place (elementwise) or staged (a matrix route).
TEST_CASE("non-finite policies and update diagnostics on device memory: as on the CPU, to the bit") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const char* blowup = "component blowup() {\n  u = u / (g - 1)\n}\noptimizer o(lr = 0.1) {\n  other: heavy_ball(0.9) -> blowup -> scale(lr)\n}\n";
  struct Case {
    const char* spec;
    DType dt;
    float value;
  };
  for (const Case& c :
       {Case{"adamw", DType::F32, nan}, Case{"muon", DType::F32, inf}, Case{"adamw", DType::BF16, nan}, Case{blowup, DType::F32, 1.f}})
    for (NonFinitePolicy p : {NonFinitePolicy::Off, NonFinitePolicy::Raise, NonFinitePolicy::Skip, NonFinitePolicy::Zero}) {
      INFO(c.spec << ", " << exec::dtype_name(c.dt) << " parameters, policy " << nonfinite_policy_name(p));
      std::vector<ParamDesc> ps = params(true);
      ps.push_back({"odd.b", {5}});
      for (auto& d : ps) d.dtype = d.grad_dtype = c.dt;
      auto dev = on(std::make_unique<DeviceLike>(), c.spec, ps);
      auto cpu = make_optimizer(compile_spec({c.spec, "", ""}), ps);
      // g = 1 where the blowup divides by g - 1
      const std::string bad = std::string(c.spec) == "muon" ? "sq.w" : "odd.b";
      const PolicyStep a = step_with(*dev, p, bad, 3, c.value), b = step_with(*cpu, p, bad, 3, c.value);
      CHECK(a == b);
      CHECK(a.events.size() == (p == NonFinitePolicy::Off ? 0u : 1u));
      if (p == NonFinitePolicy::Raise) CHECK(a.error.find("[NonFinite]") != std::string::npos);
    }
  overflow_cases([](const char* spec, const std::vector<ParamDesc>& ps) { return on(std::make_unique<DeviceLike>(), spec, ps); },
                 [](const PolicyStep& a, const PolicyStep& b) { CHECK(a == b); });
  auto dev = on(std::make_unique<DeviceLike>(), "muon", params(true));
  auto cpu = make_optimizer(compile_spec({"muon", "", ""}), params(true));
  diagnostics_agree(*dev, *cpu, 0);
}

// A checked step is all or nothing: a library call failing mid-step (SOAP's rotations are GEMMs
// between its kernels) puts every parameter and its state back, and no count advances. The
// unchecked step has no copies to go back to.
TEST_CASE("a checked step that fails midway is undone: parameters, state and step counts as before") {
  for (NonFinitePolicy p : {NonFinitePolicy::Raise, NonFinitePolicy::Skip, NonFinitePolicy::Zero}) {
    INFO(nonfinite_policy_name(p));
    auto b = std::make_unique<DeviceLike>();
    DeviceLike* dev = b.get();
    auto o = on(std::move(b), "soap", params(true));
    init_params(*o);
    run_steps(*o, 3);
    o->set_nonfinite_policy(p);
    const PolicyStep before = state_of(*o);
    dev->fail_gemm = true;
    CHECK_THROWS_WITH_AS(o->step(), doctest::Contains("a GEMM failed"), Error);
    CHECK(state_of(*o) == before);
    dev->fail_gemm = false;
    o->step();
    CHECK(o->step_count() == before.steps + 1);
    CHECK(state_of(*o).bits != before.bits);
  }
}

TEST_CASE("a step's work goes on the caller's stream, which the backend lets go of when the step ends, even by an error") {
  auto b = std::make_unique<DeviceLike>();
  DeviceLike* dev = b.get();
  auto o = on(std::move(b), "soap", params(true));
  init_params(*o);
  int caller_stream = 0;
  o->step(&caller_stream);
  REQUIRE_FALSE(dev->launch_streams.empty());
  for (void* s : dev->launch_streams) CHECK(s == &caller_stream);
  CHECK(dev->stream == nullptr);  // not kept: the caller may destroy its stream now
  dev->fail_gemm = true;          // SOAP's rotations: GEMMs mid-step
  CHECK_THROWS_WITH_AS(o->step(&caller_stream), doctest::Contains("a GEMM failed"), Error);
  CHECK(dev->stream == nullptr);
}

#ifdef OPAL_GPU_TESTS_BINARY
TEST_CASE("a program run by a relative path finds the CUDA plugin beside it (or says why there is no device)") {
  namespace fs = std::filesystem;
  const fs::path bin = OPAL_GPU_TESTS_BINARY;
  // from the build tree's root, as `tests/opal_gpu_tests`: a relative name whose folder's parent
  // holds libopal_cuda.so
  const std::string cmd = "cd '" + bin.parent_path().parent_path().string() + "' && env -u OPAL_CUDA_PLUGIN " +
                          (bin.parent_path().filename() / bin.filename()).string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = pclose(p);
  CAPTURE(out);
  REQUIRE(WIFEXITED(rc));  // (it crashed here once: a relative plugin path and a null dlerror())
  CHECK((WEXITSTATUS(rc) == 0 || WEXITSTATUS(rc) == 77));
  CHECK(out.find("cannot load the CUDA backend") == std::string::npos);
}
#endif

TEST_CASE("a CUDA stream given to a CPU optimizer is a DeviceError") {
  Optimizer o(build_executable(SpecRef{"adamw", "", ""}), params(true));
  int fake_stream = 0;
  CHECK_THROWS_AS(o.step(&fake_stream), DeviceError);
  CHECK(o.step_count() == 0);
}
}
