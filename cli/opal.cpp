// The `opal` command: check, ast, ir, emit, replay, routes, cost, run, list, grid, ablate.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "driver/build.h"
#include "ablate/grid_file.h"
#include "ablate/report.h"
#include "ablate/runner.h"
#include "compiler/codegen/c_emitter.h"
#include "compiler/pipeline.h"
#include "lang/parser.h"
#include "runtime/error.h"
#include "runtime/executable.h"
#include "driver/replay.h"
#include "driver/cost_report.h"
#include "driver/routes.h"
#include "driver/toy_problem.h"

#ifndef OPAL_VERSION
#define OPAL_VERSION "0.1.0"
#endif

namespace {

using namespace opal;

std::map<std::string, double> parse_hparams(const std::vector<std::string>& kvs) {
  std::map<std::string, double> out;
  for (const auto& kv : kvs) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw Error(fmt::format("--hparam takes NAME=VALUE, got `{}`", kv));
    std::string name = kv.substr(0, eq), text = kv.substr(eq + 1);
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(text, &used);
      if (used != text.size()) throw std::invalid_argument("trailing");
    } catch (const std::out_of_range&) {
      throw Error(fmt::format("--hparam `{}`: `{}` is out of range", name, text));
    } catch (const std::exception&) {
      throw Error(fmt::format("--hparam `{}`: `{}` is not a number", name, text));
    }
    try {
      Optimizer::check_hparam_value(name, v);
    } catch (const Error& e) {
      throw Error(fmt::format("--hparam {}", e.what()));
    }
    out[name] = v;
  }
  return out;
}

constexpr int kMaxSteps = 100000000;
void check_steps(int steps) {
  if (steps < 1 || steps > kMaxSteps) throw Error(fmt::format("--steps {} is out of range: from 1 to {}", steps, kMaxSteps));
}

// Prints diagnostics; returns the exit code (1 when there are errors).
int finish(const Diagnostics& d) {
  std::string r = d.render();
  if (!r.empty()) std::fputs(r.c_str(), stderr);
  return d.has_errors() ? 1 : 0;
}

// Each file is checked on its own, with the stdlib: files are independent specs, so one file's
// names never clash with another's.
int cmd_check(const std::vector<std::string>& files) {
  int rc = 0;
  for (const std::string& file : files) {
    Diagnostics d;
    LoadRequest req;
    req.files = {file};
    std::shared_ptr<Program> p(load_program(req, d));
    if (!d.has_errors()) check_program(p, d);
    if (finish(d) != 0) {
      rc = 1;
      continue;
    }
    std::printf("%s%sok: %zu optimizer%s, %zu component%s, %zu grid%s checked\n", files.size() > 1 ? file.c_str() : "", files.size() > 1 ? ": " : "",
                p->user_optimizers.size(), p->user_optimizers.size() == 1 ? "" : "s", p->user_components.size(),
                p->user_components.size() == 1 ? "" : "s", p->user_grids.size(), p->user_grids.size() == 1 ? "" : "s");
  }
  return rc;
}

int cmd_ast(const std::string& file) {
  Diagnostics d;
  SourceManager sm;
  std::string err;
  const SourceFile* f = sm.load(file, err);
  if (!f) {
    std::fprintf(stderr, "error: %s\n", err.c_str());
    return 1;
  }
  Module m = parse(*f, d);
  std::fputs(dump_ast(m).c_str(), stdout);
  return finish(d);
}

int cmd_ir(const SpecRef& ref, const std::string& after) {
  Diagnostics d;
  auto program = load_spec_program(ref, d);
  const OptimizerDecl* o = d.has_errors() ? nullptr : pick_optimizer(*program, ref, d);
  if (!o) return finish(d);
  const auto& names = pass_names();
  if (std::find(names.begin(), names.end(), after) == names.end() && after != "all") {
    std::fprintf(stderr, "error: unknown pass `%s`; passes: %s, all\n", after.c_str(), fmt::format("{}", fmt::join(names, ", ")).c_str());
    return 2;
  }
  std::vector<PassDump> dumps;
  CompileOptions opts = compile_options(ref, d);
  opts.dump_after = after;
  if (!d.has_errors()) compile_optimizer(program, *o, d, opts, &dumps);
  for (const auto& dump : dumps) {
    std::printf("// after %s (route %s)%s\n", dump.pass.c_str(), dump.route.c_str(), dump.changed ? "" : " (unchanged)");
    std::fputs(dump.text.c_str(), stdout);
  }
  return finish(d);
}

