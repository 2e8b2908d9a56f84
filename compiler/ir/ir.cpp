// Op table, shapes and the interning Builder.
#include "compiler/ir/ir.h"

#include <cstring>

#include "compiler/check.h"

namespace opal::ir {

namespace {
struct OpInfo {
  Category cat;
  int arity;
  const char* name;
};
constexpr OpInfo kOps[] = {
#define OPAL_OP(name, cat, arity, str) {Category::cat, arity, str},
#include "compiler/ir/ops.def"
#undef OPAL_OP
};
}  // namespace

Category category(Op op) { return kOps[static_cast<int>(op)].cat; }
int arity(Op op) { return kOps[static_cast<int>(op)].arity; }
const char* op_name(Op op) { return kOps[static_cast<int>(op)].name; }
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
  }
  return "?";
}

Shape broadcast(Shape a, Shape b) {
  if (a == b) return a;
  if (a == Shape::Scalar) return b;
  if (b == Shape::Scalar) return a;
  return Shape::Full;  // rows x cols, or anything with full
}

size_t Builder::KeyHash::operator()(const Key& k) const {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  mix(uint64_t(k.op)); mix(uint64_t(k.shape)); mix(k.n); mix(k.a); mix(k.b); mix(k.c); mix(uint64_t(k.i)); mix(k.f);
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
  for (int i = 0; i < n.n_operands; ++i)
    OPAL_CHECK(n.operands[i].v < g_.nodes.size(), "operand %d of %s is not in the graph", i, op_name(n.op));
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
