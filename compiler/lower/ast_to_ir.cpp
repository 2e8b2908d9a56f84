// Lowering of optimizers: one IR graph per leaf route, through delegation. A pipeline starts
// with u = g; every stage maps u (and may map g), bases are entered by rotate(...) and left by
// unrotate; the route ends with w <- w - u. Expressions and components: lowerer.h.
#include "lang/const_eval.h"
#include "compiler/lower/ast_to_ir.h"
#include "compiler/lower/lowerer.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <numbers>
#include <memory>
#include <optional>
#include <set>

#include <fmt/format.h>

namespace opal {

using ir::Op;
using ir::Shape;
using ir::ValueId;

namespace {

using namespace lowering;

struct OptimizerLowering {
  const Program& p;
  Diagnostics& d;
  LoweredOptimizer& out;
  std::map<Lowerer::GlobalKey, int> globals;  // global_sum calls (per stage use) -> k

  // `hp` binds the optimizer's parameter names to expressions in the *top-level* hyperparameter
  // space; they are lowered afresh in each route graph.
  struct Binding {
    const Expr* expr;                      // argument or default expression
    const struct Binding* outer;           // the bindings the expression is evaluated in (null: top level)
    int top_index = -1;                    // top level: HParam index
    const Param* param = nullptr;          // the parameter it binds (its range is checked)
    const OptimizerDecl* owner = nullptr;  // the optimizer declaring it
  };

  void routes(const OptimizerDecl& o, const std::map<std::string, Binding>& hp, std::vector<RouteStep> path, const std::string& prefix,
              const std::vector<std::map<std::string, Binding>>& chain) {
    for (size_t r = 0; r < o.routes.size(); ++r) {
      const Route& route = o.routes[r];
      auto here = path;
      here.push_back({&o, r});
      std::string label = prefix + route.label();
      const Stage* only = route.pipeline.size() == 1 ? &route.pipeline[0] : nullptr;
      if (only && p.find_optimizer(only->name, only->loc) && !p.find_component(only->name, only->loc)) {
        const Stage& st = *only;
        const OptimizerDecl& inner = *p.find_optimizer(st.name, st.loc);
        if (std::find_if(path.begin(), path.end(), [&](const RouteStep& s) { return s.optimizer == &inner; }) != path.end() || &inner == &o)
          continue;  // cycle, reported by the resolver
        bool ok;
        auto bound = bind_arguments(inner.params, st.args, inner.name, st.loc, d, ok);
        if (!ok) continue;
        std::map<std::string, Binding> inner_hp;
        auto next_chain = chain;
        next_chain.push_back(hp);
        for (size_t i = 0; i < inner.params.size(); ++i)
          inner_hp[inner.params[i].name] = {bound[i] ? bound[i] : inner.params[i].default_value.get(), nullptr,
                                            bound[i] ? int(next_chain.size()) - 1 : -2, &inner.params[i], &inner};
        routes(inner, inner_hp, here, label + ">", next_chain);
        continue;
      }
      RouteGraph rg{label, here, {}};
      rg.graph.name = out.decl->name + "." + label;
      rg.graph.hparams = out.hparams;
      lower_pipeline(route, hp, chain, rg.graph);
      out.routes.push_back(std::move(rg));
    }
  }

  // Builds the scope of optimizer hyperparameters for one graph: top-level names become HParam
  // nodes; a delegated optimizer's parameters are its arguments lowered in the caller's scope.
  Scope hparam_scope(Lowerer& L, const std::map<std::string, Binding>& hp, const std::vector<std::map<std::string, Binding>>& chain,
                     std::vector<Scope>& storage) {
    storage.clear();
    storage.reserve(chain.size() + 1);
    std::vector<std::map<std::string, Binding>> levels = chain;
    levels.push_back(hp);
    Scope* prev = nullptr;
    for (size_t lvl = 0; lvl < levels.size(); ++lvl) {
      Scope s;
      s.parent = &L.builtins_;
      for (const auto& [name, b] : levels[lvl]) {
        ValueId v;
        if (b.top_index >= 0 && lvl == 0) v = L.builder().add(Op::HParam, Shape::Scalar, {}, b.top_index);
        else if (b.top_index == -2) v = L.lower(*b.expr, s);  // inner default: its own earlier parameters
        else v = L.lower(*b.expr, *prev);
        if (v.valid() && L.shape(v) != Shape::Scalar) {
          d.report(DiagKind::ScalarExpected, b.expr->loc, fmt::format("hyperparameter `{}` must be a scalar", name));
          v = {};
        }
        // an argument of a delegation: where its value was written (passed on as it is, the outer one's)
        const SourceLoc written = lvl > 0 && b.top_index >= 0 ? L.written_at(*b.expr, *prev) : SourceLoc{};
        // (a required hyperparameter has no expression: its declaration)
        const SourceLoc at = written.valid() ? written : b.expr ? b.expr->loc : b.param ? b.param->loc : SourceLoc{};
        if (b.param) L.check_range(*b.param, b.owner->name, v, at);
        s.vars[name] = {v, VarKind::HParam};  // invalid when it failed: its uses stay quiet
        if (written.valid()) s.written[name] = written;
      }
      storage.push_back(std::move(s));
      prev = &storage.back();
    }
    return storage.back();
  }

