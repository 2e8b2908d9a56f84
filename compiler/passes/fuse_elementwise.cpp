// Kernel formation by level and iteration space.
//
// Algorithm:
//  1. level(v): for an elementwise tensor value, the max over its operands of avail(op, space(v));
//     avail(x, s) is 0 for leaves; level(x) for a same-space elementwise x (recomputed);
//     level(x)+1 for another space (materialized) and for a reduction result (its kernel is at
//     the level of its input, so its result is ready one level later); for a per-parameter
//     scalar, the max over its operands.
//  2. Sinks (effects, reductions) are placed in kernel (level, space); each kernel's closure is
//     collected; values from another space become temporaries stored by their own kernel, which
//     may add sinks (worklist until stable).
//  3. Hazards: a state write placed before a kernel that reads the old state is moved to that
//     kernel's level (or the next when the reader comes later at the same level); repeat from 2.
//  4. Kernels are ordered by (level, space); temporaries record producer and last use.
#include "compiler/passes/fuse_elementwise.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "compiler/check.h"

namespace opal {

const char* domain_name(Domain d) {
  switch (d) {
    case Domain::Full: return "full";
    case Domain::Rows: return "rows";
    case Domain::Cols: return "cols";
  }
  return "?";
}

std::string print_plan(const Plan& p) {
  std::string s = ir::print(p.graph);
  for (size_t k = 0; k < p.kernels.size(); ++k) {
    const Kernel& K = p.kernels[k];
    auto ids = [](const std::vector<ir::ValueId>& v) {
      std::string o;
      for (auto x : v) o += fmt::format(" %{}", x.v);
      return o;
    };
    s += fmt::format("kernel {} [{}{}{}] level {}\n", k, domain_name(K.domain), K.indexed ? ", indexed" : "", K.serial ? ", serial" : "", K.level);
    if (!K.scalars.empty()) s += "  scalars:" + ids(K.scalars) + "\n";
    s += "  body:" + ids(K.body) + "\n";
    if (!K.reductions.empty()) s += "  reduce:" + ids(K.reductions) + "\n";
    if (!K.stores.empty()) s += "  store:" + ids(K.stores) + "\n";
    if (!K.effects.empty()) s += "  effects:" + ids(K.effects) + "\n";
  }
  for (size_t t = 0; t < p.temps.size(); ++t) {
    const Temp& T = p.temps[t];
    s += fmt::format("temp {} = %{} : {} (kernels {}..{}){}\n", t, T.value.v, ir::shape_name(T.shape), T.producer, T.last_use,
                     T.buffer >= 0 ? fmt::format(" -> buffer {}", T.buffer) : "");
  }
  return s;
}

namespace passes {

namespace {
using ir::Category;
using ir::Op;
using ir::Shape;
using ir::ValueId;

Domain domain_of(Shape s) {
  OPAL_CHECK(s != Shape::Scalar, "scalars have no iteration space");
  return s == Shape::Rows ? Domain::Rows : s == Shape::Cols ? Domain::Cols : Domain::Full;
}

class Fuser {
 public:
  explicit Fuser(const ir::Graph& g) : g_(g), level_(g.nodes.size(), -1) {}

  Plan run() {
    std::map<uint32_t, int> min_level;  // effect -> level forced by hazards
    for (int iter = 0; iter < 64; ++iter) {
      build(min_level);
      bool changed = false;
      for (size_t k = 0; k < kernels_.size() && !changed; ++k)
        for (ValueId e : kernels_[k].effects) {
          const ir::Node& n = g_.at(e);
          if (n.op != Op::StateWrite) continue;
          for (size_t r = k + 1; r < kernels_.size(); ++r)
            if (reads_slot(kernels_[r], int(n.iattr))) {
              int lvl = kernels_[r].level + (kernels_[r].domain > kernels_[k].domain ? 1 : 0);
              if (lvl > min_level[e.v]) {
                min_level[e.v] = lvl;
                changed = true;
              }
            }
        }
      if (!changed) return finish();
    }
    OPAL_CHECK(false, "fusion did not converge for %s", g_.name.c_str());
    return {};
  }

 private:
  bool inline_scalar(ValueId v) const {
    const ir::Node& n = g_.at(v);
    return n.shape == Shape::Scalar && ir::category(n.op) != Category::Reduce;
  }
  bool leaf(ValueId v) const { return ir::category(g_.at(v).op) == Category::Leaf; }

  int level(ValueId v) {
    if (level_[v.v] >= 0) return level_[v.v];
    const ir::Node& n = g_.at(v);
    int l = 0;
    if (n.op == Op::RowSum || n.op == Op::ColSum || n.op == Op::Sum) {
      ValueId in = n.operands[0];
      l = g_.at(in).shape == Shape::Scalar ? avail(in, Domain::Full) : avail(in, domain_of(g_.at(in).shape));
    } else if (!leaf(v)) {
      for (int k = 0; k < n.n_operands; ++k)
        l = std::max(l, inline_scalar(v) ? avail(n.operands[k], Domain::Full) : avail(n.operands[k], domain_of(n.shape)));
    }
    return level_[v.v] = l;
  }

