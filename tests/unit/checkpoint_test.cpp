// Checkpoints: bit-identical continuation, every bad file rejected with nothing changed,
// spec changes reported, and a save killed at any moment never leaves a broken file.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include <fmt/format.h>

#include "driver/build.h"
#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"

#include "error_of.h"

using namespace opal;
namespace fs = std::filesystem;

namespace {

// A deterministic gradient for parameter `k` at step `s`: smooth in the weights, so that a
// continuation that differs anywhere in its state differs in its numbers.
void fill_grads(Optimizer& opt, int s) {
  for (size_t k = 0; k < opt.num_params(); ++k) {
    const std::string& name = opt.param_name(k);
    auto w = opt.param(name);
    auto g = opt.grad(name);
    for (size_t i = 0; i < g.size(); ++i) g[i] = std::sin(0.37f * float(i + 1) * float(s) + float(k)) + 0.5f * w[i];
  }
}

std::vector<ParamDesc> model() { return {{"blocks.0.weight", {6, 4}}, {"blocks.0.bias", {6}}, {"head.weight", {3, 6}}}; }

// Every state slot and parameter, for "nothing changed" checks.
std::vector<float> snapshot(const Optimizer& opt) {
  std::vector<float> out;
  for (size_t k = 0; k < opt.num_params(); ++k) {
    const std::string& n = opt.param_name(k);
    auto w = opt.param(n);
    out.insert(out.end(), w.begin(), w.end());
    for (const auto& slot : opt.slots(n)) {
      auto v = opt.state(n, slot);
      out.insert(out.end(), v.begin(), v.end());
    }
  }
  for (const auto& h : opt.hparam_names()) out.push_back(float(opt.hparam(h)));
  out.push_back(float(opt.step_count()));
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// This process's scratch folder, removed when the tests end.
struct ScratchDir {
  fs::path path = fs::temp_directory_path() / fmt::format("opal-ckpt-{}", getpid());
  ~ScratchDir() {
    std::error_code ec;
    if (getpid() == owner) fs::remove_all(path, ec);
  }
  pid_t owner = getpid();
} scratch;

std::string temp_path(const std::string& name) {
  fs::create_directories(scratch.path);
  return (scratch.path / name).string();
}

// A trained optimizer whose checkpoint has non-trivial state in every slot.
std::unique_ptr<Optimizer> trained(const std::string& spec, int steps) {
  auto opt = std::make_unique<Optimizer>(build_executable(SpecRef{spec, "", ""}), model());
  for (size_t k = 0; k < opt->num_params(); ++k) {
    auto w = opt->param(opt->param_name(k));
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.1f * std::cos(float(i + 3 * k));
  }
  for (int s = 1; s <= steps; ++s) {
    fill_grads(*opt, s);
    opt->step();
  }
  return opt;
}

}  // namespace

TEST_SUITE("checkpoint") {
TEST_CASE("a round trip mid-training continues bit for bit") {
  for (std::string spec : {"adamw", "lion", "adafactor", "paper_soap10", "muon", "paper_shampoo10"}) {
    CAPTURE(spec);
    auto a = trained(spec, 7);
    a->set_hparam("lr", 3e-3);  // a changed hyperparameter travels with the checkpoint
    std::string path = temp_path(spec + ".safetensors");
    a->save(path, {.params = true});
    Optimizer b(build_executable(SpecRef{spec, "", ""}), model());  // fresh, owns its parameters: all come from the file
    LoadReport r = b.load(path);
    CHECK(!r.spec_changed);
    CHECK(r.params_restored);
    CHECK(r.step == 7);
    CHECK(r.initialized.empty());
    CHECK(r.dropped.empty());
    CHECK(b.hparam("lr") == 3e-3);
    CHECK(same_bits(snapshot(*a), snapshot(b)));
    for (int s = 8; s <= 15; ++s) {
      fill_grads(*a, s);
      fill_grads(b, s);
      a->step();
      b.step();
    }
    CHECK(same_bits(snapshot(*a), snapshot(b)));
  }
}

TEST_CASE("a checkpoint truncated at any byte, or with any byte changed, is rejected and changes nothing") {
  auto a = trained("adamw", 3);
  std::string bytes = serialize_checkpoint(*a, {.params = true});
  auto b = trained("adamw", 5);
  const std::vector<float> before = snapshot(*b);
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string msg = error_of([&] { prepare_load_bytes(*b, bytes.substr(0, n), "ck"); });
    if (msg.empty()) FAIL("truncated at ", n, " of ", bytes.size(), " bytes was accepted");
  }
  for (size_t i = 0; i < bytes.size(); ++i)
    for (unsigned char x : {0x01, 0x80}) {
      std::string bad = bytes;
      bad[i] = char(bad[i] ^ x);
      std::string msg = error_of([&] { prepare_load_bytes(*b, bad, "ck"); });
      if (msg.empty()) FAIL("byte ", i, " ^ ", int(x), " was accepted (", bytes.size(), " bytes)");
    }
  // through the file API too: the message names the file and nothing changes
  std::string path = temp_path("truncated.safetensors");
  std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() - 5);
  std::string msg = error_of([&] { b->load(path); });
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("truncated") != std::string::npos);
  std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() - 4) << "abcd";
  CHECK(error_of([&] { b->load(path); }).find("checksum") != std::string::npos);
  CHECK(error_of([&] { b->load(temp_path("does-not-exist")); }).find("cannot read") != std::string::npos);
  CHECK(same_bits(before, snapshot(*b)));
  // and the intact bytes load
  LoadReport r = apply_load(*b, prepare_load_bytes(*b, bytes, "ck"));
  CHECK(r.step == 3);
  CHECK(same_bits(snapshot(*a), snapshot(*b)));
}

