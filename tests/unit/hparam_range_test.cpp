// Hyperparameter ranges (`beta = 0.9 in [0, 1)`): the compiler gives each hyperparameter the
// ranges of the parameters that take it as it is, and the runtime refuses a value outside
// them wherever a value comes in (building, set_hparam, a checkpoint), changing nothing. The
// compile-time errors are golden files (ArgumentOutOfRange_param, ArgumentOutOfRange_range).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <vector>

#include <fmt/format.h>

#include "driver/build.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"

#include "error_of.h"
#include "run_cli.h"

using namespace opal;

namespace {
bool says(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The error `f` throws if it is a HyperparameterError, else "".
std::string range_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const HyperparameterError& e) {
    return e.what();
  } catch (const Error&) {}
  return "";
}
}  // namespace

TEST_SUITE("runtime") {
TEST_CASE("hyperparameter ranges: the stdlib's refuse what torch.optim refuses, and set_hparam changes nothing") {
  std::vector<float> w(6, 1.f), g(6, 0.5f);
  Optimizer opt(build_executable(SpecRef{"adamw", "", ""}), {{"w", {2, 3}, w.data(), g.data()}});
  struct Case {
    const char* name;
    double bad;
    const char* range;
    const char* from;
  };
  for (const Case& c : {Case{"lr", -1e-3, "[0, inf)", "`lr` of `scale`"}, Case{"b1", 1.0, "[0, 1)", "`beta` of `momentum`"},
                        Case{"b1", -0.1, "[0, 1)", "`beta` of `momentum`"}, Case{"b2", 1.5, "[0, 1)", "`beta` of `adapt`"},
                        Case{"eps", -1e-8, "[0, inf)", "`eps` of `adapt`"}, Case{"wd", -0.01, "[0, inf)", "`wd` of `decay`"}}) {
    CAPTURE(c.name);
    CAPTURE(c.bad);
    const double before = opt.hparam(c.name);
    std::string e = range_error_of([&] { opt.set_hparam(c.name, c.bad); });
    CHECK(says(e, fmt::format("hyperparameter `{}` = {:g} is out of range", c.name, c.bad)));
    CHECK(says(e, c.range));
    CHECK(says(e, c.from));
    CHECK(opt.hparam(c.name) == before);
  }
  // the ends: 0 is a beta, 1 is not; an lr of 0 is allowed
  opt.set_hparam("b1", 0);
  opt.set_hparam("lr", 0);
  opt.step();
  for (float x : w) CHECK(x == 1.f);
  // building with a value out of range is refused too
  CHECK(says(range_error_of([] { Optimizer o(build_executable(SpecRef{"adamw", "", ""}), {{"w", {4}}}, {{"b2", 1.0}}); }), "`b2` = 1"));
  // and so is the CLI's --hparam
  cli_fails("run adamw --steps 2 --hparam b1=1", {"hyperparameter `b1` = 1 is out of range"});
  // `opal hparams` lists each with its default and ranges
  const auto res = run_cli("hparams adamw");
  const std::string& out = res.second;
  CHECK(res.first == 0);
  CHECK(says(out, "optimizer adamw: 5 hyperparameters"));
  CHECK(says(out, "b1  = 0.9\n        takes values in [0, 1): `beta` of `momentum` (momentum.opal:"));
  CHECK(says(out, "wd  = 0.01\n        takes values in [0, inf): `wd` of `decay`"));
}

TEST_CASE("hyperparameter ranges follow a hyperparameter through delegation, and leave computed values alone") {
  // muon hands b1 to momentum and adam_b1 / adam_b2 to an AdamW it delegates to
  Optimizer muon(build_executable(SpecRef{"muon", "", ""}), {{"w", {4, 4}}, {"b", {4}}});
  CHECK(says(range_error_of([&] { muon.set_hparam("adam_b2", 1.0); }), "`beta` of `adapt`"));
  CHECK(says(range_error_of([&] { muon.set_hparam("b1", 1.0); }), "`beta` of `momentum`"));
  // a value computed from a hyperparameter is not checked: `scale(lr * adam_lr_ratio)`
  CHECK_NOTHROW(muon.set_hparam("adam_lr_ratio", -1));
  // a spec of the user's: its own range and its components'
  const char* spec =
      "component mom(beta = 0.9 in [0, 1)) {\n"
      "  state m = zeros\n"
      "  m = beta * m + (1 - beta) * u\n"
      "  u = m\n"
      "}\n"
      "optimizer o(lr = 0.1 in (0, 1], b1 = 0.5) {\n"
      "  other: mom(b1) -> scale(lr)\n"
      "}\n"
      "optimizer outer(lr = 0.1, k = 0.5) {\n"
      "  other: o(lr = lr, b1 = 1 - k)\n"
      "}\n";
  Optimizer o(build_executable(SpecRef{spec, "o", ""}), {{"w", {3}}});
  std::string e = range_error_of([&] { o.set_hparam("lr", 0); });
  CHECK(says(e, "`lr` of `o`"));
  CHECK(says(e, "(0, 1]"));
  CHECK_NOTHROW(o.set_hparam("lr", 1));
  CHECK(says(range_error_of([&] { o.set_hparam("b1", 1); }), "`beta` of `mom`"));
  Optimizer outer(build_executable(SpecRef{spec, "outer", ""}), {{"w", {3}}});
  CHECK(says(range_error_of([&] { outer.set_hparam("lr", 2); }), "`lr` of `o`"));  // passed on as it is
  CHECK_NOTHROW(outer.set_hparam("k", 7));                                         // passed on computed: 1 - k
  for (const auto& r : outer.executable().desc->ranges) CHECK(outer.executable().desc->hparams[r.hparam] == "lr");
}

TEST_CASE("a hyperparameter cadence must be a whole number of steps, 1 or more, when it is set") {
  // SOAP's refresh is `when(t > 1 && mod(t - 1, every) == 0)`: its component declares the range
  Optimizer soap(build_executable(SpecRef{"soap", "", ""}), {{"w", {4, 4}}});
  // a component of the user's with an `every(N)` block gets it without declaring it
  const char* spec =
      "component refresh(n = 4) {\n"
      "  state s = zeros\n"
      "  every(n) { s = s + g }\n"
      "  u = s\n"
      "}\n"
      "optimizer o(lr = 0.1, every = 4) { other: refresh(every) -> scale(lr) }\n";
  Optimizer own(build_executable(SpecRef{spec, "", ""}), {{"w", {3}}});
  for (double bad : {0.0, -3.0, 2.5}) {
    CAPTURE(bad);
    std::string e = range_error_of([&] { soap.set_hparam("every", bad); });
    CHECK(says(e, "whole numbers in [1, inf)"));
    CHECK(says(e, "`every` of `soap_basis"));
    CHECK(soap.hparam("every") == 10);
    e = range_error_of([&] { own.set_hparam("every", bad); });
    CHECK(says(e, "whole numbers in [1, inf)"));
    CHECK(says(e, "the cadence of `every` in `refresh`"));
    CHECK(own.hparam("every") == 4);
  }
  soap.set_hparam("every", 3);
  own.set_hparam("every", 1);
  soap.step();
  own.step();
}

TEST_CASE("a checkpoint whose hyperparameter is out of range is refused, changing nothing") {
  namespace fs = std::filesystem;
  const std::string path = (fs::temp_directory_path() / fmt::format("opal_range_{}.safetensors", ::getpid())).string();
  // saved by a spec that takes any b1 (it is not a beta there)
  const char* loose = "optimizer adamw(lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01) { other: scale(lr * b1 * b2 * eps * wd) }";
  std::vector<float> w(4, 1.f), g(4, 1.f);
  Optimizer a(build_executable(SpecRef{loose, "", ""}), {{"w", {4}, w.data(), g.data()}});
  a.set_hparam("b1", 1.5);
  a.save(path);
  Optimizer b(build_executable(SpecRef{"adamw", "", ""}), {{"w", {4}, w.data(), g.data()}});
  std::string e = error_of([&] { b.load(path); });
  CHECK(says(e, "hyperparameter `b1` = 1.5 is out of range"));
  CHECK(b.hparam("b1") == 0.9);
  fs::remove(path);
}
}
