// Per-parameter, per-step update statistics (on request): the update's RMS and the seed
// paper's Figure 1 metric, max singular value / mean singular value. The update is the
// change the step applied to the parameter (learning rate and weight decay included; the
// ratio does not depend on the learning rate).
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace opal {

struct UpdateStats {
  std::string param;
  int64_t step = 0;
  double update_rms = 0;
  // matrices only (NaN for vectors): singular values of the update
  double sv_max = std::numeric_limits<double>::quiet_NaN();
  double sv_mean = std::numeric_limits<double>::quiet_NaN();
  double sv_ratio = std::numeric_limits<double>::quiet_NaN();  // sv_max / sv_mean
};

// Statistics of the update before - after of a rows x cols parameter (matrix: singular values).
UpdateStats update_stats(const float* before, const float* after, long long rows, long long cols, bool matrix);

// One JSON object per parameter: {"param":..., "step":..., "update_rms":..., ...}.
std::string to_json_lines(const std::vector<UpdateStats>& stats);

}  // namespace opal
