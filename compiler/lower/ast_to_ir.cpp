// Lowering of optimizers, components and expressions to IR.
//
// Scoping, innermost first: component locals and states, component parameters, the stream
// (u, g, w), builtin values (t, rows, cols, numel, pi, true, false), then the hyperparameters of
// the optimizer whose route is being lowered. A pipeline starts with u = g; every stage maps u
// (and may map g); the route ends with w <- w - u.
#include "compiler/lower/ast_to_ir.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <optional>

#include <fmt/format.h>

namespace opal {

using ir::Op;
using ir::Shape;
using ir::ValueId;

bool eval_constant(const Expr& e, double& out) {
  switch (e.kind) {
    case Expr::Kind::Number: out = e.number; return true;
    case Expr::Kind::Name:
      if (e.name == "true") { out = 1; return true; }
      if (e.name == "false") { out = 0; return true; }
      if (e.name == "pi") { out = std::numbers::pi; return true; }
      return false;
    case Expr::Kind::Unary: {
      double a;
      if (!eval_constant(*e.args[0].value, a)) return false;
      out = e.name == "-" ? -a : double(a == 0);
      return true;
    }
    case Expr::Kind::Binary: {
      double a, b;
      if (!eval_constant(*e.args[0].value, a) || !eval_constant(*e.args[1].value, b)) return false;
      const std::string& op = e.name;
      if (op == "+") out = a + b;
      else if (op == "-") out = a - b;
      else if (op == "*") out = a * b;
      else if (op == "/") out = a / b;
      else if (op == "^") out = std::pow(a, b);
      else return false;
      return true;
    }
    case Expr::Kind::Call: return false;
  }
  return false;
}

namespace {

enum class VarKind { HParam, Param, State, Local, Stream, Builtin };

struct Var {
  ValueId value;
  VarKind kind;
  int slot = -1;
};

// A chain of name -> Var maps.
struct Scope {
  std::map<std::string, Var> vars;
  const Scope* parent = nullptr;
  const Var* find(const std::string& n) const {
    for (const Scope* s = this; s; s = s->parent)
      if (auto it = s->vars.find(n); it != s->vars.end()) return &it->second;
    return nullptr;
  }
  Var* find_mut(const std::string& n) {
    for (Scope* s = this; s; s = const_cast<Scope*>(s->parent))
      if (auto it = s->vars.find(n); it != s->vars.end()) return &it->second;
    return nullptr;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> v;
    for (const Scope* s = this; s; s = s->parent)
      for (const auto& [n, _] : s->vars) v.push_back(n);
    return v;
  }
};

struct BuiltinFn {
  const char* name;
  int arity;
  Op op;  // for elementwise builtins
  enum Rule { Elementwise, RowSum, RowMean, ColSum, ColMean, Sum, Mean, Norm, Rms } rule;
};

constexpr BuiltinFn kBuiltins[] = {
    {"sqrt", 1, Op::Sqrt, BuiltinFn::Elementwise}, {"abs", 1, Op::Abs, BuiltinFn::Elementwise},
    {"sign", 1, Op::Sign, BuiltinFn::Elementwise}, {"exp", 1, Op::Exp, BuiltinFn::Elementwise},
    {"log", 1, Op::Log, BuiltinFn::Elementwise},   {"cos", 1, Op::Cos, BuiltinFn::Elementwise},
    {"sin", 1, Op::Sin, BuiltinFn::Elementwise},   {"tanh", 1, Op::Tanh, BuiltinFn::Elementwise},
    {"floor", 1, Op::Floor, BuiltinFn::Elementwise}, {"min", 2, Op::Min, BuiltinFn::Elementwise},
    {"max", 2, Op::Max, BuiltinFn::Elementwise},   {"pow", 2, Op::Pow, BuiltinFn::Elementwise},
    {"select", 3, Op::Select, BuiltinFn::Elementwise},
    {"row_sum", 1, Op::RowSum, BuiltinFn::RowSum}, {"row_mean", 1, Op::RowSum, BuiltinFn::RowMean},
    {"col_sum", 1, Op::ColSum, BuiltinFn::ColSum}, {"col_mean", 1, Op::ColSum, BuiltinFn::ColMean},
    {"sum", 1, Op::Sum, BuiltinFn::Sum},           {"mean", 1, Op::Sum, BuiltinFn::Mean},
    {"norm", 1, Op::Sum, BuiltinFn::Norm},         {"rms", 1, Op::Sum, BuiltinFn::Rms},
};

const BuiltinFn* find_builtin(const std::string& n) {
  for (const auto& b : kBuiltins)
    if (n == b.name) return &b;
  return nullptr;
}

class Lowerer {
 public:
  Lowerer(const Program& p, Diagnostics& d, ir::Graph& g) : p_(p), d_(d), g_(g), b_(g) {}

