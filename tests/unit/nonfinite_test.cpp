// The non-finite policy: a NaN in one element of one parameter's gradient under off, raise,
// skip and zero; a stage whose output goes non-finite from a finite gradient is the one named.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <span>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "driver/build.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"

#include "error_of.h"
#include "snapshot.h"

using namespace opal;
using namespace opal::testing;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

bool all_finite(std::span<const float> v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// AdamW on a matrix `w` and a vector `b`, two finite steps taken; then a gradient with one NaN
// in w[1][2].
struct Fixture {
  Optimizer opt{build_executable(SpecRef{"adamw", "", ""}), {{"w", {4, 3}}, {"b", {3}}}};
  explicit Fixture(NonFinitePolicy p) {
    set_grads(1.0f);
    opt.step();
    set_grads(-0.5f);
    opt.step();
    opt.set_nonfinite_policy(p);
    set_grads(0.25f);
    opt.grad("w")[5] = kNaN;
  }
  void set_grads(float base) {
    for (const char* n : {"w", "b"}) {
      auto g = opt.grad(n);
      for (size_t i = 0; i < g.size(); ++i) g[i] = base * float(i + 1) / float(g.size());
    }
  }
};

}  // namespace

TEST_SUITE("nonfinite") {
TEST_CASE("policies parse by name; an unknown one is a clear error") {
  CHECK(parse_nonfinite_policy("raise") == NonFinitePolicy::Raise);
  CHECK(parse_nonfinite_policy("off") == NonFinitePolicy::Off);
  CHECK(std::string(nonfinite_policy_name(NonFinitePolicy::Zero)) == "zero");
  CHECK(error_of([] { parse_nonfinite_policy("ignore"); }).find("unknown non-finite policy `ignore`: use off, raise, skip or zero") !=
        std::string::npos);
}

TEST_CASE("off: no check, the NaN reaches the parameter") {
  Fixture f(NonFinitePolicy::Off);
  f.opt.step();
  CHECK(f.opt.step_count() == 3);
  CHECK_FALSE(all_finite(f.opt.param("w")));
  CHECK(all_finite(f.opt.param("b")));
  CHECK(f.opt.nonfinite_events().empty());
}

TEST_CASE("raise: NonFiniteError names the parameter and the gradient; nothing changed") {
  Fixture f(NonFinitePolicy::Raise);
  auto before = snapshot(f.opt);
  std::string msg;
  try {
    f.opt.step();
  } catch (const NonFiniteError& e) {
    msg = e.what();
  }
  CHECK(msg.find("step 3: parameter `w` (route other): the gradient holds NaN or Inf; the step was undone [NonFinite]") != std::string::npos);
  CHECK(msg.find("help: the gradient came in non-finite") != std::string::npos);
  CHECK(same(before, snapshot(f.opt)));  // b too, though its gradient was finite
  CHECK(f.opt.step_count() == 2);
  REQUIRE(f.opt.nonfinite_events().size() == 1);
  CHECK(f.opt.nonfinite_events()[0].action == "raised");
  // fixed gradient: the same optimizer steps on
  f.opt.grad("w")[5] = 0.1f;
  f.opt.step();
  CHECK(f.opt.step_count() == 3);
  CHECK(all_finite(f.opt.param("w")));
}

TEST_CASE("skip: every parameter and the step count stay as they were") {
  Fixture f(NonFinitePolicy::Skip);
  auto before = snapshot(f.opt);
  f.opt.step();
  CHECK(same(before, snapshot(f.opt)));
  CHECK(f.opt.step_count() == 2);
  CHECK(f.opt.skipped_steps() == 1);
  REQUIRE(f.opt.nonfinite_events().size() == 1);
  const NonFiniteEvent& e = f.opt.nonfinite_events()[0];
  CHECK(e.param == "w");
  CHECK(e.stage == "gradient");
  CHECK(e.action == "step skipped");
  CHECK(e.step == 3);
  CHECK(describe(e) == "step 3: parameter `w` (route other): the gradient holds NaN or Inf");
}

TEST_CASE("zero: the offending gradient is zeroed and that parameter steps with it; the others step as usual") {
  Fixture f(NonFinitePolicy::Zero);
  // what a step with w's gradient zeroed gives, through the unchecked kernels
  Fixture ref(NonFinitePolicy::Off);
  for (float& x : ref.opt.grad("w")) x = 0.f;
  ref.opt.step();
  f.opt.step();
  CHECK(f.opt.step_count() == 3);
  CHECK(same(snapshot(ref.opt), snapshot(f.opt)));
  for (float x : f.opt.grad("w")) CHECK(x == 0.f);
  REQUIRE(f.opt.nonfinite_events().size() == 1);
  CHECK(f.opt.nonfinite_events()[0].action == "gradient zeroed");
  CHECK(f.opt.skipped_steps() == 0);
}

TEST_CASE("checked kernels step exactly as the unchecked ones on finite gradients") {
  Fixture a(NonFinitePolicy::Raise), b(NonFinitePolicy::Off);
  a.opt.grad("w")[5] = 0.5f;
  b.opt.grad("w")[5] = 0.5f;
  for (int i = 0; i < 3; ++i) {
    a.opt.step();
    b.opt.step();
  }
  auto sa = snapshot(a.opt), sb = snapshot(b.opt);
  for (const auto& kv : sa)
    for (size_t i = 0; i < kv.second.size(); ++i) {
      INFO(kv.first << "[" << i << "]");
      CHECK(kv.second[i] == sb[kv.first][i]);
    }
  CHECK(a.opt.nonfinite_events().empty());
}

TEST_CASE("a stage whose output goes non-finite from a finite gradient is the one named") {
  // `blowup` divides by a value that reaches zero where the gradient is exactly 1
  const char* spec = R"(
component blowup() {
  u = u / (g - 1)
}
optimizer probe(lr = 0.1, b1 = 0.9) {
  matrix: heavy_ball(b1) -> blowup -> scale(lr)
  vector: heavy_ball(b1) -> scale(lr)
}
)";
  for (NonFinitePolicy p : {NonFinitePolicy::Raise, NonFinitePolicy::Skip, NonFinitePolicy::Zero}) {
    CAPTURE(nonfinite_policy_name(p));
    Optimizer opt(build_executable(SpecRef{spec, "", ""}), {{"w", {2, 2}}, {"b", {2}}});
    opt.set_nonfinite_policy(p);
    for (float& x : opt.grad("w")) x = 0.5f;
    for (float& x : opt.grad("b")) x = 1.0f;
    opt.step();
    CHECK(opt.nonfinite_events().empty());
    opt.grad("w")[3] = 1.0f;  // finite, but 0 / 0 in `blowup`
    auto before = snapshot(opt);
    std::string msg = error_of([&] { opt.step(); });
    REQUIRE(opt.nonfinite_events().size() == 1);
    const NonFiniteEvent& e = opt.nonfinite_events()[0];
    CHECK(e.param == "w");
    CHECK(e.stage == "blowup");
    if (p == NonFinitePolicy::Raise) {
      CHECK(msg.find("the output of stage `blowup` holds NaN or Inf") != std::string::npos);
      CHECK(same(before, snapshot(opt)));
    } else if (p == NonFinitePolicy::Skip) {
      CHECK(msg.empty());
      CHECK(same(before, snapshot(opt)));
    } else {
      // zero gradient: u = momentum / (0 - 1) is finite again, so w steps; b stepped as usual
      CHECK(msg.empty());
      CHECK(e.action == "gradient zeroed");
      CHECK(all_finite(opt.param("w")));
      CHECK(opt.step_count() == 2);
    }
  }
}

