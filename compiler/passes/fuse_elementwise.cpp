// Kernel formation by level, iteration space and guard, with library calls between kernels.
//
// Algorithm:
//  0. Guards (guards.cpp): the steps on which each value is needed, from the every/when region
//     ops, which are then removed.
//  1. level(v): for an elementwise tensor value, the max over its operands of avail(op, space(v));
//     avail(x, s) is 0 for leaves; level(x) for a same-space elementwise x (recomputed, unless
//     a library call reads x: then x is stored, and a kernel of a later level loads it);
//     level(x)+1 for another space (materialized), for a reduction result (its kernel is at the
//     level of its input) and for a library result (a call runs once its operands are in memory);
//     for a per-parameter scalar, the max over its operands.
//  2. Sinks (effects, reductions, stores) are placed in kernel (level, space, guard); each
//     kernel's closure is collected; values from another space, reductions and library results
//     become temporaries produced by their own kernel or call (worklist until stable).
//  3. Hazards: a state or parameter write placed before a kernel or call that reads the old value is moved to
//     that reader's level (or the next); repeat from 2.
//  4. The schedule (schedule.cpp) orders by level; within a level calls run first, then kernels
//     by (space, guard). Temporaries record producer and last use as schedule positions.
#include "compiler/passes/fuse_elementwise.h"

#include "compiler/passes/guards.h"
#include "compiler/passes/schedule.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "support/check.h"

namespace opal {

namespace passes {

namespace {
using ir::Category;
using ir::Op;
using ir::Shape;
using ir::ValueId;

Domain domain_of(Shape s) {
  switch (s) {
    case Shape::Rows: return Domain::Rows;
    case Shape::Cols: return Domain::Cols;
    case Shape::Full: return Domain::Full;
    case Shape::Left: return Domain::Left;
    case Shape::Right: return Domain::Right;
    case Shape::Small: return Domain::Small;
    case Shape::Scalar: return Domain::One;  // a scalar state's write
  }
  return Domain::Full;
}

// Leaves a library call reads in place from their buffers.
bool in_place_leaf(const ir::Node& n) { return n.op == Op::Grad || n.op == Op::Param || n.op == Op::StateRead; }

}  // namespace

namespace {

class Fuser {
 public:
  Fuser(const ir::Graph& g, std::vector<Guard> guards) : g_(g), level_(g.nodes.size(), -1), guard_(std::move(guards)) {}

  // The plan, or nothing when the hazards cannot be ordered (guarded kernels that read the old
  // value of what an unguarded one writes, and the reverse).
  std::optional<Plan> run() {
    find_stored();
    std::map<uint32_t, int> min_level;  // effect -> level forced by hazards
    for (int iter = 0; iter < 64; ++iter) {
      build(min_level);
      schedule_ = order_schedule(kernels_, calls_);
      bool changed = false;
      for (size_t pos = 0; pos < schedule_.size() && !changed; ++pos) {
        if (schedule_[pos].is_call) continue;
        const Kernel& W = kernels_[schedule_[pos].index];
        for (ValueId e : W.effects) {
          const ir::Node& n = g_.at(e);
          if (n.op == Op::GlobalPut) continue;  // a share of a global sum: nothing reads it back
          // the slot (or the parameter: slot -1) this effect overwrites
          const int slot = n.op == Op::ParamWrite ? -1 : int(n.iattr);
          for (size_t r = pos + 1; r < schedule_.size(); ++r) {
            int lvl;
            if (schedule_[r].is_call) {
              const Call& C = calls_[schedule_[r].index];
              if (!call_reads_slot(C, slot)) continue;
              lvl = C.level;  // calls run first in their level
            } else {
              const Kernel& R = kernels_[schedule_[r].index];
              if (!reads_slot(R, slot)) continue;
              lvl = R.level + (std::make_pair(R.domain, R.guard) < std::make_pair(W.domain, W.guard) ? 0 : 1);
              if (R.domain == W.domain && R.guard == W.guard) lvl = R.level;  // the same kernel: reads come first
            }
            if (lvl > min_level[e.v]) {
              min_level[e.v] = lvl;
              changed = true;
            }
          }
        }
      }
      if (!changed) return assemble_plan(g_, kernels_, calls_, schedule_);
    }
    return std::nullopt;
  }

