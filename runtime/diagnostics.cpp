// Update statistics through Eigen's divide-and-conquer SVD.
#include "runtime/diagnostics.h"

#include <cmath>

#include "support/eigen.h"
#include <nlohmann/json.hpp>

namespace opal {

UpdateStats update_stats(const float* before, const float* after, long long rows, long long cols, bool matrix) {
  using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  MatD U(rows, cols);
  for (long long i = 0; i < rows * cols; ++i) U.data()[i] = double(before[i]) - double(after[i]);
  UpdateStats s;
  s.update_rms = std::sqrt(U.squaredNorm() / double(rows * cols));
  if (matrix && rows > 1 && cols > 1) {
    Eigen::BDCSVD<MatD> svd(U);
    const auto& sv = svd.singularValues();
    s.sv_max = sv.maxCoeff();
    s.sv_mean = sv.mean();
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
