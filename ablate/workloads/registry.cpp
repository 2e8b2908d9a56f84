// Workloads by name.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ablate/workloads/builtin.h"
#include "lang/diagnostics/diagnostic.h"
#include "runtime/error.h"

namespace opal {

std::vector<std::string> workload_names() { return {"linreg", "quadratic", "softmax", "mlp", "gpt"}; }

std::unique_ptr<Workload> make_workload(const std::string& name, const WorkloadOptions& opts) {
  if (opts.steps < 0 || opts.steps > 1000000) throw Error(fmt::format("--steps {} is out of range (1 to 1000000)", opts.steps));
  if (name == "linreg" || name == "quadratic" || name == "softmax") return workloads::make_synthetic(name, opts);
  if (name == "mlp") return workloads::make_mlp(opts);
  if (name == "gpt") return workloads::make_gpt(opts);
  std::string m = closest_match(name, workload_names());
  throw Error(fmt::format("unknown workload `{}`; {} (or external:COMMAND)", name,
                          m.empty() ? fmt::format("workloads: {}", fmt::join(workload_names(), ", ")) : fmt::format("did you mean `{}`?", m)));
}

}  // namespace opal
