// opal cost.
#include "driver/cost_report.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/error.h"

namespace opal {

std::vector<ParamCost> describe_costs(const Optimizer& opt, int world) {
  if (world < 1) throw Error(fmt::format("a world of {} ranks: give 1 or more", world));
  const exec::Description& d = opt.description();
  std::vector<double> hparams;
  for (const auto& h : opt.hparam_names()) hparams.push_back(opt.hparam(h));
  std::vector<ParamCost> out;
  std::vector<double> seconds;
  for (size_t i = 0; i < opt.num_params(); ++i) {
    ParamCost c;
    c.param = opt.param_name(i);
    c.shape = opt.param_shape(c.param);
    c.route = opt.route_of(c.param);
    for (const exec::Route& r : d.routes)
      if (r.label == c.route) {
        const exec::TensorView v = exec::tensor_view(c.shape, r.view);
        c.cost = exec::step_cost(r, v, c.shape.size(), hparams, int(exec::dtype_size(opt.param_dtype(c.param))));
      }
    seconds.push_back(c.cost.seconds());
    out.push_back(std::move(c));
  }
  const std::vector<int> owners = exec::assign_owners(seconds, world);
  for (size_t i = 0; i < out.size(); ++i) out[i].owner = owners[i];
  return out;
}

std::string format_costs(const std::vector<ParamCost>& costs, int world) {
  std::string s = fmt::format("{:<28} {:<16} {:>10} {:>12} {:>9} {:>10}{}  route\n", "parameter", "shape", "MB/step", "MFLOP/step", "launches",
                              "est. us", world > 1 ? "  owner" : "");
  std::vector<double> load(size_t(world), 0.0);
  exec::StepCost total;
  for (const ParamCost& c : costs) {
    s += fmt::format("{:<28} {:<16} {:>10.3f} {:>12.3f} {:>9.2f} {:>10.1f}{}  {}\n", c.param, fmt::format("[{}]", fmt::join(c.shape, ", ")),
                     c.cost.kernel_bytes / 1e6, c.cost.call_flops / 1e6, c.cost.launches, c.cost.seconds() * 1e6,
                     world > 1 ? fmt::format("  {:>5}", c.owner) : "", c.route);
    load[size_t(c.owner)] += c.cost.seconds();
    total.kernel_bytes += c.cost.kernel_bytes;
    total.call_flops += c.cost.call_flops;
    total.launches += c.cost.launches;
  }
  s += fmt::format("{} parameters: {:.3f} MB moved and {:.3f} MFLOP a step (averaged over its refresh periods), {:.1f} us estimated\n", costs.size(),
                   total.kernel_bytes / 1e6, total.call_flops / 1e6, total.seconds() * 1e6);
  if (world > 1) {
    const double most = *std::max_element(load.begin(), load.end()), mean = total.seconds() / world;
    for (int r = 0; r < world; ++r) s += fmt::format("rank {}: {:.1f} us\n", r, load[size_t(r)] * 1e6);
    s += fmt::format("the busiest rank carries {:.2f}x the mean load\n", mean > 0 ? most / mean : 1.0);
  }
  return s;
}

}  // namespace opal
