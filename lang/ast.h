// The AST of a spec file. Every node carries the SourceLoc of the text it came from.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lang/source.h"

namespace opal {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

// A call argument; `name` is empty for positional arguments.
struct Arg {
  std::string name;
  SourceLoc name_loc;
  ExprPtr value;
};

struct Expr {
  enum class Kind { Number, Name, Unary, Binary, Call };
  Kind kind;
  SourceLoc loc;
  double number = 0;      // Number
  std::string name;       // Name; callee of Call; operator spelling of Unary/Binary
  std::vector<Arg> args;  // Call arguments; the operands of Unary (1) and Binary (2)
};

// `in [0, 1)`, `in (0, inf)`, `in [1, inf) whole`: the values a component's or optimizer's
// parameter takes. Its ends are constant expressions (`inf` allowed); lang/resolve.cpp
// evaluates and checks them.
struct ParamRange {
  ExprPtr lo, hi;
  bool lo_open = false, hi_open = false;
  bool whole = false;  // whole numbers only (a count of steps)
  SourceLoc loc;       // from `in` to the closing bracket
};

struct Param {
  std::string name;
  SourceLoc loc;
  ExprPtr default_value;              // null: required
  std::shared_ptr<ParamRange> range;  // null: any value
};

// `state v = init` (or `state v: bf16 = init`, `state v: q8(256) = init`: its storage), `let x = e`, `x = e`,
// `every(N) { ... }` (value = N; name "every"), `when(c) { ... }` (kind Every, value = c,
// name "when"), `inverse { ... }`
struct Stmt {
  enum class Kind { State, Let, Assign, Every, Inverse };
  Kind kind;
  SourceLoc loc;
  std::string name;
  SourceLoc name_loc;
  ExprPtr value;
  std::vector<Stmt> body;  // Every, Inverse
  std::string storage;     // State: "f32", "bf16", "q8" as written; "" when not given (f32)
  SourceLoc storage_loc;
  int storage_block = 0;  // q8: its block size (`q8(128)`; `q8` is q8::kDefaultBlock)
};

struct ComponentDecl {
  std::string name;
  SourceLoc loc;
  std::vector<Param> params;
  std::vector<Stmt> body;
};

struct FnDecl {
  std::string name;
  SourceLoc loc;
  std::vector<Param> params;
  ExprPtr body;
};

// One stage of a pipeline: a component (or, alone in its route, an optimizer) with arguments.
// `rotate(B(...))` enters the basis of component B (one with an `inverse` block); `unrotate`
// leaves the innermost basis entered.
struct Stage {
  enum class Role { Plain, Rotate, Unrotate };
  std::string name;
  SourceLoc loc;
  std::vector<Arg> args;
  Role role = Role::Plain;
  SourceLoc text;  // the whole stage as written, arguments included
};

// A route's `state(...)`: `storage {, option}`, e.g. `q8(128)`, `bf16, stochastic`, `f32, master`.
// The same text is an optimizer's argument (SpecRef::state, `opal run --state`, opal.torch's
// `state=`): it then stores the routes whose delegation path says none.
struct StateStorage {
  std::string storage;  // "f32", "bf16", "q8"; "" when not given
  SourceLoc loc;
  int block = 0;            // q8: its block size (`q8(128)`; `q8` is q8::kDefaultBlock)
  bool stochastic = false;  // `bf16, stochastic`: its bf16 stores round stochastically, whatever the runtime says
  bool master = false;      // `..., master`: each 16-bit parameter keeps an f32 master copy in its state
  bool given() const { return !storage.empty(); }
};

// A selector followed by a pipeline. The selector is `where(COND):` (COND an expression of the
// parameter's rank, rows, cols and numel), or a comma list of terms any of which takes a
// parameter: the classes `matrix`, `vector`, `other`, quoted name patterns ("embed*"), and the
// roles `embedding`, `head`, `norm`, `bias`, `conv` (what the host says the parameter is).
// The role names a selector may use (exec::ParamRole's, which a test keeps equal).
inline constexpr const char* kRouteRoles[] = {"embedding", "head", "norm", "bias", "conv"};
struct Route {
  enum class Kind { Matrix, Vector, Other, Pattern, Where, Role };
  struct Term {
    Kind kind;
    std::string text;           // Pattern: the pattern; Role: the role's name
    std::string label() const;  // "matrix", "\"embed*\"", "head"
  };
  std::vector<Term> terms;
  SourceLoc loc;
  ExprPtr condition;  // Where
  // How a tensor of rank >= 2 is seen as matrices (exec::View): dim 0 by the rest (`first`, the
  // default: torch's (out, in * kh * kw)), the leading dims by the last (`last`), one matrix per
  // index of the leading dims (`batch`), or one per index of the other dims, each the two
  // largest axes (`largest`).
  enum class View { Default, First, Last, Batch, Largest } view = View::Default;
  // How the route's state is stored (`state(bf16)`, `state(q8)` after the selector): every slot
  // of its pipeline that matrix work does not read (q8: every parameter-shaped one); not given:
  // each `state` line decides.
  StateStorage state;
  std::vector<Stage> pipeline;
  bool has(Kind k) const {
    for (const Term& t : terms)
      if (t.kind == k) return true;
    return false;
  }
  std::string label() const;  // "matrix", "other", "\"embed*\"", "embedding,head,other"
};

struct OptimizerDecl {
  std::string name;
  SourceLoc loc;
  std::vector<Param> params;
  std::vector<Route> routes;
};

// The argument a delegation (a route whose only stage `call` names optimizer `inner`) binds to
// inner's parameter k: the argument of its name, else the one at its position (the last such);
// null when the call gives none and the parameter's default applies.
inline const Expr* bound_argument(const OptimizerDecl& inner, const Stage& call, size_t k) {
  const Expr* bound = nullptr;
  for (size_t a = 0; a < call.args.size(); ++a)
    if (call.args[a].name == inner.params[k].name || (call.args[a].name.empty() && a == k)) bound = call.args[a].value.get();
  return bound;
}

// A grid of optimizers (lang/grid.h expands it): axes of named alternatives substituted into
// template routes, with per-cell overrides, hyperparameter sweeps and seeds.
//
//   grid whitening(lr = 1e-3, b1 = 0.9) {
//     norm  = { sign: sign, variance(lr = 3e-3): adapt(b2) }
//     basis = { elementwise: norm, newton_schulz: ns -> norm }
//     matrix: momentum(b1) -> basis -> scale(lr)
//     cell(newton_schulz, sign): momentum(b1) -> ns -> scale(lr)
//     cell(eigenbasis, factored): absent
//     sweep lr = around(10, per_decade = 8)
//     seeds = 3
//     baseline(elementwise, variance)
//   }
struct GridAlt {
  std::string name;
  SourceLoc loc;
  std::vector<Param> params;  // hyperparameter defaults this alternative sets
  std::vector<Stage> pipeline;
};

struct GridAxis {
  std::string name;
  SourceLoc loc;
  std::vector<GridAlt> alts;
};

struct GridCell {
  std::vector<std::string> coords;  // one alternative per axis, in axis order
  std::vector<SourceLoc> coord_locs;
  SourceLoc loc;
  std::vector<Param> params;
  std::string note;  // shown as a footnote, e.g. "not in the reference code"
  bool absent = false;
  bool has_pipeline = false;
  std::vector<Stage> pipeline;
};

struct GridSweep {
  std::string hparam;
  SourceLoc loc;
  ExprPtr value;  // logspace(lo, hi, per_decade = N) | around(factor, per_decade = N) | values(a, b, ...)
};

struct GridDecl {
  std::string name;
  SourceLoc loc;
  std::vector<Param> params;
  std::vector<GridAxis> axes;
  std::vector<Route> routes;  // templates: a stage named after an axis takes its alternative
  std::vector<GridCell> cells;
  std::vector<GridSweep> sweeps;
  int seeds = 0;  // 0: not set
  SourceLoc seeds_loc;
  std::vector<std::string> baseline;
  SourceLoc baseline_loc;
};

struct Module {
  const SourceFile* file = nullptr;
  std::vector<ComponentDecl> components;
  std::vector<FnDecl> fns;
  std::vector<OptimizerDecl> optimizers;
  std::vector<GridDecl> grids;
};

// S-expression dump used by `opal ast` and the golden tests.
std::string dump_ast(const Module& m);
std::string dump_expr(const Expr& e);

}  // namespace opal
