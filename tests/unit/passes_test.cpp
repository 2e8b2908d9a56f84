// Passes on small graphs and on stdlib optimizers: folding, DCE, fusion, memory planning.
#include <doctest/doctest.h>

#include "compiler/passes/dce.h"
#include "compiler/passes/fold_constants.h"
#include "compiler/passes/fuse_elementwise.h"
#include "compiler/passes/plan_memory.h"
#include "runtime/executable.h"

using namespace opal;
using namespace opal::ir;

namespace {
const Plan& route_plan(const CompiledOptimizer& c, const std::string& label) {
  for (const auto& r : c.routes)
    if (r.label == label) return r.plan;
  FAIL("no route " << label);
  return c.routes[0].plan;
}
int count_op(const Plan& p, const Kernel& k, Op op) {
  int n = 0;
  for (ValueId v : k.body) n += p.graph.at(v).op == op;
  return n;
}
}  // namespace

TEST_SUITE("passes") {
TEST_CASE("fold_constants evaluates constants and picks constant selects") {
  Graph g;
  Builder b(g);
  ValueId x = b.add(Op::Grad, Shape::Full, {});
  ValueId c = b.add(Op::Sub, Shape::Scalar, {b.constant(1), b.constant(0.25)});
  ValueId sel = b.add(Op::Select, Shape::Full, {b.constant(1), x, b.add(Op::Neg, Shape::Full, {x})});
  b.add(Op::ParamWrite, Shape::Full, {b.add(Op::Mul, Shape::Full, {sel, c})});
  Graph f = passes::dce(passes::fold_constants(g));
  CHECK(verify(f).empty());
  CHECK(print(f) == "graph \n  %0 = grad : full\n  %1 = const 0.75 : scalar\n  %2 = mul %0, %1 : full\n  %3 = param_write %2 : full\n");
}

TEST_CASE("dce drops dead values and renumbers the slots left") {
  Graph g;
  g.slots = {{"dead", Shape::Full, {}}, {"live", Shape::Full, {}}};
  Builder b(g);
  ValueId r0 = b.add(Op::StateRead, Shape::Full, {}, 0);
  ValueId r1 = b.add(Op::StateRead, Shape::Full, {}, 1);
  b.add(Op::Neg, Shape::Full, {r0});
  b.add(Op::StateWrite, Shape::Full, {b.add(Op::Neg, Shape::Full, {r1})}, 1);
  Graph d = passes::dce(g);
  REQUIRE(d.slots.size() == 1);
  CHECK(d.slots[0].name == "live");
  CHECK(verify(d).empty());
  CHECK(d.nodes.size() == 3);
}

TEST_CASE("AdamW fuses into one kernel that reads g, w, m, v once and writes w, m, v once") {
  auto c = compile_spec({"adamw", "", ""});
  const Plan& p = route_plan(*c, "other");
  REQUIRE(p.kernels.size() == 1);
  const Kernel& k = p.kernels[0];
  CHECK(count_op(p, k, Op::Grad) == 1);
  CHECK(count_op(p, k, Op::Param) == 1);
  CHECK(count_op(p, k, Op::StateRead) == 2);
  CHECK(k.effects.size() == 3);
  CHECK(p.temps.empty());
  CHECK_FALSE(k.indexed);
}

TEST_CASE("every elementwise-only stdlib optimizer is one kernel per route") {
  for (const char* name : {"adam", "adamw", "sgd", "signum", "tiger", "lion", "paper_adam", "paper_signum", "paper_signum_lookahead"}) {
    auto c = compile_spec({name, "", ""});
    for (const auto& r : c->routes) {
      INFO(name << " route " << r.label);
      CHECK(r.plan.kernels.size() == 1);
    }
  }
}

TEST_CASE("factored variance: reduction, row, column and update kernels; scratch reused by shape") {
  auto c = compile_spec({"adafactor", "", ""});
  const Plan& p = route_plan(*c, "matrix");
  REQUIRE(p.kernels.size() == 4);
  CHECK(p.kernels[0].reductions.size() == 2);
  CHECK(p.kernels[3].effects.size() == 1);
  CHECK(p.temps.size() == 5);
  // rows temp 0 (kernels 0..1) and rows temp 3 (1..3) overlap at kernel 1: two row buffers
  CHECK(p.buffers.size() == 5);
}

TEST_CASE("plan_memory reuses a buffer once its temp is dead") {
  Plan p;
  p.temps = {{ValueId{1}, Shape::Rows, 0, 1, -1}, {ValueId{2}, Shape::Rows, 2, 3, -1}, {ValueId{3}, Shape::Cols, 2, 3, -1}};
  p = passes::plan_memory(p);
  CHECK(p.temps[0].buffer == p.temps[1].buffer);
  CHECK(p.temps[2].buffer != p.temps[0].buffer);
  CHECK(p.buffers.size() == 2);
}

TEST_CASE("a state write waits for a later kernel that reads the old state") {
  // momentum's m is read again (recomputed) by the update kernel after the reduction
  auto c = compile_spec({"paper_adam_factored", "", ""});
  const Plan& p = route_plan(*c, "matrix");
  const Kernel& last = p.kernels.back();
  int m_slot = -1;
  for (size_t i = 0; i < p.graph.slots.size(); ++i)
    if (p.graph.slots[i].name == "momentum.m") m_slot = int(i);
  REQUIRE(m_slot >= 0);
  bool written_last = false;
  for (ValueId e : last.effects) written_last |= p.graph.at(e).op == Op::StateWrite && p.graph.at(e).iattr == m_slot;
  CHECK(written_last);
}
}
