// One cell's hyperparameter search: coordinate-wise over its swept hyperparameters (in the
// grid's order), each a log grid around the current value, extended past an edge while the best
// point sits on it, then the chosen configuration once per seed. The search decides which runs
// to make; the engine (runner.cpp) makes them and files the results back.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ablate/journal.h"
#include "ablate/runner.h"
#include "lang/grid.h"

namespace opal {

struct CompiledOptimizer;
using HParams = std::map<std::string, double>;

// Sweep points are rounded to 6 significant digits: the journal key and the value used agree.
double round6(double v);
std::string hp_text(const HParams& hp);
// The mean final loss of a configuration's runs (infinite when one failed or diverged).
double mean_final(const std::vector<const RunRecord*>& runs);

struct Search {
  int cell = -1;
  std::shared_ptr<const CompiledOptimizer> compiled;
  HParams base;  // defaults, then each finished sweep's best
  std::vector<const SweepSpec*> sweeps;
  size_t current = 0;          // index into sweeps
  std::vector<double> points;  // of the current sweep
  int ext_lo = 0, ext_hi = 0;
  int pending = 0;                                          // runs submitted and not finished
  std::map<double, std::vector<const RunRecord*>> results;  // current sweep: point -> runs
  bool final_submitted = false;
  bool done = false;
  CellResult out;
};

// What a search needs of the engine.
class SearchHost {
 public:
  virtual ~SearchHost() = default;
  virtual const RunRecord* journaled(const Search& s, const HParams& hp, uint64_t seed) = 0;
  // Queues a run (or files it at once from the journal); `point` is the swept value, NaN for
  // a run of the final configuration. Increments s.pending.
  virtual void submit_run(Search& s, const HParams& hp, uint64_t seed, double point) = 0;
};

// Submits the search's next runs, or finishes it, while none is pending.
void advance(Search& s, int seeds, int max_extensions, SearchHost& host);

// Files a finished run with its search.
void record(Search& s, const RunRecord* r, double point);

}  // namespace opal
