// Report tables: Markdown, CSV and JSON (summary.cpp: the per-cell summaries; plots.cpp: the SVGs).
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

}  // namespace

std::string report_markdown(const AblateResult& r, const std::vector<CellSummary>& s) {
  const auto& g = r.grid;
  std::string md = fmt::format("# Ablation `{}` on `{}`\n\n", g.name, r.workload);
  md += fmt::format("Workload: {}.\n\n", r.workload_description);
  int seeds = 0;
  for (const auto& c : s) seeds = std::max(seeds, c.seeds);
  md += fmt::format(
      "Each cell: final validation loss at its best hyperparameters, mean ± standard deviation over {} seed{} "
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
                      acc ? (std::isnan(c.accuracy) ? " — |" : fmt::format(" {:.2f}% |", 100 * c.accuracy)) : "", best_text(c),
                      adam_steps_text(c, g.baseline >= 0), std::isnan(c.wall_rel) ? "—" : fmt::format("{:.2f}x", c.wall_rel), bytes(c.state_bytes),
                      c.runs, c.diverged);
  }
  for (size_t k = 0; k < notes.size(); ++k) md += fmt::format("\n[{}] {}", k + 1, notes[k]);
  md += notes.empty() ? "\n" : "\n\n";
  md += fmt::format(
      "\"Adam steps\": the fraction of {}'s steps after which the cell's mean validation curve first reaches {}'s final loss "
      "(interpolated between evaluations; \"> 1.0\": never within the run). Wall time is per run, relative to {}. "
      "State memory: the optimizer state of the whole model, in bytes at each slot's storage (4 for f32, 2 for bf16, 1 for q8 and 4 per block for its scales).\n",
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
    csv += fmt::format(",{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"\n", status, num(c.loss), num(c.spread), c.seeds_ok, c.seeds, num(c.accuracy),
                       best, num(c.adam_steps), num(c.wall_s), num(c.wall_rel), c.state_bytes, c.runs, c.diverged, c.note);
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

void write_reports(const AblateResult& r, const std::string& dir) {
  auto s = summarize(r);
  write_file_atomically(dir + "/report.md", report_markdown(r, s));
  write_file_atomically(dir + "/report.csv", report_csv(r, s));
  write_file_atomically(dir + "/report.json", report_json(r, s));
  write_file_atomically(dir + "/curves.svg", plot_curves(r, s));
  write_file_atomically(dir + "/sweeps.svg", plot_sweeps(r, s));
}

}  // namespace opal
