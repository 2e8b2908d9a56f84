// Newton-Schulz expansion (see expand_macros.h).
#include "compiler/ir/attrs.h"
#include "compiler/passes/expand_macros.h"

#include "compiler/passes/rebuild.h"

namespace opal::passes {

using ir::Op;
using ir::Shape;
using ir::ValueId;

std::vector<std::array<double, 3>> ns_coefficients(int set, int steps) {
  static const std::array<double, 3> keller = {3.4445, -4.7750, 2.0315};
  static const std::array<std::array<double, 3>, 5> you = {
      {{4.0848, -6.8946, 2.9270}, {3.9505, -6.3029, 2.6377}, {3.7418, -5.5913, 2.3037}, {2.8769, -3.1427, 1.2046}, {2.8366, -3.0525, 1.2012}}};
  std::vector<std::array<double, 3>> out;
  for (int k = 0; k < steps; ++k) out.push_back(set == 0 ? keller : you[std::min(k, 4)]);
  return out;
}

ir::Graph expand_macros(const ir::Graph& g) {
  return rebuild(g, [](ir::Builder& b, const ir::Node& n, const ValueId* ops) -> ValueId {
    if (n.op != Op::NewtonSchulz) return {};
    const ir::NewtonSchulzAttrs ns = ir::newton_schulz_attrs(n);
    const bool bf = ns.bf16;
    SourceLoc at = n.loc;
    auto round = [&](ValueId v) { return bf ? b.add(Op::Bf16, b.graph().at(v).shape, {v}, 0, 0, at) : v; };
    // X <- X / (||X||_F + eps), over the whole matrix
    ValueId x = round(ops[0]);
    ValueId nrm =
        b.add(Op::Sqrt, Shape::Scalar, {b.add(Op::Sum, Shape::Scalar, {b.add(Op::Mul, Shape::Full, {x, x}, 0, 0, at)}, 0, 0, at)}, 0, 0, at);
    x = round(b.add(Op::Div, Shape::Full, {x, b.add(Op::Add, Shape::Scalar, {nrm, ops[1]}, 0, 0, at)}, 0, 0, at));
    // the quintic steps, one library call (the backend's GEMMs with the scalars in their
    // epilogues: runtime/cpu/linalg.h)
    return ns.steps > 0 ? b.add(Op::NsSteps, Shape::Full, {x}, n.iattr, 0, at) : x;
  });
}

}  // namespace opal::passes
