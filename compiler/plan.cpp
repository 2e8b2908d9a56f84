// The plan's printer (`opal ir --after fuse`, `--after memory`).
#include "compiler/plan.h"

#include <fmt/format.h>

namespace opal {

const char* domain_name(Domain d) {
  switch (d) {
    case Domain::Full: return "full";
    case Domain::Rows: return "rows";
    case Domain::Cols: return "cols";
    case Domain::Left: return "left";
    case Domain::Right: return "right";
    case Domain::Small: return "small";
    case Domain::One: return "one";
  }
  return "?";
}

namespace {
std::string guard_str(const Guard& g) {
  std::string s;
  for (const auto& l : g.all) s += fmt::format("{}{}%{}", s.empty() ? ", when " : " && ", l.negated ? "!" : "", l.cond.v);
  return s;
}
}  // namespace

std::string print_plan(const Plan& p) {
  std::string s = ir::print(p.graph);
  auto ids = [](const std::vector<ir::ValueId>& v) {
    std::string o;
    for (auto x : v) o += fmt::format(" %{}", x.v);
    return o;
  };
  for (size_t i = 0; i < p.schedule.size(); ++i) {
    const Launch& L = p.schedule[i];
    if (L.is_call) {
      const Call& C = p.calls[L.index];
      s += fmt::format("{}: call %{} {} [level {}{}]\n", i, C.value.v, ir::op_name(p.graph.at(C.value).op), C.level, guard_str(C.guard));
      continue;
    }
    const Kernel& K = p.kernels[L.index];
    s += fmt::format("{}: kernel {} [{}{}{}{}] level {}\n", i, L.index, domain_name(K.domain), K.indexed ? ", indexed" : "",
                     K.serial ? ", serial" : "", guard_str(K.guard), K.level);
    if (!K.scalars.empty()) s += "  scalars:" + ids(K.scalars) + "\n";
    s += "  body:" + ids(K.body) + "\n";
    if (!K.reductions.empty()) s += "  reduce:" + ids(K.reductions) + "\n";
    if (!K.stores.empty()) s += "  store:" + ids(K.stores) + "\n";
    if (!K.effects.empty()) s += "  effects:" + ids(K.effects) + "\n";
  }
  for (size_t t = 0; t < p.temps.size(); ++t) {
    const Temp& T = p.temps[t];
    s += fmt::format("temp {} = %{} : {} (steps {}..{}){}\n", t, T.value.v, ir::shape_name(T.shape), T.producer, T.last_use,
                     T.buffer >= 0 ? fmt::format(" -> buffer {}", T.buffer) : "");
  }
  return s;
}

}  // namespace opal