  int avail(ValueId v, Domain d) {
    const ir::Node& n = g_.at(v);
    if (leaf(v)) return 0;
    if (ir::category(n.op) == Category::Reduce) return level(v) + 1;
    if (inline_scalar(v)) return level(v);
    return domain_of(n.shape) == d ? level(v) : level(v) + 1;
  }

  struct Key {
    int level;
    Domain d;
    bool operator<(const Key& o) const { return level != o.level ? level < o.level : d < o.d; }
  };

  void build(const std::map<uint32_t, int>& min_level) {
    std::map<Key, Kernel> ks;
    std::set<uint32_t> materialized;
    std::vector<std::pair<Key, ValueId>> work;  // (kernel, sink)
    auto sink_domain = [&](ValueId e) {
      const ir::Node& n = g_.at(e);
      if (n.op == Op::StateWrite) return domain_of(g_.slots[n.iattr].shape);
      if (n.op == Op::ParamWrite) return Domain::Full;
      Shape in = g_.at(n.operands[0]).shape;  // reductions run in their input's space
      return in == Shape::Scalar ? Domain::Full : domain_of(in);
    };
    for (ValueId e : g_.effects) {
      Domain d = sink_domain(e);
      int l = avail(g_.at(e).operands[0], d);
      if (auto it = min_level.find(e.v); it != min_level.end()) l = std::max(l, it->second);
      work.push_back({{l, d}, e});
    }
    std::set<uint32_t> placed_reductions;
    while (!work.empty()) {
      auto [key, sink] = work.back();
      work.pop_back();
      Kernel& K = ks[key];
      K.domain = key.d;
      K.level = key.level;
      const ir::Node& sn = g_.at(sink);
      if (ir::category(sn.op) == Category::Effect) K.effects.push_back(sink);
      else if (ir::category(sn.op) == Category::Reduce) K.reductions.push_back(sink);
      else K.stores.push_back(sink);
      // collect the closure
      std::vector<ValueId> stack;
      if (ir::category(sn.op) == Category::Effect || ir::category(sn.op) == Category::Reduce) stack.push_back(sn.operands[0]);
      else stack.push_back(sink);
      std::set<uint32_t> seen(K_seen_[key].begin(), K_seen_[key].end());
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
          if (placed_reductions.insert(v.v).second) {
            ValueId in = n.operands[0];
            Domain d = g_.at(in).shape == Shape::Scalar ? Domain::Full : domain_of(g_.at(in).shape);
            work.push_back({{avail(in, d), d}, v});
          }
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
          if (materialized.insert(v.v).second) work.push_back({{level(v), domain_of(n.shape)}, v});
          continue;  // read from its temp
        }
        K.body.push_back(v);
        for (int k = 0; k < n.n_operands; ++k) stack.push_back(n.operands[k]);
      }
      K_seen_[key].assign(seen.begin(), seen.end());
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

  bool reads_slot(const Kernel& K, int slot) const {
    for (ValueId v : K.body)
      if (g_.at(v).op == Op::StateRead && g_.at(v).iattr == slot) return true;
    return false;
  }

  Plan finish() {
    Plan p;
    p.graph = g_;
    p.kernels = kernels_;
    // temporaries: reductions and stores, with producer and last use
    for (size_t k = 0; k < p.kernels.size(); ++k) {
      for (ValueId v : p.kernels[k].reductions) add_temp(p, v, int(k));
      for (ValueId v : p.kernels[k].stores) add_temp(p, v, int(k));
    }
    auto use = [&](ValueId v, int k) {
      if (auto it = p.temp_of.find(v.v); it != p.temp_of.end()) p.temps[it->second].last_use = std::max(p.temps[it->second].last_use, k);
    };
    for (size_t k = 0; k < p.kernels.size(); ++k) {
      const Kernel& K = p.kernels[k];
      // an operand not computed in this kernel's body is read from memory: a temp use
      auto scan = [&](ValueId v) {
        const ir::Node& n = g_.at(v);
        for (int i = 0; i < n.n_operands; ++i)
          if (!std::binary_search(K.body.begin(), K.body.end(), n.operands[i], [](ValueId a, ValueId b) { return a.v < b.v; }))
            use(n.operands[i], int(k));
      };
      for (ValueId v : K.scalars) scan(v);
      for (ValueId v : K.body) scan(v);
      for (ValueId v : K.effects) scan(v);
      for (ValueId v : K.reductions) scan(v);
    }
    for (auto& t : p.temps) OPAL_CHECK(t.last_use > t.producer, "temp %%%u is never read after kernel %d", t.value.v, t.producer);
    return p;
  }

  static void add_temp(Plan& p, ValueId v, int k) {
    if (p.temp_of.count(v.v)) return;
    p.temp_of[v.v] = int(p.temps.size());
    p.temps.push_back({v, p.graph.at(v).shape, k, -1, -1});
  }

  const ir::Graph& g_;
  std::vector<int> level_;
  std::vector<Kernel> kernels_;
  std::map<Key, std::vector<uint32_t>> K_seen_;
};

}  // namespace

Plan fuse_elementwise(const ir::Graph& g) { return Fuser(g).run(); }

}  // namespace passes
}  // namespace opal
