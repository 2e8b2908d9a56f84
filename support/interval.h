// The values a parameter takes (`beta = 0.9 in [0, 1)`): an interval of the reals, each end
// open or closed, optionally of whole numbers only (the cadence of `every(N)`). The language
// declares it, the compiler checks constant arguments against it, and the runtime checks every
// hyperparameter value set against the intervals the compiler attached to it.
#pragma once
#include <cmath>
#include <limits>
#include <string>

#include <fmt/format.h>

namespace opal {

struct Interval {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = true, hi_open = true;
  bool whole = false;  // whole numbers only

  bool contains(double v) const {
    if (std::isnan(v)) return false;
    if (lo_open ? !(v > lo) : !(v >= lo)) return false;
    if (hi_open ? !(v < hi) : !(v <= hi)) return false;
    return !whole || v == std::floor(v);
  }
  // No value lies in it: [1, 0], (0, 0], [0, 0).
  bool empty() const { return lo > hi || (lo == hi && (lo_open || hi_open)); }
  // "[0, 1)", "[0, inf)", "whole numbers in [1, inf)"
  std::string str() const {
    auto end = [](double v) { return std::isinf(v) ? std::string(v < 0 ? "-inf" : "inf") : fmt::format("{:g}", v); };
    std::string s = fmt::format("{}{}, {}{}", lo_open ? '(' : '[', end(lo), end(hi), hi_open ? ')' : ']');
    return whole ? "whole numbers in " + s : s;
  }
  // what a parameter with this range takes: "values in [0, 1)", "whole numbers in [1, inf)"
  std::string takes() const { return whole ? str() : "values in " + str(); }
  bool operator==(const Interval&) const = default;
};

}  // namespace opal
