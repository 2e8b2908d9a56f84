// The IR: a typed SSA graph per parameter class. One node struct, one op enum (ops.def),
// nodes interned by the Builder so that structurally equal values share an id (CSE for free).
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "lang/source.h"

namespace opal::ir {

enum class Op : uint8_t {
#define OPAL_OP(name, cat, arity, str, spelling, c_double, c_float, host) name,
#include "compiler/ir/ops.def"
#undef OPAL_OP
};

enum class Category : uint8_t { Leaf, Unary, Binary, Ternary, Reduce, Library, Macro, Region, Effect };

Category category(Op op);
int arity(Op op);
const char* op_name(Op op);
bool is_elementwise(Op op);  // Unary, Binary or Ternary
// The registry's other columns (ops.def): how a spec spells the op ("" when lowering has a
// rule of its own), and the emitter's C expression on doubles and on floats ("" likewise).
const char* op_spelling(Op op);
const char* op_c_double(Op op);
const char* op_c_float(Op op);
// The elementwise op a spec writes as `spelling` with `arity` operands (a builtin function or
// an operator); false when there is none.
bool op_by_spelling(const std::string& spelling, int arity, Op& out);
// Every op's spelling that is a function name (for "did you mean"), in ops.def order.
std::vector<std::string> function_spellings();

// Shape class of a value, symbolic in the parameter's size m x n: a per-parameter scalar, one
// value per row [m], one per column [n], the full [m,n], or a square matrix: left [m,m] (a
// Kronecker factor acting on rows), right [n,n], small [k,k] with k = min(m,n) (Newton-Schulz
// Gram matrices). Vectors are 1 x n parameters.
enum class Shape : uint8_t { Scalar, Rows, Cols, Full, Left, Right, Small };
const char* shape_name(Shape s);
bool is_square(Shape s);  // left, right or small
// numpy-style broadcasting: Scalar with X -> X, Rows with Cols -> Full; squares only with
// themselves and scalars. Returns false where shapes do not combine.
bool try_broadcast(Shape a, Shape b, Shape& out);
Shape broadcast(Shape a, Shape b);  // try_broadcast that must succeed

struct ValueId {
  uint32_t v = UINT32_MAX;
  bool valid() const { return v != UINT32_MAX; }
  bool operator==(const ValueId& o) const { return v == o.v; }
  bool operator!=(const ValueId& o) const { return v != o.v; }
  bool operator<(const ValueId& o) const { return v < o.v; }
};

struct Node {
  Op op;
  Shape shape;
  uint8_t n_operands = 0;
  ValueId operands[3];
  int64_t iattr = 0;
  double fattr = 0;
  SourceLoc loc;
};

// A persistent per-parameter buffer the pipeline reads and writes.
struct Slot {
  std::string name;  // "<stage>.<state>", e.g. "adapt.v"
  Shape shape;
  SourceLoc loc;
  bool identity = false;    // starts as the identity (`state Q = eye(rows)`), else zeros
  bool bf16 = false;        // stored as bf16 (`state m: bf16 = zeros`): loads widen, stores round
  bool stochastic = false;  // bf16 stores always round stochastically (a route's `state(bf16, stochastic)`)
  // Stored as blockwise 8-bit codes (`state m: q8(256)`): the block size, else 0. Its scales are
  // slot `scales`, added after every pass (no op names it: the kernels that load or store the
  // codes address it), whose `scales_of` names this slot back.
  int q8 = 0;
  int scales = -1;
  int scales_of = -1;
};

// A value worth naming when it goes non-finite: the gradient, each pipeline stage's output u
// (in pipeline order) and the new parameter. Checked kernels (EmitInput::check_finite) set bit
// i of a per-tensor flag word when probe i holds a NaN or an infinity; the lowest bit set names
// where a non-finite value first appeared.
struct Probe {
  ValueId value;
  std::string stage;  // "gradient", a stage key ("momentum", "adapt#2"), "unrotate", "new parameter"
};
inline constexpr size_t kMaxProbes = 32;

struct Graph {
  std::string name;                  // e.g. "adamw.matrix"
  std::vector<std::string> hparams;  // the optimizer's hyperparameters, by HParam index
  std::vector<Slot> slots;
  std::vector<Node> nodes;       // operands always precede their users
  std::vector<ValueId> effects;  // roots, in program order
  std::vector<Probe> probes;     // in pipeline order; passes keep those still live
  // Global sums (`global_sum(x)`): the last n_globals hparams name them; HParam(first_global() + k)
  // reads sum k, which the runtime adds up over every tensor's GlobalPut(x) of k in between
  // the two phases of a step.
  uint32_t n_globals = 0;
  int64_t first_global() const { return int64_t(hparams.size()) - n_globals; }
  bool matrix_only = false;   // uses row/column structure: vectors may not use it
  std::string matrix_reason;  // the op that makes it matrix-only, for errors

  const Node& at(ValueId id) const { return nodes[id.v]; }
};

// Builds a Graph, interning every non-effect node on (op, shape, operands, attributes).
class Builder {
 public:
  explicit Builder(Graph& g);
  ValueId add(Op op, Shape shape, std::initializer_list<ValueId> operands, int64_t iattr = 0, double fattr = 0, SourceLoc loc = {});
  ValueId add_node(const Node& n);  // interns a prepared node (operands must already be in this graph)
  ValueId constant(double v, SourceLoc loc = {}) { return add(Op::Const, Shape::Scalar, {}, 0, v, loc); }
  Graph& graph() { return g_; }

 private:
  struct Key {
    Op op;
    Shape shape;
    uint8_t n;
    uint32_t a, b, c;
    int64_t i;
    uint64_t f;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  Graph& g_;
  std::unordered_map<Key, ValueId, KeyHash> interned_;
};

// Result shape of a Library or Macro op from its operands' shapes; false when they do not fit
// (the single source of these rules for the lowering and the verifier).
bool library_shape(Op op, int64_t iattr, const Shape* operands, int n, Shape& out);

// A scalar the host can evaluate before launching anything: built from constants,
// hyperparameters, the step and the sizes only (guards and library-call scalars must be).
bool is_uniform(const Graph& g, ValueId v);

// Sets g.matrix_only (and matrix_reason) from the shapes and ops the graph uses.
void infer_matrix_only(Graph& g);

// The textual form: `%7 = mul %3, %5 : full   @adamw.opal:4:12` (without `   @...` when not
// `locations`: what the graph computes, wherever its source text sits).
std::string print(const Graph& g, bool locations = true);
std::string print_node(const Graph& g, ValueId id, bool locations = true);

// Checks the graph's invariants (operand order, arities, shapes, slots, effects). Returns an
// empty string when valid, else a description of the first violation.
std::string verify(const Graph& g);

}  // namespace opal::ir