int cmd_emit(const SpecRef& ref, const std::string& target, bool check_finite, bool mixed) {
  auto c = compile_spec(ref);
  std::fputs(emit_optimizer(*c, target == "cuda" ? Target::Cuda : Target::Cpu, check_finite, mixed).c_str(), stdout);
  return 0;
}

int cmd_run(const SpecRef& ref, ToyConfig cfg, const std::vector<std::string>& hps) {
  auto hp = parse_hparams(hps);
  check_steps(cfg.steps);
  std::printf("%s on the built-in linear regression (W %dx%d, batch %d, %d steps)\n", ref.spec.c_str(), cfg.out, cfg.in, cfg.batch, cfg.steps);
  ToyResult r = run_toy(ref, cfg, hp, [](int step, double loss) { std::printf("  step %4d  loss %.6f\n", step, loss); });
  std::printf("  final loss %.6f (from %.6f)\n", r.final_loss, r.losses.front().second);
  return 0;
}

int cmd_grid(const std::string& file, const std::string& name) {
  ExpandedGrid g = load_grid(file, name);
  std::fputs(format_grid(g).c_str(), stdout);
  // Every cell must compile; cells whose programs are identical run once.
  auto hashes = cell_hashes(g);
  std::map<std::string, size_t> first;
  size_t present = 0;
  for (size_t i = 0; i < g.cells.size(); ++i) {
    if (hashes[i].empty()) continue;
    ++present;
    auto [it, fresh] = first.emplace(hashes[i], i);
    if (!fresh)
      std::printf("note: %s compiles to the same program as %s: it runs once\n", g.cells[i].label.c_str(), g.cells[it->second].label.c_str());
  }
  std::printf("ok: %zu cells compile (%zu distinct programs)\n", present, first.size());
  return 0;
}