TEST_CASE("wrong parameters, shapes and dtypes are clear errors that change nothing") {
  auto a = trained("adamw", 2);
  SafetensorsFile good = checkpoint_of(*a);
  auto b = trained("adamw", 4);
  const std::vector<float> before = snapshot(*b);
  auto rejects = [&](SafetensorsFile f, const std::string& expect) {
    std::string msg = error_of([&] { prepare_load(*b, std::move(f), "ck"); });
    CHECK_MESSAGE(msg.find(expect) != std::string::npos, msg);
    CHECK(same_bits(before, snapshot(*b)));
  };
  {
    SafetensorsFile f = good;
    f.tensors["state/head.weight/adapt.v"].shape = {6, 3};
    rejects(f, "state `head.weight/adapt.v` has shape [6, 3] in the checkpoint but [3, 6] here");
  }
  {  // another storage than this spec keeps: converted, and reported
    SafetensorsFile f = good;
    f.tensors["state/blocks.0.bias/momentum.m"].dtype = "F16";
    CHECK(prepare_load(*b, std::move(f), "ck").report.converted == std::vector<std::string>{"blocks.0.bias/momentum.m (F16 -> F32)"});
  }
  {
    SafetensorsFile f = good;
    f.tensors.erase("state/blocks.0.bias/momentum.m");
    rejects(f, "state `blocks.0.bias/momentum.m` is missing");
  }
  {
    SafetensorsFile f = good;
    f.tensors["state/blocks.0.bias/extra"] = {{6}, std::vector<float>(6)};
    rejects(f, "state `blocks.0.bias/extra` that this spec does not keep");
  }
  {
    SafetensorsFile f = good;
    f.tensors["weights"] = {{1}, {1.f}};
    rejects(f, "unexpected tensor `weights`");
  }
  {
    SafetensorsFile f = good;
    f.metadata.erase("opal.format");
    rejects(f, "no `opal.format`; is it an Opal checkpoint?");
  }
  {
    SafetensorsFile f = good;
    f.metadata["opal.step"] = "-3";
    rejects(f, "malformed");
  }
  // a model with a parameter the checkpoint lacks, and one with a different shape
  Optimizer more(build_executable(SpecRef{"adamw", "", ""}),
                 {{"blocks.0.weight", {6, 4}}, {"blocks.0.bias", {6}}, {"head.weight", {3, 6}}, {"head.bias", {3}}});
  CHECK(error_of([&] { prepare_load(more, good, "ck"); }).find("it has no parameter `head.bias`") != std::string::npos);
  Optimizer fewer(build_executable(SpecRef{"adamw", "", ""}), {{"blocks.0.weight", {6, 4}}, {"head.weight", {3, 6}}});
  CHECK(error_of([&] { prepare_load(fewer, good, "ck"); }).find("it has parameter `blocks.0.bias`, which this optimizer does not have") !=
        std::string::npos);
  Optimizer reshaped(build_executable(SpecRef{"adamw", "", ""}), {{"blocks.0.weight", {4, 6}}, {"blocks.0.bias", {6}}, {"head.weight", {3, 6}}});
  CHECK(error_of([&] { prepare_load(reshaped, good, "ck"); }).find("has shape [6, 4] in the checkpoint but [4, 6] here") != std::string::npos);
}

