// Grid expansion by substitution of source text (see grid.h).
#include "lang/grid.h"

#include <cctype>
#include <cmath>
#include <functional>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "lang/const_eval.h"

namespace opal {

std::vector<double> SweepSpec::points(double center) const {
  if (kind == Kind::Values) return values;
  double a = kind == Kind::Logspace ? lo : center / hi, b = kind == Kind::Logspace ? hi : center * hi;
  int n = std::max(1, int(std::lround(std::log10(b / a) * per_decade)));
  std::vector<double> out;
  for (int i = 0; i <= n; ++i) out.push_back(a * std::pow(b / a, double(i) / n));
  return out;
}

double SweepSpec::log_step() const { return kind == Kind::Values ? 0.0 : std::log(10.0) / per_decade; }

namespace {

constexpr int kMaxAxisDepth = 16;

// Identifiers of pipeline text that are read as values (not `name =` of a named argument).
void identifiers_read(const std::string& text, std::set<std::string>& out) {
  auto ident = [](char ch, bool first) {
    return std::isalpha(static_cast<unsigned char>(ch)) || ch == '_' || (!first && std::isdigit(static_cast<unsigned char>(ch)));
  };
  for (size_t i = 0; i < text.size();) {
    if (std::isdigit(static_cast<unsigned char>(text[i]))) {  // a number such as 1e-3: not a name
      while (i < text.size() && (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '.' ||
                                 ((text[i] == '-' || text[i] == '+') && (text[i - 1] == 'e' || text[i - 1] == 'E'))))
        ++i;
      continue;
    }
    if (!ident(text[i], true)) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && ident(text[j], false)) ++j;
    size_t k = j;
    while (k < text.size() && text[k] == ' ') ++k;
    bool named_arg = k < text.size() && text[k] == '=' && (k + 1 >= text.size() || text[k + 1] != '=');
    if (!named_arg) out.insert(text.substr(i, j - i));
    i = j;
  }
}
constexpr size_t kMaxCells = 4096;

class Expander {
 public:
  Expander(const Program& p, const GridDecl& g, Diagnostics& d) : p_(p), g_(g), d_(d) {}

  ExpandedGrid run() {
    ExpandedGrid out;
    out.name = g_.name;
    out.path = g_.loc.file ? g_.loc.file->path() : "";
    check_axes();
    for (const auto& ax : g_.axes) {
      out.axes.push_back(ax.name);
      out.alternatives.emplace_back();
      for (const auto& a : ax.alts) out.alternatives.back().push_back(a.name);
    }
    for (const auto& p : g_.params)
      if (!p.default_value)
        d_.report(DiagKind::BadGrid, p.loc, fmt::format("grid hyperparameter `{}` has no default", p.name),
                  "every cell starts from the grid's defaults: write `" + p.name + " = VALUE`");
    if (g_.routes.empty())
      d_.report(DiagKind::NoRoutes, g_.loc, fmt::format("grid `{}` has no template routes", g_.name),
                "add one that names the axes, e.g. `matrix: momentum(b1) -> basis -> scale(lr)`");
    check_usage();
    check_cells();
    out.sweeps = sweeps();
    out.seeds = g_.seeds ? g_.seeds : 1;
    if (d_.has_errors()) return out;

    size_t total = 1;
    for (const auto& ax : g_.axes) total *= ax.alts.size();
    if (total > kMaxCells) {
      d_.report(DiagKind::LimitExceeded, g_.loc, fmt::format("grid `{}` has {} cells; the limit is {}", g_.name, total, kMaxCells),
                "split it into several grids");
      return out;
    }
    std::vector<size_t> idx(g_.axes.size(), 0);
    for (size_t n = 0; n < total; ++n) {
      size_t r = n;
      for (size_t k = g_.axes.size(); k-- > 0;) {
        idx[k] = r % g_.axes[k].alts.size();
        r /= g_.axes[k].alts.size();
      }
      out.cells.push_back(cell(idx));
    }
    if (!g_.baseline.empty()) {
      for (size_t i = 0; i < out.cells.size(); ++i)
        if (out.cells[i].coords == g_.baseline) out.baseline = int(i);
      if (out.baseline >= 0 && out.cells[out.baseline].absent) d_.report(DiagKind::BadGrid, g_.baseline_loc, "the baseline cell is marked absent");
    }
    return out;
  }

