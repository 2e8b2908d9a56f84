// The checked step of the non-finite policies (runtime/nonfinite.h): the kernels with fused
// non-finite checks, and the undo, on any backend (the copies and flags live in its memory).
// A whole step is checked_begin, checked_kernels, checked_end; a step in phases (parameters
// sharded by rows) begins with its local phase and ends with its finish phase.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "runtime/optimizer_impl.h"

namespace opal {

void Optimizer::Impl::restore_saved(Tensor& t, int64_t count) {
  backend->copy_bytes(t.desc.data, t.saved_w.p, t.bytes());
  for (size_t s = 0; s < t.slots.size(); ++s) backend->copy_bytes(t.slots[s].p, t.saved_slots[s].p, t.slots[s].bytes());
  if (t.saved_master) backend->copy_bytes(t.stage_w.p, t.saved_master_values.p, t.stage_w.bytes());
  t.master_valid = t.saved_master;
  t.t = count;
}

void Optimizer::step_checked() {
  checked_begin(true);
  checked_kernels(nullptr, 0, nullptr);
  checked_end();
}

// Before the checked kernels: each parameter that steps, its state and its count are copied
// (in the backend's memory: a device step stays on the device until its flags come back), and
// the flags zeroed. `advanced`: the step already advanced the optimizer's count. Should a copy
// fail, nothing has changed but that count, which goes back.
void Optimizer::checked_begin(bool advanced) {
  auto& ts = impl_->tensors;
  auto& u = impl_->undo;
  Backend& be = *impl_->backend;
  impl_->events.clear();
  u.valid = false;
  u.advanced = advanced;
  // each copy sized as what it copies, each time: a parameter rebound at another dtype keeps its name
  auto fit = [&](Impl::Buffer& saved, size_t n, DType dt) {
    if (saved.p && saved.bytes() >= n * exec::dtype_size(dt)) return;
    if (saved.p) be.release(saved.p);
    saved = {};
    saved = impl_->alloc(n, dt);
  };
  try {
    u.counts.resize(ts.size());
    u.stepped.assign(ts.size(), 0);
    for (size_t i = 0; i < ts.size(); ++i) {
      Impl::Tensor& t = ts[i];
      u.counts[i] = t.t;
      if (!impl_->has_grad(t)) continue;
      u.stepped[i] = 1;
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
    be.zero_bytes(impl_->flags.p, impl_->flags.n * sizeof(unsigned));
  } catch (...) {
    if (advanced) --t_;
    throw;
  }
}

// Puts back every parameter that stepped, or those in `which`, from the copies.
void Optimizer::checked_undo(const std::vector<size_t>* which) {
  auto& u = impl_->undo;
  for (size_t i = 0; i < impl_->tensors.size(); ++i)
    if (u.stepped[i] && (!which || std::find(which->begin(), which->end(), i) != which->end())) impl_->restore_saved(impl_->tensors[i], u.counts[i]);
}

// The checked kernels of a step (phase as step_kernels takes it). Should they throw (a library
// call or a device failing mid-step), the step is put back as it was (those in `which` only,
// when given), so that a checked step is all or nothing, whatever stops it.
void Optimizer::checked_kernels(const std::vector<char>* only, int phase, const std::vector<size_t>* which) {
  try {
    step_kernels(kernels(true), only, phase);
  } catch (...) {
    if (!which && impl_->undo.advanced) --t_;
    impl_->next_phase = 0;  // a step in phases starts over
    try {
      checked_undo(which);
    } catch (...) {  // a device that failed may refuse the copies too: its error is the one to report
    }
    throw;
  }
}

// After the checked kernels: the flags, and what the policy makes of them. A step that stays can
// still be put back (undo_step), from the same copies.
void Optimizer::checked_end() {
  auto& ts = impl_->tensors;
  Backend& be = *impl_->backend;
  std::vector<unsigned> flags(impl_->flags.n);
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
    if (!t.staged || !impl_->has_grad(t) || !t.desc.data || t.desc.dtype == DType::F32 || t.chk) return;
    const auto& probes = exe_->desc->routes[t.route].probes;
    const auto probe = std::find(probes.begin(), probes.end(), "new parameter");
    if (probe == probes.end()) return;
    stored.resize(t.numel());
    be.download_bytes(stored.data(), t.desc.data, t.bytes());
    const uint16_t exponent = t.desc.dtype == DType::BF16 ? 0x7f80 : 0x7c00;  // all ones: Inf or NaN
    if (std::any_of(stored.begin(), stored.end(), [&](uint16_t x) { return (x & exponent) == exponent; })) t.chk |= 1u << (probe - probes.begin());
  };
  std::vector<size_t> bad;
  try {
    read_flags();
    for (size_t i = 0; i < ts.size(); ++i) {
      check_staged_store(ts[i]);
      if (impl_->undo.stepped[i] && ts[i].chk) bad.push_back(i);
    }
  } catch (...) {
    if (impl_->undo.advanced) --t_;
    try {
      checked_undo(nullptr);
    } catch (...) {  // (as in checked_kernels)
    }
    throw;
  }
  if (bad.empty()) {
    impl_->undo.valid = true;
    return;
  }
  const char* action = impl_->nonfinite == NonFinitePolicy::Raise  ? "raised"
                       : impl_->nonfinite == NonFinitePolicy::Skip ? "step skipped"
                                                                   : "gradient zeroed";
  for (size_t i : bad) impl_->events.push_back({ts[i].t, ts[i].desc.name, exe_->desc->routes[ts[i].route].label, first_stage(ts[i]), action});
  if (impl_->nonfinite != NonFinitePolicy::Zero) {
    checked_undo(nullptr);
    if (impl_->undo.advanced) --t_;
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
  // zero (whole steps only): those parameters again, from their saved state, with a zero gradient
  std::vector<char> only(ts.size(), 0);
  checked_undo(&bad);
  for (size_t i : bad) {
    be.zero_bytes(ts[i].desc.grad, ts[i].numel() * exec::dtype_size(ts[i].desc.grad_dtype));  // +0 in every dtype
    only[i] = 1;
  }
  be.zero_bytes(impl_->flags.p, flags.size() * sizeof(unsigned));
  checked_kernels(&only, 0, &bad);
  read_flags();
  for (size_t k = 0; k < bad.size(); ++k) {
    auto& t = ts[bad[k]];
    check_staged_store(t);
    if (!t.chk) continue;
    impl_->restore_saved(t, impl_->undo.counts[bad[k]]);  // non-finite even from a zero gradient (its state was already): no update
    ++t.t;                                                // it took part in the step all the same
    impl_->events[k].action = "left unchanged";
  }
  impl_->undo.valid = true;
}

}  // namespace opal