  ir::Builder& builder() { return b_; }

  // ---- expressions ----
  ValueId lower(const Expr& e, const Scope& s, int depth = 0) {
    switch (e.kind) {
      case Expr::Kind::Number: return b_.constant(e.number, e.loc);
      case Expr::Kind::Name: return name(e, s);
      case Expr::Kind::Unary: {
        ValueId a = lower(*e.args[0].value, s, depth);
        if (!a.valid()) return a;
        return b_.add(e.name == "-" ? Op::Neg : Op::Not, shape(a), {a}, 0, 0, e.loc);
      }
      case Expr::Kind::Binary: {
        ValueId a = lower(*e.args[0].value, s, depth), b = lower(*e.args[1].value, s, depth);
        if (!a.valid() || !b.valid()) return {};
        static const std::map<std::string, Op> ops = {
            {"+", Op::Add}, {"-", Op::Sub}, {"*", Op::Mul}, {"/", Op::Div}, {"^", Op::Pow}, {"<", Op::Lt},
            {"<=", Op::Le}, {">", Op::Gt},  {">=", Op::Ge}, {"==", Op::Eq}, {"!=", Op::Ne}, {"&&", Op::And}, {"||", Op::Or}};
        return b_.add(ops.at(e.name), ir::broadcast(shape(a), shape(b)), {a, b}, 0, 0, e.loc);
      }
      case Expr::Kind::Call: return call(e, s, depth);
    }
    return {};
  }

  Shape shape(ValueId v) const { return g_.at(v).shape; }

  ValueId name(const Expr& e, const Scope& s) {
    if (const Var* v = s.find(e.name)) return v->value;
    if (e.name == "zeros") {
      d_.report(DiagKind::TypeMismatch, e.loc, "`zeros` only initializes a state", "write `state m = zeros`");
      return {};
    }
    std::string m = closest_match(e.name, s.names());
    d_.report(DiagKind::UnknownName, e.loc, fmt::format("unknown name `{}`", e.name),
              m.empty() ? "names in scope are parameters, states, `let` bindings, u, g, w, t, rows, cols, numel" : fmt::format("did you mean `{}`?", m));
    return {};
  }

  ValueId call(const Expr& e, const Scope& s, int depth) {
    if (const BuiltinFn* bf = find_builtin(e.name)) {
      if ((int)e.args.size() != bf->arity) {
        d_.report(DiagKind::WrongArity, e.loc, fmt::format("`{}` takes {} argument{}, got {}", e.name, bf->arity, bf->arity == 1 ? "" : "s", e.args.size()));
        return {};
      }
      std::vector<ValueId> a;
      for (const auto& arg : e.args) {
        if (!arg.name.empty()) {
          d_.report(DiagKind::UnknownArgument, arg.name_loc, fmt::format("builtin `{}` takes positional arguments only", e.name));
          return {};
        }
        a.push_back(lower(*arg.value, s, depth));
        if (!a.back().valid()) return {};
      }
      return builtin(*bf, a, e);
    }
    auto it = p_.fns.find(e.name);
    if (it == p_.fns.end()) {
      std::vector<std::string> cands;
      for (const auto& b : kBuiltins) cands.push_back(b.name);
      for (const auto& [n, _] : p_.fns) cands.push_back(n);
      std::string m = closest_match(e.name, cands);
      if (p_.components.count(e.name))
        d_.report(DiagKind::UnknownFunction, e.loc, fmt::format("`{}` is a component, not a function", e.name),
                  "components are pipeline stages: `a -> " + e.name + "(...) -> b`");
      else
        d_.report(DiagKind::UnknownFunction, e.loc, fmt::format("unknown function `{}`", e.name),
                  m.empty() ? "builtins: sqrt abs sign exp log cos sin tanh floor min max pow select row_sum row_mean col_sum col_mean sum mean norm rms"
                            : fmt::format("did you mean `{}`?", m));
      return {};
    }
    const FnDecl& f = *it->second;
    if (depth > 64) return {};  // fn cycles are reported by the resolver
    bool ok;
    auto bound = bind_arguments(f.params, e.args, f.name, e.loc, d_, ok);
    if (!ok) return {};
    Scope fs;
    fs.parent = &builtins_;
    for (size_t i = 0; i < f.params.size(); ++i) {
      ValueId v = bound[i] ? lower(*bound[i], s, depth) : lower(*f.params[i].default_value, fs, depth + 1);
      if (!v.valid()) return {};
      fs.vars[f.params[i].name] = {v, VarKind::Param};
    }
    return lower(*f.body, fs, depth + 1);
  }

