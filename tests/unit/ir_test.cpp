// IR: interning (structural CSE), printing, verification.
#include <doctest/doctest.h>

#include "compiler/ir/ir.h"

using namespace opal::ir;

TEST_SUITE("ir") {
TEST_CASE("equal nodes are interned to one id; effects never are") {
  Graph g;
  g.slots.push_back({"m", Shape::Full, {}});
  Builder b(g);
  ValueId x = b.add(Op::Grad, Shape::Full, {});
  ValueId two = b.constant(2);
  ValueId a = b.add(Op::Mul, Shape::Full, {x, two});
  ValueId a2 = b.add(Op::Mul, Shape::Full, {x, two});
  CHECK(a == a2);
  CHECK(b.constant(-0.0) == b.constant(0.0));
  ValueId w1 = b.add(Op::StateWrite, Shape::Full, {a}, 0);
  CHECK(w1 != b.add(Op::StateWrite, Shape::Full, {a}, 0));
  CHECK(g.effects.size() == 2);
  CHECK(print_node(g, a) == "%2 = mul %0, %1 : full");
}

TEST_CASE("the verifier rejects a double state write and a wrong shape") {
  Graph g;
  g.slots.push_back({"r", Shape::Rows, {}});
  Builder b(g);
  ValueId x = b.add(Op::Grad, Shape::Full, {});
  CHECK(verify(g).empty());
  b.add(Op::StateWrite, Shape::Rows, {x}, 0);  // full value into a rows slot
  CHECK(verify(g).find("does not fit its slot") != std::string::npos);
  Graph h;
  Builder c(h);
  ValueId y = c.add(Op::Grad, Shape::Full, {});
  c.add(Op::Neg, Shape::Rows, {y});
  CHECK(verify(h).find("broadcast") != std::string::npos);
}

TEST_CASE("broadcasting of shape classes") {
  CHECK(broadcast(Shape::Scalar, Shape::Rows) == Shape::Rows);
  CHECK(broadcast(Shape::Rows, Shape::Cols) == Shape::Full);
  CHECK(broadcast(Shape::Cols, Shape::Cols) == Shape::Cols);
}
}
