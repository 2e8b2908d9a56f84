// Op table, shapes and the interning Builder.
#include "compiler/ir/attrs.h"
#include "compiler/ir/ir.h"

#include <cctype>
#include <cstring>
#include <iterator>

#include "support/check.h"

namespace opal::ir {

namespace {
struct OpInfo {
  Category cat;
  int arity;
  const char* name;
  const char* spelling;
  const char* c_double;
  const char* c_float;
};
constexpr OpInfo kOps[] = {
#define OPAL_OP(name, cat, arity, str, spelling, c_double, c_float, host) {Category::cat, arity, str, spelling, c_double, c_float},
#include "compiler/ir/ops.def"
#undef OPAL_OP
};
}  // namespace

Category category(Op op) { return kOps[static_cast<int>(op)].cat; }
int arity(Op op) { return kOps[static_cast<int>(op)].arity; }
const char* op_name(Op op) { return kOps[static_cast<int>(op)].name; }
const char* op_spelling(Op op) { return kOps[static_cast<int>(op)].spelling; }
const char* op_c_double(Op op) { return kOps[static_cast<int>(op)].c_double; }
const char* op_c_float(Op op) { return kOps[static_cast<int>(op)].c_float; }

bool op_by_spelling(const std::string& spelling, int arity, Op& out) {
  for (size_t i = 0; i < std::size(kOps); ++i)
    if (kOps[i].arity == arity && spelling == kOps[i].spelling && is_elementwise(Op(i))) {
      out = Op(i);
      return true;
    }
  return false;
}

std::vector<std::string> function_spellings() {
  std::vector<std::string> out;
  for (const auto& o : kOps)
    if (std::isalpha(static_cast<unsigned char>(o.spelling[0]))) out.push_back(o.spelling);
  return out;
}

bool is_elementwise(Op op) {
  Category c = category(op);
  return c == Category::Unary || c == Category::Binary || c == Category::Ternary;
}

const char* shape_name(Shape s) {
  switch (s) {
    case Shape::Scalar: return "scalar";
    case Shape::Rows: return "rows";
    case Shape::Cols: return "cols";
    case Shape::Full: return "full";
    case Shape::Left: return "left";
    case Shape::Right: return "right";
    case Shape::Small: return "small";
  }
  return "?";
}

bool is_square(Shape s) { return s == Shape::Left || s == Shape::Right || s == Shape::Small; }

bool try_broadcast(Shape a, Shape b, Shape& out) {
  if (a == b || b == Shape::Scalar) {
    out = a;
    return true;
  }
  if (a == Shape::Scalar) {
    out = b;
    return true;
  }
  if (is_square(a) || is_square(b)) return false;
  out = Shape::Full;  // rows x cols, or anything with full
  return true;
}

Shape broadcast(Shape a, Shape b) {
  Shape s;
  OPAL_CHECK(try_broadcast(a, b, s), "shapes %s and %s do not broadcast", shape_name(a), shape_name(b));
  return s;
}

namespace {
// Symbolic dimensions of square-or-full matrices: M rows, N cols, K = min(M, N).
enum Dim : uint8_t { M, N, K, None };
bool dims_of(Shape s, Dim& r, Dim& c) {
  switch (s) {
    case Shape::Full:
      r = M;
      c = N;
      return true;
    case Shape::Left:
      r = M;
      c = M;
      return true;
    case Shape::Right:
      r = N;
      c = N;
      return true;
    case Shape::Small:
      r = K;
      c = K;
      return true;
    default: return false;
  }
}
bool shape_of(Dim r, Dim c, Shape& out) {
  if (r == M && c == N) out = Shape::Full;
  else if (r == M && c == M) out = Shape::Left;
  else if (r == N && c == N) out = Shape::Right;
  else if (r == K && c == K) out = Shape::Small;
  else return false;
  return true;
}
Dim index_dim(Shape idx) { return idx == Shape::Rows ? M : idx == Shape::Cols ? N : None; }
}  // namespace

bool is_uniform(const Graph& g, ValueId v) {
  const Node& n = g.at(v);
  if (n.shape != Shape::Scalar) return false;
  if (n.op == Op::Const || n.op == Op::HParam || n.op == Op::Step || n.op == Op::Dim) return true;
  if (!is_elementwise(n.op)) return false;
  for (int k = 0; k < n.n_operands; ++k)
    if (!is_uniform(g, n.operands[k])) return false;
  return true;
}

bool library_shape(Op op, int64_t iattr, const Shape* in, int n, Shape& out) {
  if (n != arity(op)) return false;
  Dim r0, c0, r1, c1;
  switch (op) {
    case Op::MatMul:
      if (!dims_of(in[0], r0, c0) || !dims_of(in[1], r1, c1)) return false;
      if (matmul_attrs(iattr).ta) std::swap(r0, c0);
      if (matmul_attrs(iattr).tb) std::swap(r1, c1);
      return c0 == r1 && shape_of(r0, c1, out);
    case Op::Gram: out = Shape::Small; return in[0] == Shape::Full;
    case Op::GramApply: out = Shape::Full; return in[0] == Shape::Small && in[1] == Shape::Full;
    case Op::Eigh:
    case Op::Qr: out = in[0]; return is_square(in[0]);
    case Op::InvRoot: out = in[0]; return is_square(in[0]) && in[1] == Shape::Scalar;
    case Op::Diag: out = in[0] == Shape::Left ? Shape::Rows : Shape::Cols; return in[0] == Shape::Left || in[0] == Shape::Right;
    case Op::Argsort: out = in[0]; return in[0] == Shape::Rows || in[0] == Shape::Cols;
    case Op::PermuteRows: out = in[0]; return dims_of(in[0], r0, c0) && r0 != K && index_dim(in[1]) == r0;
    case Op::PermuteCols: out = in[0]; return dims_of(in[0], r0, c0) && c0 != K && index_dim(in[1]) == c0;
    case Op::NewtonSchulz: out = Shape::Full; return in[0] == Shape::Full && in[1] == Shape::Scalar;
    case Op::NsSteps: out = Shape::Full; return in[0] == Shape::Full;
    case Op::TriSolveLeft: out = in[1]; return is_square(in[0]) && dims_of(in[0], r0, c0) && dims_of(in[1], r1, c1) && r0 == r1;
    case Op::TriSolveRight: out = in[0]; return is_square(in[1]) && dims_of(in[0], r0, c0) && dims_of(in[1], r1, c1) && c0 == r1;
    case Op::NormLowerBound: out = Shape::Scalar; return is_square(in[0]);
    default: return false;
  }
}

// What makes the graph matrix-only, or "" when nothing does: a state with row, column or
// square shape names its stage; else the first structured op.
static std::string matrix_use(const Graph& g) {
  for (const Slot& s : g.slots)
    if (s.shape == Shape::Rows || s.shape == Shape::Cols || is_square(s.shape)) return "`" + s.name.substr(0, s.name.find('.')) + "`";
  for (const Node& n : g.nodes) {
    bool structured = n.shape == Shape::Rows || n.shape == Shape::Cols || is_square(n.shape) || category(n.op) == Category::Library ||
                      category(n.op) == Category::Macro;
    if (!structured) continue;
    std::string r = std::string("`") + op_name(n.op) + "`";
    if (n.loc.valid()) r += " (" + n.loc.short_str() + ")";
    return r;
  }
  return "";
}

void infer_matrix_only(Graph& g) {
  std::string use = matrix_use(g);
  g.matrix_only = !use.empty();
  // a reason the lowering gave (the stage that needs a matrix) is kept while it still applies
  if (!g.matrix_only) g.matrix_reason.clear();
  else if (g.matrix_reason.empty()) g.matrix_reason = use;
}

size_t Builder::KeyHash::operator()(const Key& k) const {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  mix(uint64_t(k.op));
  mix(uint64_t(k.shape));
  mix(k.n);
  mix(k.a);
  mix(k.b);
  mix(k.c);
  mix(uint64_t(k.i));
  mix(k.f);
  return size_t(h);
}

Builder::Builder(Graph& g) : g_(g) {
  // Re-intern an existing graph so that adding to it keeps CSE.
  for (uint32_t i = 0; i < g_.nodes.size(); ++i) {
    const Node& n = g_.nodes[i];
    if (category(n.op) == Category::Effect) continue;
    uint64_t f;
    std::memcpy(&f, &n.fattr, sizeof f);
    interned_.emplace(Key{n.op, n.shape, n.n_operands, n.operands[0].v, n.operands[1].v, n.operands[2].v, n.iattr, f}, ValueId{i});
  }
}

ValueId Builder::add(Op op, Shape shape, std::initializer_list<ValueId> operands, int64_t iattr, double fattr, SourceLoc loc) {
  Node n{op, shape, uint8_t(operands.size()), {}, iattr, fattr, loc};
  int i = 0;
  for (ValueId v : operands) n.operands[i++] = v;
  return add_node(n);
}

ValueId Builder::add_node(const Node& n) {
  OPAL_CHECK(n.n_operands == arity(n.op), "op %s takes %d operands, got %d", op_name(n.op), arity(n.op), n.n_operands);
  for (int i = 0; i < n.n_operands; ++i) OPAL_CHECK(n.operands[i].v < g_.nodes.size(), "operand %d of %s is not in the graph", i, op_name(n.op));
  ValueId id{uint32_t(g_.nodes.size())};
  if (category(n.op) == Category::Effect) {
    g_.nodes.push_back(n);
    g_.effects.push_back(id);
    return id;
  }
  uint64_t f;
  double fv = n.fattr == 0.0 ? 0.0 : n.fattr;  // -0.0 and 0.0 intern together
  std::memcpy(&f, &fv, sizeof f);
  Key k{n.op, n.shape, n.n_operands, n.operands[0].v, n.operands[1].v, n.operands[2].v, n.iattr, f};
  auto [it, inserted] = interned_.emplace(k, id);
  if (!inserted) return it->second;
  g_.nodes.push_back(n);
  return id;
}

}  // namespace opal::ir
