// The step's uniform scalars, computed on the host (host_uniforms.h).
#include "compiler/exec/host_uniforms.h"

#include <functional>
#include <map>
#include <set>

#include "compiler/exec/scalar_ops.h"

namespace opal {

namespace {

using ir::Op;
using ir::ValueId;

bool is_leaf(const ir::Node& n) { return n.op == Op::Const || n.op == Op::HParam || n.op == Op::Step; }

// Whether v is a scalar of constants, hyperparameters, global sums and t only.
bool step_uniform(const ir::Graph& g, ValueId v, std::vector<signed char>& memo) {
  signed char& m = memo[v.v];
  if (m >= 0) return m != 0;
  const ir::Node& n = g.at(v);
  bool r = false;
  if (n.shape == ir::Shape::Scalar) {
    if (is_leaf(n)) r = true;
    else if (ir::is_elementwise(n.op) && host_scalar_op(n.op)) {
      r = true;
      for (int o = 0; o < n.n_operands && r; ++o) r = step_uniform(g, n.operands[o], memo);
    }
  }
  m = r ? 1 : 0;
  return r;
}

// The scalars kernel K needs, given which are uniform slots (`hosted`): walking its scalars
// from the last, a needed one that is not hosted needs its operands.
std::set<uint32_t> needed_scalars(const ir::Graph& g, const Kernel& K, const std::function<bool(ValueId)>& hosted) {
  std::set<uint32_t> need;
  auto operands = [&](ValueId v) {
    const ir::Node& n = g.at(v);
    for (int o = 0; o < n.n_operands; ++o)
      if (g.at(n.operands[o]).shape == ir::Shape::Scalar) need.insert(n.operands[o].v);
  };
  for (const auto* list : {&K.body, &K.effects, &K.reductions, &K.stores})
    for (ValueId v : *list) operands(v);
  for (auto it = K.scalars.rbegin(); it != K.scalars.rend(); ++it)
    if (need.count(it->v) && !hosted(*it)) operands(*it);
  return need;
}

}  // namespace

HostUniforms assign_host_uniforms(const std::vector<Plan*>& plans, size_t first) {
  HostUniforms out;
  std::map<uint32_t, uint32_t> slot_of_reg;
  for (Plan* p : plans) {
    p->host_uniforms.clear();
    const ir::Graph& g = p->graph;
    std::vector<signed char> memo(g.nodes.size(), -1);
    ScalarCompiler sc(g, out.program, /*share=*/true);
    auto wanted = [&](ValueId v) { return step_uniform(g, v, memo) && !is_leaf(g.at(v)); };
    for (const Kernel& K : p->kernels) {
      // the values K would host if every wanted one fits: each gets a slot, in value order
      for (uint32_t v : needed_scalars(g, K, wanted)) {
        if (!wanted(ValueId{v}) || p->host_uniforms.count(v)) continue;
        const uint32_t reg = sc.reg(ValueId{v});
        auto [it, fresh] = slot_of_reg.try_emplace(reg, uint32_t(out.regs.size()));
        if (fresh) {
          if (first + out.regs.size() >= kMaxUniformSlots) {  // full: K computes the rest itself
            slot_of_reg.erase(it);
            continue;
          }
          out.regs.push_back(reg);
        }
        p->host_uniforms[v] = uint32_t(first + it->second);
      }
    }
  }
  return out;
}

std::vector<ValueId> kernel_scalars(const Plan& p, const Kernel& K) {
  const std::set<uint32_t> need = needed_scalars(p.graph, K, [&](ValueId v) { return p.host_uniforms.count(v.v) != 0; });
  std::vector<ValueId> out;
  for (ValueId v : K.scalars)
    if (need.count(v.v)) out.push_back(v);
  return out;
}

}  // namespace opal
