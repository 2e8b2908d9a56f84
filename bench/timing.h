// The benchmarks' clock: the median wall time of a few runs, in milliseconds.
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

namespace opal::bench {

template <class F>
double median_ms(F&& f, int reps) {
  std::vector<double> ts;
  for (int i = 0; i < reps; ++i) {
    auto a = std::chrono::steady_clock::now();
    f();
    ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

}  // namespace opal::bench
