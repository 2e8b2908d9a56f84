// From a spec reference to loaded kernels: the compiled optimizer, its generated source for
// one backend's target, and the module holding its kernels.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "compiler/codegen/c_emitter.h"
#include "compiler/pipeline.h"
#include "runtime/backend.h"

namespace opal {

struct Executable {
  std::shared_ptr<const CompiledOptimizer> optimizer;
  Device device;                             // the backend the module was loaded for (its target: cpu or cuda)
  std::string source;                        // generated code
  std::shared_ptr<KernelModule> module;
  std::vector<size_t> route_offset;          // kernel k of route r is the module's symbol route_offset[r] + k
  bool from_cache = false;
  bool check_finite = false;  // kernels with fused non-finite checks (EmitInput::check_finite)
};

struct SpecRef {
  // A stdlib optimizer name (`adamw`), a path to a .opal file, or spec text (contains `{`).
  std::string spec;
  std::string optimizer;  // which optimizer of a file; empty: the file's only (or last) one
  std::string stdlib_dir;  // empty: default_stdlib_dir()
};

// Parses, resolves and compiles; throws CompileError with the rendered diagnostics.
std::shared_ptr<const CompiledOptimizer> compile_spec(const SpecRef& ref, std::string* warnings = nullptr);

// compile_spec + code generation for `backend`'s target + its compiler (cached on disk).
// `backend` null: the CPU.
std::shared_ptr<const Executable> build_executable(const SpecRef& ref, Backend* backend = nullptr);
// The same from an optimizer already compiled (an ablation cell, compiled once to hash it);
// `check_finite` builds the variant whose kernels flag non-finite probes.
std::shared_ptr<const Executable> build_executable(std::shared_ptr<const CompiledOptimizer> compiled, bool check_finite = false,
                                                   Backend* backend = nullptr);

// Builds the program for `ref` (stdlib + the user's file or text), for the CLI's front-end
// commands. Diagnostics go to `diags`.
std::shared_ptr<Program> load_spec_program(const SpecRef& ref, Diagnostics& diags);

// Picks the optimizer `ref` names; reports UnknownOptimizer (with "did you mean").
const OptimizerDecl* pick_optimizer(const Program& p, const SpecRef& ref, Diagnostics& diags);

}  // namespace opal
