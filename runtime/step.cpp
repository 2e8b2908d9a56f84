// The step loop: one step of every parameter that has a gradient, as the compiled plan
// orders it (kernel launches and library calls on the optimizer's backend: no interpretation),
// with the checks made before anything runs (aliasing, one step at a time) and the non-finite
// policies' undo.
#include <algorithm>

#include <fmt/format.h>

#include "compiler/passes/fold_constants.h"
#include "runtime/library_calls.h"
#include "runtime/optimizer_impl.h"

namespace opal {

namespace {
long long domain_extent(Domain d, long long rows, long long cols) {
  long long k = std::min(rows, cols);
  switch (d) {
    case Domain::Full: return rows * cols;
    case Domain::Rows: return rows;
    case Domain::Cols: return cols;
    case Domain::Left: return rows * rows;
    case Domain::Right: return cols * cols;
    case Domain::Small: return k * k;
  }
  return rows * cols;
}

// Clears a flag when a step ends, however it ends.
struct StepGuard {
  std::atomic<bool>& flag;
  ~StepGuard() { flag.store(false); }
};
}  // namespace

// Two parameters whose memory overlaps (one tensor under two names, or a view of another)
// would be stepped twice or read half-updated: refused, naming both.
void Optimizer::check_aliasing() {
  struct Range {
    uintptr_t begin, end;
    size_t index;
  };
  std::vector<Range> ranges;
  for (size_t i = 0; i < impl_->tensors.size(); ++i) {
    const auto& t = impl_->tensors[i];
    auto b = reinterpret_cast<uintptr_t>(t.desc.data);
    ranges.push_back({b, b + t.numel() * sizeof(float), i});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t k = 1; k < ranges.size(); ++k)
    if (ranges[k].begin < ranges[k - 1].end) {
      const auto& a = impl_->tensors[std::min(ranges[k - 1].index, ranges[k].index)].desc.name;
      const auto& b = impl_->tensors[std::max(ranges[k - 1].index, ranges[k].index)].desc.name;
      throw Error(fmt::format("parameters `{}` and `{}` share memory (the same tensor given twice?); each would be stepped twice [AliasedParameters]\n"
                              "  = help: give every tensor once",
                              a, b));
    }
  impl_->rebound = false;
}

void Optimizer::step(void* stream) {
  if (impl_->stepping.exchange(true))
    throw Error("step() of this optimizer is already running on another thread; one optimizer steps on one thread at a time [ConcurrentStep]");
  StepGuard guard{impl_->stepping};
  if (impl_->rebound) check_aliasing();
  // a step in which no parameter has a gradient changes nothing, not even a step count
  if (std::none_of(impl_->tensors.begin(), impl_->tensors.end(), [](const Impl::Tensor& t) { return t.desc.grad != nullptr; })) return;
  impl_->backend->set_stream(stream);
  ++t_;
  if (impl_->diagnostics) {
    impl_->before.resize(impl_->tensors.size());
    for (size_t i = 0; i < impl_->tensors.size(); ++i) {
      const auto& t = impl_->tensors[i];
      impl_->before[i].assign(t.desc.data, t.desc.data + t.numel());
    }
  }
  if (impl_->nonfinite == NonFinitePolicy::Off) step_kernels(*exe_, nullptr);
  else step_checked();
  if (impl_->diagnostics) {
    impl_->stats.clear();
    for (size_t i = 0; i < impl_->tensors.size(); ++i) {
      const auto& t = impl_->tensors[i];
      UpdateStats s = update_stats(impl_->before[i].data(), t.desc.data, t.rows, t.cols, t.desc.shape.size() >= 2);
      s.param = t.desc.name;
      s.step = t_;
      impl_->stats.push_back(std::move(s));
    }
  }
}

// A step through the checked kernels. Each stepped parameter and its state are copied first;
// where a flag comes back set, the policy decides: undo everything (raise, skip) or zero that
// parameter's gradient and redo its step alone (zero).
void Optimizer::step_checked() {
  auto& ts = impl_->tensors;
  impl_->events.clear();
  for (auto& t : ts) {
    t.chk = 0;
    if (!t.desc.grad) continue;
    t.saved_w.assign(t.desc.data, t.desc.data + t.numel());
    t.saved_slots.resize(t.slots.size());
    for (size_t s = 0; s < t.slots.size(); ++s) t.saved_slots[s].assign(t.slots[s].p, t.slots[s].p + t.slots[s].n);
  }
  auto restore = [](Impl::Tensor& t) {
    std::copy(t.saved_w.begin(), t.saved_w.end(), t.desc.data);
    for (size_t s = 0; s < t.slots.size(); ++s) std::copy(t.saved_slots[s].begin(), t.saved_slots[s].end(), t.slots[s].p);
    --t.t;
  };
  auto first_stage = [&](const Impl::Tensor& t) {
    const auto& probes = exe_->optimizer->routes[t.route].plan.graph.probes;
    size_t bit = size_t(__builtin_ctz(t.chk));
    return bit < probes.size() ? probes[bit].stage : std::string("?");
  };
  step_kernels(*impl_->checked, nullptr);
  std::vector<size_t> bad;
  for (size_t i = 0; i < ts.size(); ++i)
    if (ts[i].desc.grad && ts[i].chk) bad.push_back(i);
  if (bad.empty()) return;
  const char* action = impl_->nonfinite == NonFinitePolicy::Raise ? "raised" : impl_->nonfinite == NonFinitePolicy::Skip ? "step skipped" : "gradient zeroed";
  for (size_t i : bad)
    impl_->events.push_back({ts[i].t, ts[i].desc.name, exe_->optimizer->routes[ts[i].route].label, first_stage(ts[i]), action});
  if (impl_->nonfinite != NonFinitePolicy::Zero) {
    for (auto& t : ts)
      if (t.desc.grad) restore(t);
    --t_;
    if (impl_->nonfinite == NonFinitePolicy::Raise) {
      std::string msg = describe(impl_->events[0]);
      if (bad.size() > 1) msg += fmt::format(" (and {} more parameter{})", bad.size() - 1, bad.size() > 2 ? "s" : "");
      throw NonFiniteError(msg + "; the step was undone [NonFinite]\n  = help: " +
                           (impl_->events[0].stage == "gradient" ? "the gradient came in non-finite: check the loss and its scale"
                                                                 : "the gradient was finite: the stage divides by or takes the root of something that reached zero or overflowed"));
    }
    ++impl_->skipped;
    return;
  }
  // zero: those parameters again, from their saved state, with a zero gradient
  std::vector<char> only(ts.size(), 0);
  for (size_t i : bad) {
    restore(ts[i]);
    std::fill(ts[i].desc.grad, ts[i].desc.grad + ts[i].rows * ts[i].cols, 0.f);
    ts[i].chk = 0;
    only[i] = 1;
  }
  step_kernels(*impl_->checked, &only);
  for (size_t k = 0; k < bad.size(); ++k) {
    auto& t = ts[bad[k]];
    if (!t.chk) continue;
    restore(t);  // non-finite even from a zero gradient (its state was already): no update
    ++t.t;       // it took part in the step all the same
    impl_->events[k].action = "left unchanged";
  }
}

// Launches every kernel and library call of every route for the parameters that step (a
// gradient bound, and in `only` when given), after advancing their step counts. Kernels run
// once per distinct step count among their tensors (one launch in the common case where all
// agree; a parameter that joined late gets its own).
void Optimizer::step_kernels(const Executable& exe, const std::vector<char>* only) {
  for (size_t i = 0; i < impl_->tensors.size(); ++i) {
    auto& t = impl_->tensors[i];
    if (t.desc.grad && (!only || (*only)[i])) ++t.t;
  }
  const CompiledOptimizer& co = *exe_->optimizer;
  Backend& backend = *impl_->backend;
  std::vector<KernelTensor> subset;
  std::vector<size_t> running, group;
  std::vector<int64_t> counts;
  std::vector<CallTensor> call_tensors;
  std::vector<std::pair<float*, size_t>> zeroed;
  for (size_t r = 0; r < impl_->routes.size(); ++r) {
    auto& R = impl_->routes[r];
    if (R.tensors.empty()) continue;
    const Plan& plan = co.routes[r].plan;
    const ir::Graph& g = plan.graph;
    auto env_of = [&](const Impl::Tensor& t) { return passes::UniformEnv{double(t.t), impl_->uniforms.data() + 1, double(t.rows), double(t.cols)}; };
    // the tensors of this route for which a guard holds (all of them for unguarded work)
    auto select = [&](const Guard& gd) {
      running.clear();
      for (size_t k = 0; k < R.tensors.size(); ++k) {
        const auto& t = impl_->tensors[R.tensors[k]];
        bool on = t.desc.grad != nullptr && (!only || (*only)[R.tensors[k]]);
        for (const auto& l : gd.all) on = on && ((passes::eval_uniform(g, l.cond, env_of(t)) != 0) != l.negated);
        if (on) running.push_back(k);
      }
    };
    for (const Launch& L : plan.schedule) {
      if (L.is_call) {
        const Call& C = plan.calls[L.index];
        select(C.guard);
        const ir::Node& n = g.at(C.value);
        call_tensors.clear();
        for (size_t k : running) {
          const auto& t = impl_->tensors[R.tensors[k]];
          CallTensor ct{t.bufs.data(), t.rows, t.cols, {0, 0, 0}};
          for (int o = 0; o < n.n_operands; ++o)
            if (g.at(n.operands[o]).shape == ir::Shape::Scalar) ct.scalars[o] = passes::eval_uniform(g, n.operands[o], env_of(t));
          call_tensors.push_back(ct);
        }
        if (!call_tensors.empty()) run_library_call(backend, plan, C, call_tensors);
        continue;
      }
      const Kernel& K = plan.kernels[L.index];
      select(K.guard);
      if (running.empty()) continue;
      zeroed.clear();
      counts.clear();
      for (size_t k : running) {
        auto& t = impl_->tensors[R.tensors[k]];
        if (std::find(counts.begin(), counts.end(), t.t) == counts.end()) counts.push_back(t.t);
        for (ir::ValueId red : K.reductions) {
          const Impl::Buffer& b = t.scratch[plan.temp_buffer(red)];
          zeroed.push_back({b.p, b.n});
        }
      }
      if (!zeroed.empty()) backend.zero(zeroed);
      for (int64_t count : counts) {
        group.clear();
        long long max_n = 1;
        for (size_t k : running) {
          const auto& t = impl_->tensors[R.tensors[k]];
          if (t.t != count) continue;
          group.push_back(k);
          max_n = std::max(max_n, domain_extent(K.domain, t.rows, t.cols));
        }
        const KernelTensor* table = R.table.data();
        if (group.size() != R.tensors.size()) {
          subset.clear();
          for (size_t k : group) subset.push_back(R.table[k]);
          table = subset.data();
        }
        impl_->uniforms[0] = double(count);
        backend.launch(*exe.module, exe.route_offset[r] + L.index, table, group.size(), 2 + g.slots.size() + plan.buffers.size(), max_n,
                       impl_->uniforms.data(), impl_->uniforms.size());
      }
    }
  }
}

}  // namespace opal
