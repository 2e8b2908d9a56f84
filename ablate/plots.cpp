// The report's plots: plain SVG, no plotting dependency (see report.h).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "ablate/report.h"

namespace opal {

namespace {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> pts;
  int color = 0, dash = 0;
};

std::string svg_plot(const std::string& title, const std::string& xlabel, const std::string& ylabel, bool logx, bool logy,
                     const std::vector<Series>& series) {
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  static const char* dashes[] = {"", "6,3", "2,2", "8,3,2,3"};
  const double W = 900, H = 520, L = 70, R = 230, T = 40, B = 50;
  auto tx = [&](double v) { return logx ? std::log10(v) : v; };
  auto ty = [&](double v) { return logy ? std::log10(v) : v; };
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series)
    for (const auto& [x, y] : s.pts) {
      if (!std::isfinite(y) || (logy && y <= 0) || (logx && x <= 0)) continue;
      x0 = std::min(x0, tx(x)), x1 = std::max(x1, tx(x)), y0 = std::min(y0, ty(y)), y1 = std::max(y1, ty(y));
    }
  std::string svg =
      fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
  svg += fmt::format("<rect width=\"{}\" height=\"{}\" fill=\"white\"/>\n<text x=\"{}\" y=\"24\" font-size=\"15\">{}</text>\n", W, H, L, title);
  if (!std::isfinite(x0)) return svg + "<text x=\"100\" y=\"100\">no finite points</text>\n</svg>\n";
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  auto px = [&](double x) { return L + (tx(x) - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (ty(y) - y0) / (y1 - y0) * (H - T - B); };
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", L, T, W - L - R, H - T - B);
  for (int k = 0; k <= 4; ++k) {
    double fy = y0 + (y1 - y0) * k / 4, fx = x0 + (x1 - x0) * k / 4;
    double vy = logy ? std::pow(10, fy) : fy, vx = logx ? std::pow(10, fx) : fx;
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.4g}</text>\n", L - 6, py(vy) + 4, vy);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.3g}</text>\n", px(vx), H - B + 16, vx);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", L + (W - L - R) / 2, H - 12, xlabel);
  svg += fmt::format("<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">{}</text>\n", T + (H - T - B) / 2,
                     T + (H - T - B) / 2, ylabel);
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    std::string pts;
    for (const auto& [x, y] : s.pts)
      if (std::isfinite(y) && (!logy || y > 0))
        pts += fmt::format("{:.1f},{:.1f} ", px(x), py(std::clamp(y, logy ? std::pow(10, y0) : y0, logy ? std::pow(10, y1) : y1)));
    const char* c = colors[s.color % 10];
    const char* d = dashes[s.dash % 4];
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" stroke-dasharray=\"{}\" points=\"{}\"/>\n", c, d, pts);
    double ly = T + 14 * i + 6;
    svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\" stroke-dasharray=\"{}\"/>", W - R + 10, ly,
                       W - R + 34, ly, c, d);
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", W - R + 40, ly + 4, s.name);
  }
  return svg + "</svg>\n";
}

// Colour by the last axis (the normalization), dash by the first (the basis).
void style(const ExpandedGrid& g, int cell, Series& s) {
  if (g.axes.empty()) return;
  size_t cols = g.alternatives.back().size();
  s.color = int(cell % cols);
  s.dash = g.axes.size() > 1 ? int(cell / cols) : 0;
}

}  // namespace

std::string plot_curves(const AblateResult& r, const std::vector<CellSummary>& s) {
  std::vector<Series> series;
  for (const auto& c : s) {
    if (c.curve.empty() || c.same_as >= 0) continue;
    Series x{c.label, {}};
    for (const auto& [st, v] : c.curve) x.pts.push_back({double(st), v});
    style(r.grid, c.cell, x);
    series.push_back(x);
  }
  return svg_plot(fmt::format("{} on {}: validation loss at each cell's best hyperparameters", r.grid.name, r.workload), "step", "validation loss",
                  false, true, series);
}

std::string plot_sweeps(const AblateResult& r, const std::vector<CellSummary>& s) {
  std::vector<Series> series;
  std::string h = r.grid.sweeps.empty() ? "" : r.grid.sweeps[0].hparam;
  for (const auto& c : s) {
    if (c.sweep.empty() || c.same_as >= 0) continue;
    Series x{c.label, c.sweep};
    style(r.grid, c.cell, x);
    series.push_back(x);
  }
  return svg_plot(fmt::format("{} on {}: final validation loss against {}", r.grid.name, r.workload, h), h, "final validation loss", true, true,
                  series);
}

}  // namespace opal
