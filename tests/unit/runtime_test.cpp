// The runtime: routing, hyperparameters at run time, state, errors that change nothing; and
// the CLI end to end.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <filesystem>
#include <memory>
#include <tuple>
#include <variant>

#include <fmt/format.h>

#include "driver/build.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"
#include "driver/replay.h"
#include "support/half.h"

#include "error_of.h"
#include "run_cli.h"
#include "values.h"

using namespace opal;

TEST_SUITE("runtime") {
TEST_CASE("routes: name patterns first, then shape classes, through delegation") {
  std::vector<ParamDesc> ps = {{"h.0.mlp.weight", {4, 6}}, {"embed.weight", {10, 4}}, {"h.0.ln.bias", {4}}, {"head.weight", {3, 4}}};
  Optimizer opt(build_executable(SpecRef{"paper_adam", "", ""}), ps);
  CHECK(opt.route_of("h.0.mlp.weight") == "matrix");
  const std::string to_other = "embedding,head,\"*embed*\",\"*head*\",\"*output*\">",
                    no_decay = "bias,embedding,norm,\"*bias*\",\"*embed*\",\"*norm*\"";
  CHECK(opt.route_of("embed.weight") == to_other + no_decay);
  CHECK(opt.route_of("h.0.ln.bias") == "other>" + no_decay);
  CHECK(opt.route_of("head.weight") == to_other + "other");
}

TEST_CASE("routes chosen by rank and size: where(...) after name patterns, before the shape classes") {
  const char* spec =
      "optimizer o(lr = 0.1) {\n"
      "  \"*head*\": scale(lr)\n"
      "  where(rank == 2 && rows >= 4 && cols >= 4): sign -> scale(lr)\n"
      "  where(numel > 100): scale(lr)\n"
      "  matrix: scale(lr)\n"
      "  other: scale(2 * lr)\n"
      "}\n";
  std::vector<ParamDesc> ps = {{"big", {8, 5}}, {"head", {8, 5}}, {"small", {2, 5}}, {"conv", {8, 3, 3, 3}}, {"vec", {7}}, {"long", {101}}};
  Optimizer opt(build_executable(SpecRef{spec, "", ""}), ps);
  CHECK(opt.route_of("big") == "where(rank == 2 && rows >= 4 && cols >= 4)");
  CHECK(opt.route_of("head") == "\"*head*\"");          // a name pattern comes first
  CHECK(opt.route_of("small") == "matrix");             // rows < 4
  CHECK(opt.route_of("conv") == "where(numel > 100)");  // rank 4: 216 elements
  CHECK(opt.route_of("vec") == "other");
  CHECK(opt.route_of("long") == "where(numel > 100)");
  // a condition that reads t is refused at compile time (golden NotConstant_route_condition)
  CHECK_THROWS(build_executable(SpecRef{"optimizer o(lr = 0.1) { where(t > 2): scale(lr) other: scale(lr) }", "", ""}));
}

TEST_CASE("a route condition reads hyperparameters as they are when the optimizer is built, through delegation") {
  const char* spec =
      "optimizer inner(cap = 4, on = true) {\n"
      "  where(on && rows <= cap): sign -> scale(0.1)\n"
      "  other: scale(0.1)\n"
      "}\n"
      "optimizer o(lr = 0.1, max_dim = 6, flag = false) {\n"
      "  \"d.*\": inner(cap = max_dim - 2, on = !flag)\n"
      "  where(rows <= max_dim && lr > 0): scale(lr)\n"
      "  other: scale(2 * lr)\n"
      "}\n";
  auto exe = build_executable(SpecRef{spec, "o", ""});
  std::vector<ParamDesc> ps = {{"a", {6, 2}}, {"b", {7, 2}}, {"d.x", {4, 3}}, {"d.y", {5, 3}}};
  Optimizer def(exe, ps);
  CHECK(def.route_of("a") == "where(rows <= max_dim && lr > 0)");
  CHECK(def.route_of("b") == "other");
  CHECK(def.route_of("d.x") == "\"d.*\">where(on && rows <= cap)");  // cap = 6 - 2
  CHECK(def.route_of("d.y") == "\"d.*\">other");
  Optimizer built(exe, ps, {{"max_dim", 8}, {"flag", 1}});
  CHECK(built.route_of("b") == "where(rows <= max_dim && lr > 0)");
  CHECK(built.route_of("d.x") == "\"d.*\">other");  // on = !flag
  CHECK(built.hparam("max_dim") == 8);
  // unknown or non-finite ones are refused, naming them
  CHECK(error_of([&] { Optimizer(exe, ps, {{"max_dimm", 8}}); }).find("did you mean `max_dim`?") != std::string::npos);
  CHECK(error_of([&] { Optimizer(exe, ps, {{"max_dim", NAN}}); }).find("max_dim") != std::string::npos);
  // later, a value that would move a parameter is refused (its state was made for its route)
  CHECK(error_of([&] { built.set_hparam("lr", 0); }).find("`a` would take route `other` instead of") != std::string::npos);
  CHECK(built.hparam("lr") == doctest::Approx(0.1));
  built.set_hparam("lr", 0.5);  // moves nobody
  CHECK(built.hparam("lr") == 0.5);
}

TEST_CASE("hyperparameters change at run time without recompiling") {
  std::vector<float> w(8, 1.f), g(8, 1.f);
  auto exe = build_executable({"signum", "", ""});
  Optimizer opt(exe, {{"p", {8}, w.data(), g.data()}});
  opt.set_hparam("lr", 0.5);
  opt.step();
  CHECK(w[0] == doctest::Approx(0.5f));
  opt.set_hparam("lr", 0.25);
  opt.step();
  CHECK(w[0] == doctest::Approx(0.25f));
  CHECK(&opt.executable() == exe.get());  // the same compiled kernels throughout
  CHECK(error_of([&] { opt.set_hparam("lrr", 1); }).find("did you mean `lr`?") != std::string::npos);
}

TEST_CASE("schedules are expressions of t: the paper harness warms up linearly") {
  std::vector<float> w(4, 0.f), g(4, 1.f);
  Optimizer opt(build_executable(SpecRef{"paper_signum", "", ""}), {{"h.w", {2, 2}, w.data(), g.data()}});
  opt.set_hparam("wd", 0);
  opt.set_hparam("lr", 1.0);
  opt.set_hparam("warmup", 4);
  float prev = 0;
  for (int t = 1; t <= 4; ++t) {
    opt.step();
    CHECK(prev - w[0] == doctest::Approx((t - 1) / 4.0));  // lr(k = t - 1) = k / warmup
    prev = w[0];
  }
}

TEST_CASE("a refresh that snapshots the parameter reads it before the step writes it") {
  // `every(2) { m = f(w) }` must see the w this step started from, however its write is placed:
  // a conditional store in the update's kernel (f cheap), or, with a reduction in f, the update
  // and the write ordered after it. It read the updated w when the write had a kernel of its own.
  struct Case {
    const char* f;
    std::function<float(float, float)> ref;  // (w, sum of g)
  };
  for (const Case& c : {Case{"w", [](float w, float) { return w; }}, Case{"2 * w", [](float w, float) { return 2 * w; }},
                        Case{"w * sum(g)", [](float w, float sg) { return w * sg; }}}) {
    CAPTURE(c.f);
    std::string spec = fmt::format(
        "component snap() {{\n  state m = zeros\n  every(2) {{ m = {} }}\n  u = u + 0.5 * m\n}}\n"
        "optimizer o(lr = 0.1) {{\n  other: snap -> scale(lr)\n}}\n",
        c.f);
    std::vector<float> w = {1.f, -2.f, 3.f}, g = {0.5f, 0.25f, -1.f};
    Optimizer opt(build_executable(SpecRef{spec, "", ""}), {{"p", {3}, w.data(), g.data()}});
    std::vector<float> rw = w, rm(3, 0.f);
    const float sg = 0.5f + 0.25f - 1.f;
    for (int t = 1; t <= 5; ++t) {
      opt.step();
      const bool refresh = t == 1 || t % 2 == 0;
      for (size_t i = 0; i < 3; ++i) {
        if (refresh) rm[i] = c.ref(rw[i], sg);
        rw[i] -= 0.1f * (g[i] + 0.5f * rm[i]);
      }
      CAPTURE(t);
      auto m = opt.read_state("p", "snap.m");
      for (size_t i = 0; i < 3; ++i) {
        CHECK(m[i] == doctest::Approx(rm[i]).epsilon(1e-6));
        CHECK(w[i] == doctest::Approx(rw[i]).epsilon(1e-6));
      }
    }
  }
}

TEST_CASE("a state initialized from an expression and never reassigned keeps its initial value") {
  // `state w0 = w` anchors the weights of step 1; it read 0 after step 1 when it had no write
  const char* spec =
      "component anchor(k = 0.5) {\n"
      "  state w0 = w\n"
      "  u = u + k * (w - w0)\n"
      "}\n"
      "optimizer o(lr = 0.1) {\n"
      "  other: anchor -> scale(lr)\n"
      "}\n";
  std::vector<float> w = {1.f, -2.f, 3.f}, g = {0.5f, 0.5f, -1.f};
  const std::vector<float> w0 = w;
  Optimizer opt(build_executable(SpecRef{spec, "", ""}), {{"p", {3}, w.data(), g.data()}});
  std::vector<float> ref = w;
  for (int t = 1; t <= 5; ++t) {
    opt.step();
    for (size_t i = 0; i < ref.size(); ++i) ref[i] -= 0.1f * (g[i] + 0.5f * (ref[i] - w0[i]));
    CAPTURE(t);
    CHECK(opt.read_state("p", "anchor.w0") == w0);
    for (size_t i = 0; i < ref.size(); ++i) CHECK(w[i] == doctest::Approx(ref[i]).epsilon(1e-6));
  }
}

TEST_CASE("a scalar state holds one value per tensor, steps exactly, and survives a checkpoint") {
  // Novograd's per-tensor second moment: v <- b2 v + (1 - b2) ||g||^2 (v = ||g||^2 at first)
  const char* spec =
      "component nv(b2 = 0.5) {\n"
      "  state v = scalar(sum(g * g))\n"
      "  state p = scalar(1)\n"
      "  v = b2 * v + (1 - b2) * sum(g * g)\n"
      "  p = p * b2\n"
      "  u = u / (sqrt(v) + 1e-8) * p\n"
      "}\n"
      "optimizer o(lr = 0.1) { other: nv -> scale(lr) }\n";
  std::vector<float> wa = {1.f, -2.f, 3.f, 0.5f, 1.f, 2.f}, ga = {0.5f, 0.25f, -1.f, 2.f, 1.f, -3.f};
  std::vector<float> wb = {1.f, 2.f}, gb = {3.f, -4.f};
  auto exe = build_executable(SpecRef{spec, "", ""});
  Optimizer opt(exe, {{"a", {2, 3}, wa.data(), ga.data()}, {"b", {2}, wb.data(), gb.data()}});
  CHECK(opt.state_shape("a", "nv.v").empty());
  CHECK(opt.read_state("b", "nv.v").size() == 1);
  auto norm2 = [](const std::vector<float>& g) {
    double s = 0;
    for (float x : g) s += double(x) * x;
    return s;
  };
  double va = norm2(ga), vb = norm2(gb), p = 1;
  std::vector<float> ra = wa, rb = wb;
  for (int t = 1; t <= 3; ++t) {
    opt.step();
    va = 0.5 * va + 0.5 * norm2(ga);
    vb = 0.5 * vb + 0.5 * norm2(gb);
    p *= 0.5;
    for (size_t i = 0; i < ra.size(); ++i) ra[i] -= float(0.1 * ga[i] / (std::sqrt(va) + 1e-8) * p);
    for (size_t i = 0; i < rb.size(); ++i) rb[i] -= float(0.1 * gb[i] / (std::sqrt(vb) + 1e-8) * p);
    CAPTURE(t);
    CHECK(opt.read_state("a", "nv.v")[0] == doctest::Approx(va).epsilon(1e-6));
    CHECK(opt.read_state("b", "nv.v")[0] == doctest::Approx(vb).epsilon(1e-6));
    CHECK(opt.read_state("b", "nv.p")[0] == doctest::Approx(p).epsilon(1e-6));
    for (size_t i = 0; i < ra.size(); ++i) CHECK(wa[i] == doctest::Approx(ra[i]).epsilon(1e-5));
    for (size_t i = 0; i < rb.size(); ++i) CHECK(wb[i] == doctest::Approx(rb[i]).epsilon(1e-5));
  }
  // a checkpoint keeps the scalars by name; a fresh optimizer resumes from them
  namespace fs = std::filesystem;
  const std::string path = (fs::temp_directory_path() / "opal-scalar-state.ckpt").string();
  opt.save(path);
  std::vector<float> wa2 = wa, wb2 = wb;
  Optimizer again(exe, {{"a", {2, 3}, wa2.data(), ga.data()}, {"b", {2}, wb2.data(), gb.data()}});
  again.load(path);
  CHECK(again.read_state("a", "nv.v") == opt.read_state("a", "nv.v"));
  CHECK(again.read_state("b", "nv.p") == opt.read_state("b", "nv.p"));
  opt.step();
  again.step();
  CHECK(wa2 == wa);
  CHECK(wb2 == wb);
  fs::remove(path);
}

TEST_CASE("full(c) initializes a state to a constant; a non-finite first gradient does not poison it") {
  // Adagrad's initial accumulator: state s = full(acc0); the `g*0 + c` workaround was NaN forever
  const char* spec =
      "component acc(acc0 = 0.25) {\n"
      "  state s = full(acc0)\n"
      "  state r = full(2, rows)\n"
      "  s = s + g * g\n"
      "  u = u / sqrt(s) * r\n"
      "}\n"
      "optimizer o(lr = 0.1, acc0 = 0.25) { matrix: acc(acc0) -> scale(lr) }\n";
  std::vector<float> w = {1.f, -2.f, 3.f, 0.5f}, g = {0.5f, 0.25f, -1.f, 2.f};
  Optimizer opt(build_executable(SpecRef{spec, "", ""}), {{"p", {2, 2}, w.data(), g.data()}});
  opt.set_hparam("acc0", 0.5);
  std::vector<double> s(4, 0.5);
  std::vector<float> ref = w;
  for (int t = 1; t <= 2; ++t) {
    opt.step();
    for (size_t i = 0; i < 4; ++i) {
      s[i] += double(g[i]) * g[i];
      ref[i] -= float(0.1 * g[i] / std::sqrt(s[i]) * 2);
    }
    for (size_t i = 0; i < 4; ++i) CHECK(w[i] == doctest::Approx(ref[i]).epsilon(1e-6));
  }
  CHECK(opt.read_state("p", "acc.r") == std::vector<float>{2.f, 2.f});
  // the initial value does not depend on the gradient: with the workaround, g = inf on step 1
  // made s NaN (inf * 0) and every later step NaN
  std::vector<float> w2 = {1.f, 1.f, 1.f, 1.f}, g2 = {INFINITY, 1.f, 1.f, 1.f};
  Optimizer fresh(build_executable(SpecRef{spec, "", ""}), {{"p", {2, 2}, w2.data(), g2.data()}});
  fresh.step();
  CHECK(std::isinf(fresh.read_state("p", "acc.s")[0]));
  CHECK(fresh.read_state("p", "acc.s")[1] == doctest::Approx(1.25f));
}

TEST_CASE("Newton-Schulz's eps is a runtime hyperparameter; `inf` is a literal") {
  const char* spec =
      "component clip(c = inf) { u = max(min(u, c), -c) }\n"
      "optimizer o(lr = 0.1, eps = 1e-7) { matrix: ns(eps = eps) -> clip -> scale(lr) }\n";
  const char* fixed = "optimizer o(lr = 0.1) { matrix: ns(eps = 0.5) -> scale(lr) }\n";
  std::vector<float> g = {0.5f, 0.25f, -1.f, 2.f, 1.f, -3.f};
  std::vector<float> w1(6, 1.f), w2(6, 1.f);
  Optimizer a(build_executable(SpecRef{spec, "", ""}), {{"p", {2, 3}, w1.data(), g.data()}});
  Optimizer b(build_executable(SpecRef{fixed, "", ""}), {{"p", {2, 3}, w2.data(), g.data()}});
  a.set_hparam("eps", 0.5);  // a large eps shrinks the normalized input: visibly different
  a.step();
  b.step();
  CHECK(w1 == w2);
  std::vector<float> w3(6, 1.f);
  Optimizer c(build_executable(SpecRef{spec, "", ""}), {{"p", {2, 3}, w3.data(), g.data()}});
  c.step();  // eps = 1e-7
  CHECK(w3 != w1);
}

TEST_CASE("delegation keeps runtime hyperparameters: muon's AdamW side follows lr and its own adam_* terms") {
  std::vector<float> w(6, 1.f), g = {0.5f, 0.25f, -1.f, 2.f, 1.f, -3.f}, b(3, 1.f), gb = {1.f, -1.f, 0.5f};
  Optimizer opt(build_executable(SpecRef{"muon", "", ""}), {{"w", {2, 3}, w.data(), g.data()}, {"b", {3}, b.data(), gb.data()}});
  REQUIRE(opt.route_of("b") == "embedding,head,other>other");
  // a scheduler that drives lr to 0 stops both sides (the AdamW side was a constant 3e-4)
  opt.set_hparam("lr", 0.0);
  opt.step();
  CHECK(w == std::vector<float>(6, 1.f));
  CHECK(b == std::vector<float>(3, 1.f));
  // the AdamW side runs at lr * adam_lr_ratio: Adam's first step moves each element by that lr
  opt.set_hparam("lr", 0.02);
  opt.set_hparam("adam_lr_ratio", 0.5);
  opt.step();
  for (float x : b) CHECK(std::abs(x - 1.f) == doctest::Approx(0.01).epsilon(1e-3));
  opt.set_hparam("adam_wd", 0.5);  // settable at run time: no recompilation
  CHECK(opt.hparam("adam_wd") == 0.5);
}

TEST_CASE("global_sum: a global gradient norm across every tensor and route of the step, two phases") {
  const char* spec =
      "component clip_global(max_norm = 1.0) {\n"
      "  let gnorm = sqrt(global_sum(sum(g * g)))\n"
      "  u = u * min(1, max_norm / (gnorm + 1e-6))\n"
      "}\n"
      "optimizer o(lr = 0.5, max_norm = 1.0) {\n"
      "  matrix: clip_global(max_norm) -> sign -> scale(lr * 0 + 1) -> clip_global(max_norm) -> scale(lr)\n"
      "  other: clip_global(max_norm) -> scale(lr)\n"
      "}\n";
  std::vector<float> wa(6, 0.f), ga = {3.f, 0.f, 0.f, 0.f, 0.f, 0.f};  // ||ga|| = 3
  std::vector<float> wb(2, 0.f), gb = {0.f, 4.f};                      // ||gb|| = 4
  std::vector<float> wc(3, 0.f);                                       // no gradient: no share
  auto exe = build_executable(SpecRef{spec, "", ""});
  // one sum per use of the stage: `clip_global` in both routes (a and b), `clip_global#2` (a only)
  REQUIRE(exe->desc->globals.size() == 2);
  Optimizer opt(exe, {{"a", {2, 3}, wa.data(), ga.data()}, {"b", {2}, wb.data(), gb.data()}, {"c", {3}, wc.data(), nullptr}});
  opt.step();
  // the first norm, over a and b, is 5: b moves by lr * 4/5; a's sign of its clipped step is 1,
  // clipped again by its own norm alone (3): a moves by lr / 3 where g != 0
  CHECK(wb[0] == 0.f);
  CHECK(wb[1] == doctest::Approx(-0.5 * 4.0 / 5.0).epsilon(1e-5));
  CHECK(wa[0] == doctest::Approx(-0.5 / 3.0).epsilon(1e-5));
  CHECK(wa[1] == 0.f);
  CHECK(wc == std::vector<float>(3, 0.f));
  // a norm under max_norm leaves the step alone
  opt.set_hparam("max_norm", 100);
  std::vector<float> before = wb;
  opt.step();
  CHECK(wb[1] == doctest::Approx(before[1] - 0.5 * 4.0).epsilon(1e-5));
}

TEST_CASE("global_sum: errors for a tensor argument and for a sum of a global sum") {
  CHECK(error_of([] {
          build_executable(SpecRef{"optimizer o(lr = 1) { other: scale(global_sum(g) * lr) }", "", ""});
        }).find("`global_sum` adds one scalar per tensor") != std::string::npos);
  CHECK(error_of([] {
          build_executable(SpecRef{"optimizer o(lr = 1) { other: scale(global_sum(global_sum(sum(g)) * sum(g)) * lr) }", "", ""});
        }).find("depends on another `global_sum`") != std::string::npos);
}

TEST_CASE("global_sum: work guarded by a global sum waits for it, as work reading it does") {
  // the eigendecomposition's guard reads the sum: it must run in the second phase, never with
  // last step's value
  const char* spec =
      "component c() {\n"
      "  state L = zeros(rows, rows)\n"
      "  state Q = eye(rows)\n"
      "  when(global_sum(sum(g * g)) > 4) {\n"
      "    Q = eigh(L)\n"  // the old L: in memory from the start, so only the guard holds it back
      "  }\n"
      "  L = L + g @ transpose(g)\n"
      "  u = transpose(Q) @ u\n"
      "}\n"
      "optimizer o(lr = 0.1) { matrix: c -> scale(lr) other: scale(lr) }\n";
  auto exe = build_executable(SpecRef{spec, "", ""});
  const exec::Route& r = exe->desc->routes.at(0);
  REQUIRE(r.phase_split > 0);
  bool saw_call = false;
  for (size_t pos = 0; pos < r.schedule.size(); ++pos)
    if (r.schedule[pos].is_call && std::holds_alternative<exec::Eigh>(r.calls[r.schedule[pos].index].op)) {
      saw_call = true;
      CHECK(pos >= r.phase_split);
    }
  CHECK(saw_call);
  // a route condition past the limit is a clear error, not an internal one
  std::string cond = "rows";
  for (int i = 0; i < 40; ++i) cond += " + rows";
  CHECK(error_of([&] {
          build_executable(SpecRef{"optimizer o(lr = 1) { where(" + cond + " > 1): scale(lr) other: scale(lr) }", "", ""});
        }).find("LimitExceeded") != std::string::npos);
}

TEST_CASE("state is inspectable by slot name") {
  std::vector<float> w(6, 0.f), g(6, 2.f);
  Optimizer opt(build_executable(SpecRef{"adamw", "", ""}), {{"p", {2, 3}, w.data(), g.data()}});
  opt.step();
  CHECK(opt.slots("p") == std::vector<std::string>{"momentum.m", "adapt.v"});
  CHECK(opt.state("p", "momentum.m")[0] == doctest::Approx(0.2f));
  CHECK(opt.state("p", "adapt.v")[5] == doctest::Approx(0.004f));
  CHECK(error_of([&] { opt.state("p", "nope"); }).find("no state slot") != std::string::npos);
}

TEST_CASE("bad parameters are refused before anything runs") {
  CHECK(error_of([] { Optimizer(build_executable(SpecRef{"adamw", "", ""}), {{"a", {2}}, {"a", {3}}}); }).find("given twice") != std::string::npos);
  CHECK(error_of([] { Optimizer(build_executable(SpecRef{"adamw", "", ""}), {{"a", {2, 0}}}); }).find("must be positive") != std::string::npos);
  CHECK(error_of([] {
          Optimizer(build_executable(SpecRef{"adamw", "", ""}), {{"a", {1 << 20, 1 << 20, 1 << 20}}});
        }).find("more than") != std::string::npos);
  CHECK(error_of([] { Optimizer(build_executable(SpecRef{"adamx", "", ""}), {}); }).find("did you mean `adam") != std::string::npos);
}

TEST_CASE("replay refuses a missing or mis-shaped gradient before stepping") {
  ReplayRequest req;
  req.spec = {"adamw", "", ""};
  req.steps = 2;
  req.init.tensors["w"] = {{2}, {1, 2}};
  req.grads.tensors["w@1"] = {{2}, {1, 1}};
  CHECK(error_of([&] { replay(req); }).find("no tensor `w@2`") != std::string::npos);
  req.grads.tensors["w@2"] = {{3}, {1, 1, 1}};
  CHECK(error_of([&] { replay(req); }).find("has shape [3]") != std::string::npos);
}

TEST_CASE("replay writes every slot's values whatever its storage (--state bf16, q8)") {
  ReplayRequest req;
  req.steps = 3;
  req.init.tensors["w"] = {{4, 8}, testing::randoms(32, 1, 1.f)};
  for (int s = 1; s <= 3; ++s) req.grads.tensors[fmt::format("w@{}", s)] = {{4, 8}, testing::randoms(32, 1 + s, 1.f)};
  req.spec = {"adamw", "", ""};
  const SafetensorsFile f32 = replay(req);
  for (const char* storage : {"bf16", "q8"}) {
    CAPTURE(storage);
    req.spec = {"adamw", "", "", storage};
    const SafetensorsFile out = replay(req);  // it refused the non-f32 slots after stepping
    const auto& m = out.tensors.at("w/momentum.m").values;
    const auto& ref = f32.tensors.at("w/momentum.m").values;
    REQUIRE(m.size() == ref.size());
    float largest = 0;
    for (float x : ref) largest = std::max(largest, std::abs(x));
    for (size_t i = 0; i < m.size(); ++i) CHECK(std::abs(m[i] - ref[i]) <= 0.02f * largest);  // values, not codes
    CHECK(out.tensors.count("w/momentum.m.absmax") == (std::string(storage) == "q8" ? 1u : 0u));
  }
}

TEST_CASE("replay steps a parameter stored as bf16 in the init file as a bf16 parameter, with the grads file's gradient dtype") {
  for (const char* grad_dtype : {"BF16", "F32"}) {
    CAPTURE(grad_dtype);
    ReplayRequest req;
    req.spec = {"adamw", "", ""};
    req.steps = 3;
    req.hparams["lr"] = 0.01;
    std::vector<float> w0 = testing::randoms(32, 7, 1.f);
    for (float& x : w0) x = half::opal_ld_bf16(half::opal_to_bf16(x, 0, 0, 0, 0));  // as a BF16 file holds it
    req.init.tensors["w"] = {{4, 8}, w0, "BF16"};
    std::vector<std::vector<float>> gs;
    for (int s = 1; s <= 3; ++s) {
      gs.push_back(testing::randoms(32, 10 + s, 1.f));
      if (std::string(grad_dtype) == "BF16")
        for (float& x : gs.back()) x = half::opal_ld_bf16(half::opal_to_bf16(x, 0, 0, 0, 0));
      req.grads.tensors[fmt::format("w@{}", s)] = {{4, 8}, gs.back(), grad_dtype};
    }
    const SafetensorsFile out = replay(req);
    CHECK(out.tensors.at("w").dtype == "BF16");
    // the same steps through the API, on a bf16 parameter
    ParamDesc p{"w", {4, 8}};
    p.dtype = DType::BF16;
    p.grad_dtype = std::string(grad_dtype) == "BF16" ? DType::BF16 : DType::F32;
    auto opt = make_optimizer(compile_spec({"adamw", "", ""}), {p});
    opt->set_hparam("lr", 0.01);
    opt->write_param("w", w0);
    for (const auto& g : gs) {
      opt->write_grad("w", g);
      opt->step();
    }
    CHECK(out.tensors.at("w").values == opt->read_param("w"));
    CHECK(out.tensors.at("w/momentum.m").values == opt->read_state("w", "momentum.m"));
    // and not what an f32 parameter would hold
    req.init.tensors["w"].dtype = "F32";
    CHECK(replay(req).tensors.at("w").values != out.tensors.at("w").values);
  }
}
}

