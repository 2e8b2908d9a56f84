// Regressions of a hostile trial (issue 14): each case here once crashed, hung, or gave a silent
// wrong result. Each asserts a clear error that changes nothing, or the right result. (The
// Python cases are tests/python/test_hardening.py; full disks and noexec mounts are
// tests/hardening/mounts_test.sh.)
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "support/eigen.h"
#include <fmt/format.h>

#include "driver/build.h"
#include "compiler/codegen/c_emitter.h"
#include "runtime/cpu/host_compile.h"
#include "compiler/pipeline.h"
#include "runtime/backend.h"
#include "runtime/checkpoint.h"
#include "runtime/cpu/linalg.h"
#include "runtime/error.h"
#include "runtime/executable.h"
#include "runtime/optimizer.h"
#include "runtime/safetensors.h"

#include "error_of.h"
#include "run_cli.h"
#include "scoped_env.h"
#include "scratch.h"

using namespace opal;
using namespace opal::testing;
namespace fs = std::filesystem;

namespace {

struct Params {
  std::vector<std::vector<float>> w, g;
  std::vector<ParamDesc> descs;
  Params(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes, float grad = 0.1f) {
    for (const auto& [name, shape] : shapes) {
      size_t n = 1;
      for (auto d : shape) n *= size_t(d);
      w.emplace_back(n, 0.5f);
      g.emplace_back(n, grad);
    }
    for (size_t i = 0; i < shapes.size(); ++i) descs.push_back({shapes[i].first, shapes[i].second, w[i].data(), g[i].data()});
  }
};

// The CPU backend, call for call: the fakes below change one behaviour each.
class ForwardingBackend : public Backend {
 public:
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  Device device() const override { return cpu->device(); }
  std::string describe() const override { return "forwarding cpu"; }
  bool host_memory() const override { return true; }
  float* alloc(size_t n) override { return cpu->alloc(n); }
  void release(float* p) override { cpu->release(p); }
  void upload(float* d, const float* s, size_t n) override { cpu->upload(d, s, n); }
  void download(float* d, const float* s, size_t n) override { cpu->download(d, s, n); }
  void copy(float* d, const float* s, size_t n) override { cpu->copy(d, s, n); }
  void copy_bytes(void* d, const void* s, size_t n) override { cpu->copy_bytes(d, s, n); }
  void download_bytes(void* d, const void* s, size_t n) override { cpu->download_bytes(d, s, n); }
  void zero_bytes(void* d, size_t n) override { cpu->zero_bytes(d, n); }
  void zero(const std::vector<std::pair<float*, size_t>>& b) override { cpu->zero(b); }
  void convert(void* d, exec::DType to, const void* s, exec::DType from, size_t n, const Rounding& r) override { cpu->convert(d, to, s, from, n, r); }
  std::shared_ptr<KernelModule> compile(const std::string& src, const std::vector<std::string>& syms) override { return cpu->compile(src, syms); }
  void launch(const KernelModule& m, const exec::KernelLaunch& k, const KernelTensor* t, size_t n, size_t nb, long long mx, const double* u,
              size_t nu) override {
    cpu->launch(m, k, t, n, nb, mx, u, nu);
  }
  bool gemm(const GemmBatch& b) override { return cpu->gemm(b); }
  bool eigh(long long n, const std::vector<const float*>& in, double* v, double* V) override { return cpu->eigh(n, in, v, V); }
  void set_stream(void* s) override { cpu->set_stream(s); }
  void end_step() override { cpu->end_step(); }
  void sync() override { cpu->sync(); }
};

// Kernel launches wait at a gate: a step can be held mid-flight.
class GatedBackend final : public ForwardingBackend {
 public:
  std::mutex mu;
  std::condition_variable cv;
  bool open = true, waiting = false;
  std::string describe() const override { return "gated cpu"; }
  void launch(const KernelModule& m, const exec::KernelLaunch& k, const KernelTensor* t, size_t n, size_t nb, long long mx, const double* u,
              size_t nu) override {
    std::unique_lock lock(mu);
    waiting = true;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
    waiting = false;
    lock.unlock();
    cpu->launch(m, k, t, n, nb, mx, u, nu);
  }
};

// Library calls take matrices up to 8 on a side (as CUDA's take up to INT_MAX).
class SmallCallsBackend final : public ForwardingBackend {
 public:
  std::string describe() const override { return "small cpu"; }
  long long max_call_side() const override { return 8; }
};

}  // namespace

