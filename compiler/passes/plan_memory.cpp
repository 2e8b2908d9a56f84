// Greedy interval colouring of temporaries onto scratch buffers.
#include "compiler/passes/plan_memory.h"

#include <algorithm>
#include <numeric>

namespace opal::passes {

Plan plan_memory(Plan p) {
  std::vector<int> order(p.temps.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return p.temps[a].producer < p.temps[b].producer; });
  std::vector<int> free_after(0);  // per buffer: last kernel that reads it
  p.buffers.clear();
  for (int t : order) {
    Temp& T = p.temps[t];
    int chosen = -1;
    for (size_t b = 0; b < p.buffers.size(); ++b)
      // a buffer is free for a temp produced at step k if its last reader ran before k
      if (p.buffers[b] == T.shape && free_after[b] < T.producer) {
        chosen = int(b);
        break;
      }
    if (chosen < 0) {
      chosen = int(p.buffers.size());
      p.buffers.push_back(T.shape);
      free_after.push_back(-1);
    }
    T.buffer = chosen;
    free_after[chosen] = T.last_use;
  }
  return p;
}

}  // namespace opal::passes
