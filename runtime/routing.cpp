// Routing (see routing.h).
#include "runtime/routing.h"

#include <fnmatch.h>

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/error.h"

namespace opal {

namespace {

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// A route condition on the parameter's shape, in the view its route states (by default rows x
// rest; a vector: 1 x n), and the hyperparameters; numel is the whole tensor's.
bool condition_holds(const exec::Selector& s, const ParamDesc& p, const double* hparams) {
  const exec::TensorView v = exec::tensor_view(p.shape, s.view);
  double regs[exec::kMaxConditionLength];  // (verify() bounds the program: no allocation here)
  s.condition.run(0, hparams, double(v.rows), double(v.cols), regs, double(p.shape.size()), double(v.numel()));
  return regs[s.condition.size() - 1] != 0;
}

bool selector_accepts(const exec::Selector& s, const ParamDesc& p, const double* hparams) {
  switch (s.kind) {
    case exec::SelectorKind::Where: return condition_holds(s, p, hparams);
    case exec::SelectorKind::Matrix: return p.shape.size() >= 2;
    case exec::SelectorKind::Vector: return p.shape.size() <= 1;
    case exec::SelectorKind::Other: return true;
    case exec::SelectorKind::Role: return std::find(s.roles.begin(), s.roles.end(), p.role) != s.roles.end();
    case exec::SelectorKind::Pattern:
      for (const auto& pat : s.patterns)
        if (fnmatch(pat.c_str(), p.name.c_str(), FNM_CASEFOLD) == 0) return true;
      return false;
  }
  return false;
}

// Name patterns first (in spec order), then roles, then conditions on the shape (in spec
// order), then the shape classes, then `other`.
const exec::Selector* select_route(const exec::RoutingTable& table, const ParamDesc& p, const double* hparams) {
  using K = exec::SelectorKind;
  for (int pass = 0; pass < 5; ++pass)
    for (const exec::Selector& s : table.selectors) {
      bool in_pass = pass == 0   ? s.kind == K::Pattern
                     : pass == 1 ? s.kind == K::Role
                     : pass == 2 ? s.kind == K::Where
                     : pass == 3 ? (s.kind == K::Matrix || s.kind == K::Vector)
                                 : s.kind == K::Other;
      if (in_pass && selector_accepts(s, p, hparams)) return &s;
    }
  return nullptr;
}

}  // namespace

bool decides_routes(const exec::Description& d, size_t hparam) {
  for (const auto& t : d.tables)
    for (const auto& s : t.selectors)
      for (const auto& in : s.condition.code)
        if (in.op == exec::ScalarOp::HParam && in.a == hparam) return true;
  return false;
}

RoutedParam route_param(const exec::Description& d, const ParamDesc& p, const double* hparams) {
  if (!hparams) hparams = d.defaults.data();
  if (p.name.empty()) throw Error("a parameter has an empty name");
  int64_t numel = 1;
  for (int64_t d : p.shape) {
    if (d <= 0) throw Error(fmt::format("parameter `{}` has shape {}: every dimension must be positive", p.name, shape_str(p.shape)));
    if (numel > kMaxTensorElements / d) throw Error(fmt::format("parameter `{}` has more than {} elements", p.name, kMaxTensorElements));
    numel *= d;
  }
  // route: follow delegations down to a compiled route
  const exec::RoutingTable* table = &d.tables.at(0);
  const exec::Selector* sel = nullptr;
  while (true) {
    sel = select_route(*table, p, hparams);
    if (!sel) {
      throw Error(
          fmt::format("parameter `{}` ({}) matches no route of optimizer `{}` [UnroutedParameter]\n  = help: add an `other:` route, or a "
                      "pattern route such as \"{}\": ...",
                      p.name, p.shape.size() >= 2 ? "matrix " + shape_str(p.shape) : "vector " + shape_str(p.shape), table->optimizer, p.name));
    }
    if (sel->table < 0) break;
    table = &d.tables.at(sel->table);
  }
  const size_t ri = size_t(sel->route);
  const exec::Route& route = d.routes.at(ri);
  if (route.matrix_only && p.shape.size() < 2) {
    throw Error(
        fmt::format("{} needs a matrix, but parameter `{}` is a vector {} [MatrixOnly]\n  = help: route "
                    "vectors elsewhere with `vector:` or `other:` in optimizer `{}`",
                    route.matrix_reason, p.name, shape_str(p.shape), d.name));
  }
  RoutedParam rp{ri, exec::tensor_view(p.shape, route.view)};
  auto check_size = [&](exec::Extent s) {
    const long long r = exec::dims_of(s, rp.view.rows, rp.view.cols).rows;
    if (exec::is_square(s) && r > kMaxSideForSquares)
      throw Error(
          fmt::format("parameter `{}` {} would need a {} x {} matrix in route `{}`: the limit is {} [LimitExceeded]\n  = help: route "
                      "it to an elementwise pipeline by name or shape",
                      p.name, shape_str(p.shape), r, r, route.label, kMaxSideForSquares));
    const long long n = exec::dims_of(s, rp.view.rows, rp.view.cols).count();
    if (rp.view.batch > 1 && n > kMaxTensorElements / rp.view.batch)
      throw Error(
          fmt::format("parameter `{}` {} would need {} {} buffers of {} elements in route `{}`: over the limit of {} [LimitExceeded]\n"
                      "  = help: route it to a pipeline without per-matrix squares",
                      p.name, shape_str(p.shape), rp.view.batch, exec::extent_name(s), n, route.label, kMaxTensorElements));
  };
  for (const auto& s : route.slots) check_size(s.extent);
  for (exec::Extent s : route.scratch) check_size(s);
  return rp;
}

}  // namespace opal
