// The driver: from a spec reference to an executable the runtime runs. It parses and resolves
// (lang/), compiles (compiler/: passes, plans, the executable description, generated source)
// and has the backend compile and load the kernels (runtime/backend.h). The one place that
// joins the compiler and the runtime.
#pragma once
#include <memory>
#include <string>

#include "compiler/pipeline.h"
#include "runtime/executable.h"
#include "runtime/optimizer.h"

namespace opal {

struct SpecRef {
  // A stdlib optimizer name (`adamw`), a path to a .opal file, or spec text (contains `{`).
  std::string spec;
  std::string optimizer;   // which optimizer of a file; empty: the file's only (or last) one
  std::string stdlib_dir;  // empty: default_stdlib_dir()
  // The optimizer's state storage, as a route's `state(...)` says it (`q8`, `q8(128)`,
  // `bf16, stochastic`, `bf16, master`): for the routes whose delegation path says none. Empty:
  // as the spec says.
  std::string state = {};
};

// The folder the stdlib is read from: $OPAL_STDLIB, else the one installed with Opal (beside
// the library or tool, or in its prefix's share/opal/stdlib), else the source tree's.
std::string stdlib_dir();

// Parses, resolves and compiles; throws CompileError with the rendered diagnostics.
std::shared_ptr<const CompiledOptimizer> compile_spec(const SpecRef& ref, std::string* warnings = nullptr);

// compile_spec + code generation for `device` + its backend's compiler (cached on disk).
std::shared_ptr<const Executable> build_executable(const SpecRef& ref, Device device = {});
// The same from an optimizer already compiled (an ablation cell, compiled once to hash it),
// for `backend` (null: the CPU); `check_finite` loads the variant whose kernels flag
// non-finite probes.
std::shared_ptr<const Executable> build_executable(std::shared_ptr<const CompiledOptimizer> compiled, bool check_finite = false,
                                                   Backend* backend = nullptr);

// An optimizer of `compiled` on `device`: one backend, the kernels built for it, the
// parameters routed (Optimizer's errors).
std::unique_ptr<Optimizer> make_optimizer(std::shared_ptr<const CompiledOptimizer> compiled, std::vector<ParamDesc> params, Device device = {},
                                          const HParams& hparams = {});

// Builds the program for `ref` (stdlib + the user's file or text), for the CLI's front-end
// commands. Diagnostics go to `diags`.
std::shared_ptr<Program> load_spec_program(const SpecRef& ref, Diagnostics& diags);

// The compile options `ref` asks for (its state storage parsed, errors to `diags`).
CompileOptions compile_options(const SpecRef& ref, Diagnostics& diags);

// Picks the optimizer `ref` names; reports UnknownOptimizer (with "did you mean").
const OptimizerDecl* pick_optimizer(const Program& p, const SpecRef& ref, Diagnostics& diags);

}  // namespace opal
