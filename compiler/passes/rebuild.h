// Shared helper of the graph-to-graph passes: copies a graph node by node through a fresh
// Builder, letting a callback replace each node. Interning in the new graph merges equal nodes.
#pragma once
#include <functional>

#include "compiler/ir/ir.h"

namespace opal::passes {

// `replace(builder, old_node, new_operands)` returns a ValueId in the new graph, or an invalid
// id to copy the node as is. `keep(old_id)` (if given) drops nodes for which it returns false;
// their users must be dropped too. `map` (if given) receives the new id of every old node.
ir::Graph rebuild(const ir::Graph& g, const std::function<ir::ValueId(ir::Builder&, const ir::Node&, const ir::ValueId*)>& replace,
                  const std::function<bool(ir::ValueId)>& keep = {}, std::vector<ir::ValueId>* map = nullptr);

// True when two graphs print identically (used to log "(unchanged)").
bool same_graph(const ir::Graph& a, const ir::Graph& b);

}  // namespace opal::passes
