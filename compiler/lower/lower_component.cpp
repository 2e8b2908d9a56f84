// Lowering of components: parameters, states and their initialization, statements,
// every/when blocks (assignments merged as select(cond, new, old)), and basis frames whose
// `inverse` block runs at `unrotate`.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include <fmt/format.h>

#include "compiler/ir/attrs.h"
#include "compiler/lower/lowerer.h"
#include "compiler/passes/fold_constants.h"
#include "lang/const_eval.h"

namespace opal::lowering {

// Lowers one stage; `stage_key` names its state slots ("adapt", "adapt#2"). A basis
// component fills `frame`.
void Lowerer::component(const ComponentDecl& c, const std::vector<const Expr*>& bound, const Scope& caller, Stream& st, const std::string& stage_key,
                        SourceLoc call_loc, BasisFrame* frame) {
  auto scope = std::make_shared<Scope>();
  scope->parent = &builtins_;
  // Parameters: the argument or the default, both evaluated in the caller's scope. A parameter
  // whose default is a tensor (`of = g`) takes tensors; every other one takes scalars.
  for (size_t i = 0; i < c.params.size(); ++i) {
    const Param& prm = c.params[i];
    ValueId dflt;
    if (prm.default_value) dflt = lower(*prm.default_value, caller);
    ValueId v = bound[i] ? lower(*bound[i], caller) : dflt;
    if (!v.valid()) {  // reported; later uses of the name stay quiet (an invalid value)
      scope->vars[prm.name] = {{}, VarKind::Param};
      continue;
    }
    bool tensor_param = dflt.valid() && shape(dflt) != Shape::Scalar;
    if (tensor_param && prm.range)  // (a range bounds a scalar: no tensor is checked element by element)
      d_.report(DiagKind::MisplacedRange, prm.range->loc, fmt::format("`{}` of `{}` takes tensors: a range bounds a scalar", prm.name, c.name),
                "drop the range, or clamp the values in the body: `min(max(x, 0), 1)`");
    if (bound[i] && !tensor_param && shape(v) != Shape::Scalar)
      d_.report(DiagKind::ScalarExpected, bound[i]->loc,
                fmt::format("`{}` of `{}` takes a scalar, but this is {}", prm.name, c.name, describe(shape(v))),
                "pass a hyperparameter or a number");
    else check_range(prm, c.name, v, bound[i] ? written_at(*bound[i], caller) : call_loc);
    scope->vars[prm.name] = {v, VarKind::Param};
  }
  scope->vars["u"] = {st.u, VarKind::Stream};
  scope->vars["g"] = {st.g, VarKind::Stream};
  scope->vars["w"] = {st.w, VarKind::Builtin};
  ComponentCtx ctx{&c, {}, {}, {}, nullptr};
  stage_name_ = c.name;
  stage_loc_ = call_loc;
  stage_key_ = stage_key;
  statements(c.body, *scope, ctx, stage_key, {});
  for (auto [slot, decl] : ctx.states) {
    const Var& v = scope->vars[decl->name];
    if (!ctx.assigned.count(slot)) {
      // initialized from an expression (`state w0 = w`) and never reassigned: it keeps its
      // initial value (written on step 1 only, once folding makes the write conditional)
      if (v.value.valid() && g_.at(v.value).op != Op::StateRead) {
        b_.add(Op::StateWrite, g_.slots[slot].shape, {v.value}, slot, 0, call_loc);
        continue;
      }
      if (!ctx.failed.count(decl->name))
        d_.report(DiagKind::UnusedState, decl->name_loc, fmt::format("state `{}` of `{}` is never updated", decl->name, c.name),
                  "assign to it, or make it a `let`");
      continue;
    }
    b_.add(Op::StateWrite, g_.slots[slot].shape, {v.value}, slot, 0, call_loc);
  }
  st.u = scope->vars["u"].value;
  st.g = scope->vars["g"].value;
  if (frame) {
    frame->decl = &c;
    frame->inverse = ctx.inverse;
    frame->scope = scope;
    frame->loc = call_loc;
  }
}

SourceLoc Lowerer::written_at(const Expr& arg, const Scope& s) const {
  if (arg.kind != Expr::Kind::Name) return arg.loc;
  for (const Scope* sc = &s; sc; sc = sc->parent) {
    if (auto it = sc->written.find(arg.name); it != sc->written.end()) return it->second;
    if (sc->vars.count(arg.name)) break;  // (a nearer name hides it)
  }
  return arg.loc;
}

void Lowerer::check_range(const Param& prm, const std::string& owner, ValueId v, SourceLoc at) {
  const std::optional<Interval> r = param_interval(prm);
  if (!r || !v.valid()) return;  // (a bad range is the resolver's error)
  if (auto c = passes::constant_value(g_, v)) {
    if (r->contains(*c)) return;
    // where the user wrote the value: the argument, else (inside the stdlib) the stage
    SourceLoc where = at;
    if (p_.in_stdlib(where) && stage_loc_.valid() && !p_.in_stdlib(stage_loc_)) where = stage_loc_;
    d_.report(DiagKind::ArgumentOutOfRange, where, fmt::format("`{}` of `{}` takes {}, not {:g}", prm.name, owner, r->takes(), *c),
              fmt::format("its range is declared at {}", prm.range->loc.short_str()));
    return;
  }
  attach_range(v, *r, fmt::format("`{}` of `{}` ({})", prm.name, owner, prm.range->loc.short_str()));
}

void Lowerer::attach_range(ValueId v, const Interval& r, const std::string& origin) {
  const ir::Node& n = g_.at(v);
  if (!ranges_ || n.op != Op::HParam || n.iattr < 0 || size_t(n.iattr) >= n_hparams_) return;
  exec::HParamRange hr{uint32_t(n.iattr), r, origin};
  if (std::find(ranges_->begin(), ranges_->end(), hr) == ranges_->end()) ranges_->push_back(std::move(hr));
}

// The `inverse` block of a basis, at `unrotate`: maps u back; g returns to the outer basis.
void Lowerer::leave_basis(const BasisFrame& f, Stream& st) {
  Scope scope;
  scope.parent = f.scope.get();
  scope.vars["u"] = {st.u, VarKind::Stream};
  scope.vars["g"] = {f.outer_g, VarKind::Stream};
  ComponentCtx ctx{f.decl, {}, {}, {}, nullptr};
  statements(f.inverse->body, scope, ctx, "", {}, /*in_inverse=*/true);
  st.u = scope.vars["u"].value;
  st.g = f.outer_g;
}

// Lowers a statement list. Inside `every(N)` (guard valid), assignments are kept in a child
// scope and merged back as select(guard, new, old), so later statements see the refreshed
// value on refresh steps and the old one otherwise. The new value of a tensor is a region op,
// guard(new, cond), that the passes keep: guard inference (passes/guards.cpp) runs the work
// that only feeds it on refresh steps only.
void Lowerer::statements(const std::vector<Stmt>& body, Scope& scope, ComponentCtx& ctx, const std::string& stage_key, ValueId guard,
                         bool in_inverse) {
  const ComponentDecl& c = *ctx.decl;
  for (const Stmt& s : body) {
    if (s.kind == Stmt::Kind::Inverse) {
      if (in_inverse || guard.valid() || &body != &c.body) {
        d_.report(DiagKind::UnbalancedBasis, s.loc, "`inverse` blocks belong at the top level of a component");
        continue;
      }
      if (ctx.inverse) {
        d_.report(DiagKind::Redefinition, s.name_loc, fmt::format("`{}` has two `inverse` blocks", c.name));
        continue;
      }
      ctx.inverse = &s;
      continue;
    }
    if (s.kind == Stmt::Kind::Every) {
      if (in_inverse) {
        d_.report(DiagKind::UnbalancedBasis, s.loc, fmt::format("`{}` cannot appear in an `inverse` block", s.name));
        continue;
      }
      ValueId n = lower(*s.value, scope);
      if (!n.valid()) continue;
      if (shape(n) != Shape::Scalar) {
        d_.report(DiagKind::ScalarExpected, s.value->loc,
                  fmt::format("the argument of `{}` must be a scalar, but this is {}", s.name, describe(shape(n))));
        continue;
      }
      // a constant cadence must be a whole number of steps: every(0) would refresh on step 1
      // only (t % 0 is NaN), every(2.5) on every fifth step, every(-3) as every(3)
      if (auto c = passes::constant_value(g_, n); s.name == "every" && c && (*c < 1 || *c != std::floor(*c))) {
        d_.report(DiagKind::ArgumentOutOfRange, s.value->loc, fmt::format("`every` takes a whole number of steps, 1 or more, not {}", *c),
                  "every(1) refreshes on every step");  // (its block is still lowered: no cascade of errors)
      } else if (s.name == "every") {                   // a hyperparameter cadence is checked when it is set
        Interval steps{1, std::numeric_limits<double>::infinity(), false, true, true};
        attach_range(n, steps, fmt::format("the cadence of `every` in `{}` ({})", ctx.decl->name, s.value->loc.short_str()));
      }
      ValueId cond;
      if (s.name == "when") {
        cond = b_.add(Op::Ne, Shape::Scalar, {n, b_.constant(0)}, 0, 0, s.loc);
      } else {
        // the reference cadence: after step 1, then after every N-th step
        ValueId t = builtins_.vars["t"].value;
        ValueId first = b_.add(Op::Eq, Shape::Scalar, {t, b_.constant(1)}, 0, 0, s.loc);
        ValueId nth = b_.add(Op::Eq, Shape::Scalar, {b_.add(Op::Mod, Shape::Scalar, {t, n}, 0, 0, s.loc), b_.constant(0)}, 0, 0, s.loc);
        cond = b_.add(Op::Or, Shape::Scalar, {first, nth}, 0, 0, s.loc);
      }
      if (guard.valid()) cond = b_.add(Op::And, Shape::Scalar, {guard, cond}, 0, 0, s.loc);
      Scope inner;
      inner.parent = &scope;
      std::set<std::string> before_failed = ctx.failed;
      statements(s.body, inner, ctx, stage_key, cond);
      for (auto& [name, var] : inner.vars) {
        if (var.kind == VarKind::Local && !scope.find(name)) continue;  // a `let` of the block
        if (!var.value.valid()) continue;
        Var* outer = scope.find_mut(name);
        if (!outer || outer->value == var.value) continue;
        Shape sh = ir::broadcast(shape(var.value), shape(outer->value));
        ValueId fresh = shape(var.value) == Shape::Scalar ? var.value : b_.add(Op::Guard, shape(var.value), {var.value, cond}, 0, 0, s.loc);
        outer->value = b_.add(Op::Select, sh, {cond, fresh, outer->value}, 0, 0, s.loc);
      }
      continue;
    }
    if (s.kind == Stmt::Kind::State) {
      if (guard.valid() || in_inverse) {
        d_.report(DiagKind::Redefinition, s.name_loc, "states are declared at the top level of a component",
                  "move the `state` line out of the block");
        continue;
      }
      if (scope.vars.count(s.name) && scope.vars[s.name].kind != VarKind::Param) {
        d_.report(DiagKind::Redefinition, s.name_loc, fmt::format("`{}` is already defined in `{}`", s.name, c.name));
        continue;
      }
      StateInit init = state_init(*s.value, scope);
      if (!init.ok) {  // reported once: the name stays declared, its uses and assignments quiet
        scope.vars[s.name] = {{}, VarKind::State};
        ctx.failed.insert(s.name);
        continue;
      }
      if (!s.storage.empty() && s.storage != "f32" && s.storage != "bf16" && s.storage != "q8") {
        std::string m = closest_match(s.storage, {"f32", "bf16", "q8"});
        d_.report(DiagKind::UnknownName, s.storage_loc, fmt::format("unknown storage `{}` for state `{}`", s.storage, s.name),
                  m.empty() ? "a state is stored as `f32` (the default), `bf16` or `q8`" : fmt::format("did you mean `{}`?", m));
      }
      if (s.storage == "q8" && init.shape != Shape::Full)
        d_.report(DiagKind::StorageMismatch, s.storage_loc,
                  fmt::format("state `{}` has shape {}, and q8 stores parameter-shaped state", s.name, ir::shape_name(init.shape)),
                  "store it as `f32` or `bf16`: q8 quantizes blocks of a parameter's elements");
      int slot = int(g_.slots.size());
      g_.slots.push_back({stage_key + "." + s.name, init.shape, s.name_loc, init.identity, s.storage == "bf16"});
      if (s.storage == "q8" && init.shape == Shape::Full) g_.slots.back().q8 = s.storage_block;
      ValueId read = b_.add(Op::StateRead, init.shape, {}, slot, 0, s.name_loc);
      ValueId cur = read;
      if (init.value.valid()) {
        // not zero-initialized: the state holds `init` before the first update
        ValueId first = b_.add(Op::Eq, Shape::Scalar, {b_.add(Op::Step, Shape::Scalar, {}), b_.constant(1)});
        cur = b_.add(Op::Select, init.shape, {first, init.value, read}, 0, 0, s.loc);
      }
      scope.vars[s.name] = {cur, VarKind::State, slot};
      ctx.states.push_back({slot, &s});
      continue;
    }
    ValueId v = lower(*s.value, scope);
    if (!v.valid()) ctx.failed.insert(s.name);
    if (s.kind == Stmt::Kind::Let) {
      if (scope.vars.count(s.name) || (guard.valid() && scope.find(s.name))) {
        d_.report(DiagKind::Redefinition, s.name_loc, fmt::format("`{}` is already defined in `{}`", s.name, c.name), "assign to it without `let`");
        continue;
      }
      scope.vars[s.name] = {v, VarKind::Local};  // invalid when its expression failed: uses stay quiet
      continue;
    }
    const Var* target = scope.find(s.name);
    if (!target) {
      std::string m = closest_match(s.name, scope.names());
      d_.report(DiagKind::UnknownName, s.name_loc, fmt::format("assignment to unknown name `{}`", s.name),
                m.empty() ? fmt::format("declare it with `let {0} = ...` or `state {0} = zeros`", s.name) : fmt::format("did you mean `{}`?", m));
      continue;
    }
    if (!target->value.valid()) continue;  // a declaration that failed, already reported
    if (target->kind == VarKind::Param || target->kind == VarKind::Builtin || target->kind == VarKind::HParam) {
      d_.report(
          DiagKind::AssignToReadOnly, s.name_loc, fmt::format("cannot assign to `{}`", s.name),
          target->kind == VarKind::Param ? "parameters are read-only: copy it with `let`" : "only states, `let` bindings, u and g can be assigned");
      continue;
    }
    if (in_inverse && s.name != "u" && target->kind != VarKind::Local) {
      d_.report(DiagKind::AssignToReadOnly, s.name_loc, fmt::format("an `inverse` block cannot assign to `{}`", s.name),
                "it maps the stream back: assign `u` (and `let` bindings) only");
      continue;
    }
    if (!v.valid()) continue;
    Shape want = target->kind == VarKind::State ? g_.slots[target->slot].shape : target->kind == VarKind::Stream ? Shape::Full : shape(v);
    Shape got;
    if (!ir::try_broadcast(shape(v), want, got) || got != want) {
      d_.report(DiagKind::StateShapeMismatch, s.value->loc, fmt::format("`{}` holds {}, but this is {}", s.name, describe(want), describe(shape(v))));
      ctx.failed.insert(s.name);
      continue;
    }
    Var updated = *target;
    updated.value = v;
    // inside a block the assignment lands in the block's scope, merged back afterwards
    if (guard.valid() && !scope.vars.count(s.name)) scope.vars[s.name] = updated;
    else *scope.find_mut(s.name) = updated;
    if (target->kind == VarKind::State) ctx.assigned.insert(target->slot);
  }
}

// `zeros` -> Full; `zeros(rows)`, `zeros(cols)`, `zeros(rows, rows)`, `zeros(cols, cols)`,
// `eye(rows)`, `eye(cols)` -> set up by the runtime; an expression -> (its shape, value).
// `select(c, zeros, x)` with a compile-time `c` picks a branch here, so a zero-init toggle
// costs nothing; with a runtime `c` both branches are kept (zeros as 0).
Lowerer::StateInit Lowerer::state_init(const Expr& e, const Scope& s) {
  auto ok = [](Shape sh, bool identity = false) { return StateInit{true, sh, {}, identity}; };
  if (e.kind == Expr::Kind::Name && e.name == "zeros") return ok(Shape::Full);
  if (e.kind == Expr::Kind::Call && e.name == "select" && e.args.size() == 3) {
    ValueId c = lower(*e.args[0].value, s);
    if (!c.valid()) return {};
    if (g_.at(c).op == Op::Const) return state_init(*e.args[g_.at(c).fattr != 0 ? 1 : 2].value, s);
    StateInit a = state_init(*e.args[1].value, s), b = state_init(*e.args[2].value, s);
    if (!a.ok || !b.ok) return {};
    if (a.identity || b.identity) {
      d_.report(DiagKind::NotConstant, e.args[0].value->loc, "choosing an identity initialization needs a compile-time condition");
      return {};
    }
    ValueId av = a.value.valid() ? a.value : b_.constant(0), bv = b.value.valid() ? b.value : b_.constant(0);
    Shape sh;
    if (!ir::try_broadcast(a.shape, b.shape, sh)) {
      d_.report(DiagKind::StateShapeMismatch, e.loc, "the two initializations have different shapes");
      return {};
    }
    return {true, sh, b_.add(Op::Select, sh, {c, av, bv}, 0, 0, e.loc), false};
  }
  if (e.kind == Expr::Kind::Call && (e.name == "zeros" || e.name == "eye")) {
    std::vector<std::string> dims;
    for (const auto& a : e.args) dims.push_back(a.value->kind == Expr::Kind::Name && a.name.empty() ? a.value->name : "?");
    bool eye = e.name == "eye";
    if (!eye && dims == std::vector<std::string>{"rows"}) return ok(Shape::Rows);
    if (!eye && dims == std::vector<std::string>{"cols"}) return ok(Shape::Cols);
    if (!eye && dims == std::vector<std::string>{"rows", "rows"}) return ok(Shape::Left);
    if (!eye && dims == std::vector<std::string>{"cols", "cols"}) return ok(Shape::Right);
    if (eye && dims == std::vector<std::string>{"rows"}) return ok(Shape::Left, true);
    if (eye && dims == std::vector<std::string>{"cols"}) return ok(Shape::Right, true);
    d_.report(DiagKind::StateShapeMismatch, e.loc,
              eye ? "`eye` takes `rows` or `cols`" : "`zeros` takes nothing, `rows`, `cols`, `rows, rows` or `cols, cols`",
              "`zeros` is full-sized; `zeros(rows)` holds one value per row; `zeros(rows, rows)` and `eye(rows)` are rows x rows");
    return {};
  }
  // `full(c)`, `full(c, rows)`, `full(c, cols)`: a tensor holding the scalar c before the first
  // update; `scalar(x)`: one value per parameter tensor, x before the first update
  if (e.kind == Expr::Kind::Call && (e.name == "full" || e.name == "scalar")) {
    const bool full = e.name == "full";
    const size_t max_args = full ? 2 : 1;
    if (e.args.empty() || e.args.size() > max_args || !e.args[0].name.empty()) {
      d_.report(DiagKind::WrongArity, e.loc, full ? "`full` takes a value and optionally `rows` or `cols`" : "`scalar` takes one value",
                full ? "`state v = full(1e-6)` fills the tensor; `full(0.1, rows)` holds one value per row" : "`state s = scalar(1)`");
      return {};
    }
    Shape sh = full ? Shape::Full : Shape::Scalar;
    if (e.args.size() == 2) {
      const Expr& d = *e.args[1].value;
      if (d.kind == Expr::Kind::Name && (d.name == "rows" || d.name == "cols") && e.args[1].name.empty())
        sh = d.name == "rows" ? Shape::Rows : Shape::Cols;
      else {
        d_.report(DiagKind::StateShapeMismatch, d.loc, "the second argument of `full` is `rows` or `cols`",
                  "`full(c)` is full-sized; `full(c, rows)` holds one value per row");
        return {};
      }
    }
    ValueId v = lower(*e.args[0].value, s);
    if (!v.valid()) return {};
    if (shape(v) != Shape::Scalar) {
      d_.report(DiagKind::ScalarExpected, e.args[0].value->loc, fmt::format("`{}` takes a scalar, but this is {}", e.name, describe(shape(v))),
                full ? "to start from a tensor, write it directly: `state m = g`" : "a scalar state holds one value per parameter tensor");
      return {};
    }
    return {true, sh, v, false};
  }
  ValueId v = lower(e, s);
  if (!v.valid()) return {};
  if (shape(v) == Shape::Scalar) {
    d_.report(DiagKind::StateShapeMismatch, e.loc, "a state must be a tensor, but this is a scalar",
              "write `full(c)` for a tensor filled with c, or `scalar(c)` for one value per parameter tensor");
    return {};
  }
  return {true, shape(v), v, false};
}

void Lowerer::init_builtins() {
  builtins_.vars["t"] = {b_.add(Op::Step, Shape::Scalar, {}), VarKind::Builtin};
  builtins_.vars["rows"] = {b_.add(Op::Dim, Shape::Scalar, {}, int64_t(ir::DimKind::Rows)), VarKind::Builtin};
  builtins_.vars["cols"] = {b_.add(Op::Dim, Shape::Scalar, {}, int64_t(ir::DimKind::Cols)), VarKind::Builtin};
  builtins_.vars["numel"] = {b_.add(Op::Dim, Shape::Scalar, {}, int64_t(ir::DimKind::Numel)), VarKind::Builtin};
  builtins_.vars["pi"] = {b_.constant(std::numbers::pi), VarKind::Builtin};
  builtins_.vars["true"] = {b_.constant(1), VarKind::Builtin};
  builtins_.vars["false"] = {b_.constant(0), VarKind::Builtin};
  // Newton-Schulz coefficient sets
  builtins_.vars["keller"] = {b_.constant(0), VarKind::Builtin};
  builtins_.vars["you"] = {b_.constant(1), VarKind::Builtin};
}

}  // namespace opal::lowering