  ValueId builtin(const BuiltinFn& bf, const std::vector<ValueId>& a, const Expr& e) {
    auto dim = [&](int k) { return b_.add(Op::Dim, Shape::Scalar, {}, k); };
    auto need_full = [&]() {
      if (shape(a[0]) == Shape::Full) return true;
      d_.report(DiagKind::TypeMismatch, e.args[0].value->loc, fmt::format("`{}` reduces a full tensor, but this is {}", bf.name, describe(shape(a[0]))));
      return false;
    };
    auto need_tensor = [&]() {
      if (shape(a[0]) != Shape::Scalar) return true;
      d_.report(DiagKind::TypeMismatch, e.args[0].value->loc, fmt::format("`{}` reduces a tensor, but this is a scalar", bf.name));
      return false;
    };
    auto count = [&](Shape s) {
      return s == Shape::Rows ? dim(0) : s == Shape::Cols ? dim(1) : dim(2);
    };
    switch (bf.rule) {
      case BuiltinFn::Elementwise: {
        Shape sh = Shape::Scalar;
        for (ValueId v : a) sh = ir::broadcast(sh, shape(v));
        if (a.size() == 1) return b_.add(bf.op, sh, {a[0]}, 0, 0, e.loc);
        if (a.size() == 2) return b_.add(bf.op, sh, {a[0], a[1]}, 0, 0, e.loc);
        return b_.add(bf.op, sh, {a[0], a[1], a[2]}, 0, 0, e.loc);
      }
      case BuiltinFn::RowSum:
      case BuiltinFn::RowMean: {
        if (!need_full()) return {};
        ValueId r = b_.add(Op::RowSum, Shape::Rows, {a[0]}, 0, 0, e.loc);
        return bf.rule == BuiltinFn::RowSum ? r : b_.add(Op::Div, Shape::Rows, {r, dim(1)}, 0, 0, e.loc);
      }
      case BuiltinFn::ColSum:
      case BuiltinFn::ColMean: {
        if (!need_full()) return {};
        ValueId r = b_.add(Op::ColSum, Shape::Cols, {a[0]}, 0, 0, e.loc);
        return bf.rule == BuiltinFn::ColSum ? r : b_.add(Op::Div, Shape::Cols, {r, dim(0)}, 0, 0, e.loc);
      }
      case BuiltinFn::Sum:
      case BuiltinFn::Mean: {
        if (!need_tensor()) return {};
        ValueId r = b_.add(Op::Sum, Shape::Scalar, {a[0]}, 0, 0, e.loc);
        return bf.rule == BuiltinFn::Sum ? r : b_.add(Op::Div, Shape::Scalar, {r, count(shape(a[0]))}, 0, 0, e.loc);
      }
      case BuiltinFn::Norm:
      case BuiltinFn::Rms: {
        if (!need_tensor()) return {};
        ValueId sq = b_.add(Op::Mul, shape(a[0]), {a[0], a[0]}, 0, 0, e.loc);
        ValueId r = b_.add(Op::Sum, Shape::Scalar, {sq}, 0, 0, e.loc);
        if (bf.rule == BuiltinFn::Rms) r = b_.add(Op::Div, Shape::Scalar, {r, count(shape(a[0]))}, 0, 0, e.loc);
        return b_.add(Op::Sqrt, Shape::Scalar, {r}, 0, 0, e.loc);
      }
    }
    return {};
  }

