// Lowering: a resolved optimizer -> one IR graph per leaf route (a route that delegates to
// another optimizer contributes that optimizer's routes). Type errors, unknown names and
// assignments to read-only values are reported here, where shapes are known.
#pragma once
#include <string>
#include <vector>

#include "compiler/exec/description.h"
#include "compiler/ir/ir.h"
#include "lang/program.h"

namespace opal {

// One step of routing: which route of which optimizer a parameter takes.
struct RouteStep {
  const OptimizerDecl* optimizer;
  size_t route;
};

struct RouteGraph {
  std::string label;            // "matrix", "other>matrix" (delegation path)
  std::vector<RouteStep> path;  // outermost first
  ir::Graph graph;
};

struct LoweredOptimizer {
  const OptimizerDecl* decl = nullptr;
  std::vector<std::string> hparams;  // runtime hyperparameters, by HParam index
  std::vector<double> defaults;
  std::vector<SourceLoc> hparam_locs;
  std::vector<exec::HParamRange> ranges;  // the ranges its hyperparameters must lie in
  std::vector<std::string> globals;       // `global_sum` k, named by where it is called (file:line:col)
  std::vector<RouteGraph> routes;
};

LoweredOptimizer lower_optimizer(const Program& p, const OptimizerDecl& o, Diagnostics& diags);

// Lowers a component on its own (parameters at their defaults, required ones as placeholder
// hyperparameters) so that `opal check` finds errors in components no optimizer uses yet.
void check_component(const Program& p, const ComponentDecl& c, Diagnostics& diags);

}  // namespace opal
