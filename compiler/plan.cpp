// The plan's printer (`opal ir --after fuse`, `--after memory`).
#include "compiler/plan.h"

#include "compiler/exec/kernel_abi.h"

#include <algorithm>

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

KernelBuffers kernel_buffers(const Plan& p, const Kernel& K) {
  using ir::Op;
  using ir::ValueId;
  const ir::Graph& g = p.graph;
  KernelBuffers out;
  auto slot = [&](std::set<size_t>& into, int64_t s) {
    into.insert(p.slot_index(s));
    if (g.slots[s].q8) into.insert(p.slot_index(g.slots[s].scales));
  };
  for (ValueId v : K.body) {
    const ir::Node& n = g.at(v);
    if (n.op == Op::Param) out.reads.insert(0);
    if (n.op == Op::Grad) out.reads.insert(1);
    if (n.op == Op::StateRead) slot(out.reads, n.iattr);
  }
  auto temp_reads = [&](ValueId v) {
    const ir::Node& n = g.at(v);
    for (int i = 0; i < n.n_operands; ++i) {
      ValueId o = n.operands[i];
      if (p.is_temp(o) && !std::binary_search(K.body.begin(), K.body.end(), o, [](ValueId a, ValueId b) { return a.v < b.v; })) {
        out.reads.insert(p.temp_index(o));
        if (g.at(o).shape != ir::Shape::Scalar && std::find(out.temp_reads.begin(), out.temp_reads.end(), o) == out.temp_reads.end())
          out.temp_reads.push_back(o);
      }
    }
  };
  for (ValueId v : K.scalars) {
    if (p.is_temp(v)) out.reads.insert(p.temp_index(v));
    else if (g.at(v).op == Op::StateRead) slot(out.reads, g.at(v).iattr);
    else temp_reads(v);
  }
  for (ValueId v : K.body) temp_reads(v);
  for (ValueId v : K.effects) {
    temp_reads(v);
    const ir::Node& n = g.at(v);
    if (n.op == Op::ParamWrite) out.writes.insert(0);
    else if (n.op == Op::GlobalPut) out.writes.insert(p.temp_index(v));
    else slot(out.writes, n.iattr);
  }
  for (ValueId v : K.reductions) {
    temp_reads(v);
    out.writes.insert(p.temp_index(v));
  }
  for (ValueId v : K.stores) out.writes.insert(p.temp_index(v));
  std::sort(out.temp_reads.begin(), out.temp_reads.end(), [](ValueId a, ValueId b) { return a.v < b.v; });
  return out;
}

long long chunk_size(const Plan& p, const Kernel& K) {
  if (K.domain != Domain::Full || !K.reductions.empty()) return 0;
  long long size = exec::kCudaChunk;
  for (ir::ValueId e : K.effects) {
    const ir::Node& n = p.graph.at(e);
    if (n.op == ir::Op::StateWrite || n.op == ir::Op::StateWriteIf)
      size = std::max<long long>(size, (exec::kCudaBlock / 32) * (long long)p.graph.slots[n.iattr].q8);
  }
  return size;
}

}  // namespace opal
