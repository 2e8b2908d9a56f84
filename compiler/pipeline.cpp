// The pass pipeline.
#include "compiler/pipeline.h"

#include <algorithm>
#include <functional>
#include <set>

#include <fmt/format.h>

#include "support/q8.h"

#include "compiler/exec/describe.h"
#include "support/check.h"
#include "compiler/passes/dce.h"
#include "compiler/passes/expand_macros.h"
#include "compiler/passes/fold_constants.h"
#include "compiler/passes/fuse_elementwise.h"
#include "compiler/passes/plan_memory.h"
#include "lang/grid.h"
#include "compiler/passes/rebuild.h"

namespace opal {

const std::vector<std::string>& pass_names() {
  static const std::vector<std::string> names = {"lower", "expand", "fold", "dce", "fuse", "memory", "describe"};
  return names;
}

namespace {

struct GraphPass {
  const char* name;
  ir::Graph (*run)(const ir::Graph&);
};

constexpr GraphPass kGraphPasses[] = {
    {"expand", passes::expand_macros},
    {"fold", passes::fold_constants},
    {"dce", passes::dce},
};

void verify_or_die(const ir::Graph& g, const char* after) {
  std::string err = ir::verify(g);
  OPAL_CHECK(err.empty(), "IR invalid after %s: %s\n%s", after, err.c_str(), ir::print(g).c_str());
}

bool mentions(const Expr& e, const std::string& name) {
  if (e.kind == Expr::Kind::Name && e.name == name) return true;
  for (const auto& a : e.args)
    if (mentions(*a.value, name)) return true;
  return false;
}

// Why a hyperparameter does nothing: the first stage it is passed to, and as which parameter,
// when that stage ignores it (or ignores it with the other arguments given, as `adapt` ignores
// `eps` under some flags); otherwise that no stage reads it.
std::string unused_hparam_help(const Program& p, const OptimizerDecl& o, const std::string& name) {
  for (const Route& r : o.routes)
    for (const Stage& st : r.pipeline) {
      const std::vector<Param>* params = nullptr;
      if (const ComponentDecl* c = p.find_component(st.name, st.loc)) params = &c->params;
      else if (const OptimizerDecl* inner = p.find_optimizer(st.name, st.loc)) params = &inner->params;
      if (!params) continue;
      Diagnostics scratch;
      bool ok;
      auto bound = bind_arguments(*params, st.args, st.name, st.loc, scratch, ok);
      for (size_t i = 0; i < bound.size(); ++i)
        if (bound[i] && mentions(*bound[i], name))
          return fmt::format("it is passed to `{}` at {} as `{}`, which `{}` does not use{}: remove it, or pass it to a stage that reads it", st.name,
                             st.loc.short_str(), (*params)[i].name, st.name, st.args.size() > 1 ? " with these arguments" : "");
    }
  return "remove it, or pass it to a stage: sweeping it would change nothing";
}

// The names route conditions of `o` read, through delegation: where a delegated optimizer's
// condition reads one of its hyperparameters, the names of the argument bound to it.
std::set<std::string> condition_names(const Program& program, const OptimizerDecl& o, int depth) {
  std::set<std::string> out;
  std::function<void(const Expr&)> names = [&](const Expr& e) {
    if (e.kind == Expr::Kind::Name) out.insert(e.name);
    for (const auto& a : e.args) names(*a.value);
  };
  for (const Route& r : o.routes) {
    if (r.condition) names(*r.condition);
    if (r.pipeline.size() != 1 || depth >= 64) continue;  // (cycles are the resolver's errors)
    const Stage& only = r.pipeline[0];
    const OptimizerDecl* inner = program.find_optimizer(only.name);
    if (!inner || program.find_component(only.name, only.loc)) continue;
    const std::set<std::string> read = condition_names(program, *inner, depth + 1);
    for (size_t k = 0; k < inner->params.size(); ++k)
      if (read.count(inner->params[k].name))
        if (const Expr* bound = bound_argument(*inner, only, k)) names(*bound);
  }
  return out;
}

// A route's `state(bf16)` (the innermost along the delegation path that says one, else the
// optimizer's argument) stores every slot that matrix work does not read as bf16, and
// `state(q8)` every such parameter-shaped slot as q8; `state(f32)` keeps all as their lines say.
void apply_route_storage(const StateStorage& decides, Plan& plan) {
  if (!decides.given() || decides.storage == "f32") return;
  ir::Graph& g = plan.graph;
  std::vector<char> operand(g.slots.size(), 0);
  for (const Call& c : plan.calls) {
    const ir::Node& n = g.at(c.value);
    for (int i = 0; i < n.n_operands; ++i)
      if (g.at(n.operands[i]).op == ir::Op::StateRead) operand[size_t(g.at(n.operands[i]).iattr)] = 1;
  }
  for (size_t i = 0; i < g.slots.size(); ++i) {
    ir::Slot& s = g.slots[i];
    if (operand[i]) continue;
    if (decides.storage == "q8") {
      if (s.shape == ir::Shape::Full) s.q8 = decides.block, s.bf16 = false;
    } else {
      s.bf16 = true, s.q8 = 0;
      s.stochastic = decides.stochastic;
    }
  }
}

// Matrix work reads f32 operands in place: a state stored as bf16 or q8 must not be one.
bool check_call_operands(const Plan& plan, Diagnostics& diags) {
  const ir::Graph& g = plan.graph;
  for (const Call& c : plan.calls) {
    const ir::Node& n = g.at(c.value);
    for (int i = 0; i < n.n_operands; ++i) {
      const ir::Node& o = g.at(n.operands[i]);
      if (o.op != ir::Op::StateRead || (!g.slots[o.iattr].bf16 && !g.slots[o.iattr].q8)) continue;
      const ir::Slot& s = g.slots[o.iattr];
      const char* storage = s.q8 ? "q8" : "bf16";
      diags.report(DiagKind::StorageMismatch, s.loc,
                   fmt::format("state `{}` is stored as {}, but `{}` reads it as a matrix", s.name, storage, ir::op_name(n.op)),
                   fmt::format("matrix work takes f32 operands: store this state as f32 (only elementwise state can be {})", storage));
      return false;
    }
  }
  return true;
}

// Each q8 slot's scales, one per block: a slot of its own after every other (no op names it).
void add_q8_scales(Plan& plan) {
  ir::Graph& g = plan.graph;
  const size_t n = g.slots.size();
  for (size_t i = 0; i < n; ++i) {
    if (!g.slots[i].q8) continue;
    ir::Slot scales{q8::scales_name(g.slots[i].name), ir::Shape::Full, g.slots[i].loc};
    scales.q8 = g.slots[i].q8;
    scales.scales_of = int(i);
    g.slots[i].scales = int(g.slots.size());
    g.slots.push_back(scales);
  }
}

}  // namespace

const StateStorage& route_state(const std::vector<RouteStep>& path, const StateStorage& fallback) {
  const StateStorage* decides = &fallback;
  for (const RouteStep& s : path)
    if (s.optimizer->routes[s.route].state.given()) decides = &s.optimizer->routes[s.route].state;
  return *decides;
}

std::optional<CompiledOptimizer> compile_optimizer(std::shared_ptr<const Program> program, const OptimizerDecl& decl, Diagnostics& diags,
                                                   const CompileOptions& opts, std::vector<PassDump>* dumps) {
  size_t errors_before = diags.error_events();
  LoweredOptimizer lowered = lower_optimizer(*program, decl, diags);
  if (diags.error_events() > errors_before) return std::nullopt;
  auto want = [&](const std::string& pass) { return dumps && (opts.dump_after == pass || opts.dump_after == "all"); };
  CompiledOptimizer out;
  out.program = program;
  out.decl = &decl;
  out.name = decl.name;
  out.hparams = lowered.hparams;
  out.defaults = lowered.defaults;
  out.ranges = lowered.ranges;
  out.globals = lowered.globals;
  out.state = opts.state;
  out.state_source = opts.state_source;
  std::set<int64_t> used_hparams;
  for (auto& rg : lowered.routes) {
    ir::Graph g = std::move(rg.graph);
    verify_or_die(g, "lower");
    if (want("lower")) dumps->push_back({rg.label, "lower", ir::print(g), true});
    out.lowered += fmt::format("route {}\n{}", rg.label, ir::print(g, false));
    for (const auto& pass : kGraphPasses) {
      ir::Graph next = pass.run(g);
      verify_or_die(next, pass.name);
      bool changed = !passes::same_graph(g, next);
      if (want(pass.name)) dumps->push_back({rg.label, pass.name, ir::print(next), changed});
      g = std::move(next);
    }
    for (const auto& n : g.nodes)
      if (n.op == ir::Op::HParam) used_hparams.insert(n.iattr);
    // a `vector:` route that needs matrices can never run: say so at compile time
    const Route& route = rg.path.back().optimizer->routes[rg.path.back().route];
    if (route.has(Route::Kind::Vector) && g.matrix_only) {
      diags.report(DiagKind::MatrixOnly, route.loc, fmt::format("{} needs a matrix, but this route takes vectors", g.matrix_reason),
                   "route vectors through elementwise stages; matrix components belong in `matrix:` routes");
      continue;
    }
    Plan plan = passes::fuse_elementwise(g);
    if (want("fuse")) dumps->push_back({rg.label, "fuse", print_plan(plan), true});
    apply_route_storage(route_state(rg.path, opts.state), plan);
    if (!check_call_operands(plan, diags)) continue;
    add_q8_scales(plan);
    plan = passes::plan_memory(std::move(plan));
    if (want("memory")) dumps->push_back({rg.label, "memory", print_plan(plan), true});
    out.routes.push_back({rg.label, rg.path, std::move(plan)});
  }
  std::vector<Plan*> plans;
  for (auto& r : out.routes) plans.push_back(&r.plan);
  out.uniforms = assign_host_uniforms(plans, out.hparams.size() + out.globals.size());
  // a hyperparameter a route condition reads is used (it decides routes)
  const std::set<std::string> decides = condition_names(*program, decl, 0);
  for (size_t i = 0; i < out.hparams.size(); ++i)
    if (decides.count(out.hparams[i])) used_hparams.insert(int64_t(i));
  for (size_t i = 0; i < out.hparams.size(); ++i)
    if (!used_hparams.count(int64_t(i)))
      diags.report(DiagKind::UnusedHyperparameter, lowered.hparam_locs[i],
                   fmt::format("hyperparameter `{}` of `{}` is never used", out.hparams[i], decl.name),
                   unused_hparam_help(*program, decl, out.hparams[i]));
  if (diags.error_events() > errors_before) return std::nullopt;
  if (want("describe")) {  // the executable description: what the runtime will run
    exec::Description d = describe(out);
    if (!d.uniform_regs.empty()) dumps->push_back({"uniforms", "describe", exec::print_uniforms(d), true});
    for (size_t r = 0; r < d.routes.size(); ++r) dumps->push_back({d.routes[r].label, "describe", exec::print_route(d, r), true});
  }
  return out;
}

std::string emit_optimizer(const CompiledOptimizer& c, Target target, bool check_finite, bool mixed) {
  EmitInput in{c.name, c.hparams.size() + c.globals.size() + c.uniforms.regs.size(), {}, check_finite, mixed};
  for (const auto& r : c.routes) in.routes.push_back({r.label, &r.plan});
  return emit_program(in, target);
}

void check_program(const std::shared_ptr<const Program>& program, Diagnostics& diags) {
  for (const ComponentDecl* c : program->user_components) check_component(*program, *c, diags);
  for (const OptimizerDecl* o : program->user_optimizers) compile_optimizer(program, *o, diags);
  // Grids: their structure (axes, cells, sweeps), then every cell compiled as `opal grid` and
  // `opal ablate` compile it (a pipeline that puts two optimizers in one route is whole only
  // in its cells). A cell's error is reported at its grid: its text is generated.
  const bool clean = !diags.has_errors();
  for (const GridDecl* g : program->user_grids) {
    const size_t before = diags.error_events();
    const ExpandedGrid grid = expand_grid(*program, *g, diags);
    if (!clean || diags.error_events() > before) continue;
    for (const GridCellSpec& c : grid.cells) {
      if (c.absent) continue;
      Diagnostics cd;
      LoadRequest req;
      req.texts.push_back({"<cell>", c.spec_text});
      std::shared_ptr<const Program> cp(load_program(req, cd));
      const OptimizerDecl* o = cd.has_errors() ? nullptr : cp->find_optimizer(c.name);
      if (o) compile_optimizer(cp, *o, cd);
      const auto error =
          std::find_if(cd.all().begin(), cd.all().end(), [](const Diagnostic& x) { return diag_kind_severity(x.kind) == Severity::Error; });
      if (error == cd.all().end()) continue;
      std::string routes;
      for (const auto& [sel, pipe] : c.routes) routes += fmt::format("{}`{}: {}`", routes.empty() ? "" : ", ", sel, pipe);
      diags.report(DiagKind::BadGrid, g->loc, fmt::format("cell `{}` does not compile: {}", c.label, error->message),
                   fmt::format("its routes are {}; `opal grid` prints every cell", routes));
    }
  }
}

}  // namespace opal
