// Non-finite policies: names and messages (the checked step lives in optimizer.cpp).
#include "runtime/nonfinite.h"

#include <fmt/format.h>

#include "runtime/error.h"

namespace opal {

NonFinitePolicy parse_nonfinite_policy(const std::string& name) {
  if (name == "off") return NonFinitePolicy::Off;
  if (name == "raise") return NonFinitePolicy::Raise;
  if (name == "skip") return NonFinitePolicy::Skip;
  if (name == "zero") return NonFinitePolicy::Zero;
  throw Error(fmt::format("unknown non-finite policy `{}`: use off, raise, skip or zero", name));
}

const char* nonfinite_policy_name(NonFinitePolicy p) {
  switch (p) {
    case NonFinitePolicy::Off: return "off";
    case NonFinitePolicy::Raise: return "raise";
    case NonFinitePolicy::Skip: return "skip";
    case NonFinitePolicy::Zero: return "zero";
  }
  return "?";
}

std::string describe(const NonFiniteEvent& e) {
  std::string what = e.stage == "gradient" ? "the gradient holds NaN or Inf"
                     : e.stage == "new parameter"
                         ? "the new parameter value holds NaN or Inf"
                         : fmt::format("the output of stage `{}` holds NaN or Inf, the earliest value checked that does", e.stage);
  return fmt::format("step {}: parameter `{}` (route {}): {}", e.step, e.param, e.route, what);
}

}  // namespace opal