int cmd_ablate(const std::string& file, const std::string& name, AblateOptions o) {
  ExpandedGrid g = load_grid(file, name);
  if (o.out_dir.empty()) {
    std::string wl = o.workload.rfind("external:", 0) == 0 ? "external" : o.workload;
    o.out_dir = fmt::format("ablations/{}-{}", g.name, wl);
  }
  o.progress = o.progress && isatty(fileno(stderr));
  std::fprintf(stderr, "opal ablate: grid %s, %zu cells, workload %s; journal and reports in %s/\n", g.name.c_str(), g.cells.size(),
               o.workload.c_str(), o.out_dir.c_str());
  AblateResult r = run_ablation(g, o);
  write_reports(r, o.out_dir);
  for (const auto& w : r.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  std::fputs(report_markdown(r, summarize(r)).c_str(), stdout);
  std::fprintf(stderr, "%d runs done now, %d taken from the journal; reports: %s/report.{md,csv,json}, curves.svg, sweeps.svg\n", r.runs_executed,
               r.runs_from_journal, o.out_dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Opal: a compiler for neural-network optimizers"};
  app.set_version_flag("--version", std::string("opal ") + OPAL_VERSION);
  app.require_subcommand(1);

  std::vector<std::string> check_files;
  auto* check = app.add_subcommand("check", "Report diagnostics for spec files (exit 1 on errors)");
  check->add_option("files", check_files, "Spec files")->required();

  std::string ast_file;
  auto* ast = app.add_subcommand("ast", "Print the parsed syntax tree of a spec file");
  ast->add_option("file", ast_file, "Spec file")->required();

  SpecRef ref;
  auto add_spec = [&](CLI::App* c) {
    c->add_option("spec", ref.spec, "A stdlib optimizer name, a .opal file, or spec text")->required();
    c->add_option("--optimizer", ref.optimizer, "Which optimizer of the file");
    c->add_option("--state", ref.state,
                  "How the optimizer's state is stored where its routes do not say: f32, bf16, q8, q8(BLOCK), with options `bf16, "
                  "stochastic`, `..., master`");
  };
  std::string after = "memory";
  auto* ir = app.add_subcommand("ir", "Print the IR of an optimizer after a pass");
  add_spec(ir);
  ir->add_option("--after", after, "lower, fold, dce, fuse, memory (the final plan) or all");

  std::string target = "cpu";
  auto* emit = app.add_subcommand("emit", "Print the generated kernel source");
  add_spec(emit);
  emit->add_option("--target", target, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  bool check_finite = false;
  emit->add_flag("--check-finite", check_finite, "The kernels with fused NaN/Inf checks (a non-finite policy other than off)");
  bool mixed = false;
  emit->add_flag("--mixed", mixed, "The kernels for bf16 and f16 parameters and gradients too (compiled when such a parameter is bound)");

  std::string init, grads, out_path;
  int steps = 1;
  std::vector<std::string> hps;
  auto* rep = app.add_subcommand("replay", "Apply recorded gradients and write the final parameters and state");
  add_spec(rep);
  rep->add_option("--init", init, "safetensors with tensor NAME per parameter, stored as the parameter is (F32, BF16 or F16)")->required();
  rep->add_option("--grads", grads, "safetensors with tensor NAME@t per parameter and step (the first one's dtype is the gradient's)")->required();
  rep->add_option("--steps", steps, "Number of steps")->required();
  rep->add_option("-o,--output", out_path, "Output safetensors (NAME and NAME/slot)")->required();
  rep->add_option("--hparam", hps, "NAME=VALUE, repeatable");
  std::vector<std::string> roles;
  const char* kRoleHelp =
      "PATTERN=ROLE, repeatable: give the parameters named like PATTERN a role (embedding, head, norm, bias, conv) for role routes";
  rep->add_option("--role", roles, kRoleHelp);
  std::string diag_path;
  rep->add_option("--diagnostics", diag_path, "Write per-parameter, per-step update statistics (JSON lines: update RMS, max/mean singular value)");

  std::string params_path;
  auto* routes = app.add_subcommand("routes", "Print the route, pipeline, view, learning-rate scales and state of each parameter");
  add_spec(routes);
  routes->add_option("--role", roles, kRoleHelp);
  routes
      ->add_option("--params", params_path,
                   "safetensors file whose tensors name, shape and type (F32, BF16, F16) the parameters (e.g. a replay --init file)")
      ->required();

  int world = 1;
  auto* cost = app.add_subcommand("cost", "Print each parameter's static step cost (bytes its kernels move, flops of its library calls) and owners");
  add_spec(cost);
  cost->add_option("--role", roles, kRoleHelp);
  cost->add_option("--params", params_path, "safetensors file whose tensors name, shape and type (F32, BF16, F16) the parameters")->required();
  cost->add_option("--world", world, "Ranks to share the parameters among, longest processing time first (shows each one's owner)")
      ->check(CLI::Range(1, 4096));
  cost->add_option("--hparam", hps, "NAME=VALUE, repeatable (refresh periods are hyperparameters)");

  ToyConfig cfg;
  auto* run = app.add_subcommand("run", "Train the built-in linear regression and print the loss");
  add_spec(run);
  run->add_option("--steps", cfg.steps, "Steps");
  run->add_option("--seed", cfg.seed, "Seed of data and initial weights");
  run->add_option("--hparam", hps, "NAME=VALUE, repeatable");

  auto* hparams = app.add_subcommand("hparams", "Print each hyperparameter, its default and the ranges its values must lie in");
  add_spec(hparams);

  auto* list = app.add_subcommand("list", "List the stdlib optimizers and components");

  std::string grid_file, grid_name;
  auto* grid = app.add_subcommand("grid", "List the cells of a grid and their pipelines (and check that each compiles)");
  grid->add_option("file", grid_file, "Spec file with a `grid` declaration")->required();
  grid->add_option("--grid", grid_name, "Which grid of the file (default: the last)");

  AblateOptions ab;
  auto* ablate = app.add_subcommand("ablate", "Run a grid on a workload: sweeps, seeds, journal, reports");
  ablate->add_option("file", grid_file, "Spec file with a `grid` declaration")->required();
  ablate->add_option("--grid", grid_name, "Which grid of the file (default: the last)");
  ablate->add_option("--workload", ab.workload, "linreg, quadratic, softmax, mlp, gpt, or external:COMMAND")->capture_default_str();
  // (each option's 0 or empty means "the default"; given, it must be in range)
  ablate->add_option("--steps", ab.workload_options.steps, "Training steps per run (default: the workload's)")->check(CLI::Range(1, 1000000));
  ablate->add_option("--eval-every", ab.workload_options.eval_every, "Steps between validations (default: the workload's)")
      ->check(CLI::Range(1, 1000000));
  ablate->add_option("--data", ab.workload_options.data_dir, "Folder of brown.txt (gpt)")->capture_default_str();
  ablate->add_option("--seeds", ab.seeds, "Seeds per configuration (default: the grid's)")->check(CLI::Range(1, 1000));
  ablate->add_option("--per-decade", ab.per_decade, "Sweep points per decade (default: each sweep's)")->check(CLI::Range(1, 64));
  ablate->add_option("--max-extensions", ab.max_extensions, "Points added past a sweep edge before warning")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  ablate->add_option("-j,--jobs", ab.jobs, "Runs in parallel (default: one per core)")->check(CLI::Range(1, 1024));
  ablate
      ->add_option("--run-timeout", ab.workload_options.timeout_s,
                   "Seconds an external trainer's run may take before it is stopped and recorded as failed")
      ->capture_default_str();
  ablate->add_option("-o,--out", ab.out_dir, "Folder of the journal and reports (default: ablations/GRID-WORKLOAD)");
  bool no_progress = false;
  ablate->add_flag("--no-progress", no_progress, "No progress bar");

  // a command line CLI11 refuses (an unknown option, a value out of range) exits with 2, as
  // argparse and getopt tools do; --help and --version with 0; Opal's own errors with 1
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  try {
    if (*check) return cmd_check(check_files);
    if (*ast) return cmd_ast(ast_file);
    if (*ir) return cmd_ir(ref, after);
    if (*emit) return cmd_emit(ref, target, check_finite, mixed);
    if (*rep) {
      check_steps(steps);
      ReplayRequest req{ref, read_safetensors(init), read_safetensors(grads), steps, parse_hparams(hps), roles};
      std::vector<UpdateStats> stats;
      if (!diag_path.empty()) req.diagnostics = &stats;
      write_safetensors(out_path, replay(req));
      if (!diag_path.empty()) {
        std::FILE* f = std::fopen(diag_path.c_str(), "w");
        if (!f) throw Error(fmt::format("cannot write `{}`", diag_path));
        std::string text = to_json_lines(stats);
        std::fwrite(text.data(), 1, text.size(), f);
        std::fclose(f);
      }
      return 0;
    }
    if (*routes || *cost) {
      SafetensorsFile pf = read_safetensors(params_path);
      std::vector<ParamDesc> params;
      for (const auto& [name, t] : pf.tensors) {  // named, shaped and typed as the file's tensors (a bf16 one keeps its master copy)
        params.push_back({name, t.shape, nullptr, nullptr});
        params.back().dtype = params.back().grad_dtype = param_storage(t.dtype);
      }
      assign_roles(params, roles);
      auto compiled = compile_spec(ref);
      Optimizer opt(build_executable(compiled), params, *cost ? parse_hparams(hps) : HParams{});
      std::fputs(*cost ? format_costs(describe_costs(opt, world), world).c_str() : format_routes(describe_routes(opt, *compiled)).c_str(), stdout);
      return 0;
    }
    if (*hparams) {
      std::fputs(exec::print_hparams(*build_executable(compile_spec(ref))->desc).c_str(), stdout);
      return 0;
    }
    if (*run) return cmd_run(ref, cfg, hps);
    if (*grid) return cmd_grid(grid_file, grid_name);
    if (*ablate) {
      ab.progress = !no_progress;
      return cmd_ablate(grid_file, grid_name, ab);
    }
    if (*list) {
      Diagnostics d;
      std::shared_ptr<Program> p(load_program({}, d));
      std::map<std::string, std::vector<std::string>> families;  // by stdlib folder
      for (const auto& [n, o] : p->optimizers) families[p->family(*o)].push_back(n);
      std::printf("optimizers:\n");
      for (const auto& [family, names] : families) std::printf("  %s: %s\n", family.c_str(), fmt::format("{}", fmt::join(names, " ")).c_str());
      std::printf("components:");
      for (const auto& [n, c] : p->components) std::printf(" %s", n.c_str());
      std::printf("\nfns:");
      for (const auto& [n, f] : p->fns) std::printf(" %s", n.c_str());
      std::printf("\nstdlib: %s\n", stdlib_dir().c_str());
      return finish(d);
    }
  } catch (const CompileError& e) {
    std::fputs(e.what(), stderr);
    return 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {  // a library's error that no layer turned into ours
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
