// Ablations: grid expansion and its errors, sweeps, the journal, workload gradients, and the
// engine end to end (resume, divergence, external trainers).
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "ablate/grid_file.h"
#include "ablate/journal.h"
#include "ablate/report.h"
#include "ablate/runner.h"
#include "ablate/workloads/builtin.h"
#include "runtime/error.h"

#include "error_of.h"
#include "scratch.h"

using namespace opal;
using opal::testing::scratch;

namespace {

std::string write(const std::string& dir, const std::string& name, const std::string& text) {
  std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

const char* kGrid = R"(
grid g(lr = 1e-3, b1 = 0.9, b2 = 0.99, b3 = 0.1) {
  basis = { plain: norm, ortho(lr = 0.02): ns -> norm }
  norm = { sign(lr = 1e-4): sign, look: lookahead(b3) -> sign, var: adapt(b2) }
  matrix: momentum(b1) -> basis -> scale(lr)
  other: momentum(b1) -> adapt(b2) -> scale(lr)
  cell(ortho, sign)(lr = 0.05) "Muon": momentum(b1) -> ns -> scale(lr)
  cell(ortho, look): absent
  sweep lr = around(10, per_decade = 2)
  seeds = 2
  baseline(plain, var)
}
)";

}  // namespace

TEST_SUITE("ablate") {
TEST_CASE("grid: axes substitute into the template, nested, with per-cell overrides") {
  auto dir = scratch("expand");
  ExpandedGrid g = load_grid(write(dir, "g.opal", kGrid));
  REQUIRE(g.cells.size() == 6);
  CHECK(g.axes == std::vector<std::string>{"basis", "norm"});
  CHECK(g.seeds == 2);
  CHECK(g.cells[g.baseline].label == "plain / var");
  auto route = [&](int i) { return g.cells[i].routes[0].second; };
  CHECK(route(0) == "momentum(b1) -> sign -> scale(lr)");
  CHECK(route(1) == "momentum(b1) -> lookahead(b3) -> sign -> scale(lr)");
  CHECK(route(5) == "momentum(b1) -> ns -> adapt(b2) -> scale(lr)");
  CHECK(route(3) == "momentum(b1) -> ns -> scale(lr)");  // the override
  CHECK(g.cells[3].note == "Muon");
  CHECK(g.cells[4].absent);
  CHECK(g.cells[0].routes[1].second == "momentum(b1) -> adapt(b2) -> scale(lr)");  // untouched route
  // defaults: grid < first axis < second axis < cell; only the hyperparameters a cell reads
  auto param = [&](int i, const std::string& n) {
    for (const auto& [k, v] : g.cells[i].params)
      if (k == n) return v;
    return std::string("-");
  };
  CHECK(param(0, "lr") == "1e-4");
  CHECK(param(2, "lr") == "1e-3");
  CHECK(param(5, "lr") == "0.02");
  CHECK(param(3, "lr") == "0.05");
  CHECK(param(0, "b3") == "-");
  CHECK(param(1, "b3") == "0.1");
  // every cell compiles on its own, and all six differ
  auto hashes = cell_hashes(g);
  std::set<std::string> distinct(hashes.begin(), hashes.end());
  distinct.erase("");
  CHECK(distinct.size() == 5);
  std::filesystem::remove_all(dir);
}

TEST_CASE("grid: a cell that is one optimizer takes its hyperparameters; identical programs are found") {
  auto dir = scratch("list");
  ExpandedGrid g = load_grid(write(dir, "t.opal", R"(
grid t1 { opt = { adam: adam, adam_again: adam, muon: muon }  other: opt }
)"));
  REQUIRE(g.cells.size() == 3);
  CHECK(g.cells[0].routes[0].second.rfind("adam(lr = lr", 0) == 0);
  auto hashes = cell_hashes(g);
  CHECK(hashes[0] == hashes[1]);
  CHECK(hashes[0] != hashes[2]);
  std::filesystem::remove_all(dir);
}

TEST_CASE("grid: errors name the place and the fix") {
  auto dir = scratch("errors");
  auto err = [&](const std::string& body) { return error_of([&] { load_grid(write(dir, "e.opal", body)); }); };
  std::string e = err("grid g(lr = 1) { a = { x: sign } b = { y: sign } matrix: a -> scale(lr) cell(x, z): sign }");
  CHECK(e.find("axis `b` is never used") != std::string::npos);
  e = err("grid g(lr = 1) { a = { x: sign, y: adapt } matrix: a -> scale(lr) cell(yy): sign }");
  CHECK(e.find("axis `a` has no alternative `yy`") != std::string::npos);
  CHECK(e.find("did you mean `y`?") != std::string::npos);
  CHECK(e.find("e.opal:1:") != std::string::npos);
  e = err("grid g(lr) { a = { x: sign } matrix: a -> scale(lr) }");
  CHECK(e.find("grid hyperparameter `lr` has no default") != std::string::npos);
  e = err("grid g(lr = 1) { a = { x: b } b = { y: a } matrix: a -> scale(lr) }");
  CHECK(e.find("axes name each other in a cycle") != std::string::npos);
  e = err("grid g(lr = 1) { a = { x: sign } matrix: a -> scale(lr) sweep lr = logspace(1, 0.1) }");
  CHECK(e.find("`logspace` takes two bounds") != std::string::npos);
  e = err("grid g(lr = 1) { a = { x: sign } matrix: a -> scale(lr) sweep lr = linspace(1, 2) }");
  CHECK(e.find("cannot sweep `lr` over this") != std::string::npos);
  e = err("grid g(lr = 1) { a = { x: sign } matrix: a -> scale(lr) cell(x, x): sign }");
  CHECK(e.find("this cell names 2 alternatives; the grid has 1 axis") != std::string::npos);
  e = err("grid g(lr = 1) { a = { x: sign } matrix: a -> scale(lr) seeds = 0 }");
  CHECK(e.find("`seeds` takes a whole number") != std::string::npos);
  std::string big = "grid g(lr = 1) {";
  for (int k = 0; k < 4; ++k) {
    big += fmt::format(" a{} = {{", k);
    for (int i = 0; i < 9; ++i) big += fmt::format("{}x{}: sign", i ? ", " : "", i);
    big += " }";
  }
  big += " matrix: a0 -> a1 -> a2 -> a3 -> scale(lr) }";
  e = err(big);
  CHECK(e.find("6561 cells; the limit is 4096") != std::string::npos);
  CHECK(err("optimizer o(lr = 1) { other: scale(lr) }").find("defines no grid") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("sweeps: log grids around a default or between bounds, both ends included") {
  SweepSpec s;
  s.kind = SweepSpec::Kind::Around;
  s.hi = 10;
  s.per_decade = 2;
  auto p = s.points(1e-3);
  REQUIRE(p.size() == 5);
  CHECK(p.front() == doctest::Approx(1e-4));
  CHECK(p[1] == doctest::Approx(1e-3 / std::sqrt(10.0)));
  CHECK(p.back() == doctest::Approx(1e-2));
  s.kind = SweepSpec::Kind::Logspace;
  s.lo = 1e-4;
  s.hi = 1e-1;
  s.per_decade = 8;
  CHECK(s.points(0).size() == 25);
  CHECK(s.log_step() == doctest::Approx(std::log(10.0) / 8));
}

TEST_CASE("journal: records round-trip; a torn last line is skipped and the next record starts clean") {
  auto dir = scratch("journal");
  std::string path = dir + "/journal.jsonl";
  RunRecord a;
  a.key = "k1";
  a.cell = "c";
  a.hparams = {{"lr", 1e-3}};
  a.seed = 2;
  a.final_loss = 0.5;
  a.curve = {{10, 1.0, 0.9, -1}, {20, 0.8, 0.5, -1}};
  a.wall_s = 1.5;
  a.state_bytes = 64;
  RunRecord b = a;
  b.key = "k2";
  b.status = "diverged";
  b.final_loss = NAN;
  {
    std::vector<std::string> w;
    Journal j(path, w);
    CHECK(w.empty());
    j.append(a);
    j.append(b);
  }
  std::string half = to_json_line(a);
  half[7] = 'X';  // a different key, torn
  { std::ofstream(path, std::ios::app) << half.substr(0, half.size() / 2); }
  std::vector<std::string> w;
  {
    Journal j(path, w);
    REQUIRE(w.size() == 1);
    CHECK(w[0].find("journal.jsonl:3: skipped") != std::string::npos);
    REQUIRE(j.find("k1"));
    CHECK(j.find("k1")->curve.size() == 2);
    CHECK(j.find("k1")->curve[1].val_loss == 0.5);
    CHECK(j.find("k1")->hparams.at("lr") == 1e-3);
    REQUIRE(j.find("k2"));
    CHECK(j.find("k2")->status == "diverged");
    CHECK(std::isnan(j.find("k2")->final_loss));
    RunRecord c = a;
    c.key = "k3";
    j.append(c);
  }
  w.clear();
  Journal j(path, w);
  CHECK(w.size() == 1);  // the torn line, still skipped; k3 is whole on its own line
  CHECK(j.find("k3"));
  RunRecord r;
  std::string why;
  CHECK_FALSE(parse_json_line("{\"key\": \"x\"}", r, why));
  CHECK_FALSE(parse_json_line("[1, 2]", r, why));
  std::filesystem::remove_all(dir);
}

TEST_CASE("workloads: analytic gradients match finite differences") {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "the quick brown fox jumps over the lazy dog. ";
  workloads::GptConfig cfg{2, 16, 2, 8, 2, 1};
  std::vector<std::pair<std::string, std::unique_ptr<Workload>>> wls;
  wls.emplace_back("gpt", workloads::make_gpt_from_text(text, cfg, {}));
  for (const char* n : {"linreg", "softmax", "quadratic"}) wls.emplace_back(n, make_workload(n, {}));
  for (auto& entry : wls) {
    const std::string name = entry.first;  // named: clang 14 lambdas (CAPTURE) cannot capture bindings
    auto& wl = entry.second;
    CAPTURE(name);
    auto run = wl->start(7);
    auto ps = run->params();
    run->train_step(3);
    for (const auto& p : ps) {
      CAPTURE(p.name);
      int64_t n = 1;
      for (auto d : p.shape) n *= d;
      const float* grad = static_cast<const float*>(p.grad);
      float* data = static_cast<float*>(p.data);
      std::vector<float> g(grad, grad + n);
      // the three largest gradient entries: the finite difference is meaningful there
      std::vector<int64_t> idx(n);
      std::iota(idx.begin(), idx.end(), 0);
      std::partial_sort(idx.begin(), idx.begin() + std::min<int64_t>(3, n), idx.end(),
                        [&](auto a, auto b) { return std::abs(g[a]) > std::abs(g[b]); });
      for (int k = 0; k < std::min<int64_t>(3, n); ++k) {
        int64_t i = idx[k];
        float w0 = data[i], eps = 1e-2f * std::max(1.f, std::abs(w0));
        data[i] = w0 + eps;
        double lp = run->train_step(3);
        data[i] = w0 - eps;
        double lm = run->train_step(3);
        data[i] = w0;
        double fd = (lp - lm) / (2 * eps);
        CHECK(fd == doctest::Approx(g[i]).epsilon(0.05).scale(std::abs(g[i]) + 1e-3));
      }
    }
  }
}

TEST_CASE("ablation: sweeps extend past an edge, seeds repeat, a rerun takes everything from the journal") {
  auto dir = scratch("engine");
  std::string trainer = std::string(OPAL_TESTS_DIR) + "/ablate/fake_trainer.py";
  ExpandedGrid g = load_grid(write(dir, "g.opal", R"(
grid ext(lr = 1) {
  opt = { a: momentum(0.9) -> sign, b: adapt(0.99) }
  matrix: opt -> scale(lr)
  sweep lr = around(10, per_decade = 1)
  seeds = 2
  baseline(b)
}
)"));
  AblateOptions o;
  o.workload = "external:python3 " + trainer;
  o.out_dir = dir + "/out";
  o.jobs = 2;
  o.progress = false;
  AblateResult r = run_ablation(g, o);
  // lr 0.1, 1, 10 -> best 0.1 on the edge -> 0.01 -> 0.001 (worse): best 0.01, not on an edge
  for (int c = 0; c < 2; ++c) {
    CAPTURE(c);
    const auto& cr = r.cells[c];
    CHECK(cr.best.at("lr") == doctest::Approx(0.01));
    CHECK(cr.edge.empty());
    REQUIRE(cr.runs.size() == 2);
    CHECK(cr.runs[0]->final_loss == doctest::Approx(1.001));
    CHECK(cr.runs[1]->final_loss == doctest::Approx(1.002));
    CHECK(cr.runs_total == 10);  // 5 points x 2 seeds
  }
  CHECK(r.runs_executed == 20);
  auto s = summarize(r);
  CHECK(s[0].loss == doctest::Approx(1.0015));
  CHECK(s[0].spread == doctest::Approx(std::sqrt(0.0000005)).epsilon(1e-3));
  std::string md = report_markdown(r, s);
  CHECK(md.find("| a | 1.0015 ± 0.0007 | lr 0.01 |") != std::string::npos);
  // a second run does nothing new
  AblateResult again = run_ablation(g, o);
  CHECK(again.runs_executed == 0);
  CHECK(again.runs_from_journal == 20);
  CHECK(report_json(again, summarize(again)) == report_json(r, s));
  // a too-large lr diverges: recorded as such, and the sweep moves away from it
  ExpandedGrid d = load_grid(write(dir, "d.opal", R"(
grid div(lr = 100) { opt = { a: sign }  matrix: opt -> scale(lr)  sweep lr = values(100, 1000) }
)"));
  o.out_dir = dir + "/div";
  AblateResult rd = run_ablation(d, o);
  CHECK(rd.cells[0].diverged == 2);
  auto sd = summarize(rd);
  CHECK(sd[0].seeds_ok == 0);
  CHECK(report_markdown(rd, sd).find("| a | diverged |") != std::string::npos);
  std::filesystem::remove_all(dir);
}

// A grid whose lr is a component's parameter with a range, swept as `sweep`.
static ExpandedGrid ranged_grid(const std::string& dir, const std::string& name, const std::string& sweep) {
  return load_grid(write(dir, name + ".opal",
                         fmt::format(R"(
component step(lr = 1 in [0.05, 100]) {{
  u = lr * u
}}
grid {}(lr = 0.1) {{
  opt = {{ a: sign }}
  matrix: opt -> step(lr)
  sweep lr = {}
  seeds = 1
}}
)",
                                     name, sweep)));
}

TEST_CASE("ablation: sweep points outside a hyperparameter's range are left out, said so, and no sweep extends past the range") {
  auto dir = scratch("ranged");
  AblateOptions o;
  o.workload = "external:python3 " + std::string(OPAL_TESTS_DIR) + "/ablate/fake_trainer.py";
  o.out_dir = dir + "/out";
  o.progress = false;
  // the trainer's loss is smallest at lr = 0.01, which the range leaves out
  AblateResult r = run_ablation(ranged_grid(dir, "ranged", "around(10, per_decade = 1)"), o);
  const auto& cr = r.cells[0];
  CHECK(cr.best.at("lr") == doctest::Approx(0.1));
  CHECK(cr.edge.empty());     // the best sits on the range's end: nothing further to try
  CHECK(cr.runs_total == 2);  // 0.1 and 1; 0.01 was never run
  REQUIRE(cr.notes.size() == 1);
  CHECK(cr.notes[0].find("1 point of the lr sweep (0.01) outside [0.05, 100]") != std::string::npos);
  CHECK(std::find_if(r.warnings.begin(), r.warnings.end(), [](const std::string& w) { return w.find("(0.01) outside") != std::string::npos; }) !=
        r.warnings.end());
  // a sweep with no point in range is not swept: the cell runs at its default
  o.out_dir = dir + "/none";
  AblateResult rn = run_ablation(ranged_grid(dir, "none", "values(0.001, 0.01)"), o);
  CHECK(rn.cells[0].best.at("lr") == doctest::Approx(0.1));
  CHECK(rn.cells[0].runs_total == 1);
  REQUIRE(rn.cells[0].notes.size() == 1);
  CHECK(rn.cells[0].notes[0].find("2 points of the lr sweep (0.001, 0.01) outside [0.05, 100]") != std::string::npos);
  CHECK(rn.cells[0].notes[0].find("no point is left, so it is not swept") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("ablation: built-in workloads run in process, and diverging runs are recorded, not crashed") {
  auto dir = scratch("builtin");
  ExpandedGrid g = load_grid(write(dir, "g.opal", R"(
grid b(lr = 0.01) {
  opt = { adam: momentum(0.9, bias_correction = true) -> adapt(0.99), huge(lr = 1e30): momentum(0.9) -> scale(1e30) }
  matrix: opt -> scale(lr)
  other: adapt(0.99) -> scale(0.01)
}
)"));
  AblateOptions o;
  o.workload = "softmax";
  o.workload_options.steps = 40;
  o.workload_options.eval_every = 20;
  o.out_dir = dir + "/out";
  o.progress = false;
  AblateResult r = run_ablation(g, o);
  auto s = summarize(r);
  CHECK(s[0].seeds_ok == 1);
  CHECK(s[0].loss < 2.0);
  CHECK(s[0].accuracy > 0.3);
  CHECK(s[0].state_bytes == (64 * 10 * 2 + 10) * 4);
  REQUIRE(r.cells[1].runs.size() == 1);
  CHECK(r.cells[1].runs[0]->status == "diverged");
  CHECK(r.cells[1].runs[0]->error.find("loss") != std::string::npos);
  write_reports(r, o.out_dir);
  for (const char* f : {"report.md", "report.csv", "report.json", "curves.svg", "sweeps.svg"}) CHECK(std::filesystem::exists(o.out_dir + "/" + f));
  std::ifstream svg(o.out_dir + "/curves.svg");
  std::string text((std::istreambuf_iterator<char>(svg)), {});
  CHECK(text.find("<polyline") != std::string::npos);
  CHECK(error_of([&] { make_workload("softmx", {}); }).find("did you mean `softmax`?") != std::string::npos);
  std::filesystem::remove_all(dir);
}
}
