// The per-cell hyperparameter search (see search.h).
#include "ablate/search.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/pipeline.h"

namespace opal {

double round6(double v) { return std::stod(fmt::format("{:.6g}", v)); }

std::string hp_text(const HParams& hp) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : hp) parts.push_back(fmt::format("{}={:.6g}", k, v));
  return fmt::format("{}", fmt::join(parts, ","));
}

double mean_final(const std::vector<const RunRecord*>& runs) {
  double s = 0;
  for (auto* r : runs) {
    if (r->status != "ok" || !std::isfinite(r->final_loss)) return INFINITY;
    s += r->final_loss;
  }
  return runs.empty() ? INFINITY : s / runs.size();
}

namespace {
// The range of hyperparameter h that v lies outside (the spec's `in [0, 1)`), or null.
const exec::HParamRange* outside(const Search& s, const std::string& h, double v) {
  if (!s.compiled) return nullptr;
  for (const exec::HParamRange& r : s.compiled->ranges)
    if (s.compiled->hparams[r.hparam] == h && !r.range.contains(v)) return &r;
  return nullptr;
}

void submit_point(Search& s, int seeds, const std::string& h, double point, SearchHost& host) {
  HParams hp = s.base;
  hp[h] = point;
  for (int seed = 1; seed <= seeds; ++seed) host.submit_run(s, hp, uint64_t(seed), point);
}
}  // namespace

void advance(Search& s, int seeds, int max_extensions, SearchHost& host) {
  while (s.pending == 0 && !s.done) {
    if (s.current < s.sweeps.size()) {
      const SweepSpec& sw = *s.sweeps[s.current];
      if (s.points.empty()) {
        // points the spec's ranges refuse (a beta of 1 or more around 0.9) are left out, and said so
        std::vector<double> left_out;
        const exec::HParamRange* range = nullptr;
        for (double p : sw.points(s.base[sw.hparam])) {
          const exec::HParamRange* r = outside(s, sw.hparam, round6(p));
          if (r) left_out.push_back(round6(p)), range = r;
          else s.points.push_back(round6(p));
        }
        if (range)
          s.out.notes.push_back(fmt::format("{} point{} of the {} sweep ({}) outside {}, the values {} takes, {} left out{}", left_out.size(),
                                            left_out.size() == 1 ? "" : "s", sw.hparam, fmt::join(left_out, ", "), range->range.str(), range->origin,
                                            left_out.size() == 1 ? "was" : "were", s.points.empty() ? ": no point is left, so it is not swept" : ""));
        if (s.points.empty()) {
          s.current++;
          continue;
        }
        for (double p : s.points) submit_point(s, seeds, sw.hparam, p, host);
        continue;
      }
      // all points of the sweep are in: the best, or one more point past the edge it sits on
      std::vector<double> means;
      for (double p : s.points) means.push_back(mean_final(s.results[p]));
      size_t best = size_t(std::min_element(means.begin(), means.end()) - means.begin());
      if (s.current == 0) {
        s.out.sweep_curve.clear();
        for (size_t k = 0; k < s.points.size(); ++k) s.out.sweep_curve.push_back({s.points[k], means[k]});
      }
      bool finite = std::isfinite(means[best]);
      bool at_lo = finite && best == 0 && s.points.size() > 1, at_hi = finite && best + 1 == s.points.size() && s.points.size() > 1;
      double step = sw.log_step();
      // past a range's end there is nothing to try: the best is as far as the spec allows
      const double below = round6(s.points.front() * std::exp(-step)), above = round6(s.points.back() * std::exp(step));
      if (at_lo && step > 0 && outside(s, sw.hparam, below)) at_lo = false;
      if (at_hi && step > 0 && outside(s, sw.hparam, above)) at_hi = false;
      if (step > 0 && at_lo && s.ext_lo < max_extensions) {
        ++s.ext_lo;
        double p = below;
        s.points.insert(s.points.begin(), p);
        submit_point(s, seeds, sw.hparam, p, host);
        continue;
      }
      if (step > 0 && at_hi && s.ext_hi < max_extensions) {
        ++s.ext_hi;
        double p = above;
        s.points.push_back(p);
        submit_point(s, seeds, sw.hparam, p, host);
        continue;
      }
      if ((at_lo || at_hi) && step > 0) s.out.edge.push_back(sw.hparam);
      if (finite) s.base[sw.hparam] = s.points[best];
      s.current++;
      s.points.clear();
      s.results.clear();
      s.ext_lo = s.ext_hi = 0;
      continue;
    }
    // no sweep left: the chosen configuration, one run per seed (most ran during the sweep)
    if (!s.final_submitted) {
      s.final_submitted = true;
      for (int seed = 1; seed <= seeds; ++seed) {
        if (const RunRecord* r = host.journaled(s, s.base, uint64_t(seed))) s.out.runs.push_back(r);
        else host.submit_run(s, s.base, uint64_t(seed), NAN);
      }
      continue;
    }
    s.done = true;
    s.out.best = s.base;
    s.out.cell = s.cell;
  }
}

void record(Search& s, const RunRecord* r, double point) {
  --s.pending;
  ++s.out.runs_total;
  if (r->status != "ok") ++s.out.diverged;
  if (std::isnan(point)) s.out.runs.push_back(r);  // a run of the final configuration
  else s.results[point].push_back(r);
}

}  // namespace opal
