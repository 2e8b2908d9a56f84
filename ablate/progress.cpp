// The progress line (see progress.h).
#include "ablate/progress.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include <fmt/format.h>

namespace opal {

void print_progress(int done, int planned, int executed, int from_journal, std::chrono::steady_clock::time_point start) {
  const int total = std::max(planned, done);
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int left = total - done;
  const std::string eta = executed > 0 ? fmt::format("{:.0f}s", el / executed * left) : "?";
  const int width = 30, fill = total ? width * done / total : 0;
  std::fprintf(stderr, "\r[%s%s] %d/%d runs (%d from the journal), %.0fs elapsed, ETA %s (more runs may be added past sweep edges)   ",
               std::string(size_t(fill), '#').c_str(), std::string(size_t(width - fill), '.').c_str(), done, total, from_journal, el, eta.c_str());
  std::fflush(stderr);
}

}  // namespace opal