  static std::string describe(Shape s) {
    switch (s) {
      case Shape::Scalar: return "a scalar";
      case Shape::Rows: return "one value per row";
      case Shape::Cols: return "one value per column";
      case Shape::Full: return "a full tensor";
    }
    return "?";
  }

  // ---- components ----
  struct Stream {
    ValueId u, g, w;
  };

  // Lowers one stage; `stage_key` names its state slots ("adapt", "adapt#2").
  void component(const ComponentDecl& c, const std::vector<const Expr*>& bound, const Scope& caller, Stream& st,
                 const std::string& stage_key, SourceLoc call_loc) {
    Scope scope;
    scope.parent = &builtins_;
    // Parameters: the argument or the default, both evaluated in the caller's scope. A parameter
    // whose default is a tensor (`of = g`) takes tensors; every other one takes scalars.
    for (size_t i = 0; i < c.params.size(); ++i) {
      const Param& prm = c.params[i];
      ValueId dflt;
      if (prm.default_value) dflt = lower(*prm.default_value, caller);
      ValueId v = bound[i] ? lower(*bound[i], caller) : dflt;
      if (!v.valid()) continue;
      bool tensor_param = dflt.valid() && shape(dflt) != Shape::Scalar;
      if (bound[i] && !tensor_param && shape(v) != Shape::Scalar)
        d_.report(DiagKind::TypeMismatch, bound[i]->loc, fmt::format("`{}` of `{}` takes a scalar, but this is {}", prm.name, c.name, describe(shape(v))),
                  "pass a hyperparameter or a number");
      scope.vars[prm.name] = {v, VarKind::Param};
    }
    scope.vars["u"] = {st.u, VarKind::Stream};
    scope.vars["g"] = {st.g, VarKind::Stream};
    scope.vars["w"] = {st.w, VarKind::Builtin};
    std::vector<std::pair<int, const Stmt*>> states;  // slot, declaration
    std::vector<int> assigned;
    std::vector<std::string> failed;  // assignments that errored: no "never updated" noise
    for (const Stmt& s : c.body) {
      if (s.kind == Stmt::Kind::State) {
        if (scope.vars.count(s.name) && scope.vars[s.name].kind != VarKind::Param) {
          d_.report(DiagKind::Redefinition, s.name_loc, fmt::format("`{}` is already defined in `{}`", s.name, c.name));
          continue;
        }
        auto [shape_init, init] = state_init(*s.value, scope);
        if (!shape_init) continue;
        int slot = int(g_.slots.size());
        g_.slots.push_back({stage_key + "." + s.name, *shape_init, s.name_loc});
        ValueId read = b_.add(Op::StateRead, *shape_init, {}, slot, 0, s.name_loc);
        ValueId cur = read;
        if (init.valid()) {
          // not zero-initialized: the state holds `init` before the first update
          ValueId first = b_.add(Op::Eq, Shape::Scalar, {b_.add(Op::Step, Shape::Scalar, {}), b_.constant(1)});
          cur = b_.add(Op::Select, *shape_init, {first, init, read}, 0, 0, s.loc);
        }
        scope.vars[s.name] = {cur, VarKind::State, slot};
        states.push_back({slot, &s});
        continue;
      }
      ValueId v = lower(*s.value, scope);
      if (!v.valid()) failed.push_back(s.name);
      if (s.kind == Stmt::Kind::Let) {
        if (scope.vars.count(s.name)) {
          d_.report(DiagKind::Redefinition, s.name_loc, fmt::format("`{}` is already defined in `{}`", s.name, c.name), "assign to it without `let`");
          continue;
        }
        if (v.valid()) scope.vars[s.name] = {v, VarKind::Local};
        continue;
      }
      Var* target = scope.find_mut(s.name);
      if (!target) {
        std::string m = closest_match(s.name, scope.names());
        d_.report(DiagKind::UnknownName, s.name_loc, fmt::format("assignment to unknown name `{}`", s.name),
                  m.empty() ? fmt::format("declare it with `let {0} = ...` or `state {0} = zeros`", s.name) : fmt::format("did you mean `{}`?", m));
        continue;
      }
      if (target->kind == VarKind::Param || target->kind == VarKind::Builtin || target->kind == VarKind::HParam) {
        d_.report(DiagKind::AssignToReadOnly, s.name_loc, fmt::format("cannot assign to `{}`", s.name),
                  target->kind == VarKind::Param ? "parameters are read-only: copy it with `let`" : "only states, `let` bindings, u and g can be assigned");
        continue;
      }
      if (!v.valid()) continue;
      Shape want = target->kind == VarKind::State ? g_.slots[target->slot].shape : target->kind == VarKind::Stream ? Shape::Full : shape(v);
      if (ir::broadcast(shape(v), want) != want) {
        d_.report(DiagKind::TypeMismatch, s.value->loc, fmt::format("`{}` holds {}, but this is {}", s.name, describe(want), describe(shape(v))));
        failed.push_back(s.name);
        continue;
      }
      target->value = v;
      if (target->kind == VarKind::State) assigned.push_back(target->slot);
    }
    for (auto [slot, decl] : states) {
      const Var& v = scope.vars[decl->name];
      bool written = std::find(assigned.begin(), assigned.end(), slot) != assigned.end();
      if (!written && std::find(failed.begin(), failed.end(), decl->name) != failed.end()) continue;
      if (!written && std::find(failed.begin(), failed.end(), decl->name) == failed.end()) {
        d_.report(DiagKind::UnusedState, decl->name_loc, fmt::format("state `{}` of `{}` is never updated", decl->name, c.name),
                  "assign to it, or make it a `let`");
        continue;
      }
      b_.add(Op::StateWrite, g_.slots[slot].shape, {v.value}, slot, 0, call_loc);
    }
    st.u = scope.vars["u"].value;
    st.g = scope.vars["g"].value;
  }

