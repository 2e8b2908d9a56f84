// load_grid: parse, resolve, pick the grid, expand.
#include "ablate/grid_file.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/error.h"

namespace opal {

ExpandedGrid load_grid(const std::string& path, const std::string& name) {
  Diagnostics d;
  LoadRequest req;
  req.files = {path};
  auto p = load_program(req, d);
  const GridDecl* g = nullptr;
  if (!d.has_errors()) {
    if (p->user_grids.empty()) {
      d.report(DiagKind::BadGrid, {}, fmt::format("`{}` defines no grid", path), "add `grid NAME { ... }`");
    } else if (name.empty()) {
      g = p->user_grids.back();
    } else {
      auto it = p->grids.find(name);
      if (it != p->grids.end()) g = it->second;
      else {
        std::vector<std::string> names;
        for (auto* x : p->user_grids) names.push_back(x->name);
        std::string m = closest_match(name, names);
        d.report(DiagKind::BadGrid, {}, fmt::format("no grid `{}` in `{}`", name, path),
                 m.empty() ? fmt::format("its grids: {}", fmt::join(names, ", ")) : fmt::format("did you mean `{}`?", m));
      }
    }
  }
  ExpandedGrid out;
  if (g) out = expand_grid(*p, *g, d);
  if (d.has_errors()) throw CompileError(d.render());
  return out;
}

}  // namespace opal
