// What each parameter gets from an optimizer (`opal routes`): its route, pipeline, view,
// learning-rate scales and state, resolved through delegation.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "compiler/pipeline.h"
#include "runtime/optimizer.h"

namespace opal {

struct RouteInfo {
  std::string param;
  std::vector<int64_t> shape;
  std::string dtype;     // its storage: "f32", "bf16", "f16"
  std::string role;      // "embedding", ...; "" when none is known
  std::string route;     // "matrix", "\"*embed*\">other"
  std::string view;      // "matrix 768 x 2304" or "vector 1 x 768"
  std::string pipeline;  // stages as written, innermost route
  struct Scale {
    std::string expr;             // the argument of a `scale` stage
    std::optional<double> value;  // when it depends on constants and sizes only
  };
  std::vector<Scale> scales;
  std::vector<std::string> slots;  // "adapt.v [768, 2304]"
  int64_t state_bytes = 0;
};

// Gives parameters roles from `PATTERN=ROLE` assignments (`--role 'wte.*=embedding'`; fnmatch
// patterns, later ones win). Throws Error for a malformed assignment, an unknown role, or a
// pattern no parameter matches, and then changes nothing.
void assign_roles(std::vector<ParamDesc>& params, const std::vector<std::string>& assignments);

// The storage of a parameter given as a safetensors tensor (--params, replay's --init): BF16
// and F16 as they are, anything else f32.
DType param_storage(const std::string& safetensors_dtype);

// The bytes of a parameter's optimizer state, each slot at its storage.
int64_t state_bytes(const Optimizer& opt, const std::string& name);

// `co`: the optimizer `opt` was built from (for the scale expressions as written).
std::vector<RouteInfo> describe_routes(const Optimizer& opt, const CompiledOptimizer& co);
std::string format_routes(const std::vector<RouteInfo>& routes);

}  // namespace opal