TEST_CASE("a saved hyperparameter that decides routes loads where it moves no parameter; else it is refused, changing nothing") {
  auto exe = build_executable(SpecRef{"soap", "", ""});
  std::vector<float> w(48, 0.5f), g(48, 0.1f);
  Optimizer small_cap(exe, {{"w", {6, 8}, w.data(), g.data()}}, {{"max_precond_dim", 7}});  // one factor (rows 6)
  small_cap.step();
  small_cap.step();
  REQUIRE(small_cap.route_of("w") == "where(rank >= 2 && rows <= max_precond_dim)");
  std::vector<float> w2(48, 0.5f), g2(48, 0.1f);
  Optimizer other_cap(exe, {{"w", {6, 8}, w2.data(), g2.data()}}, {{"max_precond_dim", 6}});  // the same route
  apply_load(other_cap, prepare_load(other_cap, checkpoint_of(small_cap), "ck"));
  CHECK(other_cap.hparam("max_precond_dim") == 7);
  const auto L = small_cap.state("w", "soap_basis_left.L"), L2 = other_cap.state("w", "soap_basis_left.L");
  CHECK(std::vector<float>(L.begin(), L.end()) == std::vector<float>(L2.begin(), L2.end()));
  std::vector<float> w3(48, 0.5f), g3(48, 0.1f);
  Optimizer full(exe, {{"w", {6, 8}, w3.data(), g3.data()}});  // both factors: another route, other state
  SafetensorsFile f = checkpoint_of(small_cap);
  for (auto it = f.tensors.begin(); it != f.tensors.end();)  // (even without the other route's state)
    it = it->first.rfind("state/", 0) == 0 ? f.tensors.erase(it) : std::next(it);
  CHECK(error_of([&] { prepare_load(full, f, "ck"); }).find("`max_precond_dim` decides routes") != std::string::npos);
  CHECK(full.hparam("max_precond_dim") == 10000);
  CHECK(w3 == std::vector<float>(48, 0.5f));
}

// The fingerprint is what the spec computes: comments and blank lines moving the optimizer in
// its file leave it (the generated code names source lines, and the fingerprint hashed that
// code), as does a changed default (a hyperparameter's value); another constant, another
// optimizer or another state shape change it.
TEST_CASE("the checkpoint fingerprint follows what the spec computes, not where its text sits") {
  auto fingerprint = [](const std::string& text) { return build_executable(SpecRef{text, "", ""})->desc->fingerprint; };
  const std::string body = "optimizer m(lr = 0.1, b1 = 0.9) {\n  matrix: momentum(b1) -> sign -> scale(lr)\n  other: sign -> scale(lr)\n}\n";
  const std::string base = fingerprint(body);
  CHECK(fingerprint("# a note about m\n\n\n" + body) == base);
  CHECK(fingerprint("optimizer m(lr = 0.1, b1 = 0.9) {\n  matrix:   momentum(b1)   ->   sign -> scale(lr)\n\n  other: sign -> scale(lr)\n}\n") ==
        base);
  CHECK(fingerprint("optimizer m(lr = 0.3, b1 = 0.95) {\n  matrix: momentum(b1) -> sign -> scale(lr)\n  other: sign -> scale(lr)\n}\n") == base);
  CHECK(fingerprint("optimizer m(lr = 0.1, b1 = 0.9) {\n  matrix: momentum(b1) -> sign -> scale(2 * lr)\n  other: sign -> scale(lr)\n}\n") != base);
  CHECK(fingerprint("optimizer m(lr = 0.1, b1 = 0.9) {\n  matrix: momentum(b1) -> scale(lr)\n  other: sign -> scale(lr)\n}\n") != base);
  CHECK(fingerprint("optimizer m2(lr = 0.1, b1 = 0.9) {\n  matrix: momentum(b1) -> sign -> scale(lr)\n  other: sign -> scale(lr)\n}\n") != base);
  CHECK(build_executable(SpecRef{"adamw", "", ""})->desc->fingerprint != build_executable(SpecRef{"adam", "", ""})->desc->fingerprint);
}

