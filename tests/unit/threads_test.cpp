// Threads. The bits of a step, and of a built-in workload's gradients, do not depend on the
// OpenMP team size (support/eigen_product.h): a grid run on one thread of `--jobs 4` gives what
// the same run alone on every core gives. And processes forked from one that stepped
// (runtime/host_pool.h): libgomp's worker threads stay in the parent, so a child that opens a
// parallel region of more than one thread waits for them forever. A trainer forking to write a
// checkpoint, and a sweep forking its trials from a process that stepped, must keep working: the
// child saves, and steps on one thread.
#include <doctest/doctest.h>

#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ablate/workload.h"
#include "ablate/workloads/builtin.h"
#include "driver/build.h"
#include "runtime/optimizer.h"
#include "support/eigen_product.h"

#include "scratch.h"

using namespace opal;
namespace fs = std::filesystem;

namespace {

// Parameters and state of every tensor, as f32 (bf16 parameters and q8 slots converted).
std::vector<float> everything_of(const Optimizer& opt) {
  std::vector<float> out;
  for (size_t k = 0; k < opt.num_params(); ++k) {
    const std::string& n = opt.param_name(k);
    for (float x : opt.read_param(n)) out.push_back(x);
    for (const auto& slot : opt.slots(n))
      for (float x : opt.read_state(n, slot)) out.push_back(x);
  }
  return out;
}

// Gradients that depend on the step and the weights, so that any difference carries on.
void forked_grads(Optimizer& opt, int s) {
  for (size_t k = 0; k < opt.num_params(); ++k) {
    const std::string& n = opt.param_name(k);
    std::vector<float> g = opt.read_param(n);
    for (size_t i = 0; i < g.size(); ++i) g[i] = std::sin(0.37f * float(i % 4099 + 1) * float(s) + float(k)) + 0.5f * g[i];
    opt.write_grad(n, g);
  }
}

// Steps s in [from, to] in a child forked now; returns what it then holds; *status says how it
// ended (2: an error, 3: a short write, 4: its OpenMP team size changed, SIGALRM: it hung). The parent reads the pipe while the child writes it.
std::vector<float> steps_in_child(Optimizer& opt, int from, int to, int* status) {
  int fd[2];
  REQUIRE(pipe(fd) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fd[0]);
    alarm(120);  // a step waiting for the parent's threads dies here, as a failure
    try {
      const int team = omp_get_max_threads();
      for (int s = from; s <= to; ++s) {
        forked_grads(opt, s);
        opt.step();
      }
      if (omp_get_max_threads() != team) _exit(4);  // the caller's OpenMP setting is left as it was
      const std::vector<float> v = everything_of(opt);
      const char* p = reinterpret_cast<const char*>(v.data());
      size_t left = v.size() * sizeof(float);
      while (left > 0) {
        const ssize_t w = write(fd[1], p, left);
        if (w <= 0) _exit(3);
        p += w, left -= size_t(w);
      }
    } catch (...) {
      _exit(2);
    }
    _exit(0);
  }
  close(fd[1]);
  std::vector<char> bytes;
  char buf[65536];
  for (ssize_t r; (r = read(fd[0], buf, sizeof buf)) > 0;) bytes.insert(bytes.end(), buf, buf + r);
  close(fd[0]);
  waitpid(pid, status, 0);
  std::vector<float> v(bytes.size() / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

// The calling thread's OpenMP team size, for a scope.
struct ScopedTeam {
  int saved = omp_get_max_threads();
  explicit ScopedTeam(int n) { omp_set_num_threads(n); }
  ~ScopedTeam() { omp_set_num_threads(saved); }
};

// Three steps of `spec` over a matrix whose products, eigensolvers and QR (SOAP's refresh after
// the first) are big enough to run on the pool, on a team of `team` threads. (Sums over 512
// terms: over fewer, Eigen's split of a product gave the same bits on any team.)
std::vector<float> stepped_on(const std::string& spec, int team) {
  ScopedTeam scoped(team);
  Optimizer opt(build_executable(SpecRef{spec, "", ""}), {{"blocks.0.weight", {384, 512}}, {"blocks.0.bias", {192}}});
  const auto& names = opt.hparam_names();
  if (std::find(names.begin(), names.end(), "every") != names.end()) opt.set_hparam("every", 2);  // refreshes at steps 1 and 3
  for (int s = 1; s <= 3; ++s) {
    forked_grads(opt, s);
    opt.step();
  }
  return everything_of(opt);
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A workload's loss and gradients after its third step's batch, on a team of `team` threads.
std::vector<float> gradients_on(Workload& wl, int team) {
  ScopedTeam scoped(team);
  auto run = wl.start(11);
  std::vector<float> out = {float(run->train_step(3))};
  for (const auto& p : run->params()) {
    int64_t n = 1;
    for (auto d : p.shape) n *= d;
    const float* g = static_cast<const float*>(p.grad);
    out.insert(out.end(), g, g + n);
  }
  return out;
}

}  // namespace

TEST_SUITE("hardening") {
TEST_CASE("a step gives the same bits on 1 and 3 threads: products, eigensolvers, QR") {
  // Muon: Newton-Schulz's products; SOAP: the eigensolver at step 1, QR at step 3, the rotations
  for (const std::string spec : {"muon", "soap"}) {
    CAPTURE(spec);
    CHECK(bitwise_equal(stepped_on(spec, 1), stepped_on(spec, 3)));
  }
}

TEST_CASE("a workload's gradients are the same bits on 1 and 3 threads") {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "the quick brown fox jumps over the lazy dog. ";
  // 768 rows of 64: the projections, the head and their gradients (sums over 768) run as panels
  std::vector<std::pair<std::string, std::unique_ptr<Workload>>> wls;
  wls.emplace_back("gpt", workloads::make_gpt_from_text(text, workloads::GptConfig{2, 64, 4, 32, 24, 1}, {}));
  for (const char* n : {"linreg", "softmax", "quadratic"}) wls.emplace_back(n, make_workload(n, {}));
  for (auto& entry : wls) {
    const std::string name = entry.first;
    CAPTURE(name);
    CHECK(bitwise_equal(gradients_on(*entry.second, 1), gradients_on(*entry.second, 3)));
  }
}

TEST_CASE("unsplit_each: an exception from one item reaches the caller; the others run; no thread is lost") {
  // the CPU backend runs its eigensolvers and QRs through it, and product_into its panels
  for (const int team : {1, 3}) {
    CAPTURE(team);
    ScopedTeam scoped(team);
    const Eigen::MatrixXf a = Eigen::MatrixXf::Random(300, 700), b = Eigen::MatrixXf::Random(700, 200);
    Eigen::MatrixXf before(300, 200), after(300, 200);
    product_into(before, a, b);
    std::vector<int> ran(16, 0);
    std::string what;
    try {
      unsplit_each(16, 0, [&](long long i) {
        ran[size_t(i)] = 1;
        if (i == 5 || i == 11) throw std::runtime_error("item " + std::to_string(i) + " failed");
      });
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    CHECK((what == "item 5 failed" || what == "item 11 failed"));
    CHECK(std::count(ran.begin(), ran.end(), 1) == (team == 1 ? 6 : 16));  // one thread stops at the first
    // the pool still works afterwards: a product through it, in panels on the team, as before
    product_into(after, a, b);
    CHECK(std::memcmp(before.data(), after.data(), sizeof(float) * 300 * 200) == 0);
    CHECK(omp_get_max_threads() == team);
  }
}

TEST_CASE("a child forked after steps steps on one thread, with its parent's bits") {
  // big enough that the kernels and the copies run on the pool in the parent: AdamW over 1M
  // bf16 parameters with master copies and 1M f32 ones; Muon's Newton-Schulz products (Eigen)
  // on a 256x256 matrix; SOAP's eigendecompositions
  ParamDesc w{"w", {1024, 1024}};
  w.dtype = w.grad_dtype = DType::BF16;
  w.master = true;
  const std::vector<std::pair<std::string, std::vector<ParamDesc>>> runs = {
      {"adamw", {w, {"b", {1024, 1024}}}},
      {"muon", {{"blocks.0.weight", {256, 256}}, {"blocks.0.bias", {256}}}},
      {"paper_soap10", {{"blocks.0.weight", {96, 64}}, {"blocks.0.bias", {64}}}},
  };
  for (const auto& run : runs) {
    const std::string spec = run.first;  // named: clang 14 lambdas (CAPTURE) cannot capture bindings
    CAPTURE(spec);
    Optimizer opt(build_executable(SpecRef{spec, "", ""}), run.second);
    for (int s = 1; s <= 2; ++s) {  // the parent's pool starts here
      forked_grads(opt, s);
      opt.step();
    }
    int status = 0;
    const std::vector<float> child = steps_in_child(opt, 3, 5, &status);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    for (int s = 3; s <= 5; ++s) {  // the same steps here, on every thread
      forked_grads(opt, s);
      opt.step();
    }
    const std::vector<float> parent = everything_of(opt);
    REQUIRE(child.size() == parent.size());
    CHECK(std::memcmp(child.data(), parent.data(), parent.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("a child saves: bf16 parameters and master copies, past the host pool's sizes") {
  // the child has no OpenMP pool (its threads stay in the parent): the conversions and copies a
  // save runs must not wait for it (4 MiB of f32 and 1M elements: both past where they go parallel)
  ParamDesc w{"w", {1024, 1024}};
  w.dtype = w.grad_dtype = DType::BF16;
  w.master = true;
  Optimizer opt(build_executable(SpecRef{"adamw", "", ""}), {w, {"b", {1024, 1024}}});
  for (int s = 1; s <= 2; ++s) {
    for (const char* name : {"w", "b"}) opt.write_grad(name, std::vector<float>(1024 * 1024, 0.01f * float(s)));
    opt.step();
  }
  const std::string path = opal::testing::scratch("fork-save") + "/forked.safetensors";
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(120);  // a save that waits for the pool forever dies here, as a failure
    try {
      opt.save(path);
    } catch (...) {
      _exit(2);
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  Optimizer fresh(build_executable(SpecRef{"adamw", "", ""}), {w, {"b", {1024, 1024}}});
  fresh.load(path);
  for (const std::string name : {"w", "b"}) {  // the optimizer's state (the parameters are the model's)
    CAPTURE(name);
    CHECK(opt.slots(name).size() == (name == "w" ? 3u : 2u));  // m, v; and w's master copy
    for (const auto& slot : opt.slots(name)) CHECK(fresh.read_state(name, slot) == opt.read_state(name, slot));
  }
}
}
