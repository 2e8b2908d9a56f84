// The lowering's internals, shared by its three files: scopes, the builtin table's entry
// type, and the Lowerer, which turns expressions (lower_expr.cpp) and components with their
// statements (lower_component.cpp) into IR; ast_to_ir.cpp drives it per optimizer route.
//
// Scoping, innermost first: component locals and states, component parameters, the stream
// (u, g, w), builtin values (t, rows, cols, numel, pi, true, false, keller, you), then the
// hyperparameters of the optimizer whose route is being lowered.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <string>
#include <vector>

#include "compiler/exec/description.h"
#include "compiler/ir/ir.h"
#include "lang/program.h"

namespace opal::lowering {

using ir::Op;
using ir::Shape;
using ir::ValueId;

enum class VarKind { HParam, Param, State, Local, Stream, Builtin };

// A name whose declaration failed (reported once) keeps an invalid value: expressions that use
// it fail quietly instead of reporting an unknown name at every use.
struct Var {
  ValueId value;
  VarKind kind;
  int slot = -1;
};

// A chain of name -> Var maps.
struct Scope {
  std::map<std::string, Var> vars;
  std::map<std::string, SourceLoc> written;  // a delegated optimizer's hyperparameter: the argument that gave its value
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
  enum Rule { Elementwise, RowSum, RowMean, ColSum, ColMean, Sum, Mean, Norm, Rms, Matrix, GlobalSum } rule;
};

class Lowerer {
 public:
  Lowerer(const Program& p, Diagnostics& d, ir::Graph& g) : p_(p), d_(d), g_(g), b_(g) {}

  ir::Builder& builder() { return b_; }

  // ---- expressions ----
  ValueId lower(const Expr& e, const Scope& s, int depth = 0);

  // `a @ b`, with `transpose(x)` operands folded into the op's flags.
  ValueId matmul(const Expr& e, const Scope& s, int depth);

  // A compile-time constant argument (folded from constants), or a NotConstant error.
  std::optional<double> constant_arg(ValueId v, const Expr& at, const char* what);

  Shape shape(ValueId v) const { return g_.at(v).shape; }

  ValueId name(const Expr& e, const Scope& s);

  ValueId call(const Expr& e, const Scope& s, int depth);
  bool reads_global(ValueId v) const;

  ValueId matrix_builtin(const BuiltinFn& bf, const std::vector<ValueId>& a, const Expr& e);

  ValueId builtin(const BuiltinFn& bf, const std::vector<ValueId>& a, const Expr& e);

  static std::string describe(Shape s);

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
  void component(const ComponentDecl& c, const std::vector<const Expr*>& bound, const Scope& caller, Stream& st, const std::string& stage_key,
                 SourceLoc call_loc, BasisFrame* frame = nullptr);

  // The `inverse` block of a basis, at `unrotate`: maps u back; g returns to the outer basis.
  void leave_basis(const BasisFrame& f, Stream& st);

  // Lowers a statement list. Inside `every(N)` (guard valid), assignments are kept in a child
  // scope and merged back as select(guard, new, old), so later statements see the refreshed
  // value on refresh steps and the old one otherwise; the fusion pass runs the work that only
  // feeds such selects on refresh steps only.
  void statements(const std::vector<Stmt>& body, Scope& scope, ComponentCtx& ctx, const std::string& stage_key, ValueId guard,
                  bool in_inverse = false);

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
  StateInit state_init(const Expr& e, const Scope& s);
  void init_builtins();

  // A value a parameter with a range (`beta = 0.9 in [0, 1)`) takes, from `owner`'s call: a
  // constant is checked here (an error at `at`, where the value was written, or at the stage
  // when that is inside the stdlib), a hyperparameter taken as it is gets the range (the
  // runtime checks every value set); a value computed otherwise is not checked.
  void check_range(const Param& prm, const std::string& owner, ValueId v, SourceLoc at);
  // Where the value of argument `arg` was written: the argument, or for a delegated optimizer's
  // hyperparameter passed on as it is, the argument of the delegation.
  SourceLoc written_at(const Expr& arg, const Scope& s) const;
  // Gives the range to v when v is one of the optimizer's hyperparameters as it is.
  void attach_range(ValueId v, const Interval& r, const std::string& origin);

  Scope builtins_;
  // The ranges given to the optimizer's hyperparameters (ast_to_ir.cpp collects them); null
  // where a component is lowered alone.
  std::vector<exec::HParamRange>* ranges_ = nullptr;
  // Global sums of the optimizer being lowered, keyed by the call's place (one component used
  // by several routes sums over all their tensors), and its user hyperparameter count: sum k
  // is read as HParam(n_hparams + k) until the names are appended (ast_to_ir.cpp).
  struct GlobalKey {
    const SourceFile* file;
    uint32_t offset;
    std::string stage;  // "clip", "clip#2": each use of a component in a pipeline sums apart
    bool operator<(const GlobalKey& o) const { return std::tie(file, offset, stage) < std::tie(o.file, o.offset, o.stage); }
  };
  std::map<GlobalKey, int>* globals_ = nullptr;
  std::map<int, ValueId> global_puts_;  // this graph's share of each global sum
  size_t n_hparams_ = 0;
  std::string stage_key_;  // the stage being lowered
  // The pipeline stage being lowered: errors inside a stdlib component caused by an argument
  // point at it, and it names what makes a route matrix-only.
  std::string stage_name_;
  SourceLoc stage_loc_;

 private:
  // Errors about arguments found inside a component of another file (the stdlib) are reported
  // at the stage that passed them, naming the place inside.
  void report_at_stage(DiagKind k, SourceLoc at, const std::string& msg, const std::string& help);
  // The first matrix op of a route names the stage that needs a matrix.
  void note_matrix();

  const Program& p_;
  Diagnostics& d_;
  ir::Graph& g_;
  ir::Builder b_;
};

}  // namespace opal::lowering