 private:
  const GridAxis* axis(const std::string& name) const {
    for (const auto& ax : g_.axes)
      if (ax.name == name) return &ax;
    return nullptr;
  }
  static bool is_hole(const Stage& s) { return s.role == Stage::Role::Plain && s.args.empty(); }

  void check_axes() {
    std::set<std::string> names;
    for (const auto& ax : g_.axes) {
      if (!names.insert(ax.name).second) d_.report(DiagKind::Redefinition, ax.loc, fmt::format("axis `{}` is defined twice", ax.name));
      if (p_.components.count(ax.name) || p_.optimizers.count(ax.name))
        d_.report(DiagKind::BadGrid, ax.loc, fmt::format("axis `{}` has the name of a component or optimizer", ax.name),
                  "rename the axis: a stage of that name would be ambiguous");
      if (ax.alts.empty()) d_.report(DiagKind::BadGrid, ax.loc, fmt::format("axis `{}` has no alternatives", ax.name));
      std::set<std::string> alts;
      for (const auto& a : ax.alts)
        if (!alts.insert(a.name).second)
          d_.report(DiagKind::Redefinition, a.loc, fmt::format("alternative `{}` appears twice in axis `{}`", a.name, ax.name));
    }
  }

  // Every axis must reach the template (directly or through another axis), and axes must not
  // name each other in a cycle.
  void check_usage() {
    std::set<std::string> used;
    std::function<void(const std::vector<Stage>&, std::vector<std::string>&)> walk = [&](const std::vector<Stage>& pipe,
                                                                                         std::vector<std::string>& stack) {
      for (const auto& s : pipe) {
        const GridAxis* ax = is_hole(s) ? axis(s.name) : nullptr;
        if (!ax) continue;
        if (std::find(stack.begin(), stack.end(), ax->name) != stack.end()) {
          d_.report(DiagKind::Cycle, s.loc, fmt::format("axes name each other in a cycle: {} -> {}", fmt::join(stack, " -> "), ax->name));
          continue;
        }
        used.insert(ax->name);
        stack.push_back(ax->name);
        for (const auto& a : ax->alts) walk(a.pipeline, stack);
        stack.pop_back();
      }
    };
    std::vector<std::string> stack;
    for (const auto& r : g_.routes) walk(r.pipeline, stack);
    for (const auto& c : g_.cells) walk(c.pipeline, stack);
    for (const auto& ax : g_.axes)
      if (!used.count(ax.name))
        d_.report(DiagKind::BadGrid, ax.loc, fmt::format("axis `{}` is never used", ax.name),
                  fmt::format("name it as a stage of a template route, e.g. `matrix: ... -> {} -> ...`", ax.name));
  }

  void check_cells() {
    std::set<std::vector<std::string>> seen;
    auto check_coords = [&](const std::vector<std::string>& coords, const std::vector<SourceLoc>& locs, SourceLoc loc, const char* what) {
      if (coords.size() != g_.axes.size()) {
        d_.report(DiagKind::BadGrid, loc,
                  fmt::format("{} names {} alternative{}; the grid has {} ax{}", what, coords.size(), coords.size() == 1 ? "" : "s", g_.axes.size(),
                              g_.axes.size() == 1 ? "is" : "es"),
                  "name one alternative per axis, in the order the axes are declared");
        return;
      }
      for (size_t k = 0; k < coords.size(); ++k) {
        std::vector<std::string> names;
        for (const auto& a : g_.axes[k].alts) names.push_back(a.name);
        if (std::find(names.begin(), names.end(), coords[k]) == names.end()) {
          std::string m = closest_match(coords[k], names);
          d_.report(DiagKind::BadGrid, k < locs.size() ? locs[k] : loc, fmt::format("axis `{}` has no alternative `{}`", g_.axes[k].name, coords[k]),
                    m.empty() ? fmt::format("its alternatives: {}", fmt::join(names, ", ")) : fmt::format("did you mean `{}`?", m));
        }
      }
    };
    for (const auto& c : g_.cells) {
      check_coords(c.coords, c.coord_locs, c.loc, "this cell");
      if (!seen.insert(c.coords).second) d_.report(DiagKind::Redefinition, c.loc, "this cell is overridden twice");
    }
    if (!g_.baseline.empty()) check_coords(g_.baseline, {}, g_.baseline_loc, "the baseline");
  }

