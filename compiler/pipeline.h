// The compiler driver: resolved optimizer -> lowered route graphs -> passes -> plans.
// The pass list is a plain ordered list; each pass can be dumped (`opal ir --after PASS`).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compiler/codegen/c_emitter.h"
#include "compiler/exec/host_uniforms.h"
#include "compiler/lower/ast_to_ir.h"
#include "compiler/plan.h"

namespace opal {

struct CompiledRoute {
  std::string label;
  std::vector<RouteStep> path;
  Plan plan;
};

struct CompiledOptimizer {
  std::shared_ptr<const Program> program;  // keeps the AST and source text alive
  const OptimizerDecl* decl = nullptr;
  std::string name;
  std::vector<std::string> hparams;
  std::vector<double> defaults;
  std::vector<exec::HParamRange> ranges;  // the values each hyperparameter may take
  std::vector<std::string> globals;       // global sums, uniforms after the hyperparameters
  std::vector<CompiledRoute> routes;
  HostUniforms uniforms;  // the step-uniform scalars of every route's kernels, computed on the host
  StateStorage state;     // the optimizer's argument (CompileOptions::state)
  std::shared_ptr<const SourceFile> state_source;
  // Every route's graph as lowered from the spec, printed without source locations: what the
  // spec computes, independent of the optimization passes and the code generators (the
  // checkpoint fingerprint hashes it).
  std::string lowered;
};

// How a route's state is stored: the innermost `state(...)` along its delegation path, else the
// optimizer's argument `fallback`.
const StateStorage& route_state(const std::vector<RouteStep>& path, const StateStorage& fallback);

// Graph passes in order; `fuse` and `memory` follow them and produce the plan.
const std::vector<std::string>& pass_names();  // lower, expand, fold, dce, fuse, memory, describe

struct PassDump {
  std::string route;
  std::string pass;
  std::string text;
  bool changed = true;
};

struct CompileOptions {
  std::string dump_after;                               // a pass name, "all", or "" for none
  StateStorage state = {};                              // stores the routes whose delegation path has no `state(...)` (parse_state_storage)
  std::shared_ptr<const SourceFile> state_source = {};  // the text `state` points into
};

// Compiles one optimizer of the program. Reports errors (including unused hyperparameters)
// to `diags` and returns nullopt when there are any.
std::optional<CompiledOptimizer> compile_optimizer(std::shared_ptr<const Program> program, const OptimizerDecl& decl, Diagnostics& diags,
                                                   const CompileOptions& opts = {}, std::vector<PassDump>* dumps = nullptr);

// The generated source of every route's kernels for `target` (emit_program over the routes);
// `check_finite` adds the fused non-finite checks; `mixed` gives every kernel that touches w or
// g a loop per storage of each (f32, bf16, f16), chosen per tensor.
std::string emit_optimizer(const CompiledOptimizer& c, Target target, bool check_finite = false, bool mixed = false);

// Checks every user declaration of the program (components on their own, every optimizer),
// as `opal check` does.
void check_program(const std::shared_ptr<const Program>& program, Diagnostics& diags);

}  // namespace opal