  void lower_pipeline(const Route& route, const std::map<std::string, Binding>& hp, const std::vector<std::map<std::string, Binding>>& chain,
                      ir::Graph& g) {
    Lowerer L(p, d, g);
    L.init_builtins();
    L.globals_ = &globals;
    L.n_hparams_ = out.hparams.size();
    L.ranges_ = &out.ranges;
    std::vector<Scope> storage;
    Scope hps = hparam_scope(L, hp, chain, storage);
    ValueId grad = L.builder().add(Op::Grad, Shape::Full, {});
    ValueId w = L.builder().add(Op::Param, Shape::Full, {});
    Lowerer::Stream st{grad, grad, w};
    auto probe = [&](const std::string& stage) {
      if (st.u.valid() && g.probes.size() < ir::kMaxProbes) g.probes.push_back({st.u, stage});
    };
    probe("gradient");
    std::map<std::string, int> seen;
    std::vector<Lowerer::BasisFrame> bases;  // entered by rotate(...), innermost last
    for (const Stage& stage : route.pipeline) {
      if (stage.role == Stage::Role::Unrotate) {
        if (bases.empty()) {
          d.report(DiagKind::UnbalancedBasis, stage.loc, "`unrotate` without a matching `rotate`",
                   "enter a basis first: `rotate(eigenbasis(b2, every)) -> ... -> unrotate`");
          continue;
        }
        if (bases.back().inverse) L.leave_basis(bases.back(), st);
        bases.pop_back();
        probe("unrotate");
        continue;
      }
      const ComponentDecl* comp = p.find_component(stage.name, stage.loc);
      if (!comp) continue;  // reported by the resolver
      bool ok;
      auto bound = bind_arguments(comp->params, stage.args, stage.name, stage.loc, d, ok);
      if (!ok) continue;
      int n = ++seen[stage.name];
      std::string key = n == 1 ? stage.name : fmt::format("{}#{}", stage.name, n);
      Scope caller;
      caller.parent = &hps;
      caller.vars["u"] = {st.u, VarKind::Stream};
      caller.vars["g"] = {st.g, VarKind::Stream};
      caller.vars["w"] = {st.w, VarKind::Builtin};
      if (stage.role == Stage::Role::Rotate) {
        Lowerer::BasisFrame f;
        f.outer_g = st.g;
        L.component(*comp, bound, caller, st, key, stage.loc, &f);
        f.loc = stage.loc;
        bases.push_back(std::move(f));
        probe(key);
        continue;
      }
      L.component(*comp, bound, caller, st, key, stage.loc);
      probe(key);
    }
    for (const auto& f : bases)
      d.report(DiagKind::UnbalancedBasis, f.loc, fmt::format("`rotate({})` is never undone", f.decl ? f.decl->name : "?"),
               "add `-> unrotate` after the stages that run in this basis: the update must return to the parameter's basis");
    SourceLoc end = route.pipeline.empty() ? route.loc : route.pipeline.back().loc;
    ValueId neww = L.builder().add(Op::Sub, Shape::Full, {w, st.u}, 0, 0, end);
    L.builder().add(Op::ParamWrite, Shape::Full, {neww}, 0, 0, end);
    if (g.probes.size() < ir::kMaxProbes) g.probes.push_back({neww, "new parameter"});
  }
};

}  // namespace

LoweredOptimizer lower_optimizer(const Program& p, const OptimizerDecl& o, Diagnostics& diags) {
  LoweredOptimizer out;
  out.decl = &o;
  std::map<std::string, OptimizerLowering::Binding> hp;
  for (size_t i = 0; i < o.params.size(); ++i) {
    const Param& prm = o.params[i];
    double v = 0;
    if (!prm.default_value) {
      diags.report(DiagKind::WrongArity, prm.loc, fmt::format("hyperparameter `{}` of `{}` needs a default value", prm.name, o.name),
                   fmt::format("write `{} = ...`", prm.name));
    } else if (auto c = eval_constant(*prm.default_value); !c) {
      diags.report(DiagKind::NotConstant, prm.default_value->loc, fmt::format("the default of hyperparameter `{}` must be a number", prm.name),
                   "hyperparameters are runtime scalars; compute derived values in the route's arguments");
    } else if (v = *c, !(std::abs(v) <= double(FLT_MAX))) {
      diags.report(DiagKind::InvalidNumber, prm.default_value->loc,
                   fmt::format("the default of hyperparameter `{}` ({:g}) is out of range", prm.name, v),
                   "the kernels compute in float32: values up to about 3.4e38 in magnitude");
      v = 0;
    }
    out.hparams.push_back(prm.name);
    out.defaults.push_back(v);
    out.hparam_locs.push_back(prm.loc);
    hp[prm.name] = {prm.default_value.get(), nullptr, int(i), &prm, &o};
  }
  OptimizerLowering ol{p, diags, out, {}};
  ol.routes(o, hp, {}, "", {});
  // every default lies in the ranges its stages give it (its own range the resolver checked)
  for (const exec::HParamRange& r : out.ranges) {
    const Param& prm = o.params[r.hparam];
    const double v = out.defaults[r.hparam];
    if (!prm.default_value || r.range.contains(v)) continue;
    if (auto own = param_interval(prm); own && !own->contains(v)) continue;  // the resolver reported it
    diags.report(
        DiagKind::ArgumentOutOfRange, prm.default_value->loc,
        fmt::format("the default of `{}` is {:g}, outside {}: it is {}, which takes {}", prm.name, v, r.range.str(), r.origin, r.range.takes()),
        fmt::format("make the default a value in {}", r.range.str()));
  }
  // the global sums are uniforms after the hyperparameters, named by their call
  out.globals.resize(ol.globals.size());
  for (const auto& [key, k] : ol.globals) {
    SourceLoc at{key.file, key.offset, 0};
    out.globals[size_t(k)] = key.stage + ":global_sum@" + at.short_str();
  }
  for (auto& rg : out.routes) {
    rg.graph.hparams.insert(rg.graph.hparams.end(), out.globals.begin(), out.globals.end());
    rg.graph.n_globals = uint32_t(out.globals.size());
  }
  return out;
}

void check_component(const Program& p, const ComponentDecl& c, Diagnostics& diags) {
  ir::Graph g;
  g.name = "check." + c.name;
  Lowerer L(p, diags, g);
  L.init_builtins();
  std::vector<Param> params;
  Scope caller;
  caller.parent = &L.builtins_;
  ValueId grad = L.builder().add(Op::Grad, Shape::Full, {});
  ValueId w = L.builder().add(Op::Param, Shape::Full, {});
  caller.vars["u"] = {grad, VarKind::Stream};
  caller.vars["g"] = {grad, VarKind::Stream};
  caller.vars["w"] = {w, VarKind::Builtin};
  // required parameters become placeholder scalars
  std::vector<Expr> placeholders(c.params.size());
  std::vector<const Expr*> bound(c.params.size(), nullptr);
  for (size_t i = 0; i < c.params.size(); ++i)
    if (!c.params[i].default_value) {
      g.hparams.push_back(c.params[i].name);
      caller.vars["$" + c.params[i].name] = {L.builder().add(Op::HParam, Shape::Scalar, {}, int64_t(g.hparams.size() - 1)), VarKind::HParam};
      placeholders[i].kind = Expr::Kind::Name;
      placeholders[i].name = "$" + c.params[i].name;
      placeholders[i].loc = c.params[i].loc;
      bound[i] = &placeholders[i];
    }
  Lowerer::Stream st{grad, grad, w};
  Lowerer::BasisFrame f;
  f.outer_g = grad;
  std::map<Lowerer::GlobalKey, int> globals;
  L.globals_ = &globals;
  L.n_hparams_ = g.hparams.size();
  L.component(c, bound, caller, st, c.name, c.loc, &f);
  if (f.inverse) L.leave_basis(f, st);
}

}  // namespace opal
