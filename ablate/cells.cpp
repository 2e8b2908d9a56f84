// Cell compilation and deduplication (see cells.h).
#include "ablate/cells.h"

#include <map>

#include <fmt/format.h>

#include "ablate/external.h"
#include "compiler/codegen/c_emitter.h"
#include "support/disk_cache.h"

namespace opal {

std::string program_hash(const CompiledOptimizer& c) {
  std::string s = emit_optimizer(c, Target::Cpu);
  for (size_t at = s.find(c.name); at != std::string::npos; at = s.find(c.name, at + 4)) s.replace(at, c.name.size(), "cell");
  for (size_t i = 0; i < c.hparams.size(); ++i) s += fmt::format("\n{}={:.17g}", c.hparams[i], c.defaults[i]);
  return content_hash(s).substr(0, 16);
}

SpecRef cell_ref(const GridCellSpec& c) { return SpecRef{c.spec_text, c.name, {}}; }

std::vector<std::string> cell_hashes(const ExpandedGrid& g) {
  std::vector<std::string> out;
  for (const auto& c : g.cells) out.push_back(c.absent ? "" : program_hash(*compile_spec(cell_ref(c))));
  return out;
}

void plan_cells(const ExpandedGrid& g, const std::vector<SweepSpec>& sweeps, int steps, ExternalWorkload* ext, std::vector<CellResult>& cells,
                std::deque<Search>& searches) {
  std::map<std::string, int> first;
  cells.resize(g.cells.size());
  for (size_t i = 0; i < g.cells.size(); ++i) {
    CellResult& cr = cells[i];
    cr.cell = int(i);
    const auto& c = g.cells[i];
    if (c.absent) continue;
    if (ext) ext->write_cell(c);
    auto compiled = compile_spec(cell_ref(c));
    cr.hash = program_hash(*compiled);
    if (auto it = first.find(cr.hash); it != first.end()) {
      cr.same_as = it->second;
      continue;
    }
    first[cr.hash] = int(i);
    Search s;
    s.cell = int(i);
    s.compiled = compiled;
    for (size_t k = 0; k < compiled->hparams.size(); ++k) s.base[compiled->hparams[k]] = compiled->defaults[k];
    // A schedule's horizon: a cell with a `total` hyperparameter gets the run's length.
    if (s.base.count("total") && steps > 0) s.base["total"] = steps;
    for (const auto& sw : sweeps)
      if (s.base.count(sw.hparam)) {
        s.sweeps.push_back(&sw);
        s.out.swept.push_back(sw.hparam);
      }
    searches.push_back(std::move(s));
  }
}

}  // namespace opal