  // `zeros` -> (Full, none); `zeros(rows)` -> (Rows, none); an expression -> (its shape, value).
  // `select(c, zeros, x)` with a compile-time `c` picks a branch here, so a zero-init toggle
  // costs nothing; with a runtime `c` both branches are kept (zeros as 0).
  std::pair<std::optional<Shape>, ValueId> state_init(const Expr& e, const Scope& s) {
    if (e.kind == Expr::Kind::Name && e.name == "zeros") return {Shape::Full, {}};
    if (e.kind == Expr::Kind::Call && e.name == "select" && e.args.size() == 3) {
      ValueId c = lower(*e.args[0].value, s);
      if (!c.valid()) return {std::nullopt, {}};
      if (g_.at(c).op == Op::Const) return state_init(*e.args[g_.at(c).fattr != 0 ? 1 : 2].value, s);
      auto a = state_init(*e.args[1].value, s), b = state_init(*e.args[2].value, s);
      if (!a.first || !b.first) return {std::nullopt, {}};
      ValueId av = a.second.valid() ? a.second : b_.constant(0), bv = b.second.valid() ? b.second : b_.constant(0);
      Shape sh = ir::broadcast(*a.first, *b.first);
      return {sh, b_.add(Op::Select, sh, {c, av, bv}, 0, 0, e.loc)};
    }
    if (e.kind == Expr::Kind::Call && e.name == "zeros") {
      if (e.args.size() == 1 && e.args[0].value->kind == Expr::Kind::Name) {
        const std::string& a = e.args[0].value->name;
        if (a == "rows") return {Shape::Rows, {}};
        if (a == "cols") return {Shape::Cols, {}};
      }
      d_.report(DiagKind::TypeMismatch, e.loc, "`zeros` takes `rows`, `cols` or nothing", "`zeros` is full-sized; `zeros(rows)` holds one value per row");
      return {std::nullopt, {}};
    }
    ValueId v = lower(e, s);
    if (!v.valid()) return {std::nullopt, {}};
    if (shape(v) == Shape::Scalar) {
      d_.report(DiagKind::TypeMismatch, e.loc, "a state must be a tensor, but this is a scalar",
                "initialize it with `zeros`, `zeros(rows)`, `zeros(cols)` or a tensor expression such as `g`");
      return {std::nullopt, {}};
    }
    return {shape(v), v};
  }