TEST_SUITE("hardening") {

TEST_CASE("a matrix larger than the backend's library calls take is refused when the optimizer is built") {
  auto exe = build_executable(SpecRef{"muon", "", ""});
  std::string e = error_of([&] { Optimizer opt(std::make_unique<SmallCallsBackend>(), exe, {{"big", {16, 4}}, {"v", {32}}}); });
  CHECK(contains(e, "parameter `big` is a 16 x 4 matrix in route `matrix`"));
  CHECK(contains(e, "LimitExceeded"));
  // within the limit, and a long vector on the elementwise route, build and step
  Optimizer ok(std::make_unique<SmallCallsBackend>(), exe, {{"small", {8, 4}}, {"v", {32}}});
  ok.step();
}

// ---- the runtime ----

TEST_CASE("a tensor given twice, or overlapping another, is refused naming both (item 9)") {
  std::vector<float> w(16, 1.f), g(16, 1.f), g2(16, 1.f);
  std::string e = error_of([&] {
    Optimizer opt(build_executable(SpecRef{"adamw", "", ""}), {{"a", {4, 4}, w.data(), g.data()}, {"b", {4, 4}, w.data(), g2.data()}});
    opt.step();
  });
  CHECK(contains(e, "`a` and `b` share memory"));
  // a view into another parameter, bound later
  std::vector<float> v(8, 1.f), gv(8, 1.f);
  Optimizer opt(build_executable(SpecRef{"adamw", "", ""}), {{"a", {4, 4}, w.data(), g.data()}, {"b", {8}, v.data(), gv.data()}});
  opt.step();
  std::vector<float> before = w;
  opt.bind("b", w.data() + 4, gv.data());
  CHECK(contains(error_of([&] { opt.step(); }), "`a` and `b` share memory"));
  CHECK(w == before);
  CHECK(opt.step_count() == 1);
  opt.bind("b", v.data(), gv.data());
  opt.step();
  CHECK(opt.step_count() == 2);
}

TEST_CASE("step counts are per parameter: a step without gradients counts nothing, a late joiner starts at 1 (item 10)") {
  Params p({{"w", {3, 4}}, {"b", {4}}});
  Optimizer opt(build_executable(SpecRef{"adamw", "", ""}), p.descs);
  opt.bind("b", p.w[1].data(), nullptr);
  for (int i = 0; i < 3; ++i) opt.step();
  CHECK(opt.step_count("w") == 3);
  CHECK(opt.step_count("b") == 0);
  opt.bind("w", p.w[0].data(), nullptr);
  std::vector<float> w_before = p.w[0], b_before = p.w[1];
  opt.step();  // nobody has a gradient: nothing changes, not even a count
  CHECK(opt.step_count() == 3);
  CHECK(p.w[0] == w_before);
  opt.bind("b", p.w[1].data(), p.g[1].data());
  opt.step();
  CHECK(opt.step_count("b") == 1);
  CHECK(opt.step_count("w") == 3);
  // b's first step is Adam's first step: with bias correction, lr * sign(g) (+ decay)
  Params q({{"b", {4}}});
  Optimizer fresh(build_executable(SpecRef{"adamw", "", ""}), q.descs);
  fresh.step();
  CHECK(p.w[1] == q.w[0]);
  // the counts survive a checkpoint
  auto dir = scratch("steps");
  opt.save(dir + "/ck.safetensors");
  Params r({{"w", {3, 4}}, {"b", {4}}});
  Optimizer back(build_executable(SpecRef{"adamw", "", ""}), r.descs);
  back.load(dir + "/ck.safetensors");
  CHECK(back.step_count("w") == 3);
  CHECK(back.step_count("b") == 1);
  CHECK(back.step_count() == 4);
  fs::remove_all(dir);
  CHECK(contains(error_of([&] { opt.set_step_count("w", int64_t(1) << 60); }), "2^53"));
  // a checkpoint's per-parameter count that is not a whole number from 0 to 2^53 is refused
  for (const char* bad : {"-1", "\"3\"", "1.5", "1152921504606846976"}) {
    CAPTURE(bad);
    SafetensorsFile f = checkpoint_of(opt);
    std::string& table = f.metadata.at("opal.params");
    size_t at = table.find("\"step\":");
    REQUIRE(at != std::string::npos);
    size_t end = table.find_first_of(",}", at);
    table.replace(at, end - at, std::string("\"step\":") + bad);
    CHECK(contains(error_of([&] { prepare_load(opt, f, "edited"); }), "step count that is not a whole number"));
  }
}

TEST_CASE("a second concurrent step() of one optimizer is refused and changes nothing (item 7)") {
  auto gate = std::make_unique<GatedBackend>();
  GatedBackend& gb = *gate;
  auto exe = build_executable(compile_spec({"adamw", "", ""}), false, gate.get());
  Params p({{"w", {8, 8}}});
  Optimizer opt(std::move(gate), exe, p.descs);
  {
    std::lock_guard lock(gb.mu);
    gb.open = false;
  }
  std::thread first([&] { opt.step(); });
  {
    std::unique_lock lock(gb.mu);
    gb.cv.wait(lock, [&] { return gb.waiting; });
  }
  std::string e = error_of([&] { opt.step(); });
  CHECK(contains(e, "already running on another thread"));
  // nor may the last step be undone while one runs
  CHECK(contains(error_of([&] { opt.undo_step(); }), "[ConcurrentStep]"));
  {
    std::lock_guard lock(gb.mu);
    gb.open = true;
  }
  gb.cv.notify_all();
  first.join();
  CHECK(opt.step_count() == 1);
  opt.step();  // free again
  CHECK(opt.step_count() == 2);
}

TEST_CASE("non-finite and out-of-range hyperparameters are refused (item 12)") {
  Params p({{"w", {2, 2}}});
  Optimizer opt(build_executable(SpecRef{"adamw", "", ""}), p.descs);
  double lr = opt.hparam("lr");
  for (double bad : {double(NAN), double(INFINITY), -double(INFINITY), 1e308, -1e39}) {
    CAPTURE(bad);
    CHECK_FALSE(error_of([&] { opt.set_hparam("lr", bad); }).empty());
    CHECK(opt.hparam("lr") == lr);
  }
  opt.set_hparam("lr", 3e38);  // within float32
  for (const char* arg : {"lr=nan", "lr=inf", "lr=1e308", "lr=-inf"})
    cli_fails(fmt::format("run adamw --steps 2 --hparam {}", arg), {"hyperparameter `lr`"});
  for (const char* arg : {"lr=1e999", "lr=1e-400"}) cli_fails(fmt::format("run adamw --steps 2 --hparam {}", arg), {"is out of range"});
  cli_fails("run adamw --steps 2 --hparam lr=fast", {"is not a number"});
  // and a spec's default
  std::string e = error_of([] { compile_spec({"optimizer o(lr = 1e300) { other: scale(lr) }", "", ""}); });
  CHECK(contains(e, "the default of hyperparameter `lr` (1e+300) is out of range"));
  CHECK(contains(e, "1:18"));
}

TEST_CASE("every stdlib optimizer stays finite on all-zero, tiny and denormal gradients (item 8)") {
  Diagnostics d;
  std::shared_ptr<Program> program(load_program({}, d));
  REQUIRE(program->optimizers.size() > 30);
  for (const auto& entry : program->optimizers) {
    const std::string name = entry.first;
    for (float fill : {0.f, 1e-30f, 1e-42f, 1e-20f}) {
      CAPTURE(name);
      CAPTURE(fill);
      Params p({{"w", {6, 5}}, {"b", {5}}}, fill);
      Optimizer opt(build_executable(SpecRef{name, "", ""}), p.descs);
      for (int s = 0; s < 3; ++s) opt.step();
      bool finite = true;
      for (const auto& w : p.w)
        for (float x : w) finite = finite && std::isfinite(x);
      CHECK(finite);
    }
  }
}

TEST_CASE("two threads saving one optimizer to one path never collide (item 18)") {
  auto dir = scratch("saves");
  Params p({{"w", {16, 16}}});
  Optimizer a(build_executable(SpecRef{"adamw", "", ""}), p.descs);
  a.step();
  std::atomic<int> failures{0};
  std::string first_error;
  std::mutex mu;
  auto saver = [&] {
    for (int i = 0; i < 40; ++i) {
      try {
        a.save(dir + "/ck.safetensors");
      } catch (const Error& e) {
        std::lock_guard lock(mu);
        if (failures++ == 0) first_error = e.what();
      }
    }
  };
  std::thread t1(saver), t2(saver);
  t1.join();
  t2.join();
  CAPTURE(first_error);
  CHECK(failures == 0);
  Params q({{"w", {16, 16}}});
  Optimizer b(build_executable(SpecRef{"adamw", "", ""}), q.descs);
  b.load(dir + "/ck.safetensors");
  CHECK(b.read_state("w", "adapt.v") == a.read_state("w", "adapt.v"));
  size_t files = 0;
  for (auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 1);  // no temporary left behind
  fs::remove_all(dir);
}

// ---- the kernel cache and the host compiler ----

TEST_CASE("a truncated or altered kernel-cache entry is rebuilt, never mapped (item 2)") {
  auto dir = scratch("cache");
  ScopedEnv env("OPAL_CACHE_DIR", dir);
  std::string src = emit_optimizer(*compile_spec({"lion", "", ""}), Target::Cpu);
  HostCompileResult a = compile_host(src);
  REQUIRE(a.module);
  std::string path = a.path;
  a.module.reset();
  auto size = fs::file_size(path);
  fs::resize_file(path, 5000);  // truncated in place
  HostCompileResult b = compile_host(src);
  REQUIRE(b.module);
  CHECK_FALSE(b.from_cache);
  CHECK(fs::file_size(path) > 5000);  // rebuilt whole (its size may differ: the object names its temporary source)
  b.module.reset();
  {  // one instruction byte altered in the middle of the object
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(std::streamoff(size / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(std::streamoff(size / 2));
    c = char(c ^ 0x5a);
    f.write(&c, 1);
  }
  HostCompileResult c = compile_host(src);
  REQUIRE(c.module);
  CHECK_FALSE(c.from_cache);
  c.module.reset();
  HostCompileResult d = compile_host(src);
  CHECK(d.from_cache);
  fs::remove_all(dir);
}

TEST_CASE("a host compiler that hangs is stopped after OPAL_COMPILE_TIMEOUT, leaving nothing behind (item 6)") {
  auto dir = scratch("hang");
  std::string cc = write(dir + "/hanging-cc", "#!/bin/sh\nsleep 60\n", true);
  ScopedEnv cache("OPAL_CACHE_DIR", dir + "/cache");
  ScopedEnv cxx("OPAL_CXX", cc);
  ScopedEnv limit("OPAL_COMPILE_TIMEOUT", "1");
  auto begin = std::chrono::steady_clock::now();
  HostCompileResult r = compile_host("extern \"C\" int f() { return 1; }  // hang test");
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  CHECK_FALSE(r.module);
  CHECK(contains(r.error, "did not finish within 1 s"));
  CHECK(contains(r.error, "OPAL_COMPILE_TIMEOUT"));
  CHECK(took < 20);
  CHECK(fs::is_empty(dir + "/cache"));
  fs::remove_all(dir);
}

TEST_CASE("OPAL_CXXFLAGS reach the host compiler after Opal's flags, and key the cache") {
  auto dir = scratch("cxxflags");
  ScopedEnv cache("OPAL_CACHE_DIR", dir + "/cache");
  const std::string src =  // a module with the cache key the loader checks, and the flag's value
      "extern \"C\" const char* opal_cache_key(void) { return OPAL_CACHE_KEY; }\n"
      "extern \"C\" int opal_flag_value() { return OPAL_TEST_FLAG; }\n";
  auto value = [&](const HostCompileResult& r) { return reinterpret_cast<int (*)()>(r.module->symbol("opal_flag_value"))(); };
  {
    ScopedEnv extra("OPAL_CXXFLAGS", "  -DOPAL_TEST_FLAG=3\t-O1 ");
    HostCompileResult a = compile_host(src);
    INFO(a.error);
    REQUIRE(a.module);
    CHECK_FALSE(a.from_cache);
    CHECK(value(a) == 3);
  }
  {
    ScopedEnv extra("OPAL_CXXFLAGS", "-DOPAL_TEST_FLAG=4");  // other flags: another entry
    HostCompileResult b = compile_host(src);
    REQUIRE(b.module);
    CHECK_FALSE(b.from_cache);
    CHECK(value(b) == 4);
  }
  {
    ScopedEnv extra("OPAL_CXXFLAGS", "-DOPAL_TEST_FLAG=3 -O1");  // the same words: the first entry
    HostCompileResult c = compile_host(src);
    REQUIRE(c.module);
    CHECK(c.from_cache);
    CHECK(value(c) == 3);
  }
  {
    ScopedEnv extra("OPAL_CXXFLAGS", "--no-such-flag-for-opal");  // refused by the compiler: its message
    HostCompileResult d = compile_host(src);
    CHECK_FALSE(d.module);
    CHECK(contains(d.error, "no-such-flag-for-opal"));
  }
  fs::remove_all(dir);
}

// ---- files ----

TEST_CASE("directories and endless files are refused quickly (item 13)") {
  auto dir = scratch("dirs");
  for (const char* cmd : {"check", "ast"}) cli_fails(fmt::format("{} {}", cmd, dir), {"is a directory"});
  cli_fails("check /dev/zero", {"larger than the limit"});
  CHECK(contains(error_of([] { read_safetensors("/dev/zero"); }), "not a valid safetensors file"));
  CHECK(contains(error_of([&] { read_safetensors(dir); }), "is a directory"));
  Params p({{"w", {2, 2}}});
  Optimizer opt(build_executable(SpecRef{"adamw", "", ""}), p.descs);
  CHECK(contains(error_of([&] { opt.load("/dev/zero"); }), "cannot load checkpoint"));
  // a header that declares more data than the limit is refused before it is read
  std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = char((header.size() >> (8 * i)) & 0xff);
  write(dir + "/big.safetensors", bytes + header);
  CHECK(contains(error_of([&] { read_safetensors(dir + "/big.safetensors"); }), "the limit is"));
  fs::remove_all(dir);
}

TEST_CASE("opal run and replay refuse zero and negative step counts (item 5)") {
  cli_fails("replay adamw --init x --grads y --steps 0 -o z", {"--steps 0 is out of range"});
  for (const char* steps : {"0", "-3"}) cli_fails(fmt::format("run adamw --steps {}", steps), {"--steps", "out of range"});
}

// ---- ablations ----

TEST_CASE("the canonical null-space basis depends on the matrix alone, and costs matrix products (item 20)") {
  // a rank-40 factor of size 300: a 260-dimensional null space, over several blocks of rows
  const long long n = 300, rank = 40;
  using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  MatD G(n, rank);
  for (long long i = 0; i < G.size(); ++i) G.data()[i] = normal(rng);
  G.row(7).setZero();  // e_7 lies in the null space, as a row that got no gradient
  MatD L = G * G.transpose();
  // (the column-major solvers, as the numerics references in this file's unity group use: their
  // templates are compiled once, not again for row-major matrices)
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(L);
  MatD V = es.eigenvectors();
  Eigen::VectorXd lam = es.eigenvalues();
  // the same null space in another basis, as another solver might return it
  const long long k = n - rank;
  MatD R(k, k);
  for (long long i = 0; i < R.size(); ++i) R.data()[i] = normal(rng);
  MatD Q = Eigen::HouseholderQR<Eigen::MatrixXd>(R).householderQ();
  MatD V2 = V;
  V2.leftCols(k) = V.leftCols(k) * Q;
  std::vector<double> a_vals(n), a_vecs(n * n), b_vals(n), b_vecs(n * n);
  cpu::canonicalize_eigh(n, lam.data(), V.data(), false, a_vals.data(), a_vecs.data());
  cpu::canonicalize_eigh(n, lam.data(), V2.data(), false, b_vals.data(), b_vecs.data());
  double worst = 0;
  for (long long i = 0; i < n * n; ++i) worst = std::max(worst, std::abs(a_vecs[i] - b_vecs[i]));
  CHECK(worst < 1e-9);
  Eigen::Map<MatD> A(a_vecs.data(), n, n);
  CHECK((A.transpose() * A - MatD::Identity(n, n)).cwiseAbs().maxCoeff() < 1e-10);
  // Gram-Schmidt of P e_0, P e_1, ...: the first null vector is P e_0 normalized, and e_7 (in
  // the null space) is reached exactly where the process meets it
  MatD N = A.leftCols(k);
  MatD P = N * N.transpose();
  Eigen::VectorXd first = P.col(0) / P.col(0).norm();
  CHECK((N.col(0) - first).cwiseAbs().maxCoeff() < 1e-10);
  CHECK(std::abs((P.col(7)).norm() - 1.0) < 1e-10);
}

}  // TEST_SUITE
