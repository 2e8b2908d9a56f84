// The compiler's last step: a compiled optimizer (AST routes + per-route plans) becomes its
// executable description (compiler/exec/description.h), the only thing the runtime reads.
#pragma once
#include "compiler/exec/description.h"
#include "compiler/pipeline.h"

namespace opal {

exec::Description describe(const CompiledOptimizer& co);

// A route's stages as written (`momentum(b1) -> adapt(b2, eps)`), for the description and
// `opal routes`.
std::string pipeline_text(const std::vector<Stage>& stages);

}  // namespace opal
