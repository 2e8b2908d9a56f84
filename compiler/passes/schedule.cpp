// The schedule (see schedule.h).
#include "compiler/passes/schedule.h"

#include <algorithm>
#include <tuple>

#include "support/check.h"

namespace opal::passes {

using ir::ValueId;

namespace {
void add_temp(Plan& p, ValueId v, int pos) {
  if (p.temp_of.count(v.v)) return;
  p.temp_of[v.v] = int(p.temps.size());
  p.temps.push_back({v, p.graph.at(v).shape, pos, -1, -1});
}
}  // namespace

std::vector<Launch> order_schedule(const std::vector<Kernel>& kernels, const std::vector<Call>& calls) {
  std::vector<Launch> schedule;
  for (size_t i = 0; i < calls.size(); ++i) schedule.push_back({true, int(i)});
  for (size_t i = 0; i < kernels.size(); ++i) schedule.push_back({false, int(i)});
  auto key = [&](const Launch& L) {
    if (L.is_call) return std::make_tuple(calls[L.index].level, 0, 0, int(calls[L.index].value.v));
    const Kernel& K = kernels[L.index];
    return std::make_tuple(K.level, 1, int(K.domain), L.index);
  };
  std::stable_sort(schedule.begin(), schedule.end(), [&](const Launch& a, const Launch& b) { return key(a) < key(b); });
  return schedule;
}

Plan assemble_plan(const ir::Graph& g, std::vector<Kernel> kernels, std::vector<Call> calls, std::vector<Launch> schedule) {
  Plan p;
  p.graph = g;
  p.kernels = std::move(kernels);
  p.calls = std::move(calls);
  p.schedule = std::move(schedule);
  // temporaries: reductions, stores and call results, with producer and last use
  for (size_t pos = 0; pos < p.schedule.size(); ++pos) {
    const Launch& L = p.schedule[pos];
    if (L.is_call) {
      add_temp(p, p.calls[L.index].value, int(pos));
      continue;
    }
    for (ValueId v : p.kernels[L.index].reductions) add_temp(p, v, int(pos));
    for (ValueId v : p.kernels[L.index].stores) add_temp(p, v, int(pos));
  }
  auto use = [&](ValueId v, int pos) {
    if (auto it = p.temp_of.find(v.v); it != p.temp_of.end()) p.temps[it->second].last_use = std::max(p.temps[it->second].last_use, pos);
  };
  for (size_t pos = 0; pos < p.schedule.size(); ++pos) {
    const Launch& L = p.schedule[pos];
    if (L.is_call) {
      const ir::Node& n = g.at(p.calls[L.index].value);
      for (int i = 0; i < n.n_operands; ++i) use(n.operands[i], int(pos));
      continue;
    }
    const Kernel& K = p.kernels[L.index];
    // an operand not computed in this kernel's body is read from memory: a temp use
    auto scan = [&](ValueId v) {
      const ir::Node& n = g.at(v);
      for (int i = 0; i < n.n_operands; ++i)
        if (!std::binary_search(K.body.begin(), K.body.end(), n.operands[i], [](ValueId a, ValueId b) { return a.v < b.v; }))
          use(n.operands[i], int(pos));
    };
    for (ValueId v : K.scalars) scan(v);
    for (ValueId v : K.body) scan(v);
    for (ValueId v : K.effects) scan(v);
    for (ValueId v : K.reductions) scan(v);
  }
  // a share of a global sum stays until the step's first phase ends: the runtime reads it then
  for (size_t pos = 0; pos < p.schedule.size(); ++pos) {
    const Launch& L = p.schedule[pos];
    if (L.is_call) continue;
    for (ValueId e : p.kernels[L.index].effects)
      if (g.at(e).op == ir::Op::GlobalPut) {
        add_temp(p, e, int(pos));
        p.temps[p.temp_of.at(e.v)].last_use = int(p.schedule.size());
      }
  }
  for (auto& t : p.temps) OPAL_CHECK(t.last_use > t.producer, "temp %%%u is never read after step %d", t.value.v, t.producer);
  return p;
}

}  // namespace opal::passes
