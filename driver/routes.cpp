// opal routes.
#include "driver/routes.h"

#include <fnmatch.h>

#include <cmath>

#include <fmt/format.h>

#include "lang/ast.h"
#include "lang/const_eval.h"
#include "compiler/exec/describe.h"
#include "runtime/error.h"

namespace opal {

namespace {

// A scale expression's value for a parameter's sizes, when it depends on constants and sizes only.
std::optional<double> eval_sized(const Expr& e, double rows, double cols, double numel) {
  return eval_constant(e, [&](const std::string& n) -> std::optional<double> {
    if (n == "rows") return rows;
    if (n == "cols") return cols;
    if (n == "numel") return numel;
    return std::nullopt;
  });
}

// an expression as its source text
std::string text(const Expr& e) { return e.loc.valid() ? std::string(e.loc.text()) : dump_expr(e); }

}  // namespace

void assign_roles(std::vector<ParamDesc>& params, const std::vector<std::string>& assignments) {
  std::vector<ParamRole> roles;
  for (const auto& p : params) roles.push_back(p.role);
  for (const std::string& a : assignments) {
    const size_t eq = a.rfind('=');
    if (eq == std::string::npos || eq == 0) throw Error(fmt::format("role assignment `{}` is not PATTERN=ROLE (e.g. 'wte.weight=embedding')", a));
    const std::string pattern = a.substr(0, eq), role = a.substr(eq + 1);
    ParamRole r = ParamRole::None;
    if (!role.empty() && role != "none" && !exec::role_by_name(role, r))
      throw Error(fmt::format("role assignment `{}`: {} (or none)", a, exec::unknown_role(role)));
    bool matched = false;
    for (size_t i = 0; i < params.size(); ++i)
      if (fnmatch(pattern.c_str(), params[i].name.c_str(), 0) == 0) roles[i] = r, matched = true;
    if (!matched) throw Error(fmt::format("role assignment `{}`: no parameter is named like `{}`", a, pattern));
  }
  for (size_t i = 0; i < params.size(); ++i) params[i].role = roles[i];
}

DType param_storage(const std::string& safetensors_dtype) {
  return safetensors_dtype == "BF16" ? DType::BF16 : safetensors_dtype == "F16" ? DType::F16 : DType::F32;
}

int64_t state_bytes(const Optimizer& opt, const std::string& name) {
  int64_t bytes = 0;
  for (const auto& slot : opt.slots(name)) {
    int64_t n = 1;
    for (auto d : opt.state_shape(name, slot)) n *= d;
    bytes += n * int64_t(exec::dtype_size(opt.state_dtype(name, slot)));  // at the slot's real storage
  }
  return bytes;
}

std::vector<RouteInfo> describe_routes(const Optimizer& opt, const CompiledOptimizer& co) {
  std::vector<RouteInfo> out;
  const exec::Description& d = opt.description();
  for (size_t i = 0; i < opt.num_params(); ++i) {
    const std::string& name = opt.param_name(i);
    RouteInfo r;
    r.param = name;
    r.shape = opt.param_shape(name);
    r.dtype = exec::dtype_name(opt.param_dtype(name));
    r.role = exec::role_name(opt.param_role(name));
    r.route = opt.route_of(name);
    for (size_t i = 0; i < d.routes.size(); ++i)
      if (d.routes[i].label == r.route) {
        const exec::View view = d.routes[i].view;
        const exec::TensorView v = exec::tensor_view(r.shape, view);
        const int64_t rows = v.rows, cols = v.cols;
        if (r.shape.size() < 2) r.view = fmt::format("vector 1 x {}", cols);
        else if (view == exec::View::First || view == exec::View::Last || r.shape.size() == 2)
          r.view = fmt::format("matrix {} x {}{}", rows, cols,
                               r.shape.size() > 2 ? (view == exec::View::Last ? " (leading dims x last)" : " (dim 0 x rest)") : "");
        else {
          std::vector<int64_t> axes;  // the matrix axes, in the parameter's numbering
          if (v.perm.empty()) axes = {int64_t(r.shape.size() - 2), int64_t(r.shape.size() - 1)};
          else axes = {v.perm[v.perm.size() - 2], v.perm.back()};
          r.view = fmt::format("{} matrices {} x {} (axes {} and {}, one per index of [{}]{})", v.batch, rows, cols, axes[0], axes[1],
                               fmt::join(v.batch_shape, ", "), v.perm.empty() ? "" : "; stepped in a permuted copy");
        }
        r.pipeline = d.routes[i].pipeline;
        const RouteStep& last = co.routes.at(i).path.back();
        for (const auto& s : last.optimizer->routes[last.route].pipeline)
          if (s.name == "scale" && s.args.size() == 1)
            r.scales.push_back({text(*s.args[0].value), eval_sized(*s.args[0].value, double(rows), double(cols), double(v.numel()))});
        break;
      }
    r.state_bytes = state_bytes(opt, name);
    for (const auto& slot : opt.slots(name)) {
      const DType dt = opt.state_dtype(name, slot);
      r.slots.push_back(fmt::format("{} [{}]{}", slot, fmt::join(opt.state_shape(name, slot), ", "),
                                    dt == DType::F32 ? "" : fmt::format(" {}", exec::dtype_name(dt))));
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string format_routes(const std::vector<RouteInfo>& routes) {
  std::string s;
  int64_t total = 0;
  for (const auto& r : routes) {
    s += fmt::format("{} [{}]{}{}\n", r.param, fmt::join(r.shape, ", "), r.dtype.empty() || r.dtype == "f32" ? "" : " " + r.dtype,
                     r.role.empty() ? "" : " (" + r.role + ")");
    s += fmt::format("  route:    {}\n  view:     {}\n  pipeline: {}\n", r.route, r.view, r.pipeline);
    for (const auto& sc : r.scales)
      s += sc.value ? fmt::format("  scale:    {} = {:.6g}\n", sc.expr, *sc.value) : fmt::format("  scale:    {}\n", sc.expr);
    s += fmt::format("  state:    {} ({} bytes)\n", r.slots.empty() ? "none" : fmt::format("{}", fmt::join(r.slots, ", ")), r.state_bytes);
    total += r.state_bytes;
  }
  s += fmt::format("{} parameters, {} bytes of optimizer state\n", routes.size(), total);
  return s;
}

}  // namespace opal