TEST_CASE("a changed spec keeps matching slots, initializes new ones and reports it") {
  auto a = trained("signum", 3);  // momentum.m
  std::string path = temp_path("signum.safetensors");
  a->save(path);
  Optimizer b(build_executable(SpecRef{"adamw", "", ""}), model());  // momentum.m and adapt.v
  for (const auto& n : {"blocks.0.weight", "blocks.0.bias", "head.weight"}) {
    auto v = b.state(n, "adapt.v");
    std::fill(v.begin(), v.end(), 7.f);
  }
  LoadReport r = b.load(path);
  CHECK(r.spec_changed);
  CHECK(r.restored.size() == 3);
  CHECK(r.initialized == std::vector<std::string>{"blocks.0.weight/adapt.v", "blocks.0.bias/adapt.v", "head.weight/adapt.v"});
  CHECK(r.hparams_ignored == std::vector<std::string>{});  // signum's lr, b1, wd are adamw's too
  auto m_a = a->state("head.weight", "momentum.m");
  auto m_b = b.state("head.weight", "momentum.m");
  CHECK(std::equal(m_a.begin(), m_a.end(), m_b.begin()));
  CHECK(b.state("head.weight", "adapt.v")[0] == 0.f);  // as the spec initializes it, not 7
  CHECK(b.step_count() == 3);
  CHECK(r.summary().find("initialized as the spec says: blocks.0.weight/adapt.v") != std::string::npos);

  // the other way: adamw's adapt.v is dropped; a SOAP basis starts as the identity
  auto c = trained("adamw", 2);
  c->save(path);
  Optimizer d(build_executable(SpecRef{"paper_soap10", "", ""}), model());
  LoadReport r2 = d.load(path);
  CHECK(r2.spec_changed);
  CHECK(std::find(r2.dropped.begin(), r2.dropped.end(), "head.weight/adapt.v") == r2.dropped.end());  // soap has adapt.v too
  CHECK(!r2.initialized.empty());
  for (const auto& slot : d.slots("head.weight"))
    if (d.state_shape("head.weight", slot) == std::vector<int64_t>{3, 3}) {
      auto q = d.state("head.weight", slot);
      CAPTURE(slot);
      CHECK((q[0] == 1.f || q[0] == 0.f));
    }
}

TEST_CASE("killing the process during a save loop never leaves an unreadable checkpoint") {
  // about 8 MB of state, so that a kill lands inside a write often
  std::vector<ParamDesc> big = {{"w", {1024, 1024}}, {"b", {1024}}};
  Optimizer opt(build_executable(SpecRef{"adamw", "", ""}), big);
  fill_grads(opt, 1);
  opt.step();
  std::string path = temp_path("killed.safetensors");
  std::mt19937 rng(7);
  int loaded = 0;
  for (int round = 0; round < 12; ++round) {
    fs::remove(path);
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(ready[0]);
      for (int s = 1;; ++s) {
        opt.set_step_count(s);
        opt.save(path);
        if (s == 1) {  // one checkpoint is complete: the kill lands in a later save, however slow the machine
          char c = 1;
          (void)!write(ready[1], &c, 1);
          close(ready[1]);
        }
      }
    }
    close(ready[1]);
    char c = 0;
    CHECK(read(ready[0], &c, 1) == 1);
    close(ready[0]);
    usleep(std::uniform_int_distribution<int>(0, 60000)(rng));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    REQUIRE(fs::exists(path));
    Optimizer fresh(build_executable(SpecRef{"adamw", "", ""}), big);
    LoadReport r = fresh.load(path);
    CHECK(r.step >= 1);
    ++loaded;
  }
  CHECK(loaded == 12);
  // the next save clears the temporary files the killed processes left
  opt.save(path);
  int stale = 0;
  for (auto& e : fs::directory_iterator(fs::path(path).parent_path()))
    if (e.path().filename().string().rfind("killed.safetensors.tmp.", 0) == 0) ++stale;
  CHECK(stale == 0);
}
}
