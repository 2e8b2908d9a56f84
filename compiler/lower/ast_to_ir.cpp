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
#include <memory>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "compiler/passes/fold_constants.h"
#include "compiler/passes/fuse_elementwise.h"

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
  enum Rule { Elementwise, RowSum, RowMean, ColSum, ColMean, Sum, Mean, Norm, Rms, Matrix } rule;
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
    {"bf16", 1, Op::Bf16, BuiltinFn::Elementwise}, {"mod", 2, Op::Mod, BuiltinFn::Elementwise},
    // matrix work (run by the backend's linear algebra between fused kernels)
    {"eigh", 1, Op::Eigh, BuiltinFn::Matrix},      {"eigh_desc", 1, Op::Eigh, BuiltinFn::Matrix},
    {"inv_root", 3, Op::InvRoot, BuiltinFn::Matrix}, {"inv_root_damped", 3, Op::InvRoot, BuiltinFn::Matrix},
    {"qr", 1, Op::Qr, BuiltinFn::Matrix},          {"diag", 1, Op::Diag, BuiltinFn::Matrix},
    {"argsort_desc", 1, Op::Argsort, BuiltinFn::Matrix},
    {"permute_rows", 2, Op::PermuteRows, BuiltinFn::Matrix}, {"permute_cols", 2, Op::PermuteCols, BuiltinFn::Matrix},
    {"newton_schulz", 5, Op::NewtonSchulz, BuiltinFn::Matrix}, {"eye", 1, Op::Eye, BuiltinFn::Matrix},
    {"transpose", 1, Op::MatMul, BuiltinFn::Matrix},
    {"tri_solve_left", 2, Op::TriSolveLeft, BuiltinFn::Matrix}, {"tri_solve_right", 2, Op::TriSolveRight, BuiltinFn::Matrix},
    {"nlb", 1, Op::NormLowerBound, BuiltinFn::Matrix}, {"triu", 1, Op::Triu, BuiltinFn::Matrix},
    {"randn", 0, Op::RandN, BuiltinFn::Matrix},
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
        if (e.name == "@") return matmul(e, s, depth);
        ValueId a = lower(*e.args[0].value, s, depth), b = lower(*e.args[1].value, s, depth);
        if (!a.valid() || !b.valid()) return {};
        static const std::map<std::string, Op> ops = {
            {"+", Op::Add}, {"-", Op::Sub}, {"*", Op::Mul}, {"/", Op::Div}, {"^", Op::Pow}, {"<", Op::Lt},
            {"<=", Op::Le}, {">", Op::Gt},  {">=", Op::Ge}, {"==", Op::Eq}, {"!=", Op::Ne}, {"&&", Op::And}, {"||", Op::Or}};
        Shape sh;
        if (!ir::try_broadcast(shape(a), shape(b), sh)) {
          d_.report(DiagKind::TypeMismatch, e.loc, fmt::format("`{}` combines {} with {}", e.name, describe(shape(a)), describe(shape(b))),
                    "square matrices combine elementwise only with their own kind and scalars; use `@` to multiply");
          return {};
        }
        return b_.add(ops.at(e.name), sh, {a, b}, 0, 0, e.loc);
      }
      case Expr::Kind::Call: return call(e, s, depth);
    }
    return {};
  }

  // `a @ b`, with `transpose(x)` operands folded into the op's flags.
  ValueId matmul(const Expr& e, const Scope& s, int depth) {
    int flags = 0;
    ValueId v[2];
    for (int k = 0; k < 2; ++k) {
      const Expr& x = *e.args[k].value;
      bool t = x.kind == Expr::Kind::Call && x.name == "transpose" && x.args.size() == 1;
      v[k] = lower(t ? *x.args[0].value : x, s, depth);
      if (!v[k].valid()) return {};
      if (t) flags |= k == 0 ? 1 : 2;
    }
    Shape in[2] = {shape(v[0]), shape(v[1])}, out;
    if (!ir::library_shape(Op::MatMul, flags, in, 2, out)) {
      d_.report(DiagKind::TypeMismatch, e.loc,
                fmt::format("cannot multiply {}{} by {}{}", describe(in[0]), flags & 1 ? " (transposed)" : "", describe(in[1]), flags & 2 ? " (transposed)" : ""),
                "`@` multiplies matrices whose inner sizes agree: rows x cols by cols x cols, rows x rows by rows x cols, and their "
                "transposes; the result must be rows x cols or square");
      return {};
    }
    note_matrix({});
    return b_.add(Op::MatMul, out, {v[0], v[1]}, flags, 0, e.loc);
  }

  // A compile-time constant argument (folded from constants), or a NotConstant error.
  std::optional<double> constant_arg(ValueId v, const Expr& at, const char* what) {
    if (auto c = passes::constant_value(g_, v)) return c;
    report_at_stage(DiagKind::NotConstant, at.loc, fmt::format("{} must be known at compile time", what),
                    "pass a number or a component parameter with a numeric default, not a hyperparameter");
    return std::nullopt;
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

  ValueId matrix_builtin(const BuiltinFn& bf, const std::vector<ValueId>& a, const Expr& e) {
    const std::string& n = e.name;
    auto arg = [&](int k) -> const Expr& { return *e.args[k].value; };
    if (n == "transpose") {
      d_.report(DiagKind::TypeMismatch, e.loc, "`transpose(x)` is only allowed as an operand of `@`",
                "write `transpose(a) @ b` or `a @ transpose(b)`; a transposed rows x cols matrix has no shape class of its own");
      return {};
    }
    int64_t iattr = 0;
    double fattr = 0;
    if (n == "eigh_desc" || n == "argsort_desc") iattr = 1;
    if (n == "inv_root" || n == "inv_root_damped") {
      auto p = constant_arg(a[1], arg(1), "the root of `inv_root`");
      if (!p) return {};
      if (!passes::is_uniform(g_, a[2])) {
        report_at_stage(DiagKind::NotConstant, arg(2).loc, "the epsilon of `inv_root` must be a scalar of hyperparameters and constants",
                        "it is applied on the host before the eigendecomposition; it cannot depend on tensor values");
        return {};
      }
      if (*p < 1 || *p > 64 || *p != std::floor(*p)) {
        d_.report(DiagKind::TypeMismatch, arg(1).loc, "the root of `inv_root` must be a whole number from 1 to 64");
        return {};
      }
      iattr = int64_t(*p) | (n == "inv_root_damped" ? 256 : 0);
      Shape in2[2] = {shape(a[0]), Shape::Scalar};
      Shape out;
      if (!ir::library_shape(Op::InvRoot, iattr, in2, 2, out)) {
        d_.report(DiagKind::TypeMismatch, arg(0).loc, fmt::format("`{}` takes a square matrix, but this is {}", n, describe(shape(a[0]))));
        return {};
      }
      note_matrix({});
      return b_.add(Op::InvRoot, out, {a[0], a[2]}, iattr, 0, e.loc);
    }
    if (n == "newton_schulz") {
      auto steps = constant_arg(a[1], arg(1), "the step count of `newton_schulz`");
      auto coeffs = constant_arg(a[2], arg(2), "the coefficient set of `newton_schulz`");
      auto bf = constant_arg(a[3], arg(3), "the bf16 flag of `newton_schulz`");
      auto eps = constant_arg(a[4], arg(4), "the epsilon of `newton_schulz`");
      if (!steps || !coeffs || !bf || !eps) return {};
      if (*steps < 1 || *steps > 100 || *steps != std::floor(*steps)) {
        d_.report(DiagKind::TypeMismatch, arg(1).loc, "Newton-Schulz takes 1 to 100 steps");
        return {};
      }
      if (*coeffs != 0 && *coeffs != 1) {
        d_.report(DiagKind::TypeMismatch, arg(2).loc, "the coefficient set is `keller` or `you`");
        return {};
      }
      iattr = int64_t(*steps) | (int64_t(*coeffs) << 8) | (int64_t(*bf != 0) << 12);
      fattr = *eps;
    }
    if (n == "randn") return b_.add(Op::RandN, Shape::Full, {}, 0, 0, e.loc);
    if (n == "triu") {
      if (!ir::is_square(shape(a[0]))) {
        d_.report(DiagKind::TypeMismatch, arg(0).loc, fmt::format("`triu` takes a square matrix, but this is {}", describe(shape(a[0]))));
        return {};
      }
      return b_.add(Op::Triu, shape(a[0]), {a[0]}, 0, 0, e.loc);
    }
    if (n == "eye") {
      const Expr& x = arg(0);
      if (x.kind == Expr::Kind::Name && (x.name == "rows" || x.name == "cols"))
        return b_.add(Op::Eye, x.name == "rows" ? Shape::Left : Shape::Right, {}, 0, 0, e.loc);
      d_.report(DiagKind::TypeMismatch, x.loc, "`eye` takes `rows` or `cols`", "`eye(rows)` is the rows x rows identity");
      return {};
    }
    Shape in[1] = {shape(a[0])}, out;
    Shape in2[2] = {shape(a[0]), a.size() > 1 ? shape(a[1]) : Shape::Scalar};
    bool two = bf.op == Op::PermuteRows || bf.op == Op::PermuteCols || bf.op == Op::TriSolveLeft || bf.op == Op::TriSolveRight;
    if (!ir::library_shape(bf.op, iattr, two ? in2 : in, two ? 2 : 1, out)) {
      static const std::map<std::string, std::string> need = {
          {"eigh", "a square matrix"}, {"eigh_desc", "a square matrix"}, {"inv_root", "a square matrix"}, {"inv_root_damped", "a square matrix"},
          {"qr", "a square matrix"}, {"diag", "a rows x rows or cols x cols matrix"}, {"argsort_desc", "one value per row or per column"},
          {"permute_rows", "a matrix and indices of its rows"}, {"permute_cols", "a matrix and indices of its columns"},
          {"newton_schulz", "a full rows x cols tensor"}, {"tri_solve_left", "an upper-triangular square and a matrix with as many rows"},
          {"tri_solve_right", "a matrix and an upper-triangular square with as many rows as it has columns"}, {"nlb", "a square matrix"}};
      d_.report(DiagKind::TypeMismatch, arg(0).loc, fmt::format("`{}` takes {}, but this is {}", n, need.at(n), describe(in[0])));
      return {};
    }
    note_matrix({});
    if (two) return b_.add(bf.op, out, {a[0], a[1]}, iattr, fattr, e.loc);
    return b_.add(bf.op, out, {a[0]}, iattr, fattr, e.loc);
  }

  ValueId builtin(const BuiltinFn& bf, const std::vector<ValueId>& a, const Expr& e) {
    if (bf.rule == BuiltinFn::Matrix) return matrix_builtin(bf, a, e);
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
      switch (s) {
        case Shape::Rows: return dim(0);
        case Shape::Cols: return dim(1);
        case Shape::Left: return b_.add(Op::Mul, Shape::Scalar, {dim(0), dim(0)});
        case Shape::Right: return b_.add(Op::Mul, Shape::Scalar, {dim(1), dim(1)});
        case Shape::Small: {
          ValueId k = b_.add(Op::Min, Shape::Scalar, {dim(0), dim(1)});
          return b_.add(Op::Mul, Shape::Scalar, {k, k});
        }
        default: return dim(2);
      }
    };
    switch (bf.rule) {
      case BuiltinFn::Elementwise: {
        Shape sh = Shape::Scalar;
        for (ValueId v : a)
          if (!ir::try_broadcast(sh, shape(v), sh)) {
            d_.report(DiagKind::TypeMismatch, e.loc, fmt::format("the arguments of `{}` do not combine elementwise", bf.name),
                      "square matrices combine only with their own kind and scalars");
            return {};
          }
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
      case Shape::Left: return "a rows x rows matrix";
      case Shape::Right: return "a cols x cols matrix";
      case Shape::Small: return "a min(rows, cols) square matrix";
    }
    return "?";
  }

  // ---- components ----
  struct Stream {
    ValueId u, g, w;
  };

  // A basis entered by `rotate(B)`: the component's scope when its body ended (so `inverse`
  // sees its locals and states as they were), and the g outside the basis.
  struct BasisFrame {
    const ComponentDecl* decl = nullptr;
    const Stmt* inverse = nullptr;
    std::shared_ptr<Scope> scope;
    ValueId outer_g;
    SourceLoc loc;
  };

  // Per-component lowering state shared by the statement walker.
  struct ComponentCtx {
    const ComponentDecl* decl;
    std::vector<std::pair<int, const Stmt*>> states;  // slot, declaration
    std::set<int> assigned;
    std::set<std::string> failed;  // assignments that errored: no "never updated" noise
    const Stmt* inverse = nullptr;
  };

  // Lowers one stage; `stage_key` names its state slots ("adapt", "adapt#2"). A basis
  // component fills `frame`.
  void component(const ComponentDecl& c, const std::vector<const Expr*>& bound, const Scope& caller, Stream& st,
                 const std::string& stage_key, SourceLoc call_loc, BasisFrame* frame = nullptr) {
    auto scope = std::make_shared<Scope>();
    scope->parent = &builtins_;
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
      scope->vars[prm.name] = {v, VarKind::Param};
    }
    scope->vars["u"] = {st.u, VarKind::Stream};
    scope->vars["g"] = {st.g, VarKind::Stream};
    scope->vars["w"] = {st.w, VarKind::Builtin};
    ComponentCtx ctx{&c, {}, {}, {}, nullptr};
    stage_name_ = c.name;
    stage_loc_ = call_loc;
    statements(c.body, *scope, ctx, stage_key, {});
    for (auto [slot, decl] : ctx.states) {
      const Var& v = scope->vars[decl->name];
      if (!ctx.assigned.count(slot)) {
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

  // The `inverse` block of a basis, at `unrotate`: maps u back; g returns to the outer basis.
  void leave_basis(const BasisFrame& f, Stream& st) {
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
  // value on refresh steps and the old one otherwise; the fusion pass runs the work that only
  // feeds such selects on refresh steps only.
  void statements(const std::vector<Stmt>& body, Scope& scope, ComponentCtx& ctx, const std::string& stage_key, ValueId guard,
                  bool in_inverse = false) {
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
          d_.report(DiagKind::TypeMismatch, s.value->loc, fmt::format("the argument of `{}` must be a scalar, but this is {}", s.name, describe(shape(n))));
          continue;
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
          Var* outer = scope.find_mut(name);
          if (!outer || outer->value == var.value) continue;
          Shape sh = ir::broadcast(shape(var.value), shape(outer->value));
          outer->value = b_.add(Op::Select, sh, {cond, var.value, outer->value}, 0, 0, s.loc);
        }
        continue;
      }
      if (s.kind == Stmt::Kind::State) {
        if (guard.valid() || in_inverse) {
          d_.report(DiagKind::Redefinition, s.name_loc, "states are declared at the top level of a component", "move the `state` line out of the block");
          continue;
        }
        if (scope.vars.count(s.name) && scope.vars[s.name].kind != VarKind::Param) {
          d_.report(DiagKind::Redefinition, s.name_loc, fmt::format("`{}` is already defined in `{}`", s.name, c.name));
          continue;
        }
        StateInit init = state_init(*s.value, scope);
        if (!init.ok) continue;
        int slot = int(g_.slots.size());
        g_.slots.push_back({stage_key + "." + s.name, init.shape, s.name_loc, init.identity});
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
        if (v.valid()) scope.vars[s.name] = {v, VarKind::Local};
        continue;
      }
      const Var* target = scope.find(s.name);
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
      if (in_inverse && s.name != "u" && target->kind != VarKind::Local) {
        d_.report(DiagKind::AssignToReadOnly, s.name_loc, fmt::format("an `inverse` block cannot assign to `{}`", s.name),
                  "it maps the stream back: assign `u` (and `let` bindings) only");
        continue;
      }
      if (!v.valid()) continue;
      Shape want = target->kind == VarKind::State ? g_.slots[target->slot].shape : target->kind == VarKind::Stream ? Shape::Full : shape(v);
      Shape got;
      if (!ir::try_broadcast(shape(v), want, got) || got != want) {
        d_.report(DiagKind::TypeMismatch, s.value->loc, fmt::format("`{}` holds {}, but this is {}", s.name, describe(want), describe(shape(v))));
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

  struct StateInit {
    bool ok = false;
    Shape shape = Shape::Full;
    ValueId value;  // invalid: the runtime initializes (zeros or identity)
    bool identity = false;
  };

  // `zeros` -> Full; `zeros(rows)`, `zeros(cols)`, `zeros(rows, rows)`, `zeros(cols, cols)`,
  // `eye(rows)`, `eye(cols)` -> set up by the runtime; an expression -> (its shape, value).
  // `select(c, zeros, x)` with a compile-time `c` picks a branch here, so a zero-init toggle
  // costs nothing; with a runtime `c` both branches are kept (zeros as 0).
  StateInit state_init(const Expr& e, const Scope& s) {
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
        d_.report(DiagKind::TypeMismatch, e.loc, "the two initializations have different shapes");
        return {};
      }
      return {true, sh, b_.add(Op::Select, sh, {c, av, bv}, 0, 0, e.loc), false};
    }
    if (e.kind == Expr::Kind::Call && (e.name == "zeros" || e.name == "eye")) {
      std::vector<std::string> dims;
      for (const auto& a : e.args)
        dims.push_back(a.value->kind == Expr::Kind::Name && a.name.empty() ? a.value->name : "?");
      bool eye = e.name == "eye";
      if (!eye && dims == std::vector<std::string>{"rows"}) return ok(Shape::Rows);
      if (!eye && dims == std::vector<std::string>{"cols"}) return ok(Shape::Cols);
      if (!eye && dims == std::vector<std::string>{"rows", "rows"}) return ok(Shape::Left);
      if (!eye && dims == std::vector<std::string>{"cols", "cols"}) return ok(Shape::Right);
      if (eye && dims == std::vector<std::string>{"rows"}) return ok(Shape::Left, true);
      if (eye && dims == std::vector<std::string>{"cols"}) return ok(Shape::Right, true);
      d_.report(DiagKind::TypeMismatch, e.loc,
                eye ? "`eye` takes `rows` or `cols`" : "`zeros` takes nothing, `rows`, `cols`, `rows, rows` or `cols, cols`",
                "`zeros` is full-sized; `zeros(rows)` holds one value per row; `zeros(rows, rows)` and `eye(rows)` are rows x rows");
      return {};
    }
    ValueId v = lower(e, s);
    if (!v.valid()) return {};
    if (shape(v) == Shape::Scalar) {
      d_.report(DiagKind::TypeMismatch, e.loc, "a state must be a tensor, but this is a scalar",
                "initialize it with `zeros`, `zeros(rows)`, `zeros(cols)` or a tensor expression such as `g`");
      return {};
    }
    return {true, shape(v), v, false};
  }
  void init_builtins() {
    builtins_.vars["t"] = {b_.add(Op::Step, Shape::Scalar, {}), VarKind::Builtin};
    builtins_.vars["rows"] = {b_.add(Op::Dim, Shape::Scalar, {}, 0), VarKind::Builtin};
    builtins_.vars["cols"] = {b_.add(Op::Dim, Shape::Scalar, {}, 1), VarKind::Builtin};
    builtins_.vars["numel"] = {b_.add(Op::Dim, Shape::Scalar, {}, 2), VarKind::Builtin};
    builtins_.vars["pi"] = {b_.constant(std::numbers::pi), VarKind::Builtin};
    builtins_.vars["true"] = {b_.constant(1), VarKind::Builtin};
    builtins_.vars["false"] = {b_.constant(0), VarKind::Builtin};
    // Newton-Schulz coefficient sets
    builtins_.vars["keller"] = {b_.constant(0), VarKind::Builtin};
    builtins_.vars["you"] = {b_.constant(1), VarKind::Builtin};
  }

  Scope builtins_;
  // The pipeline stage being lowered: errors inside a stdlib component caused by an argument
  // point at it, and it names what makes a route matrix-only.
  std::string stage_name_;
  SourceLoc stage_loc_;

 private:
  // Errors about arguments found inside a component of another file (the stdlib) are reported
  // at the stage that passed them, naming the place inside.
  void report_at_stage(DiagKind k, SourceLoc at, const std::string& msg, const std::string& help) {
    if (stage_loc_.valid() && at.valid() && at.file != stage_loc_.file) {
      auto [l, c] = at.file->line_col(at.offset);
      std::string path = at.file->path();
      auto slash = path.find_last_of('/');
      d_.report(k, stage_loc_, fmt::format("{} (in `{}`, {}:{}:{})", msg, stage_name_, slash == std::string::npos ? path : path.substr(slash + 1), l, c), help);
      return;
    }
    d_.report(k, at, msg, help);
  }
  void note_matrix(ValueId v) {
    if (g_.matrix_reason.empty() && !stage_name_.empty()) g_.matrix_reason = "`" + stage_name_ + "`";
    (void)v;
  }

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
        continue;
      }
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
      if (stage.role == Stage::Role::Rotate) {
        Lowerer::BasisFrame f;
        f.outer_g = st.g;
        L.component(*it->second, bound, caller, st, key, stage.loc, &f);
        f.loc = stage.loc;
        bases.push_back(std::move(f));
        continue;
      }
      L.component(*it->second, bound, caller, st, key, stage.loc);
    }
    for (const auto& f : bases)
      d.report(DiagKind::UnbalancedBasis, f.loc, fmt::format("`rotate({})` is never undone", f.decl ? f.decl->name : "?"),
               "add `-> unrotate` after the stages that run in this basis: the update must return to the parameter's basis");
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
  Lowerer::BasisFrame f;
  f.outer_g = grad;
  L.component(c, bound, caller, st, c.name, c.loc, &f);
  if (f.inverse) L.leave_basis(f, st);
}

}  // namespace opal
