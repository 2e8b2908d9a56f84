// Reports of an ablation: Markdown (the grid as a table, then every cell in full), CSV and JSON
// (one row per cell), and SVG plots of the validation-loss curves and of the learning-rate sweeps.
#pragma once
#include <cmath>
#include <string>

#include "ablate/runner.h"

namespace opal {

struct CellSummary {
  int cell = -1;
  std::string label, name, note;
  bool absent = false;
  int same_as = -1;
  int seeds_ok = 0, seeds = 0;
  double loss = NAN, spread = NAN;  // mean and standard deviation over seeds of the final validation loss
  double accuracy = NAN;
  std::map<std::string, double> best;  // the swept hyperparameters' chosen values
  std::vector<std::string> edge;
  double adam_steps = NAN;  // fraction of the baseline's steps to reach its final loss; NaN: never
  double wall_s = NAN, wall_rel = NAN;
  int64_t state_bytes = 0;
  int runs = 0, diverged = 0;
  std::vector<std::pair<int, double>> curve;  // mean validation loss over seeds
  std::vector<std::pair<double, double>> sweep;
};

std::vector<CellSummary> summarize(const AblateResult& r);

std::string report_markdown(const AblateResult& r, const std::vector<CellSummary>& s);
std::string report_csv(const AblateResult& r, const std::vector<CellSummary>& s);
std::string report_json(const AblateResult& r, const std::vector<CellSummary>& s);
std::string plot_curves(const AblateResult& r, const std::vector<CellSummary>& s);
std::string plot_sweeps(const AblateResult& r, const std::vector<CellSummary>& s);

// Writes report.md, report.csv, report.json, curves.svg and sweeps.svg into `dir`.
void write_reports(const AblateResult& r, const std::string& dir);

}  // namespace opal
