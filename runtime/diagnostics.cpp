// Update statistics: RMS and the singular values of a matrix update (runtime/cpu/linalg).
#include "runtime/diagnostics.h"

#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/cpu/linalg.h"

namespace opal {

UpdateStats update_stats(const float* before, const float* after, long long rows, long long cols, bool matrix) {
  std::vector<double> U(size_t(rows * cols));
  double sq = 0;
  for (long long i = 0; i < rows * cols; ++i) {
    U[i] = double(before[i]) - double(after[i]);
    sq += U[i] * U[i];
  }
  UpdateStats s;
  s.update_rms = std::sqrt(sq / double(rows * cols));
  // (a non-finite update has no singular values: they stay NaN, and the JSON omits them)
  if (matrix && rows > 1 && cols > 1 && std::isfinite(sq)) {
    const std::vector<double> sv = cpu::singular_values(U.data(), rows, cols);
    s.sv_max = sv.front();
    s.sv_mean = std::accumulate(sv.begin(), sv.end(), 0.0) / double(sv.size());
    s.sv_ratio = s.sv_mean > 0 ? s.sv_max / s.sv_mean : std::numeric_limits<double>::quiet_NaN();
  }
  return s;
}

std::string to_json_lines(const std::vector<UpdateStats>& stats) {
  std::string out;
  for (const auto& s : stats) {
    nlohmann::json j = {{"param", s.param}, {"step", s.step}, {"update_rms", s.update_rms}};
    if (!std::isnan(s.sv_ratio)) {
      j["sv_max"] = s.sv_max;
      j["sv_mean"] = s.sv_mean;
      j["sv_ratio"] = s.sv_ratio;
    }
    out += j.dump() + "\n";
  }
  return out;
}

}  // namespace opal
