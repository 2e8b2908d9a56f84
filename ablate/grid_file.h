// Loading a grid from a spec file (the stdlib included), for `opal grid` and `opal ablate`.
#pragma once
#include "lang/grid.h"

namespace opal {

// Loads `path` and expands its grid `name` (or its last grid); throws CompileError with the
// rendered diagnostics.
ExpandedGrid load_grid(const std::string& path, const std::string& name = {});

}  // namespace opal
