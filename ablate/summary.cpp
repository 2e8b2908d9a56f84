// Each cell's summary over its seeds (see report.h).
#include <algorithm>
#include <cmath>

#include "ablate/report.h"

namespace opal {

namespace {

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

}  // namespace opal
