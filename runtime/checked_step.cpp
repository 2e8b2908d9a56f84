// The checked step of the non-finite policies (runtime/nonfinite.h): the kernels with fused
// non-finite checks, and the undo, on any backend (the copies and flags live in its memory).
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "runtime/optimizer_impl.h"

namespace opal {

// A step through the checked kernels. Each stepped parameter and its state are copied first;
// where a flag comes back set, the policy decides: undo everything (raise, skip) or zero that
// parameter's gradient and redo its step alone (zero).
void Optimizer::Impl::restore_saved(Tensor& t, int64_t count) {
  backend->copy_bytes(t.desc.data, t.saved_w.p, t.bytes());
  for (size_t s = 0; s < t.slots.size(); ++s) backend->copy_bytes(t.slots[s].p, t.saved_slots[s].p, t.slots[s].bytes());
  if (t.saved_master) backend->copy_bytes(t.stage_w.p, t.saved_master_values.p, t.stage_w.bytes());
  t.master_valid = t.saved_master;
  t.t = count;
}

void Optimizer::step_checked() {
  auto& ts = impl_->tensors;
  Backend& be = *impl_->backend;
  impl_->events.clear();
  // The copies are made in the backend's memory (a device step stays on the device until its
  // flags come back), sized as what they copy each time: a parameter rebound at another dtype
  // keeps its name.
  auto fit = [&](Impl::Buffer& saved, size_t n, DType dt) {
    if (saved.p && saved.bytes() >= n * exec::dtype_size(dt)) return;
    if (saved.p) be.release(saved.p);
    saved = {};
    saved = impl_->alloc(n, dt);
  };
  auto save_for_undo = [&] {
    for (auto& t : ts) {
      if (!t.desc.grad) continue;
      fit(t.saved_w, t.numel(), t.desc.dtype);
      for (size_t s = t.slots.size(); s < t.saved_slots.size(); ++s) be.release(t.saved_slots[s].p);
      t.saved_slots.resize(t.slots.size());
      for (size_t s = 0; s < t.slots.size(); ++s) fit(t.saved_slots[s], t.slots[s].n, t.slots[s].dt);
      if (t.master_valid) fit(t.saved_master_values, t.stage_w.n, DType::F32);
      be.copy_bytes(t.saved_w.p, t.desc.data, t.bytes());
      for (size_t s = 0; s < t.slots.size(); ++s) be.copy_bytes(t.saved_slots[s].p, t.slots[s].p, t.slots[s].bytes());
      t.saved_master = t.master_valid;  // a master copy is state too (stage_in leaves it alone then)
      if (t.master_valid) be.copy_bytes(t.saved_master_values.p, t.stage_w.p, t.stage_w.bytes());
    }
  };
  std::vector<int64_t> counts(ts.size());  // each parameter's step count before the step
  try {
    for (size_t i = 0; i < ts.size(); ++i) counts[i] = ts[i].t;
    save_for_undo();
  } catch (...) {  // (nothing has changed but the count step() advanced)
    --t_;
    throw;
  }
  auto restore = [&](size_t i) { impl_->restore_saved(ts[i], counts[i]); };
  // Runs part of the step; should it throw (a library call or a device failing mid-step), the
  // parameters in `which` (null: every stepped one) are put back as they were, so that a checked
  // step is all or nothing, whatever stops it.
  auto or_undo = [&](const std::vector<size_t>* which, auto&& part) {
    try {
      part();
    } catch (...) {
      if (!which) --t_;
      try {
        for (size_t i = 0; i < ts.size(); ++i)
          if (ts[i].desc.grad && (!which || std::find(which->begin(), which->end(), i) != which->end())) restore(i);
      } catch (...) {  // a device that failed may refuse the copies too: its error is the one to report
      }
      throw;
    }
  };
  // The kernels' flags, zeroed before they run and read back after (waiting for them).
  std::vector<unsigned> flags(impl_->flags.n);
  auto clear_flags = [&] { be.zero_bytes(impl_->flags.p, flags.size() * sizeof(unsigned)); };
  auto read_flags = [&] {
    be.download_bytes(flags.data(), impl_->flags.p, flags.size() * sizeof(unsigned));
    for (size_t i = 0; i < ts.size(); ++i) ts[i].chk = flags[i];
  };
  auto first_stage = [&](const Impl::Tensor& t) {
    const auto& probes = exe_->desc->routes[t.route].probes;
    size_t bit = size_t(__builtin_ctz(t.chk));
    return bit < probes.size() ? probes[bit] : std::string("?");
  };
  // A 16-bit parameter stepped in place has its store checked by the kernel's probe of the new
  // value; a staged one is rounded into its memory after the kernels (stage_out), where a
  // finite f32 value can overflow (f16 from 65520 up): that too is a non-finite new value.
  std::vector<uint16_t> stored;
  auto check_staged_store = [&](Impl::Tensor& t) {
    if (!t.staged || !t.desc.grad || !t.desc.data || t.desc.dtype == DType::F32 || t.chk) return;
    const auto& probes = exe_->desc->routes[t.route].probes;
    const auto probe = std::find(probes.begin(), probes.end(), "new parameter");
    if (probe == probes.end()) return;
    stored.resize(t.numel());
    be.download_bytes(stored.data(), t.desc.data, t.bytes());
    const uint16_t exponent = t.desc.dtype == DType::BF16 ? 0x7f80 : 0x7c00;  // all ones: Inf or NaN
    if (std::any_of(stored.begin(), stored.end(), [&](uint16_t x) { return (x & exponent) == exponent; })) t.chk |= 1u << (probe - probes.begin());
  };
  const KernelModule* module = nullptr;
  std::vector<size_t> bad;
  or_undo(nullptr, [&] {
    module = &kernels(true);
    clear_flags();
    step_kernels(*module, nullptr, 0);
    read_flags();
    for (size_t i = 0; i < ts.size(); ++i) {
      check_staged_store(ts[i]);
      if (ts[i].desc.grad && ts[i].chk) bad.push_back(i);
    }
  });
  // a step that stays can still be put back (undo_step), from the same copies
  auto keep_undo = [&] {
    impl_->undo.counts = counts;
    impl_->undo.stepped.assign(ts.size(), 0);
    for (size_t i = 0; i < ts.size(); ++i) impl_->undo.stepped[i] = ts[i].desc.grad != nullptr;
    impl_->undo.valid = true;
  };
  if (bad.empty()) return keep_undo();
  const char* action = impl_->nonfinite == NonFinitePolicy::Raise  ? "raised"
                       : impl_->nonfinite == NonFinitePolicy::Skip ? "step skipped"
                                                                   : "gradient zeroed";
  for (size_t i : bad) impl_->events.push_back({ts[i].t, ts[i].desc.name, exe_->desc->routes[ts[i].route].label, first_stage(ts[i]), action});
  if (impl_->nonfinite != NonFinitePolicy::Zero) {
    for (size_t i = 0; i < ts.size(); ++i)
      if (ts[i].desc.grad) restore(i);
    --t_;
    if (impl_->nonfinite == NonFinitePolicy::Raise) {
      std::string msg = describe(impl_->events[0]);
      if (bad.size() > 1) msg += fmt::format(" (and {} more parameter{})", bad.size() - 1, bad.size() > 2 ? "s" : "");
      const Impl::Tensor& first = ts[bad[0]];
      std::string help = "the gradient was finite: the stage divides by or takes the root of something that reached zero or overflowed";
      if (impl_->events[0].stage == "gradient") help = "the gradient came in non-finite: check the loss and its scale";
      else if (impl_->events[0].stage == "new parameter" && first.desc.dtype != DType::F32)
        help = fmt::format("the gradient was finite: the new value overflowed, in f32 or when stored as {} (largest finite {})",
                           exec::dtype_name(first.desc.dtype), first.desc.dtype == DType::F16 ? "65504" : "3.39e38");
      throw NonFiniteError(msg + "; the step was undone [NonFinite]\n  = help: " + help);
    }
    ++impl_->skipped;
    return;
  }
  // zero: those parameters again, from their saved state, with a zero gradient
  std::vector<char> only(ts.size(), 0);
  for (size_t i : bad) {
    restore(i);
    be.zero_bytes(ts[i].desc.grad, ts[i].numel() * exec::dtype_size(ts[i].desc.grad_dtype));  // +0 in every dtype
    only[i] = 1;
  }
  or_undo(&bad, [&] {
    clear_flags();
    step_kernels(*module, &only, 0);
    read_flags();
  });
  for (size_t k = 0; k < bad.size(); ++k) {
    auto& t = ts[bad[k]];
    check_staged_store(t);
    if (!t.chk) continue;
    restore(bad[k]);  // non-finite even from a zero gradient (its state was already): no update
    ++t.t;            // it took part in the step all the same
    impl_->events[k].action = "left unchanged";
  }
  keep_undo();
}

}  // namespace opal
