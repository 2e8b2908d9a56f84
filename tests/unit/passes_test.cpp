// Passes on small graphs and on stdlib optimizers: folding, DCE, fusion, memory planning.
#include <doctest/doctest.h>

#include "driver/build.h"
#include "compiler/ir/attrs.h"
#include "compiler/passes/dce.h"
#include "compiler/passes/expand_macros.h"
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
  auto c = compile_spec({"adafactor_factored", "", ""});
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

TEST_SUITE("passes") {
TEST_CASE("expand_macros: Newton-Schulz becomes its normalization (elementwise) and one ns_steps call") {
  Graph g;
  Builder b(g);
  ValueId x = b.add(Op::Grad, Shape::Full, {});
  ValueId ns = b.add(Op::NewtonSchulz, Shape::Full, {x, b.constant(1e-8)}, 5 | (1 << 8));
  b.add(Op::ParamWrite, Shape::Full, {ns});
  Graph e = passes::expand_macros(g);
  CHECK(verify(e).empty());
  int steps = 0, macro = 0, rounds = 0, sums = 0;
  for (const auto& n : e.nodes) {
    macro += n.op == Op::NewtonSchulz;
    rounds += n.op == Op::Bf16;
    sums += n.op == Op::Sum;
    if (n.op == Op::NsSteps) {
      ++steps;
      CHECK(ir::newton_schulz_attrs(n).steps == 5);
      CHECK(ir::newton_schulz_attrs(n).coeffs == 1);
      CHECK_FALSE(ir::newton_schulz_attrs(n).bf16);
      CHECK(e.at(n.operands[0]).op == Op::Div);  // X / (|X|_F + eps)
    }
  }
  CHECK(macro == 0);
  CHECK(steps == 1);
  CHECK(sums == 1);  // the norm: elementwise work that fuses with what comes before
  CHECK(rounds == 0);
  // bf16: the input and the normalized X rounded; the steps flagged (they round what they write)
  Graph g2;
  Builder b2(g2);
  ValueId x2 = b2.add(Op::Grad, Shape::Full, {});
  b2.add(Op::ParamWrite, Shape::Full, {b2.add(Op::NewtonSchulz, Shape::Full, {x2, b2.constant(1e-7)}, 3 | (1 << 12))});
  Graph e2 = passes::expand_macros(g2);
  int flagged = 0, r2 = 0;
  for (const auto& n : e2.nodes) {
    flagged += n.op == Op::NsSteps && ir::newton_schulz_attrs(n).bf16 && ir::newton_schulz_attrs(n).steps == 3;
    r2 += n.op == Op::Bf16;
  }
  CHECK(flagged == 1);
  CHECK(r2 == 2);
  // no steps: the normalization alone
  Graph g3;
  Builder b3(g3);
  b3.add(Op::ParamWrite, Shape::Full, {b3.add(Op::NewtonSchulz, Shape::Full, {b3.add(Op::Grad, Shape::Full, {}), b3.constant(1e-7)}, 0)});
  for (const auto& n : passes::expand_macros(g3).nodes) CHECK(n.op != Op::NsSteps);
  CHECK(passes::ns_coefficients(1, 7)[6] == passes::ns_coefficients(1, 5)[4]);  // past the fifth: the last triple
}

TEST_CASE("fold turns a write of select(c, new, old) into a conditional write") {
  Graph g;
  g.slots.push_back({"s.q", Shape::Left, {}, true});
  Builder b(g);
  ValueId q = b.add(Op::StateRead, Shape::Left, {}, 0);
  ValueId c = b.add(Op::Eq, Shape::Scalar, {b.add(Op::Step, Shape::Scalar, {}), b.constant(1)});
  ValueId e = b.add(Op::Eigh, Shape::Left, {q});
  b.add(Op::StateWrite, Shape::Left, {b.add(Op::Select, Shape::Left, {c, e, q})}, 0);
  b.add(Op::ParamWrite, Shape::Full, {b.add(Op::Grad, Shape::Full, {})});
  Graph f = passes::dce(passes::fold_constants(g));
  CHECK(verify(f).empty());
  int cond = 0;
  for (const auto& n : f.nodes) cond += n.op == Op::StateWriteIf;
  CHECK(cond == 1);
  // the eigendecomposition and the write run only when t == 1
  Plan p = passes::fuse_elementwise(f);
  int guarded_calls = 0;
  for (const auto& call : p.calls) guarded_calls += !call.guard.always();
  CHECK(guarded_calls == 1);
  bool guarded_kernel = false;
  for (const auto& k : p.kernels)
    for (ValueId v : k.effects)
      if (p.graph.at(v).op == Op::StateWriteIf) guarded_kernel = !k.guard.always();
  CHECK(guarded_kernel);
}

TEST_CASE("every(N) refreshes are guarded: SOAP's eigendecompositions run only on refresh steps") {
  auto c = compile_spec({"paper_soap10", "", ""});
  const Plan& p = route_plan(*c, "matrix");
  int eigh = 0, guarded = 0;
  for (const auto& call : p.calls)
    if (p.graph.at(call.value).op == Op::Eigh) {
      ++eigh;
      guarded += !call.guard.always();
    }
  CHECK(eigh == 2);
  CHECK(guarded == 2);
  // the rotated gradient feeds only the variance, zeroed on step 1: computed on other steps
  bool rot_g_guarded = false;
  for (const auto& call : p.calls)
    if (p.graph.at(call.value).op == Op::MatMul && call.guard.all.size() == 1 && call.guard.all[0].negated) rot_g_guarded = true;
  CHECK(rot_g_guarded);
  // state reads by calls come before the kernels that write the same slots
  std::map<int64_t, int> first_read, write_pos;
  for (size_t pos = 0; pos < p.schedule.size(); ++pos) {
    const Launch& L = p.schedule[pos];
    if (L.is_call) {
      const Node& n = p.graph.at(p.calls[L.index].value);
      for (int k = 0; k < n.n_operands; ++k)
        if (p.graph.at(n.operands[k]).op == Op::StateRead && !first_read.count(p.graph.at(n.operands[k]).iattr))
          first_read[p.graph.at(n.operands[k]).iattr] = int(pos);
    } else {
      for (ValueId v : p.kernels[L.index].effects)
        if (p.graph.at(v).op != Op::ParamWrite) write_pos[p.graph.at(v).iattr] = int(pos);
    }
  }
  for (const auto& sp : first_read) CHECK(write_pos.at(sp.first) > sp.second);
}

TEST_CASE("Muon: the matrix route's Newton-Schulz steps are one library call; no library work in the vector route") {
  auto c = compile_spec({"paper_muon", "", ""});
  const Plan& p = route_plan(*c, "matrix");
  CHECK(p.calls.size() == 1);
  CHECK(p.graph.at(p.calls[0].value).op == Op::NsSteps);
  CHECK(p.graph.matrix_only);
  CHECK(p.graph.matrix_reason == "`ns`");
}
}

