// Grid expansion: a `grid` declaration -> one optimizer spec per cell (ablate/ runs them). Axes are substituted into
// the template routes at the level of source text, so every cell is an ordinary optimizer that
// `opal check`, the compiler and external trainers read like any other (a stage named after an
// axis becomes the chosen alternative's pipeline, which may name another axis: `basis(norm)`).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "lang/program.h"

namespace opal {

// One swept hyperparameter: absolute points (logspace, values) or factors around the cell's
// default (around).
struct SweepSpec {
  std::string hparam;
  enum class Kind { Logspace, Around, Values } kind = Kind::Around;
  double lo = 0, hi = 0;  // Logspace: bounds; Around: factors (1/f, f)
  int per_decade = 8;
  std::vector<double> values;  // Values
  // The points for a cell whose default is `center` (log-spaced, both ends included).
  std::vector<double> points(double center) const;
  // The log step between neighbouring points (for extending past an edge); 0 for Values.
  double log_step() const;
};

struct GridCellSpec {
  std::vector<std::string> coords;  // one alternative per axis
  std::string name;                 // optimizer name: grid_alt_alt
  std::string label;                // "newton_schulz / sign"
  std::string note;
  bool absent = false;
  std::vector<std::pair<std::string, std::string>> routes;  // (selector text, pipeline text)
  std::vector<std::pair<std::string, std::string>> params;  // (name, default text)
  std::string optimizer_text;                               // `optimizer NAME(...) { ... }`
  std::string spec_text;                                    // the grid's file followed by optimizer_text: compiles on its own
};

struct ExpandedGrid {
  std::string name;
  std::string path;  // the grid's file
  std::vector<std::string> axes;
  std::vector<std::vector<std::string>> alternatives;  // per axis
  std::vector<GridCellSpec> cells;                     // row-major over the axes
  std::vector<SweepSpec> sweeps;
  int seeds = 1;
  int baseline = -1;  // index into cells, or -1
};

// Expands `grid` (declared in `program`); reports errors in the grid's own text to `diags`.
ExpandedGrid expand_grid(const Program& program, const GridDecl& grid, Diagnostics& diags);

// `opal grid`: the cells and their pipelines, one block per cell.
std::string format_grid(const ExpandedGrid& g);

}  // namespace opal