 private:
  bool inline_scalar(ValueId v) const {
    const ir::Node& n = g_.at(v);
    return n.shape == Shape::Scalar && ir::category(n.op) != Category::Reduce && ir::category(n.op) != Category::Library;
  }
  bool leaf(ValueId v) const { return ir::category(g_.at(v).op) == Category::Leaf; }
  bool library(ValueId v) const { return ir::category(g_.at(v).op) == Category::Library; }

  int level(ValueId v) {
    if (level_[v.v] >= 0) return level_[v.v];
    const ir::Node& n = g_.at(v);
    int l = 0;
    if (ir::category(n.op) == Category::Reduce) {
      ValueId in = n.operands[0];
      l = avail(in, domain_of(g_.at(in).shape));
    } else if (library(v)) {
      for (int k = 0; k < n.n_operands; ++k) {
        ValueId o = n.operands[k];
        if (g_.at(o).shape == Shape::Scalar) continue;
        l = std::max(l, in_place_leaf(g_.at(o)) ? 0 : level(o) + 1);  // operands are in memory one level later
      }
    } else if (!leaf(v)) {
      for (int k = 0; k < n.n_operands; ++k)
        l = std::max(l, inline_scalar(v) ? avail(n.operands[k], Domain::Full) : avail(n.operands[k], domain_of(n.shape)));
    }
    return level_[v.v] = l;
  }

  int avail(ValueId v, Domain d) {
    const ir::Node& n = g_.at(v);
    if (leaf(v)) return global_ready(n);
    if (ir::category(n.op) == Category::Reduce || library(v)) return level(v) + 1;
    if (inline_scalar(v)) return level(v);
    return domain_of(n.shape) == d ? level(v) : level(v) + 1;
  }

  // Every global sum is known one level after the last share of this route is written (the
  // runtime adds the shares up between the two phases of the step, so every share must come
  // before every read); any other leaf at once. (A share never depends on a global sum: the
  // lowering refuses that.)
  int global_ready(const ir::Node& n) {
    if (n.op != Op::HParam || n.iattr < g_.first_global()) return 0;
    int l = 0;
    for (ValueId e : g_.effects)
      if (g_.at(e).op == Op::GlobalPut) l = std::max(l, avail(g_.at(e).operands[0], Domain::One) + 1);
    return l;
  }

  // Work guarded by a condition that reads a global sum waits for the sum like work that reads
  // it: a stale guard must never decide a first-phase kernel or call.
  int guarded_level(int l, const Guard& gd) {
    for (const auto& lit : gd.all) l = std::max(l, avail(lit.cond, Domain::One));
    return l;
  }

  struct Key {
    int level;
    Domain d;
    Guard guard;
    bool operator<(const Key& o) const {
      if (level != o.level) return level < o.level;
      if (d != o.d) return d < o.d;
      return guard < o.guard;
    }
  };