  double eval(const Expr& e) {
    if (auto v = eval_constant(e)) return *v;
    d_.report(DiagKind::NotConstant, e.loc, "a sweep bound must be a number", "write it out, e.g. `1e-4` or `3 * 1e-4`");
    return NAN;
  }

  std::vector<SweepSpec> sweeps() {
    std::vector<SweepSpec> out;
    std::set<std::string> swept;
    for (const auto& sw : g_.sweeps) {
      SweepSpec s;
      s.hparam = sw.hparam;
      const Expr& e = *sw.value;
      auto usage = "write `logspace(1e-4, 1e-1, per_decade = 8)`, `around(10, per_decade = 8)` or `values(0, 0.01, 0.1)`";
      if (e.kind != Expr::Kind::Call || (e.name != "logspace" && e.name != "around" && e.name != "values")) {
        d_.report(DiagKind::BadGrid, e.loc, fmt::format("cannot sweep `{}` over this", sw.hparam), usage);
        continue;
      }
      std::vector<double> pos;
      for (const auto& a : e.args) {
        double v = eval(*a.value);
        if (a.name == "per_decade") {
          if (!(v >= 1 && v <= 64)) d_.report(DiagKind::BadGrid, a.value->loc, "`per_decade` must be between 1 and 64");
          else s.per_decade = int(v);
        } else if (!a.name.empty()) {
          d_.report(DiagKind::BadGrid, a.name_loc, fmt::format("`{}` takes no argument `{}`", e.name, a.name), usage);
        } else {
          pos.push_back(v);
        }
      }
      if (e.name == "values") {
        s.kind = SweepSpec::Kind::Values;
        s.values = pos;
        if (pos.empty() || pos.size() > 64) d_.report(DiagKind::BadGrid, e.loc, "`values` takes 1 to 64 numbers");
      } else if (e.name == "logspace") {
        s.kind = SweepSpec::Kind::Logspace;
        if (pos.size() != 2 || !(pos[0] > 0) || !(pos[1] > pos[0]))
          d_.report(DiagKind::BadGrid, e.loc, "`logspace` takes two bounds, 0 < lo < hi", usage);
        else s.lo = pos[0], s.hi = pos[1];
      } else {
        s.kind = SweepSpec::Kind::Around;
        s.hi = pos.empty() ? 10.0 : pos[0];
        if (pos.size() > 1 || !(s.hi > 1)) d_.report(DiagKind::BadGrid, e.loc, "`around` takes one factor above 1 (default 10)", usage);
      }
      if (!swept.insert(sw.hparam).second) d_.report(DiagKind::Redefinition, sw.loc, fmt::format("`{}` is swept twice", sw.hparam));
      out.push_back(std::move(s));
    }
    return out;
  }

  // The text of a pipeline with axis stages replaced by the chosen alternatives.
  std::string expand(const std::vector<Stage>& pipe, const std::map<std::string, const GridAlt*>& chosen, int depth) {
    std::vector<std::string> parts;
    for (const auto& s : pipe) {
      auto it = is_hole(s) ? chosen.find(s.name) : chosen.end();
      if (it == chosen.end() || depth > kMaxAxisDepth) parts.emplace_back(s.text.text());
      else parts.push_back(expand(it->second->pipeline, chosen, depth + 1));
    }
    return fmt::format("{}", fmt::join(parts, " -> "));
  }
  static bool names_axis(const std::vector<Stage>& pipe, const std::map<std::string, const GridAlt*>& chosen) {
    for (const auto& s : pipe)
      if (is_hole(s) && chosen.count(s.name)) return true;
    return false;
  }