TEST_SUITE("passes") {
TEST_CASE("a basis transforms g only when a stage inside reads it") {
  auto count_matmuls = [](const char* spec) {
    auto c = compile_spec({spec, "", ""});
    const Plan& p = route_plan(*c, "matrix");
    int n = 0;
    for (const auto& call : p.calls) n += p.graph.at(call.value).op == Op::MatMul;
    return n;
  };
  // SPlus: sign inside the basis reads only u: rot(u) 2, unrot 2, the factors 2
  CHECK(count_matmuls("paper_splus10") == 6);
  // SOAP: adapt reads g inside the basis: rot(g) adds 2
  CHECK(count_matmuls("paper_soap10") == 8);
}
}

TEST_SUITE("passes") {
TEST_CASE("nested conditions are conjunctions: power-iteration refreshes skip the eigendecomposition") {
  auto c = compile_spec(
      {"optimizer o(lr = 0.1, every = 10) { matrix: rotate(eigenbasis(0.99, every, power_qr = true)) -> sign -> unrotate -> scale(lr) }", "", ""});
  const Plan& p = route_plan(*c, "matrix");
  int eigh = 0, qr = 0;
  for (const auto& call : p.calls) {
    Op op = p.graph.at(call.value).op;
    if (op != Op::Eigh && op != Op::Qr) continue;
    (op == Op::Eigh ? eigh : qr)++;
    // (every-cadence) and (t > 1) for QR, (every-cadence) and not (t > 1) for eigh
    REQUIRE(call.guard.all.size() == 2);
    bool negated = call.guard.all[0].negated || call.guard.all[1].negated;
    CHECK(negated == (op == Op::Eigh));
  }
  CHECK(eigh == 2);
  CHECK(qr == 2);
}
}
