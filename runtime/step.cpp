// The step loop: one step of every parameter that has a gradient, as the executable description
// orders it (kernel launches and library calls on the optimizer's backend; guards and call
// scalars from each route's host scalar program, run once per tensor),
// with the checks made before anything runs (aliasing, one step at a time). The checked step
// of the non-finite policies is runtime/checked_step.cpp.
#include <algorithm>

#include <fmt/format.h>

#include "runtime/library_calls.h"
#include "runtime/optimizer_impl.h"

namespace opal {

namespace {
// Clears a flag when a step ends, however it ends.
struct StepGuard {
  std::atomic<bool>& flag;
  ~StepGuard() { flag.store(false); }
};
// However a step ends, the caller's stream is not kept.
struct EndStep {
  Backend& b;
  ~EndStep() {
    try {
      b.end_step();
    } catch (const std::exception&) {  // a device error here is sticky: the next call reports it
    }
  }
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
    ranges.push_back({b, b + t.bytes(), i});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t k = 1; k < ranges.size(); ++k)
    if (ranges[k].begin < ranges[k - 1].end) {
      const auto& a = impl_->tensors[std::min(ranges[k - 1].index, ranges[k].index)].desc.name;
      const auto& b = impl_->tensors[std::max(ranges[k - 1].index, ranges[k].index)].desc.name;
      throw Error(
          fmt::format("parameters `{}` and `{}` share memory (the same tensor given twice?); each would be stepped twice [AliasedParameters]\n"
                      "  = help: give every tensor once",
                      a, b));
    }
  impl_->rebound = false;
}

void Optimizer::step(void* stream) {
  if (impl_->stepping.exchange(true))
    throw Error("step() of this optimizer is already running on another thread; one optimizer steps on one thread at a time [ConcurrentStep]");
  StepGuard guard{impl_->stepping};
  impl_->undo.valid = false;  // (a checked step that steps makes it valid again)
  if (impl_->sharded)
    throw Error(
        "this optimizer has parameters sharded by rows: its steps run in phases, with the host's gathers and scatters between them [Sharded]\n"
        "  = help: step_phase(Local), the exchanges after it, step_phase(Whole), the exchanges after it, step_phase(Finish)");
  if (impl_->rebound) check_aliasing();
  // a step in which no parameter has a gradient changes nothing, not even a step count
  if (std::none_of(impl_->tensors.begin(), impl_->tensors.end(), [](const Impl::Tensor& t) { return t.desc.grad != nullptr; })) return;
  impl_->backend->set_stream(stream);
  EndStep end_step{*impl_->backend};
  ++t_;
  if (impl_->diagnostics) {
    impl_->before.resize(impl_->tensors.size());
    for (size_t i = 0; i < impl_->tensors.size(); ++i) {
      const auto& t = impl_->tensors[i];
      impl_->before[i] = impl_->read_f32(t.desc.data, t.desc.dtype, t.numel());
    }
  }
  impl_->stats.clear();  // (of the last step: none when it recorded none)
  if (impl_->nonfinite == NonFinitePolicy::Off) step_kernels(kernels(false), nullptr, 0);
  else step_checked();
  if (impl_->diagnostics) {
    for (size_t i = 0; i < impl_->tensors.size(); ++i) {
      const auto& t = impl_->tensors[i];
      // as stored: the matrices of a view stacked (a permuted view: dim 0 by the rest)
      const exec::Dims v = t.perm.empty() ? exec::Dims{t.batch * t.rows, t.cols} : exec::matrix_view(t.desc.shape, exec::View::First);
      const std::vector<float> after = impl_->read_f32(t.desc.data, t.desc.dtype, t.numel());
      UpdateStats s = update_stats(impl_->before[i].data(), after.data(), v.rows, v.cols, t.desc.shape.size() >= 2);
      s.param = t.desc.name;
      s.step = t_;
      impl_->stats.push_back(std::move(s));
    }
  }
}

void Optimizer::step_phase(StepPhase phase, void* stream) {
  if (!impl_->sharded) throw Error("step_phase is for an optimizer with parameters sharded by rows (ParamDesc::whole_shape); step() steps this one");
  if (impl_->stepping.exchange(true))
    throw Error("step_phase() of this optimizer is already running on another thread; one optimizer steps on one thread at a time [ConcurrentStep]");
  StepGuard guard{impl_->stepping};
  impl_->undo.valid = false;
  if (int(phase) != impl_->next_phase)
    throw Error(fmt::format("step_phase({}) is out of order: this step's next phase is {} (a step runs local, whole, finish) [PhaseOrder]",
                            step_phase_name(phase), step_phase_name(StepPhase(impl_->next_phase))));
  if (impl_->diagnostics) throw Error("update diagnostics are not available with sharded parameters [Unsupported]");
  if (impl_->nonfinite == NonFinitePolicy::Zero)
    throw Error(
        "the non-finite policy `zero` redoes one parameter's step, which a step in phases cannot (its exchanges have run) "
        "[Unsupported]\n  = help: raise or skip undo the whole step, which works with sharded parameters");
  if (impl_->rebound) check_aliasing();
  impl_->backend->set_stream(stream);
  EndStep end_step{*impl_->backend};
  const bool advances = phase == StepPhase::Local && std::any_of(impl_->tensors.begin(), impl_->tensors.begin() + ptrdiff_t(impl_->n_params),
                                                                 [](const Impl::Tensor& t) { return t.desc.grad != nullptr; });
  if (advances) ++t_;
  if (impl_->nonfinite == NonFinitePolicy::Off) {
    step_kernels(kernels(false), nullptr, 1 + int(phase));
  } else {  // checked: copies before the local phase, flags read after the finish
    if (phase == StepPhase::Local) checked_begin(advances);
    checked_kernels(nullptr, 1 + int(phase), nullptr);
    if (phase == StepPhase::Finish) {
      impl_->next_phase = 0;  // (whatever the policy makes of the flags, this step is over)
      checked_end();
    }
  }
  impl_->next_phase = (int(phase) + 1) % 3;
}

void Optimizer::undo_step() {
  if (impl_->stepping.exchange(true))
    throw Error("undo_step() while a step() of this optimizer runs on another thread; one optimizer steps on one thread at a time [ConcurrentStep]");
  StepGuard guard{impl_->stepping};
  if (!impl_->undo.valid)
    throw Error(
        "there is no step to undo: only the last step, taken under a non-finite policy other than off (which keeps the copies), "
        "and only until a parameter, its state or a step count is written [NoUndo]\n"
        "  = help: set_nonfinite_policy(raise, skip or zero) before the step you may want to undo");
  impl_->undo.valid = false;
  checked_undo(nullptr);
  impl_->backend->sync();
  if (impl_->undo.advanced) --t_;
  if (impl_->nonfinite == NonFinitePolicy::Skip) ++impl_->skipped;  // (under raise the host raises)
}

namespace {
// Whether tensor t runs schedule entry `pos` in step phase `phase` (0: a whole step; else 1 +
// StepPhase): a parameter not sharded in the first phase, its rows in the local and finish
// phases' spans, the owner's whole matrix in the whole phase's.
using Part = Optimizer::Impl::Tensor::Part;
bool runs_at(const Optimizer::Impl::Tensor& t, size_t pos, int phase) {
  switch (t.part) {
    case Part::All: return phase <= 1;
    case Part::Local: return (phase == 1 && pos < t.phases.local_end) || (phase == 3 && pos >= t.phases.whole_end);
    case Part::Whole: return phase == 2 && pos >= t.phases.local_end && pos < t.phases.whole_end;
  }
  return false;
}
// Whether t takes part in step phase `phase` at all (its count advances in its first).
bool in_phase(const Optimizer::Impl::Tensor& t, int phase) {
  return t.part == Part::All ? phase <= 1 : t.part == Part::Local ? phase == 1 || phase == 3 : phase == 2;
}
}  // namespace

// Launches every kernel and library call of every route for the parameters that step (a
// gradient bound, and in `only` when given), after advancing their step counts and running
// their routes' host scalar programs. Kernels run once per distinct step count among their
// tensors (one launch in the common case where all agree; a parameter that joined late gets
// its own). Nothing here allocates: the working lists are sized at construction.
void Optimizer::step_kernels(const KernelModule& module, const std::vector<char>* only, int phase) {
  const exec::Description& desc = *exe_->desc;
  const double* hparams = impl_->uniforms.data() + 1;
  auto steps = [&](size_t i) {
    const auto& t = impl_->tensors[i];
    return impl_->has_grad(t) && (!only || (*only)[i]) && in_phase(t, phase);
  };
  auto run_scalars = [&] {
    for (size_t i = 0; i < impl_->tensors.size(); ++i) {
      auto& t = impl_->tensors[i];
      if (steps(i)) desc.routes[t.route].scalars.run(double(t.t), hparams, double(t.mrows), double(t.mcols), t.regs.data(), 0, double(t.total));
    }
  };
  impl_->derived_for = -1;  // the hyperparameters may have changed since the last step
  for (size_t i = 0; i < impl_->tensors.size(); ++i)
    if (steps(i) && phase != 3) {
      ++impl_->tensors[i].t;
      impl_->stage_in(impl_->tensors[i]);
    }
  run_scalars();
  auto staged_out = [&] {
    for (size_t i = 0; i < impl_->tensors.size(); ++i)
      if (steps(i) && !(phase == 1 && impl_->tensors[i].part == Part::Local)) impl_->stage_out(impl_->tensors[i]);
  };
  if (desc.globals.empty()) {
    run_phase(module, only, false, phase);
    staged_out();
    return;
  }
  // Two phases: every route's first part writes each tensor's share of the global sums; the
  // sums are added up on the host in parameter order (deterministic, in double); the second
  // part reads them as uniforms.
  run_phase(module, only, false, phase);
  double* sums = impl_->uniforms.data() + 1 + desc.hparams.size();
  std::fill(sums, sums + desc.globals.size(), 0.0);
  for (size_t i = 0; i < impl_->tensors.size(); ++i) {
    if (!steps(i)) continue;
    auto& t = impl_->tensors[i];
    for (const exec::GlobalShare& sh : desc.routes[t.route].shares) sums[sh.global] += impl_->share(t, sh.buffer, sh.per_matrix);
  }
  run_scalars();            // guards and call scalars may read the sums
  impl_->derived_for = -1;  // and the host-computed uniforms
  run_phase(module, only, true, phase);
  staged_out();
}

// One phase of the step over every route: the whole schedule of a route without global sums
// (in the first phase), else its part before (first phase) or after (second) the split.
void Optimizer::run_phase(const KernelModule& module, const std::vector<char>* only, bool second, int phase) {
  const exec::Description& desc = *exe_->desc;
  Backend& backend = *impl_->backend;
  auto& S = impl_->scratch;
  for (size_t r = 0; r < impl_->routes.size(); ++r) {
    auto& R = impl_->routes[r];
    if (R.tensors.empty()) continue;
    const exec::Route& route = desc.routes[r];
    const bool split = !desc.globals.empty();
    const size_t begin = second ? route.phase_split : 0;
    const size_t end = split && !second ? route.phase_split : route.schedule.size();
    // the tensors of this route that step and for which a guard holds
    size_t pos = begin;
    auto select = [&](const exec::Guard& gd) {
      S.running.clear();
      for (size_t k = 0; k < R.tensors.size(); ++k) {
        const auto& t = impl_->tensors[R.tensors[k]];
        if (impl_->has_grad(t) && (!only || (*only)[R.tensors[k]]) && runs_at(t, pos, phase) && gd.holds(t.regs.data())) S.running.push_back(k);
      }
    };
    for (; pos < end; ++pos) {
      const exec::ScheduleEntry& E = route.schedule[pos];
      if (E.is_call) {
        const exec::LibraryCall& C = route.calls[E.index];
        select(C.guard);
        S.call_tensors.clear();
        for (size_t k : S.running) {
          auto& t = impl_->tensors[R.tensors[k]];
          for (long long b = 0; b < t.batch; ++b) S.call_tensors.push_back({t.matrix_bufs(b), t.rows, t.cols, t.regs.data()});
        }
        if (!S.call_tensors.empty()) run_library_call(backend, C, S.call_tensors);
        continue;
      }
      const exec::KernelLaunch& K = route.kernels[E.index];
      select(K.guard);
      if (S.running.empty()) continue;
      S.zeroed.clear();
      S.counts.clear();
      for (size_t k : S.running) {
        auto& t = impl_->tensors[R.tensors[k]];
        if (std::find(S.counts.begin(), S.counts.end(), t.t) == S.counts.end()) S.counts.push_back(t.t);
        for (uint32_t b : K.zeroed) {
          const Impl::Buffer& buf = t.scratch[b - exec::kFirstSlotBuffer - t.slots.size()];
          S.zeroed.push_back({buf.p, buf.n});
        }
      }
      if (!S.zeroed.empty()) backend.zero(S.zeroed);
      for (int64_t count : S.counts) {
        S.group.clear();
        long long max_n = 1;
        for (size_t k : S.running) {
          const auto& t = impl_->tensors[R.tensors[k]];
          if (t.t != count) continue;
          S.group.push_back(k);
          max_n = std::max(max_n, exec::dims_of(K.domain, t.rows, t.cols).count());
        }
        const KernelTensor* table = R.table.data();
        size_t entries = R.table.size();
        if (S.group.size() != R.tensors.size()) {
          S.subset.clear();
          for (size_t k : S.group)
            for (long long b = 0; b < impl_->tensors[R.tensors[k]].batch; ++b) S.subset.push_back(R.table[R.first[k] + size_t(b)]);
          table = S.subset.data();
          entries = S.subset.size();
        }
        impl_->uniforms[0] = double(count);
        if (impl_->derived_for != double(count)) {  // once per step count and phase, not per launch
          desc.derive_uniforms(impl_->uniforms.data(), impl_->uniform_regs.data());
          impl_->derived_for = double(count);
        }
        backend.launch(module, K, table, entries, route.table_size(), max_n, impl_->uniforms.data(), impl_->uniforms.size());
      }
      // totals of full-size values span the whole tensor, not one matrix
      if (!K.whole_sums.empty())
        for (size_t k : S.running) {
          auto& t = impl_->tensors[R.tensors[k]];
          if (t.batch > 1)
            for (uint32_t z : K.whole_sums) impl_->combine_whole(t, z);
        }
    }
  }
}

}  // namespace opal
