// Graph rebuilding through the interning Builder.
#include "compiler/passes/rebuild.h"

#include <cstring>

namespace opal::passes {

ir::Graph rebuild(const ir::Graph& g, const std::function<ir::ValueId(ir::Builder&, const ir::Node&, const ir::ValueId*)>& replace,
                  const std::function<bool(ir::ValueId)>& keep, std::vector<ir::ValueId>* map_out) {
  ir::Graph out;
  out.name = g.name;
  out.hparams = g.hparams;
  out.n_globals = g.n_globals;
  out.slots = g.slots;
  out.matrix_only = g.matrix_only;
  out.matrix_reason = g.matrix_reason;
  ir::Builder b(out);
  std::vector<ir::ValueId> map(g.nodes.size());
  for (uint32_t i = 0; i < g.nodes.size(); ++i) {
    if (keep && !keep(ir::ValueId{i})) continue;
    ir::Node n = g.nodes[i];
    ir::ValueId ops[3];
    for (int k = 0; k < n.n_operands; ++k) ops[k] = n.operands[k] = map[n.operands[k].v];
    ir::ValueId r = replace ? replace(b, n, ops) : ir::ValueId{};
    map[i] = r.valid() ? r : b.add_node(n);
  }
  for (const ir::Probe& pr : g.probes)
    if (map[pr.value.v].valid()) out.probes.push_back({map[pr.value.v], pr.stage});
  if (map_out) *map_out = std::move(map);
  return out;
}

bool same_graph(const ir::Graph& a, const ir::Graph& b) {
  if (a.nodes.size() != b.nodes.size() || a.effects.size() != b.effects.size()) return false;
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const ir::Node &x = a.nodes[i], &y = b.nodes[i];
    if (x.op != y.op || x.shape != y.shape || x.n_operands != y.n_operands || x.iattr != y.iattr ||
        std::memcmp(&x.fattr, &y.fattr, sizeof(double)) != 0)
      return false;
    for (int k = 0; k < x.n_operands; ++k)
      if (x.operands[k] != y.operands[k]) return false;
  }
  return true;
}

}  // namespace opal::passes
