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
    const int steps = ns.steps, set = ns.coeffs;
    const bool bf = ns.bf16;
    const int64_t mm = ir::encode(ir::MatMulAttrs{false, false, bf});
    SourceLoc at = n.loc;
    auto round = [&](ValueId v) { return bf ? b.add(Op::Bf16, b.graph().at(v).shape, {v}, 0, 0, at) : v; };
    auto c = [&](double v) { return b.constant(v, at); };
    // X <- X / (||X||_F + eps), over the whole matrix
    ValueId x = round(ops[0]);
    ValueId nrm =
        b.add(Op::Sqrt, Shape::Scalar, {b.add(Op::Sum, Shape::Scalar, {b.add(Op::Mul, Shape::Full, {x, x}, 0, 0, at)}, 0, 0, at)}, 0, 0, at);
    x = round(b.add(Op::Div, Shape::Full, {x, b.add(Op::Add, Shape::Scalar, {nrm, ops[1]}, 0, 0, at)}, 0, 0, at));
    // quintic steps on the wide orientation: A = X X^T, B = b A + c A^2, X = a X + B X
    for (const auto& [ka, kb, kc] : ns_coefficients(set, steps)) {
      ValueId A = b.add(Op::Gram, Shape::Small, {x}, mm, 0, at);
      ValueId AA = b.add(Op::MatMul, Shape::Small, {A, A}, mm, 0, at);
      ValueId B = round(b.add(Op::Add, Shape::Small,
                              {b.add(Op::Mul, Shape::Small, {c(kb), A}, 0, 0, at), b.add(Op::Mul, Shape::Small, {c(kc), AA}, 0, 0, at)}, 0, 0, at));
      ValueId BX = b.add(Op::GramApply, Shape::Full, {B, x}, mm, 0, at);
      x = round(b.add(Op::Add, Shape::Full, {b.add(Op::Mul, Shape::Full, {c(ka), x}, 0, 0, at), BX}, 0, 0, at));
    }
    return x;
  });
}

}  // namespace opal::passes