TEST_CASE("zero: a parameter still non-finite with a zero gradient is left unchanged") {
  // 0 / 0 from a zero gradient too: `u / g`
  const char* spec = R"(
component ratio() {
  u = u / g
}
optimizer probe(lr = 0.1) {
  other: ratio -> scale(lr)
}
)";
  Optimizer opt(build_executable(SpecRef{spec, "", ""}), {{"w", {3}}});
  opt.set_nonfinite_policy(NonFinitePolicy::Zero);
  for (float& x : opt.grad("w")) x = 2.0f;
  opt.grad("w")[1] = kNaN;
  auto before = snapshot(opt);
  opt.step();
  CHECK(same(before, snapshot(opt)));
  REQUIRE(opt.nonfinite_events().size() == 1);
  CHECK(opt.nonfinite_events()[0].action == "left unchanged");
  CHECK(opt.nonfinite_events()[0].stage == "gradient");
}

// undo_step: a host that learns after the step that the whole step must go (another parameter
// group or process met a NaN) puts a kept checked step back from the same copies.
TEST_CASE("undo_step puts back a checked step that stayed, once, until something is written") {
  for (NonFinitePolicy p : {NonFinitePolicy::Skip, NonFinitePolicy::Raise, NonFinitePolicy::Zero}) {
    CAPTURE(nonfinite_policy_name(p));
    Fixture f(p);
    if (p != NonFinitePolicy::Zero) f.opt.grad("w")[5] = 0.5f;  // finite: the step stays
    const auto before = snapshot(f.opt);
    f.opt.step();
    CHECK(f.opt.step_count() == 3);
    CHECK_FALSE(same(before, snapshot(f.opt)));
    f.opt.undo_step();
    CHECK(same(before, snapshot(f.opt)));  // w too, stepped again on a zeroed gradient under zero
    CHECK(f.opt.step_count() == 2);
    CHECK(f.opt.step_count("w") == 2);
    CHECK(f.opt.skipped_steps() == (p == NonFinitePolicy::Skip ? 1 : 0));
    // once: a second undo is refused and changes nothing
    CHECK(error_of([&] { f.opt.undo_step(); }).find("there is no step to undo") != std::string::npos);
    CHECK(same(before, snapshot(f.opt)));
    CHECK(f.opt.step_count() == 2);
  }
  // nothing to undo: a step under off, one skipped already, or one written over since
  Fixture off(NonFinitePolicy::Off);
  off.opt.grad("w")[5] = 0.5f;
  off.opt.step();
  CHECK(error_of([&] { off.opt.undo_step(); }).find("[NoUndo]") != std::string::npos);
  Fixture skipped(NonFinitePolicy::Skip);
  skipped.opt.step();  // the NaN: skipped
  CHECK(error_of([&] { skipped.opt.undo_step(); }).find("[NoUndo]") != std::string::npos);
  for (int k = 0; k < 3; ++k) {
    Fixture f(NonFinitePolicy::Skip);
    f.opt.grad("w")[5] = 0.5f;
    f.opt.step();
    if (k == 0) f.opt.write_param("b", std::vector<float>{1, 2, 3});
    if (k == 1) f.opt.set_step_count("w", 7);
    if (k == 2) f.opt.reset_state("w", f.opt.slots("w")[0]);
    const auto after = snapshot(f.opt);
    CHECK(error_of([&] { f.opt.undo_step(); }).find("[NoUndo]") != std::string::npos);
    CHECK(same(after, snapshot(f.opt)));
  }
}
}