  void build(const std::map<uint32_t, int>& min_level) {
    std::map<Key, Kernel> ks;
    std::set<uint32_t> materialized, placed_reductions, placed_calls;
    std::vector<std::pair<Key, ValueId>> work;  // (kernel, sink)
    calls_.clear();
    auto sink_domain = [&](ValueId e) {
      const ir::Node& n = g_.at(e);
      if (n.op == Op::StateWrite || n.op == Op::StateWriteIf) return domain_of(g_.slots[n.iattr].shape);
      if (n.op == Op::ParamWrite) return Domain::Full;
      Shape in = g_.at(n.operands[0]).shape;  // reductions run in their input's space
      return domain_of(in);
    };
    // a value some call or kernel reads from memory: stored by the kernel that computes it
    auto materialize = [&](ValueId v) {
      const ir::Node& n = g_.at(v);
      if (leaf(v) && (in_place_leaf(n) || n.shape == Shape::Scalar)) return;
      if (ir::category(n.op) == Category::Reduce || library(v)) return;  // already a temp
      if (materialized.insert(v.v).second) work.push_back({{guarded_level(level(v), guard_[v.v]), domain_of(n.shape), guard_[v.v]}, v});
    };
    std::function<void(ValueId)> place_call = [&](ValueId v) {
      if (!placed_calls.insert(v.v).second) return;
      const ir::Node& n = g_.at(v);
      calls_.push_back({v, guarded_level(level(v), guard_[v.v]), guard_[v.v]});
      for (int k = 0; k < n.n_operands; ++k) {
        ValueId o = n.operands[k];
        if (g_.at(o).shape == Shape::Scalar) continue;  // uniform: evaluated on the host
        if (library(o)) place_call(o);
        else if (ir::category(g_.at(o).op) == Category::Reduce) place_reduction(o, work, placed_reductions);
        else materialize(o);
      }
    };
    for (ValueId e : g_.effects) {
      Domain d = sink_domain(e);
      int l = avail(g_.at(e).operands[0], d);
      if (auto it = min_level.find(e.v); it != min_level.end()) l = std::max(l, it->second);
      work.push_back({{guarded_level(l, guard_[e.v]), d, guard_[e.v]}, e});
    }
    while (!work.empty()) {
      auto [key, sink] = work.back();
      work.pop_back();
      Kernel& K = ks[key];
      K.domain = key.d;
      K.level = key.level;
      K.guard = key.guard;
      const ir::Node& sn = g_.at(sink);
      if (ir::category(sn.op) == Category::Effect) K.effects.push_back(sink);
      else if (ir::category(sn.op) == Category::Reduce) K.reductions.push_back(sink);
      else K.stores.push_back(sink);
      // collect the closure
      std::vector<ValueId> stack;
      if (ir::category(sn.op) == Category::Effect || ir::category(sn.op) == Category::Reduce)
        for (int k = 0; k < sn.n_operands; ++k) stack.push_back(sn.operands[k]);
      else stack.push_back(sink);
      auto& seen_list = K_seen_[key];
      std::set<uint32_t> seen(seen_list.begin(), seen_list.end());
      while (!stack.empty()) {
        ValueId v = stack.back();
        stack.pop_back();
        if (!seen.insert(v.v).second) continue;
        const ir::Node& n = g_.at(v);
        if (leaf(v)) {
          if (n.shape != Shape::Scalar && domain_of(n.shape) != key.d) K.indexed = true;
          if (n.shape == Shape::Scalar) K.scalars.push_back(v);
          else K.body.push_back(v);
          continue;
        }
        if (ir::category(n.op) == Category::Reduce) {
          place_reduction(v, work, placed_reductions);
          if (n.shape == Shape::Scalar) K.scalars.push_back(v);  // loaded before the loop
          else if (domain_of(n.shape) != key.d) K.indexed = true;
          continue;  // read from its temp
        }
        if (library(v)) {
          place_call(v);
          if (n.shape == Shape::Scalar) K.scalars.push_back(v);  // loaded before the loop
          else if (domain_of(n.shape) != key.d) K.indexed = true;
          continue;  // read from its temp
        }
        if (inline_scalar(v)) {
          K.scalars.push_back(v);
          for (int k = 0; k < n.n_operands; ++k) stack.push_back(n.operands[k]);
          continue;
        }
        if (domain_of(n.shape) != key.d) {
          K.indexed = true;
          materialize(v);
          continue;  // read from its temp
        }
        if (auto it = stored_.find(v.v); it != stored_.end() && v != sink && it->second.level < key.level && it->second.guard == key.guard) {
          materialize(v);
          continue;  // stored by an earlier kernel: read from its temp
        }
        K.body.push_back(v);
        for (int k = 0; k < n.n_operands; ++k) stack.push_back(n.operands[k]);
      }
      seen_list.assign(seen.begin(), seen.end());
    }
    K_seen_.clear();
    kernels_.clear();
    for (auto& [key, K] : ks) {
      auto by_id = [](ValueId a, ValueId b) { return a.v < b.v; };
      std::sort(K.scalars.begin(), K.scalars.end(), by_id);
      std::sort(K.body.begin(), K.body.end(), by_id);
      for (ValueId r : K.reductions) {
        Op op = g_.at(r).op;
        if (op == Op::RowSum || op == Op::ColSum) K.indexed = true;
        if (op == Op::ColSum || op == Op::Sum) K.serial = true;
      }
      kernels_.push_back(std::move(K));
    }
  }

