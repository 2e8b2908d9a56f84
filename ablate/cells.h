// The cells of an ablation, each distinct program compiled once: cells whose generated programs
// (their own names taken out) and hyperparameter defaults agree are duplicates, and share the
// first one's runs.
#pragma once
#include <deque>
#include <string>
#include <vector>

#include "ablate/search.h"
#include "driver/build.h"

namespace opal {

class ExternalWorkload;

// The hash of what a cell computes.
std::string program_hash(const CompiledOptimizer& c);
SpecRef cell_ref(const GridCellSpec& c);

// Fills each present cell's hash (and same_as for a duplicate) and makes one search per
// distinct cell, over the sweeps of the hyperparameters it has. `steps`: the run's length (a
// `total` hyperparameter gets it); `ext`: an external workload, which gets each cell's spec.
void plan_cells(const ExpandedGrid& g, const std::vector<SweepSpec>& sweeps, int steps, ExternalWorkload* ext, std::vector<CellResult>& cells,
                std::deque<Search>& searches);

}  // namespace opal
