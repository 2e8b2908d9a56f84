// Guard inference (see guards.h).
#include "compiler/passes/guards.h"

#include "compiler/passes/rebuild.h"

namespace opal::passes {

using ir::Op;
using ir::Shape;
using ir::ValueId;

std::vector<Guard> infer_guards(const ir::Graph& g, bool skip_writes) {
  // work worth skipping: a value that needs a library call or a reduction (an eigenbasis, a
  // norm); a conditional write of anything cheaper is a conditional store in the kernel that
  // computes it, so that it never waits in a kernel of its own (which could not both read the
  // old parameter and run after the kernel that writes the new one)
  std::vector<char> heavy(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    const ir::Category c = ir::category(n.op);
    heavy[i] = c == ir::Category::Library || c == ir::Category::Macro || c == ir::Category::Reduce;
    for (int k = 0; k < n.n_operands; ++k) heavy[i] |= heavy[n.operands[k].v];
  }
  std::vector<Guard> guard(g.nodes.size());
  std::vector<char> seen(g.nodes.size(), 0), mixed(g.nodes.size(), 0);
  std::vector<Guard> acc(g.nodes.size());
  auto use = [&](ValueId v, Guard gd) {
    if (!seen[v.v]) {
      seen[v.v] = 1;
      acc[v.v] = gd;
    } else if (!(acc[v.v] == gd)) {
      mixed[v.v] = 1;
    }
  };
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const ir::Node& n = g.nodes[i];
    Guard mine = (seen[i] && !mixed[i]) ? acc[i] : Guard{};
    if (n.op == Op::StateWriteIf && ir::is_uniform(g, n.operands[1]) && heavy[n.operands[0].v] && skip_writes)
      mine = Guard{}.with({n.operands[1], false});
    guard[i] = mine;
    for (int k = 0; k < n.n_operands; ++k) {
      Guard gd = mine;
      // a select on a uniform condition needs each branch on its side only
      if (n.op == Op::Select && k > 0 && n.shape != Shape::Scalar && ir::is_uniform(g, n.operands[0])) gd = mine.with({n.operands[0], k == 2});
      if (n.op == Op::Guard) gd = k == 0 ? mine.with({n.operands[1], false}) : Guard{};
      if (n.op == Op::StateWriteIf && k == 1) gd = Guard{};
      use(n.operands[k], gd);
    }
  }
  return guard;
}

GuardedGraph lower_regions(const ir::Graph& g, bool skip_writes) {
  const std::vector<Guard> before = infer_guards(g, skip_writes);
  std::vector<ValueId> map;
  GuardedGraph out;
  out.graph = rebuild(
      g, [](ir::Builder&, const ir::Node& n, const ValueId* ops) { return n.op == Op::Guard ? ops[0] : ValueId{}; }, {}, &map);
  // a new node takes the guard of the old ones it stands for; differing guards: always
  out.guards.assign(out.graph.nodes.size(), Guard{});
  std::vector<char> seen(out.graph.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].op == Op::Guard) continue;
    const uint32_t to = map[i].v;
    Guard gd;
    for (const GuardLiteral& l : before[i].all) gd = gd.with({map[l.cond.v], l.negated});
    if (!seen[to]) out.guards[to] = gd, seen[to] = 1;
    else if (!(out.guards[to] == gd)) out.guards[to] = Guard{};
  }
  return out;
}

}  // namespace opal::passes
