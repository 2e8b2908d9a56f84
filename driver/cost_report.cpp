// opal cost.
#include "driver/cost_report.h"

#include <algorithm>

#include <fmt/format.h>

#include "driver/routes.h"
#include "runtime/error.h"
#include "runtime/routing.h"

namespace opal {

std::vector<exec::StepCost> param_costs(const exec::Description& d, const std::vector<ParamDesc>& params, const std::vector<double>& hparams) {
  const std::vector<double>& hp = hparams.empty() ? d.defaults : hparams;
  std::vector<exec::StepCost> out;
  for (const ParamDesc& p : params) {
    const RoutedParam r = route_param(d, p, hp.empty() ? nullptr : hp.data());
    out.push_back(exec::step_cost(d.routes[r.route], r.view, p.shape.size(), hp, int(exec::dtype_size(p.dtype))));
  }
  return out;
}

std::vector<ParamCost> describe_costs(const Optimizer& opt, int world) {
  if (world < 1) throw Error(fmt::format("a world of {} ranks: give 1 or more", world));
  std::vector<double> hparams;
  for (const auto& h : opt.hparam_names()) hparams.push_back(opt.hparam(h));
  std::vector<ParamDesc> params;
  for (size_t i = 0; i < opt.num_params(); ++i) {
    const std::string& name = opt.param_name(i);
    ParamDesc p{name, opt.param_shape(name)};
    p.role = opt.param_role(name);
    p.dtype = opt.param_dtype(name);
    params.push_back(std::move(p));
  }
  const std::vector<exec::StepCost> costs = param_costs(opt.description(), params, hparams);
  std::vector<double> seconds;
  for (const auto& c : costs) seconds.push_back(c.seconds());
  const std::vector<int> owners = exec::assign_owners(seconds, world);
  std::vector<ParamCost> out;
  for (size_t i = 0; i < params.size(); ++i)
    out.push_back({params[i].name, params[i].shape, opt.route_of(params[i].name), costs[i], state_bytes(opt, params[i].name), owners[i]});
  return out;
}

std::string format_costs(const std::vector<ParamCost>& costs, int world) {
  std::string s = fmt::format("{:<28} {:<16} {:>10} {:>12} {:>9} {:>10} {:>9}{}  route\n", "parameter", "shape", "MB/step", "MFLOP/step", "launches",
                              "est. us", "state MB", world > 1 ? "  owner" : "");
  std::vector<double> load(size_t(world), 0.0), held(size_t(world), 0.0);
  exec::StepCost total;
  for (const ParamCost& c : costs) {
    s += fmt::format("{:<28} {:<16} {:>10.3f} {:>12.3f} {:>9.2f} {:>10.1f} {:>9.3f}{}  {}\n", c.param, fmt::format("[{}]", fmt::join(c.shape, ", ")),
                     c.cost.kernel_bytes / 1e6, c.cost.call_flops / 1e6, c.cost.launches, c.cost.seconds() * 1e6, double(c.state_bytes) / 1e6,
                     world > 1 ? fmt::format("  {:>5}", c.owner) : "", c.route);
    load[size_t(c.owner)] += c.cost.seconds();
    held[size_t(c.owner)] += double(c.state_bytes);
    total.kernel_bytes += c.cost.kernel_bytes;
    total.call_flops += c.cost.call_flops;
    total.launches += c.cost.launches;
  }
  s += fmt::format("{} parameters: {:.3f} MB moved and {:.3f} MFLOP a step (averaged over its refresh periods), {:.1f} us estimated\n", costs.size(),
                   total.kernel_bytes / 1e6, total.call_flops / 1e6, total.seconds() * 1e6);
  if (world > 1) {
    const double most = *std::max_element(load.begin(), load.end()), mean = total.seconds() / world;
    for (int r = 0; r < world; ++r) s += fmt::format("rank {}: {:.1f} us, {:.3f} MB of state\n", r, load[size_t(r)] * 1e6, held[size_t(r)] / 1e6);
    s += fmt::format("the busiest rank carries {:.2f}x the mean load\n", mean > 0 ? most / mean : 1.0);
  }
  return s;
}

}  // namespace opal
