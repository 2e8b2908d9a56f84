// What a step does when a gradient, a stage's output or a new parameter value holds a NaN or an
// infinity. The checks are fused into the kernels (a variant compiled on first use): with the
// policy off, no check runs and no memory is touched for it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace opal {

enum class NonFinitePolicy {
  Off,    // no checks (the default)
  Raise,  // undo the step and throw NonFiniteError naming the parameter and the stage
  Skip,   // undo the step for every parameter (the step count too) and go on
  Zero,   // zero the offending gradient and redo that parameter's step; others step normally
};

// "off", "raise", "skip", "zero"; Error for anything else.
NonFinitePolicy parse_nonfinite_policy(const std::string& name);
const char* nonfinite_policy_name(NonFinitePolicy p);

// One parameter whose step met a non-finite value.
struct NonFiniteEvent {
  int64_t step = 0;
  std::string param;
  std::string route;
  std::string stage;   // the first probe that went non-finite: "gradient", "adapt", "new parameter", ...
  std::string action;  // "raised", "step skipped", "gradient zeroed", "left unchanged"
};

// "step 7: parameter `w` (route matrix): the gradient holds NaN or Inf"
std::string describe(const NonFiniteEvent& e);

}  // namespace opal
