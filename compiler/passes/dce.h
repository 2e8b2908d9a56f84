// Dead-code elimination: keeps the effects (state and parameter writes) and what they read;
// drops everything else, including the state slots nobody reads or writes any more (slots are
// renumbered). Marks the graph matrix-only when a surviving value has row or column structure.
#pragma once
#include "compiler/ir/ir.h"

namespace opal::passes {
ir::Graph dce(const ir::Graph& g);
}
