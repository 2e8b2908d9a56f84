// Report tables and plots (plain SVG, no plotting dependency).
#include "ablate/report.h"

#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "runtime/safetensors.h"

namespace opal {

namespace {

std::string bytes(int64_t b) {
  if (b >= (int64_t(1) << 20)) return fmt::format("{:.1f} MiB", b / 1048576.0);
  if (b >= 1024) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{} B", b);
}

std::string loss_text(const CellSummary& c) {
  if (c.absent) return "—";
  if (c.seeds_ok == 0) return c.runs ? "diverged" : "—";
  std::string s = fmt::format("{:.4f}", c.loss);
  if (c.seeds > 1) s += fmt::format(" ± {:.4f}", c.spread);
  if (c.seeds_ok < c.seeds) s += fmt::format(" ({}/{} seeds)", c.seeds_ok, c.seeds);
  return s;
}

std::string adam_steps_text(const CellSummary& c, bool has_baseline) {
  if (c.seeds_ok == 0 || !has_baseline) return "—";
  return std::isnan(c.adam_steps) ? "> 1.0" : fmt::format("{:.2f}", c.adam_steps);
}

std::string best_text(const CellSummary& c) {
  if (c.seeds_ok == 0) return "—";
  std::vector<std::string> parts;
  for (const auto& [k, v] : c.best) parts.push_back(fmt::format("{} {:.3g}{}", k, v, std::count(c.edge.begin(), c.edge.end(), k) ? " (edge!)" : ""));
  return parts.empty() ? "—" : fmt::format("{}", fmt::join(parts, ", "));
}

// Fraction of `steps` at which the curve first reaches `target` (linear between points).
double steps_to(const std::vector<std::pair<int, double>>& curve, double target, int steps) {
  double prev_s = 0, prev_v = INFINITY;
  for (const auto& [s, v] : curve) {
    if (v <= target) {
      double at = std::isfinite(prev_v) ? prev_s + (s - prev_s) * (prev_v - target) / (prev_v - v) : s;
      return at / steps;
    }
    prev_s = s;
    prev_v = v;
  }
  return NAN;
}

}  // namespace

std::vector<CellSummary> summarize(const AblateResult& r) {
  const auto& g = r.grid;
  std::vector<CellSummary> out(g.cells.size());
  for (size_t i = 0; i < g.cells.size(); ++i) {
    const auto& gc = g.cells[i];
    auto& c = out[i];
    c.cell = int(i);
    c.label = gc.label;
    c.name = gc.name;
    c.note = gc.note;
    c.absent = gc.absent;
    if (gc.absent) continue;
    const CellResult* cr = &r.cells[i];
    c.same_as = cr->same_as;
    if (cr->same_as >= 0) cr = &r.cells[cr->same_as];
    for (const auto& h : cr->swept) c.best[h] = cr->best.at(h);
    c.edge = cr->edge;
    c.runs = cr->runs_total;
    c.diverged = cr->diverged;
    c.sweep = cr->sweep_curve;
    c.seeds = int(cr->runs.size());
    std::vector<double> finals, accs, walls;
    std::map<int, std::pair<double, int>> curve;
    for (const RunRecord* run : cr->runs) {
      walls.push_back(run->wall_s);
      c.state_bytes = run->state_bytes;
      if (run->status != "ok") continue;
      finals.push_back(run->final_loss);
      if (run->final_accuracy >= 0) accs.push_back(run->final_accuracy);
      for (const auto& p : run->curve) {
        curve[p.step].first += p.val_loss;
        curve[p.step].second += 1;
      }
    }
    c.seeds_ok = int(finals.size());
    if (!finals.empty()) {
      double m = 0;
      for (double f : finals) m += f;
      m /= finals.size();
      double v = 0;
      for (double f : finals) v += (f - m) * (f - m);
      c.loss = m;
      c.spread = finals.size() > 1 ? std::sqrt(v / (finals.size() - 1)) : 0.0;
    }
    if (!accs.empty()) {
      double a = 0;
      for (double x : accs) a += x;
      c.accuracy = a / accs.size();
    }
    if (!walls.empty()) {
      double w = 0;
      for (double x : walls) w += x;
      c.wall_s = w / walls.size();
    }
    for (const auto& [s, sum] : curve)
      if (sum.second == c.seeds_ok) c.curve.push_back({s, sum.first / sum.second});
  }
  if (g.baseline >= 0 && out[g.baseline].seeds_ok > 0) {
    const auto& b = out[g.baseline];
    int steps = r.steps > 0 ? r.steps : (b.curve.empty() ? 0 : b.curve.back().first);
    for (auto& c : out) {
      if (c.seeds_ok == 0) continue;
      if (steps > 0) c.adam_steps = steps_to(c.curve, b.loss, steps);
      if (b.wall_s > 0) c.wall_rel = c.wall_s / b.wall_s;
    }
  }
  return out;
}

std::string report_markdown(const AblateResult& r, const std::vector<CellSummary>& s) {
  const auto& g = r.grid;
  std::string md = fmt::format("# Ablation `{}` on `{}`\n\n", g.name, r.workload);
  md += fmt::format("Workload: {}.\n\n", r.workload_description);
  int seeds = 0;
  for (const auto& c : s) seeds = std::max(seeds, c.seeds);
  md += fmt::format("Each cell: final validation loss at its best hyperparameters, mean ± standard deviation over {} seed{} "
                    "(the same data order and initial weights in every cell).",
                    seeds, seeds == 1 ? "" : "s");
  if (!g.sweeps.empty()) {
    std::vector<std::string> sw;
    for (const auto& x : g.sweeps) sw.push_back(x.hparam);
    md += fmt::format(" Swept per cell: {} (log grid, extended past an edge while the best sits on it).", fmt::join(sw, ", "));
  }
  md += "\n\n";
  std::string baseline = g.baseline >= 0 ? g.cells[g.baseline].label : "";
  std::vector<std::string> notes;
  auto mark = [&](const CellSummary& c) {
    std::string m;
    if (!c.note.empty()) {
      notes.push_back(fmt::format("{}: {}", c.label, c.note));
      m += fmt::format(" [{}]", notes.size());
    }
    if (c.same_as >= 0) m += fmt::format(" (= {})", s[c.same_as].label);
    return m;
  };
  if (g.axes.size() == 2) {
    const auto& rows = g.alternatives[0];
    const auto& cols = g.alternatives[1];
    md += fmt::format("| {} \\ {} |", g.axes[0], g.axes[1]);
    for (const auto& c : cols) md += fmt::format(" {} |", c);
    md += "\n|---|";
    for (size_t k = 0; k < cols.size(); ++k) md += "---|";
    md += "\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      md += fmt::format("| {} |", rows[i]);
      for (size_t k = 0; k < cols.size(); ++k) {
        const auto& c = s[i * cols.size() + k];
        md += fmt::format(" {}{} |", loss_text(c), mark(c));
      }
      md += "\n";
    }
    for (size_t k = 0; k < notes.size(); ++k) md += fmt::format("\n[{}] {}", k + 1, notes[k]);
    md += notes.empty() ? "\n" : "\n\n";
    notes.clear();
  }
  bool acc = std::any_of(s.begin(), s.end(), [](const CellSummary& c) { return !std::isnan(c.accuracy); });
  md += fmt::format("| cell | val loss |{} best | Adam steps | wall vs baseline | state memory | runs (diverged) |\n", acc ? " accuracy |" : "");
  md += acc ? "|---|---|---|---|---|---|---|---|\n" : "|---|---|---|---|---|---|---|\n";
  for (const auto& c : s) {
    if (c.absent) {
      md += fmt::format("| {} | absent{} |{} | | | | |\n", c.label, mark(c), acc ? " |" : "");
      continue;
    }
    md += fmt::format("| {}{}{} | {} |{} {} | {} | {} | {} | {} ({}) |\n", c.label, c.cell == g.baseline ? " (baseline)" : "", mark(c), loss_text(c),
                      acc ? (std::isnan(c.accuracy) ? " — |" : fmt::format(" {:.2f}% |", 100 * c.accuracy)) : "", best_text(c), adam_steps_text(c, g.baseline >= 0),
                      std::isnan(c.wall_rel) ? "—" : fmt::format("{:.2f}x", c.wall_rel), bytes(c.state_bytes), c.runs, c.diverged);
  }
  for (size_t k = 0; k < notes.size(); ++k) md += fmt::format("\n[{}] {}", k + 1, notes[k]);
  md += notes.empty() ? "\n" : "\n\n";
  md += fmt::format("\"Adam steps\": the fraction of {}'s steps after which the cell's mean validation curve first reaches {}'s final loss "
                    "(interpolated between evaluations; \"> 1.0\": never within the run). Wall time is per run, relative to {}. "
                    "State memory: the optimizer state of the whole model, in bytes of float32.\n",
                    baseline.empty() ? "the baseline" : baseline, baseline.empty() ? "the baseline" : baseline, baseline.empty() ? "the baseline" : baseline);
  if (!r.warnings.empty()) {
    md += "\nWarnings:\n";
    for (const auto& w : r.warnings) md += "- " + w + "\n";
  }
  return md;
}

