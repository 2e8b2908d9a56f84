// Dead-code elimination.
#include "compiler/passes/dce.h"

#include "compiler/passes/rebuild.h"

namespace opal::passes {

namespace {
// Every op naming a slot: its index is renumbered with the slots that stay.
bool is_slot_op(ir::Op op) { return op == ir::Op::StateRead || op == ir::Op::StateWrite || op == ir::Op::StateWriteIf; }
}  // namespace

ir::Graph dce(const ir::Graph& g) {
  std::vector<char> live(g.nodes.size(), 0);
  for (ir::ValueId e : g.effects) live[e.v] = 1;
  for (size_t i = g.nodes.size(); i-- > 0;)
    if (live[i])
      for (int k = 0; k < g.nodes[i].n_operands; ++k) live[g.nodes[i].operands[k].v] = 1;
  // slots still referenced, renumbered densely in their original order
  std::vector<int> slot_map(g.slots.size(), -1);
  std::vector<ir::Slot> slots;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    if (live[i] && is_slot_op(n.op) && slot_map[n.iattr] < 0) slot_map[n.iattr] = 0;
  }
  for (size_t s = 0; s < g.slots.size(); ++s)
    if (slot_map[s] == 0) {
      slot_map[s] = int(slots.size());
      slots.push_back(g.slots[s]);
    }
  ir::Graph out = rebuild(
      g,
      [&](ir::Builder& b, const ir::Node& n, const ir::ValueId*) -> ir::ValueId {
        if (!is_slot_op(n.op)) return {};
        ir::Node m = n;
        m.iattr = slot_map[n.iattr];
        return b.add_node(m);
      },
      [&](ir::ValueId v) { return live[v.v] != 0; });
  out.slots = std::move(slots);
  ir::infer_matrix_only(out);
  return out;
}

}  // namespace opal::passes
