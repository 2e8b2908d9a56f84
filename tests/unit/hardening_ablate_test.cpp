// Hardening of `opal ablate` (the hostile trial's items 4, 6 and 16): external trainers that
// print garbage or hang, and output folders that cannot be used.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "ablate/grid_file.h"
#include "ablate/runner.h"
#include "runtime/error.h"

#include "error_of.h"
#include "run_cli.h"
#include "scratch.h"

using namespace opal;
using namespace opal::testing;
namespace fs = std::filesystem;

TEST_SUITE("hardening") {

namespace {
ExpandedGrid tiny_grid(const std::string& dir) {
  return load_grid(write(dir + "/g.opal", "grid t(lr = 0.01) { opt = { a: sign }  matrix: opt -> scale(lr)  sweep lr = values(0.01) }\n"));
}

RunRecord only_run(const AblateResult& r) {
  REQUIRE(r.journal);
  REQUIRE(r.journal->records().size() == 1);
  return r.journal->records().begin()->second;
}

AblateOptions external(const std::string& dir, const std::string& script_body, double timeout = 60) {
  AblateOptions o;
  o.workload = "external:sh " + write(dir + "/trainer.sh", script_body);
  o.out_dir = dir + "/out";
  o.jobs = 1;
  o.progress = false;
  o.workload_options.timeout_s = timeout;
  return o;
}
}  // namespace

TEST_CASE("an external trainer's malformed output fails its run with the line, never the ablation (items 4, 16)") {
  struct Case {
    const char* output;
    const char* why;
  };
  for (const Case& c :
       {Case{R"({"step": 1, "loss": 1.0, "diverged": "no"})", "`diverged` is \"no\", not true or false"},
        Case{R"({"step": 1})", "has a `step` but no `loss` or `val_loss`"},
        Case{R"({"step": 1e300, "loss": 1.0})", "`step` is 1e+300, not a whole number"}, Case{R"({"step": "one", "loss": 1.0})", "`step` is \"one\""},
        Case{R"({"step": 2, "loss": "low"})", "`loss` is \"low\", not a number"}}) {
    CAPTURE(c.output);
    auto dir = scratch("malformed");
    AblateResult r = run_ablation(tiny_grid(dir), external(dir, fmt::format("echo 'not json'\necho '{}'\n", c.output)));
    RunRecord run = only_run(r);
    CHECK(run.status == "failed");
    CHECK(contains(run.error, "output line 2"));
    CHECK(contains(run.error, c.why));
    fs::remove_all(dir);
  }
}

TEST_CASE("an external trainer that hangs is stopped after --run-timeout and recorded as failed (item 6)") {
  auto dir = scratch("hangs");
  auto begin = std::chrono::steady_clock::now();
  AblateResult r = run_ablation(tiny_grid(dir), external(dir, "echo '{\"step\": 1, \"loss\": 2.0}'\nsleep 60\n", 1));
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  RunRecord run = only_run(r);
  CHECK(run.status == "failed");
  CHECK(contains(run.error, "did not finish within 1 s"));
  CHECK(took < 20);
  for (const char* bad : {"0", "-5", "nan"})
    cli_fails(fmt::format("ablate {} -o {}/o2 --workload 'external:sh {}/trainer.sh' --run-timeout {} --no-progress", dir + "/g.opal", dir, dir, bad),
              {"--run-timeout must be a positive number of seconds"});
  fs::remove_all(dir);
}

TEST_CASE("opal ablate's numeric options given out of range are refused, not taken as their defaults") {
  auto dir = scratch("options");
  tiny_grid(dir);
  for (const char* bad :
       {"--steps 0", "--eval-every 0", "--seeds 0", "--seeds 5000", "--per-decade 0", "--per-decade 1000", "-j 0", "-j -1", "--max-extensions -1"}) {
    const auto res = run_cli(fmt::format("ablate {} -o {}/o --workload linreg {} --no-progress", dir + "/g.opal", dir, bad));
    CAPTURE(bad);
    CHECK(res.first == 2);  // a command line refused: a usage error
    CHECK(res.second.find("not in range") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(dir + "/o/journal.jsonl"));  // nothing ran
  fs::remove_all(dir);
}

TEST_CASE("an output folder that cannot be used is a clear error (item 4)") {
  auto dir = scratch("outdir");
  ExpandedGrid g = tiny_grid(dir);
  AblateOptions o;
  o.workload = "linreg";
  o.progress = false;
  o.jobs = 1;
  write(dir + "/a-file", "x");
  o.out_dir = dir + "/a-file";
  CHECK(contains(error_of([&] { run_ablation(g, o); }), "a file of that name is in the way"));
  fs::create_directories(dir + "/out");
  write(dir + "/out/cells", "x");
  o.out_dir = dir + "/out";
  CHECK(contains(error_of([&] { run_ablation(g, o); }), "/out/cells"));
  o.out_dir = "/proc/opal-cannot-be-here";
  CHECK(contains(error_of([&] { run_ablation(g, o); }), "cannot use `/proc/opal-cannot-be-here`"));
  for (std::string bad : {dir + "/a-file", std::string("/proc/opal-cannot-be-here")})
    cli_fails(fmt::format("ablate {} -o {} --workload linreg --no-progress", dir + "/g.opal", bad), {"error: cannot use"});
  fs::remove_all(dir);
}

// ---- SOAP's canonical eigenbasis ----

}  // TEST_SUITE