std::string report_csv(const AblateResult& r, const std::vector<CellSummary>& s) {
  std::string csv = "cell,name";
  for (const auto& a : r.grid.axes) csv += "," + a;
  csv += ",status,val_loss,val_loss_std,seeds_ok,seeds,accuracy,best_hparams,adam_steps,wall_s,wall_rel,state_bytes,runs,diverged,note\n";
  auto num = [](double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string(); };
  for (const auto& c : s) {
    const auto& gc = r.grid.cells[c.cell];
    std::string best;
    for (const auto& [k, v] : c.best) best += fmt::format("{}{}={:.6g}", best.empty() ? "" : ";", k, v);
    std::string status = c.absent ? "absent" : c.seeds_ok > 0 ? "ok" : "diverged";
    csv += fmt::format("\"{}\",{}", c.label, c.name);
    for (const auto& a : gc.coords) csv += "," + a;
    csv += fmt::format(",{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"\n", status, num(c.loss), num(c.spread), c.seeds_ok, c.seeds, num(c.accuracy), best,
                       num(c.adam_steps), num(c.wall_s), num(c.wall_rel), c.state_bytes, c.runs, c.diverged, c.note);
  }
  return csv;
}

std::string report_json(const AblateResult& r, const std::vector<CellSummary>& s) {
  using nlohmann::json;
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json j;
  j["grid"] = r.grid.name;
  j["workload"] = r.workload;
  j["workload_description"] = r.workload_description;
  j["axes"] = r.grid.axes;
  j["baseline"] = r.grid.baseline >= 0 ? json(r.grid.cells[r.grid.baseline].label) : json(nullptr);
  j["warnings"] = r.warnings;
  json cells = json::array();
  for (const auto& c : s) {
    json x;
    x["label"] = c.label;
    x["name"] = c.name;
    x["coords"] = r.grid.cells[c.cell].coords;
    x["absent"] = c.absent;
    if (!c.note.empty()) x["note"] = c.note;
    if (c.same_as >= 0) x["same_as"] = s[c.same_as].label;
    x["val_loss"] = num(c.loss);
    x["val_loss_std"] = num(c.spread);
    x["accuracy"] = num(c.accuracy);
    x["seeds_ok"] = c.seeds_ok;
    x["seeds"] = c.seeds;
    x["best"] = c.best;
    x["edge"] = c.edge;
    x["adam_steps"] = num(c.adam_steps);
    x["wall_s"] = num(c.wall_s);
    x["wall_rel"] = num(c.wall_rel);
    x["state_bytes"] = c.state_bytes;
    x["runs"] = c.runs;
    x["diverged"] = c.diverged;
    json curve = json::array();
    for (const auto& [st, v] : c.curve) curve.push_back({st, v});
    x["curve"] = curve;
    json sweep = json::array();
    for (const auto& [p, v] : c.sweep) sweep.push_back({p, num(v)});
    x["sweep"] = sweep;
    cells.push_back(x);
  }
  j["cells"] = cells;
  return j.dump(2) + "\n";
}

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
  std::string svg = fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
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
  svg += fmt::format("<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">{}</text>\n", T + (H - T - B) / 2, T + (H - T - B) / 2, ylabel);
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    std::string pts;
    for (const auto& [x, y] : s.pts)
      if (std::isfinite(y) && (!logy || y > 0)) pts += fmt::format("{:.1f},{:.1f} ", px(x), py(std::clamp(y, logy ? std::pow(10, y0) : y0, logy ? std::pow(10, y1) : y1)));
    const char* c = colors[s.color % 10];
    const char* d = dashes[s.dash % 4];
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" stroke-dasharray=\"{}\" points=\"{}\"/>\n", c, d, pts);
    double ly = T + 14 * i + 6;
    svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\" stroke-dasharray=\"{}\"/>", W - R + 10, ly, W - R + 34, ly, c, d);
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
  return svg_plot(fmt::format("{} on {}: final validation loss against {}", r.grid.name, r.workload, h), h, "final validation loss", true, true, series);
}

void write_reports(const AblateResult& r, const std::string& dir) {
  auto s = summarize(r);
  write_file_atomically(dir + "/report.md", report_markdown(r, s));
  write_file_atomically(dir + "/report.csv", report_csv(r, s));
  write_file_atomically(dir + "/report.json", report_json(r, s));
  write_file_atomically(dir + "/curves.svg", plot_curves(r, s));
  write_file_atomically(dir + "/sweeps.svg", plot_sweeps(r, s));
}

}  // namespace opal