  void init_builtins() {
    builtins_.vars["t"] = {b_.add(Op::Step, Shape::Scalar, {}), VarKind::Builtin};
    builtins_.vars["rows"] = {b_.add(Op::Dim, Shape::Scalar, {}, 0), VarKind::Builtin};
    builtins_.vars["cols"] = {b_.add(Op::Dim, Shape::Scalar, {}, 1), VarKind::Builtin};
    builtins_.vars["numel"] = {b_.add(Op::Dim, Shape::Scalar, {}, 2), VarKind::Builtin};
    builtins_.vars["pi"] = {b_.constant(std::numbers::pi), VarKind::Builtin};
    builtins_.vars["true"] = {b_.constant(1), VarKind::Builtin};
    builtins_.vars["false"] = {b_.constant(0), VarKind::Builtin};
  }

  Scope builtins_;

 private:
  const Program& p_;
  Diagnostics& d_;
  ir::Graph& g_;
  ir::Builder b_;
};

struct OptimizerLowering {
  const Program& p;
  Diagnostics& d;
  LoweredOptimizer& out;

  // `hp` binds the optimizer's parameter names to expressions in the *top-level* hyperparameter
  // space; they are lowered afresh in each route graph.
  struct Binding {
    const Expr* expr;             // argument or default expression
    const struct Binding* outer;  // the bindings the expression is evaluated in (null: top level)
    int top_index = -1;           // top level: HParam index
  };

  void routes(const OptimizerDecl& o, const std::map<std::string, Binding>& hp, std::vector<RouteStep> path, const std::string& prefix,
              const std::vector<std::map<std::string, Binding>>& chain) {
    for (size_t r = 0; r < o.routes.size(); ++r) {
      const Route& route = o.routes[r];
      auto here = path;
      here.push_back({&o, r});
      std::string label = prefix + route.label();
      if (route.pipeline.size() == 1 && p.optimizers.count(route.pipeline[0].name) && !p.components.count(route.pipeline[0].name)) {
        const Stage& st = route.pipeline[0];
        const OptimizerDecl& inner = *p.optimizers.at(st.name);
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
                                            bound[i] ? int(next_chain.size()) - 1 : -2};
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
          d.report(DiagKind::TypeMismatch, b.expr->loc, fmt::format("hyperparameter `{}` must be a scalar", name));
          v = {};
        }
        if (v.valid()) s.vars[name] = {v, VarKind::HParam};
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
    std::vector<Scope> storage;
    Scope hps = hparam_scope(L, hp, chain, storage);
    ValueId grad = L.builder().add(Op::Grad, Shape::Full, {});
    ValueId w = L.builder().add(Op::Param, Shape::Full, {});
    Lowerer::Stream st{grad, grad, w};
    std::map<std::string, int> seen;
    for (const Stage& stage : route.pipeline) {
      auto it = p.components.find(stage.name);
      if (it == p.components.end()) continue;  // reported by the resolver
      bool ok;
      auto bound = bind_arguments(it->second->params, stage.args, stage.name, stage.loc, d, ok);
      if (!ok) continue;
      int n = ++seen[stage.name];
      std::string key = n == 1 ? stage.name : fmt::format("{}#{}", stage.name, n);
      Scope caller;
      caller.parent = &hps;
      caller.vars["u"] = {st.u, VarKind::Stream};
      caller.vars["g"] = {st.g, VarKind::Stream};
      caller.vars["w"] = {st.w, VarKind::Builtin};
      L.component(*it->second, bound, caller, st, key, stage.loc);
    }
    SourceLoc end = route.pipeline.empty() ? route.loc : route.pipeline.back().loc;
    ValueId neww = L.builder().add(Op::Sub, Shape::Full, {w, st.u}, 0, 0, end);
    L.builder().add(Op::ParamWrite, Shape::Full, {neww}, 0, 0, end);
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
    } else if (!eval_constant(*prm.default_value, v)) {
      diags.report(DiagKind::TypeMismatch, prm.default_value->loc, fmt::format("the default of hyperparameter `{}` must be a number", prm.name),
                   "hyperparameters are runtime scalars; compute derived values in the route's arguments");
    }
    out.hparams.push_back(prm.name);
    out.defaults.push_back(v);
    out.hparam_locs.push_back(prm.loc);
    hp[prm.name] = {prm.default_value.get(), nullptr, int(i)};
  }
  OptimizerLowering ol{p, diags, out};
  ol.routes(o, hp, {}, "", {});
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
  L.component(c, bound, caller, st, c.name, c.loc);
}

}  // namespace opal