  GridCellSpec cell(const std::vector<size_t>& idx) {
    GridCellSpec c;
    std::map<std::string, const GridAlt*> chosen;
    std::vector<std::string> params_order;
    std::map<std::string, std::string> params;
    auto set_params = [&](const std::vector<Param>& ps) {
      for (const auto& p : ps) {
        if (!p.default_value) continue;
        if (!params.count(p.name)) params_order.push_back(p.name);
        params[p.name] = std::string(p.default_value->loc.text());
      }
    };
    set_params(g_.params);
    for (size_t k = 0; k < idx.size(); ++k) {
      const GridAlt& a = g_.axes[k].alts[idx[k]];
      chosen[g_.axes[k].name] = &a;
      c.coords.push_back(a.name);
      set_params(a.params);
    }
    c.name = g_.name;
    for (const auto& a : c.coords) c.name += "_" + a;
    c.label = fmt::format("{}", fmt::join(c.coords, " / "));
    const GridCell* over = nullptr;
    for (const auto& gc : g_.cells)
      if (gc.coords == c.coords) over = &gc;
    if (over) {
      set_params(over->params);
      c.note = over->note;
      c.absent = over->absent;
    }
    for (const auto& r : g_.routes) {
      const auto& pipe = over && over->has_pipeline && names_axis(r.pipeline, chosen) ? over->pipeline : r.pipeline;
      std::string sel(r.loc.text());
      c.routes.push_back({sel, expand(pipe, chosen, 0)});
    }
    // A cell that is one stdlib (or user) optimizer, alone (Table 1 as a list): the cell takes
    // that optimizer's hyperparameters and defaults, overridden by the grid's where it names them.
    if (c.routes.size() == 1) {
      auto d = p_.optimizers.find(c.routes[0].second);
      if (d != p_.optimizers.end()) {
        std::map<std::string, std::string> own;
        std::vector<std::string> order, args;
        for (const auto& p : d->second->params) {
          order.push_back(p.name);
          own[p.name] = params.count(p.name) ? params[p.name] : p.default_value ? std::string(p.default_value->loc.text()) : "";
          args.push_back(p.name + " = " + p.name);
        }
        params = own;
        params_order = order;
        c.routes[0].second = fmt::format("{}({})", d->first, fmt::join(args, ", "));
      }
    }
    // Only the hyperparameters the cell's routes read: a shared grid parameter another cell uses
    // (b3 for lookahead) would be an unused hyperparameter here.
    std::set<std::string> read;
    for (const auto& r : c.routes) identifiers_read(r.second, read);
    for (const auto& n : params_order)
      if (read.count(n)) c.params.push_back({n, params[n]});
    std::string ps, rs;
    for (const auto& [n, v] : c.params) ps += fmt::format("{}{} = {}", ps.empty() ? "" : ", ", n, v);
    for (const auto& [sel, pipe] : c.routes) rs += fmt::format("  {}: {}\n", sel, pipe);
    c.optimizer_text = fmt::format("optimizer {}({}) {{\n{}}}\n", c.name, ps, rs);
    std::string file = g_.loc.file ? g_.loc.file->text() : "";
    c.spec_text = file + "\n# generated from grid `" + g_.name + "`\n" + c.optimizer_text;
    return c;
  }

  const Program& p_;
  const GridDecl& g_;
  Diagnostics& d_;
};

}  // namespace

ExpandedGrid expand_grid(const Program& program, const GridDecl& grid, Diagnostics& diags) { return Expander(program, grid, diags).run(); }

std::string format_grid(const ExpandedGrid& g) {
  std::string s = fmt::format("grid {}: {} cells", g.name, g.cells.size());
  for (size_t k = 0; k < g.axes.size(); ++k) s += fmt::format("{} {} ({})", k ? " x" : ",", g.axes[k], g.alternatives[k].size());
  s += fmt::format("; {} seed{}", g.seeds, g.seeds == 1 ? "" : "s");
  if (g.baseline >= 0) s += fmt::format("; baseline {}", g.cells[g.baseline].label);
  s += "\n";
  for (const auto& sw : g.sweeps) {
    if (sw.kind == SweepSpec::Kind::Values) s += fmt::format("  sweep {} over {}\n", sw.hparam, fmt::join(sw.values, ", "));
    else if (sw.kind == SweepSpec::Kind::Logspace)
      s += fmt::format("  sweep {} from {:g} to {:g}, {} per decade\n", sw.hparam, sw.lo, sw.hi, sw.per_decade);
    else s += fmt::format("  sweep {} from default/{:g} to default*{:g}, {} per decade\n", sw.hparam, sw.hi, sw.hi, sw.per_decade);
  }
  for (const auto& c : g.cells) {
    s += fmt::format("\n{}  [{}]{}{}\n", c.label, c.name, c.absent ? "  absent" : "", c.note.empty() ? "" : "  (" + c.note + ")");
    if (c.absent) continue;
    for (const auto& [sel, pipe] : c.routes) s += fmt::format("  {}: {}\n", sel, pipe);
    std::string ps;
    for (const auto& [n, v] : c.params) ps += fmt::format("{}{} = {}", ps.empty() ? "" : ", ", n, v);
    if (!ps.empty()) s += fmt::format("  defaults: {}\n", ps);
  }
  return s;
}

}  // namespace opal
