// Lowering of expressions: names, operators (`@` included), fns and builtins.
#include <limits>
#include <cctype>
#include <cmath>
#include <iterator>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/ir/attrs.h"
#include "compiler/lower/lowerer.h"
#include "support/check.h"
#include "compiler/passes/fold_constants.h"

namespace opal::lowering {

namespace {

// Builtins with rules of their own; the elementwise ones come from the op registry (ops.def).
constexpr BuiltinFn kRuleBuiltins[] = {
    {"row_sum", 1, Op::RowSum, BuiltinFn::RowSum},
    {"row_mean", 1, Op::RowSum, BuiltinFn::RowMean},
    {"col_sum", 1, Op::ColSum, BuiltinFn::ColSum},
    {"col_mean", 1, Op::ColSum, BuiltinFn::ColMean},
    {"sum", 1, Op::Sum, BuiltinFn::Sum},
    {"mean", 1, Op::Sum, BuiltinFn::Mean},
    {"norm", 1, Op::Sum, BuiltinFn::Norm},
    {"rms", 1, Op::Sum, BuiltinFn::Rms},
    {"global_sum", 1, Op::GlobalPut, BuiltinFn::GlobalSum},
    // matrix work (run by the backend's linear algebra between fused kernels)
    {"eigh", 1, Op::Eigh, BuiltinFn::Matrix},
    {"eigh_desc", 1, Op::Eigh, BuiltinFn::Matrix},
    {"inv_root", 3, Op::InvRoot, BuiltinFn::Matrix},
    {"inv_root_damped", 3, Op::InvRoot, BuiltinFn::Matrix},
    {"qr", 1, Op::Qr, BuiltinFn::Matrix},
    {"diag", 1, Op::Diag, BuiltinFn::Matrix},
    {"argsort_desc", 1, Op::Argsort, BuiltinFn::Matrix},
    {"permute_rows", 2, Op::PermuteRows, BuiltinFn::Matrix},
    {"permute_cols", 2, Op::PermuteCols, BuiltinFn::Matrix},
    {"newton_schulz", 5, Op::NewtonSchulz, BuiltinFn::Matrix},
    {"eye", 1, Op::Eye, BuiltinFn::Matrix},
    {"transpose", 1, Op::MatMul, BuiltinFn::Matrix},
    {"tri_solve_left", 2, Op::TriSolveLeft, BuiltinFn::Matrix},
    {"tri_solve_right", 2, Op::TriSolveRight, BuiltinFn::Matrix},
    {"nlb", 1, Op::NormLowerBound, BuiltinFn::Matrix},
    {"triu", 1, Op::Triu, BuiltinFn::Matrix},
    {"randn", 0, Op::RandN, BuiltinFn::Matrix},
};

// Every builtin: the registry's elementwise functions (ops.def order), then kRuleBuiltins.
const std::vector<BuiltinFn>& builtins() {
  static const std::vector<BuiltinFn> all = [] {
    std::vector<BuiltinFn> v;
    for (int i = 0; i <= int(Op::ParamWrite); ++i) {
      const Op op = Op(i);
      const char* sp = ir::op_spelling(op);
      if (ir::is_elementwise(op) && std::isalpha(static_cast<unsigned char>(sp[0]))) v.push_back({sp, ir::arity(op), op, BuiltinFn::Elementwise});
    }
    v.insert(v.end(), std::begin(kRuleBuiltins), std::end(kRuleBuiltins));
    return v;
  }();
  return all;
}

const BuiltinFn* find_builtin(const std::string& n) {
  for (const auto& b : builtins())
    if (n == b.name) return &b;
  return nullptr;
}

}  // namespace

// ---- expressions ----
ValueId Lowerer::lower(const Expr& e, const Scope& s, int depth) {
  switch (e.kind) {
    case Expr::Kind::Number: return b_.constant(e.number, e.loc);
    case Expr::Kind::Name: return name(e, s);
    case Expr::Kind::Unary: {
      ValueId a = lower(*e.args[0].value, s, depth);
      if (!a.valid()) return a;
      Op op;
      OPAL_CHECK(ir::op_by_spelling(e.name, 1, op), "no unary op `%s`", e.name.c_str());
      return b_.add(op, shape(a), {a}, 0, 0, e.loc);
    }
    case Expr::Kind::Binary: {
      if (e.name == "@") return matmul(e, s, depth);
      ValueId a = lower(*e.args[0].value, s, depth), b = lower(*e.args[1].value, s, depth);
      if (!a.valid() || !b.valid()) return {};
      Shape sh;
      if (!ir::try_broadcast(shape(a), shape(b), sh)) {
        d_.report(DiagKind::ShapeMismatch, e.loc, fmt::format("`{}` combines {} with {}", e.name, describe(shape(a)), describe(shape(b))),
                  "square matrices combine elementwise only with their own kind and scalars; use `@` to multiply");
        return {};
      }
      if (e.name == "/") {
        if (auto c = passes::constant_value(g_, b); c && *c == 0) {
          report_at_stage(DiagKind::DivisionByZero, e.args[1].value->loc, "division by zero: the divisor is the constant 0",
                          "divide by a non-zero value; a divisor that may reach zero at run time needs an eps, as in `x / (y + eps)`");
        }
      }
      Op op = Op::Pow;  // `^`; the other operators are the registry's spellings
      OPAL_CHECK(e.name == "^" || ir::op_by_spelling(e.name, 2, op), "no binary op `%s`", e.name.c_str());
      return b_.add(op, sh, {a, b}, 0, 0, e.loc);
    }
    case Expr::Kind::Call: return call(e, s, depth);
  }
  return {};
}

// `a @ b`, with `transpose(x)` operands folded into the op's flags.
ValueId Lowerer::matmul(const Expr& e, const Scope& s, int depth) {
  ir::MatMulAttrs mm;
  ValueId v[2];
  for (int k = 0; k < 2; ++k) {
    const Expr& x = *e.args[k].value;
    bool t = x.kind == Expr::Kind::Call && x.name == "transpose" && x.args.size() == 1;
    v[k] = lower(t ? *x.args[0].value : x, s, depth);
    if (!v[k].valid()) return {};
    if (t) (k == 0 ? mm.ta : mm.tb) = true;
  }
  Shape in[2] = {shape(v[0]), shape(v[1])}, out;
  if (!ir::library_shape(Op::MatMul, ir::encode(mm), in, 2, out)) {
    d_.report(
        DiagKind::MatmulMismatch, e.loc,
        fmt::format("cannot multiply {}{} by {}{}", describe(in[0]), mm.ta ? " (transposed)" : "", describe(in[1]), mm.tb ? " (transposed)" : ""),
        "`@` multiplies matrices whose inner sizes agree: rows x cols by cols x cols, rows x rows by rows x cols, and their "
        "transposes; the result must be rows x cols or square");
    return {};
  }
  note_matrix();
  return b_.add(Op::MatMul, out, {v[0], v[1]}, ir::encode(mm), 0, e.loc);
}

// A compile-time constant argument (folded from constants), or a NotConstant error.
std::optional<double> Lowerer::constant_arg(ValueId v, const Expr& at, const char* what) {
  if (auto c = passes::constant_value(g_, v)) return c;
  report_at_stage(DiagKind::NotConstant, at.loc, fmt::format("{} must be known at compile time", what),
                  "it decides what is compiled (how many kernels, which algorithm), and hyperparameters change at run time without "
                  "recompiling: pass a number or a component parameter with a numeric default");
  return std::nullopt;
}

ValueId Lowerer::name(const Expr& e, const Scope& s) {
  if (const Var* v = s.find(e.name)) return v->value;
  if (e.name == "inf") return b_.constant(std::numeric_limits<double>::infinity(), e.loc);  // unless shadowed
  if (e.name == "zeros") {
    d_.report(DiagKind::MisplacedBuiltin, e.loc, "`zeros` only initializes a state", "write `state m = zeros`");
    return {};
  }
  std::string m = closest_match(e.name, s.names());
  d_.report(
      DiagKind::UnknownName, e.loc, fmt::format("unknown name `{}`", e.name),
      m.empty() ? "names in scope are parameters, states, `let` bindings, u, g, w, t, rows, cols, numel" : fmt::format("did you mean `{}`?", m));
  return {};
}

// Whether a value depends on a global sum (an HParam past the optimizer's hyperparameters).
bool Lowerer::reads_global(ValueId v) const {
  std::vector<ValueId> stack{v};
  std::vector<char> seen(g_.nodes.size(), 0);
  while (!stack.empty()) {
    ValueId x = stack.back();
    stack.pop_back();
    if (seen[x.v]++) continue;
    const ir::Node& n = g_.at(x);
    if (n.op == Op::HParam && size_t(n.iattr) >= n_hparams_) return true;
    for (int k = 0; k < n.n_operands; ++k) stack.push_back(n.operands[k]);
  }
  return false;
}

ValueId Lowerer::call(const Expr& e, const Scope& s, int depth) {
  if (const BuiltinFn* bf = find_builtin(e.name)) {
    if ((int)e.args.size() != bf->arity) {
      d_.report(DiagKind::WrongArity, e.loc,
                fmt::format("`{}` takes {} argument{}, got {}", e.name, bf->arity, bf->arity == 1 ? "" : "s", e.args.size()));
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
  const FnDecl* fn = p_.find_fn(e.name, e.loc);
  if (!fn) {
    std::vector<std::string> cands;
    for (const auto& b : builtins()) cands.push_back(b.name);
    for (const auto& n : p_.fn_names(e.loc)) cands.push_back(n);
    std::string m = closest_match(e.name, cands);
    if (p_.find_component(e.name, e.loc))
      d_.report(DiagKind::UnknownFunction, e.loc, fmt::format("`{}` is a component, not a function", e.name),
                "components are pipeline stages: `a -> " + e.name + "(...) -> b`");
    else {
      std::vector<std::string> elementwise;  // the list a user most likely wants, from the registry
      for (const auto& b : builtins())
        if (b.rule != BuiltinFn::Matrix) elementwise.push_back(b.name);
      d_.report(DiagKind::UnknownFunction, e.loc, fmt::format("unknown function `{}`", e.name),
                m.empty() ? fmt::format("builtins: {}", fmt::join(elementwise, " ")) : fmt::format("did you mean `{}`?", m));
    }
    return {};
  }
  const FnDecl& f = *fn;
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

ValueId Lowerer::matrix_builtin(const BuiltinFn& bf, const std::vector<ValueId>& a, const Expr& e) {
  const std::string& n = e.name;
  auto arg = [&](int k) -> const Expr& { return *e.args[k].value; };
  if (n == "transpose") {
    d_.report(DiagKind::MisplacedBuiltin, e.loc, "`transpose(x)` is only allowed as an operand of `@`",
              "write `transpose(a) @ b` or `a @ transpose(b)`; a transposed rows x cols matrix has no shape class of its own");
    return {};
  }
  int64_t iattr = 0;
  double fattr = 0;
  if (n == "eigh_desc" || n == "argsort_desc") iattr = ir::encode(ir::OrderAttrs{true});
  if (n == "inv_root" || n == "inv_root_damped") {
    auto p = constant_arg(a[1], arg(1), "the root of `inv_root`");
    if (!p) return {};
    if (!ir::is_uniform(g_, a[2])) {
      report_at_stage(DiagKind::NotConstant, arg(2).loc, "the epsilon of `inv_root` must be a scalar of hyperparameters and constants",
                      "it is applied on the host before the eigendecomposition; it cannot depend on tensor values");
      return {};
    }
    if (*p < 1 || *p > 64 || *p != std::floor(*p)) {
      d_.report(DiagKind::ArgumentOutOfRange, arg(1).loc, "the root of `inv_root` must be a whole number from 1 to 64");
      return {};
    }
    iattr = ir::encode(ir::InvRootAttrs{int(*p), n == "inv_root_damped"});
    Shape in2[2] = {shape(a[0]), Shape::Scalar};
    Shape out;
    if (!ir::library_shape(Op::InvRoot, iattr, in2, 2, out)) {
      d_.report(DiagKind::WrongArgumentShape, arg(0).loc, fmt::format("`{}` takes a square matrix, but this is {}", n, describe(shape(a[0]))));
      return {};
    }
    note_matrix();
    return b_.add(Op::InvRoot, out, {a[0], a[2]}, iattr, 0, e.loc);
  }
  if (n == "newton_schulz") {
    auto steps = constant_arg(a[1], arg(1), "the step count of `newton_schulz`");
    auto coeffs = constant_arg(a[2], arg(2), "the coefficient set of `newton_schulz`");
    auto bf = constant_arg(a[3], arg(3), "the bf16 flag of `newton_schulz`");
    if (!steps || !coeffs || !bf) return {};
    if (shape(a[4]) != Shape::Scalar) {  // eps may be a hyperparameter: it is a runtime scalar
      d_.report(DiagKind::ScalarExpected, arg(4).loc,
                fmt::format("the epsilon of `newton_schulz` must be a scalar, but this is {}", describe(shape(a[4]))));
      return {};
    }
    if (*steps < 1 || *steps > 100 || *steps != std::floor(*steps)) {
      d_.report(DiagKind::ArgumentOutOfRange, arg(1).loc, "Newton-Schulz takes 1 to 100 steps");
      return {};
    }
    if (*coeffs != 0 && *coeffs != 1) {
      d_.report(DiagKind::ArgumentOutOfRange, arg(2).loc, "the coefficient set is `keller` or `you`");
      return {};
    }
    iattr = ir::encode(ir::NewtonSchulzAttrs{int(*steps), int(*coeffs), *bf != 0});
  }
  if (n == "randn") return b_.add(Op::RandN, Shape::Full, {}, 0, 0, e.loc);
  if (n == "triu") {
    if (!ir::is_square(shape(a[0]))) {
      d_.report(DiagKind::WrongArgumentShape, arg(0).loc, fmt::format("`triu` takes a square matrix, but this is {}", describe(shape(a[0]))));
      return {};
    }
    return b_.add(Op::Triu, shape(a[0]), {a[0]}, 0, 0, e.loc);
  }
  if (n == "eye") {
    const Expr& x = arg(0);
    if (x.kind == Expr::Kind::Name && (x.name == "rows" || x.name == "cols"))
      return b_.add(Op::Eye, x.name == "rows" ? Shape::Left : Shape::Right, {}, 0, 0, e.loc);
    d_.report(DiagKind::WrongArgumentShape, x.loc, "`eye` takes `rows` or `cols`", "`eye(rows)` is the rows x rows identity");
    return {};
  }
  Shape in[1] = {shape(a[0])}, out;
  const bool ns = bf.op == Op::NewtonSchulz;  // (x, eps)
  const ValueId second = ns ? a[4] : a.size() > 1 ? a[1] : ValueId{};
  Shape in2[2] = {shape(a[0]), second.valid() ? shape(second) : Shape::Scalar};
  bool two = ns || bf.op == Op::PermuteRows || bf.op == Op::PermuteCols || bf.op == Op::TriSolveLeft || bf.op == Op::TriSolveRight;
  if (!ir::library_shape(bf.op, iattr, two ? in2 : in, two ? 2 : 1, out)) {
    static const std::map<std::string, std::string> need = {
        {"eigh", "a square matrix"},
        {"eigh_desc", "a square matrix"},
        {"inv_root", "a square matrix"},
        {"inv_root_damped", "a square matrix"},
        {"qr", "a square matrix"},
        {"diag", "a rows x rows or cols x cols matrix"},
        {"argsort_desc", "one value per row or per column"},
        {"permute_rows", "a matrix and indices of its rows"},
        {"permute_cols", "a matrix and indices of its columns"},
        {"newton_schulz", "a full rows x cols tensor"},
        {"tri_solve_left", "an upper-triangular square and a matrix with as many rows"},
        {"tri_solve_right", "a matrix and an upper-triangular square with as many rows as it has columns"},
        {"nlb", "a square matrix"}};
    d_.report(DiagKind::WrongArgumentShape, arg(0).loc, fmt::format("`{}` takes {}, but this is {}", n, need.at(n), describe(in[0])));
    return {};
  }
  note_matrix();
  if (two) return b_.add(bf.op, out, {a[0], second}, iattr, fattr, e.loc);
  return b_.add(bf.op, out, {a[0]}, iattr, fattr, e.loc);
}

ValueId Lowerer::builtin(const BuiltinFn& bf, const std::vector<ValueId>& a, const Expr& e) {
  auto dim = [&](ir::DimKind k) { return b_.add(Op::Dim, Shape::Scalar, {}, int64_t(k)); };
  auto need_full = [&]() {
    if (shape(a[0]) == Shape::Full) return true;
    d_.report(DiagKind::WrongArgumentShape, e.args[0].value->loc,
              fmt::format("`{}` reduces a full tensor, but this is {}", bf.name, describe(shape(a[0]))));
    return false;
  };
  auto need_tensor = [&]() {
    if (shape(a[0]) != Shape::Scalar) return true;
    d_.report(DiagKind::WrongArgumentShape, e.args[0].value->loc, fmt::format("`{}` reduces a tensor, but this is a scalar", bf.name));
    return false;
  };
  auto count = [&](Shape s) {
    switch (s) {
      case Shape::Rows: return dim(ir::DimKind::Rows);
      case Shape::Cols: return dim(ir::DimKind::Cols);
      case Shape::Left: return b_.add(Op::Mul, Shape::Scalar, {dim(ir::DimKind::Rows), dim(ir::DimKind::Rows)});
      case Shape::Right: return b_.add(Op::Mul, Shape::Scalar, {dim(ir::DimKind::Cols), dim(ir::DimKind::Cols)});
      case Shape::Small: {
        ValueId k = b_.add(Op::Min, Shape::Scalar, {dim(ir::DimKind::Rows), dim(ir::DimKind::Cols)});
        return b_.add(Op::Mul, Shape::Scalar, {k, k});
      }
      default: return dim(ir::DimKind::Numel);
    }
  };
  switch (bf.rule) {
    case BuiltinFn::Matrix: return matrix_builtin(bf, a, e);
    case BuiltinFn::Elementwise: {
      Shape sh = Shape::Scalar;
      for (ValueId v : a)
        if (!ir::try_broadcast(sh, shape(v), sh)) {
          d_.report(DiagKind::ShapeMismatch, e.loc, fmt::format("the arguments of `{}` do not combine elementwise", bf.name),
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
      return bf.rule == BuiltinFn::RowSum ? r : b_.add(Op::Div, Shape::Rows, {r, dim(ir::DimKind::Cols)}, 0, 0, e.loc);
    }
    case BuiltinFn::ColSum:
    case BuiltinFn::ColMean: {
      if (!need_full()) return {};
      ValueId r = b_.add(Op::ColSum, Shape::Cols, {a[0]}, 0, 0, e.loc);
      return bf.rule == BuiltinFn::ColSum ? r : b_.add(Op::Div, Shape::Cols, {r, dim(ir::DimKind::Rows)}, 0, 0, e.loc);
    }
    case BuiltinFn::GlobalSum: {
      // this tensor's share goes out; the sum over every tensor comes back as a uniform
      if (shape(a[0]) != Shape::Scalar) {
        d_.report(DiagKind::WrongArgumentShape, e.args[0].value->loc,
                  fmt::format("`global_sum` adds one scalar per tensor, but this is {}", describe(shape(a[0]))),
                  "reduce the tensor first: `global_sum(sum(g * g))` is the squared global gradient norm");
        return {};
      }
      if (!globals_) {
        d_.report(DiagKind::MisplacedBuiltin, e.loc, "`global_sum` needs an optimizer step over many tensors");
        return {};
      }
      if (reads_global(a[0])) {
        d_.report(DiagKind::MisplacedBuiltin, e.args[0].value->loc, "a `global_sum` of a value that depends on another `global_sum`",
                  "a step has two phases: every tensor's share is summed once, between them");
        return {};
      }
      GlobalKey key{e.loc.file, e.loc.offset, stage_key_};
      auto it = globals_->find(key);
      const int k = it != globals_->end() ? it->second : int(globals_->size());
      if (it == globals_->end()) (*globals_)[key] = k;
      if (auto put = global_puts_.find(k); put != global_puts_.end() && put->second != a[0]) {
        d_.report(DiagKind::MisplacedBuiltin, e.loc, "this `global_sum` is reached twice in one stage with different values",
                  "call it once and bind the result with `let`");
        return {};
      }
      if (!global_puts_.count(k)) b_.add(Op::GlobalPut, Shape::Scalar, {a[0]}, k, 0, e.loc);
      global_puts_[k] = a[0];
      return b_.add(Op::HParam, Shape::Scalar, {}, int64_t(n_hparams_ + k), 0, e.loc);
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

std::string Lowerer::describe(Shape s) {
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

// Errors about arguments found inside a component of another file (the stdlib) are reported
// at the stage that passed them, naming the place inside.
void Lowerer::report_at_stage(DiagKind k, SourceLoc at, const std::string& msg, const std::string& help) {
  if (stage_loc_.valid() && at.valid() && at.file != stage_loc_.file) {
    d_.report(k, stage_loc_, fmt::format("{} (in `{}`, {})", msg, stage_name_, at.short_str()), help);
    return;
  }
  d_.report(k, at, msg, help);
}

// The first matrix op of a route names the stage that needs a matrix.
void Lowerer::note_matrix() {
  if (g_.matrix_reason.empty() && !stage_name_.empty()) g_.matrix_reason = "`" + stage_name_ + "`";
}

}  // namespace opal::lowering
