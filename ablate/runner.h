// `opal ablate`: expands a grid, compiles each distinct cell once, searches each swept
// hyperparameter per cell (a log grid around the cell's default, extended past an edge while the
// best point sits on it), repeats seeds, and journals every finished run. Runs go in parallel on
// a pool of threads, one run per thread.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lang/grid.h"
#include "ablate/journal.h"
#include "ablate/workload.h"

namespace opal {

struct AblateOptions {
  std::string workload = "quadratic";  // a built-in name or external:COMMAND
  WorkloadOptions workload_options;
  std::string out_dir;     // journal, cell specs, reports
  int jobs = 0;            // 0: one per core
  int seeds = 0;           // 0: the grid's
  int per_decade = 0;      // 0: each sweep's own
  int max_extensions = 3;  // points added past an edge, per side, before warning
  bool progress = true;    // the progress bar on stderr
};

// Where a cell's search ended.
struct CellResult {
  int cell = -1;
  int same_as = -1;  // a duplicate: the cell with the same program (its numbers are that cell's)
  std::string hash;
  std::map<std::string, double> best;                  // the chosen hyperparameters (swept and default)
  std::vector<std::string> swept;                      // the hyperparameters swept for this cell
  std::vector<std::string> edge;                       // swept hyperparameters whose best stayed on an edge
  std::vector<std::string> notes;                      // what the search left out (sweep points outside a range)
  std::vector<const RunRecord*> runs;                  // the best configuration's runs, one per seed
  std::vector<std::pair<double, double>> sweep_curve;  // (lr, mean final loss) of the first sweep
  int diverged = 0;                                    // runs of the whole search that diverged
  int runs_total = 0;
};

struct AblateResult {
  ExpandedGrid grid;
  std::string workload, workload_description;
  int steps = 0;
  std::vector<CellResult> cells;  // one per grid cell (absent cells: cell set, no runs)
  std::vector<std::string> warnings;
  int runs_executed = 0, runs_from_journal = 0;
  std::unique_ptr<Journal> journal;  // owns the records `runs` point to
};

// Compiles every cell (reporting duplicates by program hash); throws CompileError for a cell
// that does not compile.
std::vector<std::string> cell_hashes(const ExpandedGrid& g);

AblateResult run_ablation(const ExpandedGrid& grid, const AblateOptions& opts);

}  // namespace opal