TEST_SUITE("cli") {
TEST_CASE("opal --version and check") {
  CHECK(run_cli("--version").second.find("opal 0.1.0") != std::string::npos);
  int rc;
  std::string out;
  std::tie(rc, out) = run_cli(std::string("check ") + OPAL_TESTS_DIR + "/golden/errors/UnknownComponent.opal");
  CHECK(rc == 1);
  CHECK(out.find("did you mean `adapt`?") != std::string::npos);
  auto ok = run_cli(std::string("check ") + OPAL_TESTS_DIR + "/../stdlib/adamw.opal");
  CHECK(ok.first == 0);
  // files are checked one by one: two specs may use the same names; one bad file fails the run
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / "opal-check-files";
  fs::create_directories(dir);
  for (const char* f : {"a.opal", "b.opal"}) std::ofstream(dir / f) << "optimizer o(lr = 0.1) { other: scale(lr) }\n";
  std::ofstream(dir / "bad.opal") << "optimizer o(lr = 0.1) { other: scael(lr) }\n";
  auto two = run_cli(fmt::format("check {} {}", (dir / "a.opal").string(), (dir / "b.opal").string()));
  CHECK(two.first == 0);
  CHECK(two.second.find("a.opal: ok: 1 optimizer") != std::string::npos);
  CHECK(two.second.find("b.opal: ok: 1 optimizer") != std::string::npos);
  auto bad = run_cli(fmt::format("check {} {}", (dir / "bad.opal").string(), (dir / "a.opal").string()));
  CHECK(bad.first == 1);
  CHECK(bad.second.find("did you mean `scale`?") != std::string::npos);
  CHECK(bad.second.find("a.opal: ok") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("a user component named like a stdlib one leaves the stdlib optimizers unchanged") {
  // the user's `decay` ignores wd; `adamw(wd = 0.5)` must still decay (it did not: wd was lost)
  const char* spec =
      "component decay(wd = 0.0) { u = u }\n"
      "optimizer o(lr = 1e-2, wd = 0.5) { other: adamw(lr = lr, wd = wd) }\n";
  std::vector<float> w1 = {1.f, -2.f, 3.f, 0.5f}, g = {0.5f, 0.25f, -1.f, 2.f};
  std::vector<float> w2 = w1;
  Optimizer mine(build_executable(SpecRef{spec, "", ""}), {{"p", {4}, w1.data(), g.data()}});
  Optimizer ref(build_executable(SpecRef{"adamw", "", ""}), {{"p", {4}, w2.data(), g.data()}});
  ref.set_hparam("lr", 1e-2);
  ref.set_hparam("wd", 0.5);
  for (int t = 0; t < 3; ++t) {
    mine.step();
    ref.step();
  }
  CHECK(w1 == w2);
}

TEST_CASE("opal replay end to end, and a corrupt input file") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / "opal-cli-test";
  fs::create_directories(dir);
  SafetensorsFile init, grads;
  init.tensors["w"] = {{2, 2}, {1, 2, 3, 4}};
  for (int t = 1; t <= 3; ++t) grads.tensors["w@" + std::to_string(t)] = {{2, 2}, {1, -1, 0.5f, 0}};
  write_safetensors((dir / "init.safetensors").string(), init);
  write_safetensors((dir / "grads.safetensors").string(), grads);
  int rc;
  std::string out;
  std::tie(rc, out) = run_cli("replay signum --init " + (dir / "init.safetensors").string() + " --grads " + (dir / "grads.safetensors").string() +
                              " --steps 3 --hparam lr=0.1 -o " + (dir / "out.safetensors").string());
  INFO(out);
  REQUIRE(rc == 0);
  SafetensorsFile r = read_safetensors((dir / "out.safetensors").string());
  CHECK(r.tensors.at("w").values[0] == doctest::Approx(0.7f));
  CHECK(r.tensors.at("w").values[3] == doctest::Approx(4.0f));  // sign(0) = 0
  CHECK(r.tensors.count("w/momentum.m") == 1);
  { std::ofstream(dir / "bad.safetensors") << "garbage!"; }
  auto bad = run_cli("replay signum --init " + (dir / "bad.safetensors").string() + " --grads " + (dir / "grads.safetensors").string() +
                     " --steps 1 -o " + (dir / "x.safetensors").string());
  CHECK(bad.first == 1);
  CHECK(bad.second.find("not a valid safetensors file") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("opal replay of a matrix optimizer with --diagnostics, and opal routes") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / "opal-cli-matrix-test";
  fs::create_directories(dir);
  SafetensorsFile init, grads;
  std::vector<float> w(8 * 4), b(8, 0.5f);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(i % 7) * 0.1f - 0.3f;
  init.tensors["blocks.0.w"] = {{8, 4}, w};
  init.tensors["blocks.0.ln.bias"] = {{8}, b};
  init.tensors["wte.embed"] = {{10, 4}, std::vector<float>(40, 0.1f)};
  for (int t = 1; t <= 4; ++t) {
    std::vector<float> g(32), gb(8), ge(40);
    for (size_t i = 0; i < g.size(); ++i) g[i] = float((i * 7 + t * 3) % 11) * 0.1f - 0.5f;
    for (size_t i = 0; i < gb.size(); ++i) gb[i] = float(i) * 0.01f * float(t);
    for (size_t i = 0; i < ge.size(); ++i) ge[i] = float(i % 3) * 0.01f;
    grads.tensors["blocks.0.w@" + std::to_string(t)] = {{8, 4}, g};
    grads.tensors["blocks.0.ln.bias@" + std::to_string(t)] = {{8}, gb};
    grads.tensors["wte.embed@" + std::to_string(t)] = {{10, 4}, ge};
  }
  write_safetensors((dir / "init.safetensors").string(), init);
  write_safetensors((dir / "grads.safetensors").string(), grads);
  int rc;
  std::string out;
  std::tie(rc, out) = run_cli("replay paper_soap10 --init " + (dir / "init.safetensors").string() + " --grads " +
                              (dir / "grads.safetensors").string() + " --steps 4 --hparam every=2 --hparam warmup=0 -o " +
                              (dir / "out.safetensors").string() + " --diagnostics " + (dir / "diag.jsonl").string());
  INFO(out);
  REQUIRE(rc == 0);
  SafetensorsFile r = read_safetensors((dir / "out.safetensors").string());
  CHECK(r.tensors.at("blocks.0.w/eigenbasis.QL").shape == std::vector<int64_t>{8, 8});
  CHECK(r.tensors.at("blocks.0.w/eigenbasis.QR").shape == std::vector<int64_t>{4, 4});
  CHECK(r.tensors.at("blocks.0.w/adapt.v").shape == std::vector<int64_t>{8, 4});
  std::ifstream diag(dir / "diag.jsonl");
  std::string line;
  int lines = 0, with_sv = 0;
  while (std::getline(diag, line)) {
    ++lines;
    if (line.find("\"sv_ratio\"") != std::string::npos) ++with_sv;
  }
  CHECK(lines == 12);   // 3 parameters x 4 steps
  CHECK(with_sv == 8);  // matrices only
  auto routes = run_cli("routes paper_splus10 --params " + (dir / "init.safetensors").string());
  INFO(routes.second);
  REQUIRE(routes.first == 0);
  CHECK(routes.second.find("rotate(eigenbasis(b2, every)) -> sign -> unrotate") != std::string::npos);
  CHECK(routes.second.find("scale:    2 / (rows + cols) = 0.166667") != std::string::npos);
  CHECK(routes.second.find("paper_other: momentum(b1, bias_correction = true)") != std::string::npos);
  CHECK(routes.second.find("eigenbasis.L [8, 8]") != std::string::npos);
  auto bad = run_cli("routes muon --params " + (dir / "init.safetensors").string() + " -o x");
  CHECK(bad.first != 0);
  fs::remove_all(dir);
}
}

TEST_SUITE("runtime") {
// examples/table2.opal writes the seed paper's Table 2 from components only; where a cell is
// also a stdlib/paper optimizer, both must compute bit-identical updates.
TEST_CASE("Table 2 from components: all 15 cells run, and match the stdlib paper optimizers") {
  const std::string file = std::string(OPAL_TESTS_DIR) + "/../examples/table2.opal";
  auto run = [&](const SpecRef& ref) {
    std::vector<float> w(12 * 6), b(6, 0.1f), e(20 * 6, 0.2f);
    for (size_t i = 0; i < w.size(); ++i) w[i] = float(int(i % 9) - 4) * 0.05f;
    Optimizer opt(
        build_executable(ref),
        {{"blocks.0.w", {12, 6}, w.data(), nullptr}, {"blocks.0.ln.bias", {6}, b.data(), nullptr}, {"wte.embed", {20, 6}, e.data(), nullptr}});
    for (int t = 1; t <= 6; ++t) {
      auto g = opt.grad("blocks.0.w");
      for (size_t i = 0; i < g.size(); ++i) g[i] = float(int((i * 5 + t * 3) % 13) - 6) * 0.01f;
      auto gb = opt.grad("blocks.0.ln.bias");
      for (size_t i = 0; i < gb.size(); ++i) gb[i] = float(i) * 0.001f * float(t);
      auto ge = opt.grad("wte.embed");
      for (size_t i = 0; i < ge.size(); ++i) ge[i] = float(i % 4) * 0.002f;
      opt.step();
    }
    std::vector<float> out(w);
    out.insert(out.end(), b.begin(), b.end());
    out.insert(out.end(), e.begin(), e.end());
    return out;
  };
  const std::vector<std::pair<std::string, std::string>> cells = {{"t2_e_sign", "paper_signum"},
                                                                  {"t2_e_look", "paper_signum_lookahead"},
                                                                  {"t2_e_var11", "paper_adam_b1b1"},
                                                                  {"t2_e_fact", "paper_adam_factored"},
                                                                  {"t2_e_var", "paper_adam"},
                                                                  {"t2_s_sign", "paper_splus100"},
                                                                  {"t2_s_look", "paper_splus_lookahead"},
                                                                  {"t2_s_var11", "paper_soap_b1b1"},
                                                                  {"t2_s_fact", "paper_soap_factored"},
                                                                  {"t2_s_var", "paper_soap100"},
                                                                  {"t2_n_sign", "paper_muon"},
                                                                  {"t2_n_look", "paper_muon_lookahead"},
                                                                  {"t2_n_var11", "paper_adamuon_b1b1"},
                                                                  {"t2_n_fact", "paper_adamuon_factored"},
                                                                  {"t2_n_var", "paper_adamuon"}};
  CHECK(cells.size() == 15);
  for (const auto& cp : cells) {
    const std::string &cell = cp.first, &paper = cp.second;  // named: clang 14 lambdas (INFO) cannot capture bindings
    INFO(cell << " vs " << paper);
    auto a = run({file, cell, ""});
    auto b = run({paper, "", ""});
    for (float x : a) REQUIRE(std::isfinite(x));
    REQUIRE(a.size() == b.size());
    size_t first = a.size();
    for (size_t i = 0; i < a.size() && first == a.size(); ++i)
      if (a[i] != b[i]) first = i;
    INFO("first difference at " << first << (first < a.size() ? ": " + std::to_string(a[first]) + " vs " + std::to_string(b[first]) : ""));
    CHECK(first == a.size());
  }
}
}

TEST_SUITE("runtime") {
TEST_CASE("a NaN gradient at a basis refresh propagates to the state and never aborts") {
  for (const char* spec : {"paper_soap10", "soap", "paper_shampoo10", "paper_psgd", "paper_muon"}) {
    INFO(spec);
    std::vector<float> w(6 * 4, 0.1f);
    Optimizer opt(build_executable(SpecRef{spec, "", ""}), {{"blocks.0.w", {6, 4}, w.data(), nullptr}});
    for (int t = 1; t <= 3; ++t) {
      auto g = opt.grad("blocks.0.w");
      for (size_t i = 0; i < g.size(); ++i) g[i] = float(i % 5) * 0.01f;
      if (t == 1) g[3] = std::nanf("");
      opt.step();
    }
    bool any_nan = false;
    for (float x : w) any_nan |= std::isnan(x);
    CHECK(any_nan);  // no silent recovery here: the NaN policy is a separate option
  }
}
}