  // Elementwise values a library call reads: stored by the kernel that computes them, so a
  // kernel of a later level in their space loads them rather than recomputing their chain
  // (Newton-Schulz's X of one step is not recomputed from the gradient in every later step).
  // Levels and guards do not change with the hazards: found once.
  void find_stored() {
    for (uint32_t i = 0; i < g_.nodes.size(); ++i) {
      const ir::Node& n = g_.nodes[i];
      if (!library(ValueId{i})) continue;
      for (int k = 0; k < n.n_operands; ++k) {
        const ValueId o = n.operands[k];
        const ir::Node& on = g_.at(o);
        if (on.shape == Shape::Scalar || leaf(o) || library(o) || ir::category(on.op) == Category::Reduce) continue;
        stored_.emplace(o.v, Key{guarded_level(level(o), guard_[o.v]), domain_of(on.shape), guard_[o.v]});
      }
    }
  }

  void place_reduction(ValueId v, std::vector<std::pair<Key, ValueId>>& work, std::set<uint32_t>& placed) {
    if (!placed.insert(v.v).second) return;
    ValueId in = g_.at(v).operands[0];
    Domain d = domain_of(g_.at(in).shape);
    work.push_back({{guarded_level(avail(in, d), guard_[v.v]), d, guard_[v.v]}, v});
  }

  // Whether a node reads the old value of a state slot (slot -1: of the parameter).
  bool reads(const ir::Node& n, int slot) const { return slot < 0 ? n.op == Op::Param : n.op == Op::StateRead && n.iattr == slot; }
  bool reads_slot(const Kernel& K, int slot) const {
    for (ValueId v : K.body)
      if (reads(g_.at(v), slot)) return true;
    for (ValueId v : K.scalars)  // a scalar state, loaded before the loop
      if (reads(g_.at(v), slot)) return true;
    return false;
  }
  bool call_reads_slot(const Call& C, int slot) const {
    const ir::Node& n = g_.at(C.value);
    for (int k = 0; k < n.n_operands; ++k)
      if (reads(g_.at(n.operands[k]), slot)) return true;
    return false;
  }

  const ir::Graph& g_;
  std::vector<int> level_;
  std::vector<Guard> guard_;
  std::vector<Kernel> kernels_;
  std::vector<Call> calls_;
  std::vector<Launch> schedule_;
  std::map<Key, std::vector<uint32_t>> K_seen_;
  std::map<uint32_t, Key> stored_;  // find_stored
};

}  // namespace

Plan fuse_elementwise(const ir::Graph& g) {
  // kernels are formed without the region ops, under their guards
  for (bool skip_writes : {true, false}) {
    GuardedGraph gg = lower_regions(g, skip_writes);
    if (std::optional<Plan> p = Fuser(gg.graph, std::move(gg.guards)).run()) return std::move(*p);
  }
  OPAL_CHECK(false, "fusion did not converge for %s", g.name.c_str());
  return {};
}

}  // namespace passes
}  // namespace opal
