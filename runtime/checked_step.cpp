// The checked step of the non-finite policies (runtime/nonfinite.h): the kernels with fused
// non-finite checks, and the undo.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "runtime/optimizer_impl.h"

namespace opal {

// A step through the checked kernels. Each stepped parameter and its state are copied first;
// where a flag comes back set, the policy decides: undo everything (raise, skip) or zero that
// parameter's gradient and redo its step alone (zero).
void Optimizer::step_checked() {
  auto& ts = impl_->tensors;
  impl_->events.clear();
  for (auto& t : ts) {
    t.chk = 0;
    if (!t.desc.grad) continue;
    const char* w = static_cast<const char*>(t.desc.data);
    t.saved_w.assign(w, w + t.bytes());
    t.saved_slots.resize(t.slots.size());
    for (size_t s = 0; s < t.slots.size(); ++s) {
      const char* p = reinterpret_cast<const char*>(t.slots[s].p);
      t.saved_slots[s].assign(p, p + t.slots[s].bytes());
    }
    t.saved_master = t.master_valid;  // a master copy is state too (stage_in leaves it alone then)
    if (t.master_valid) t.saved_master_values.assign(t.stage_w.p, t.stage_w.p + t.stage_w.n);
  }
  auto restore = [](Impl::Tensor& t) {
    std::copy(t.saved_w.begin(), t.saved_w.end(), static_cast<char*>(t.desc.data));
    for (size_t s = 0; s < t.slots.size(); ++s) std::copy(t.saved_slots[s].begin(), t.saved_slots[s].end(), reinterpret_cast<char*>(t.slots[s].p));
    if (t.saved_master) std::copy(t.saved_master_values.begin(), t.saved_master_values.end(), t.stage_w.p);
    t.master_valid = t.saved_master;
    --t.t;
  };
  auto first_stage = [&](const Impl::Tensor& t) {
    const auto& probes = exe_->desc->routes[t.route].probes;
    size_t bit = size_t(__builtin_ctz(t.chk));
    return bit < probes.size() ? probes[bit] : std::string("?");
  };
  // A 16-bit parameter stepped in place has its store checked by the kernel's probe of the new
  // value; a staged one is rounded into its memory after the kernels (stage_out), where a
  // finite f32 value can overflow (f16 from 65520 up): that too is a non-finite new value.
  auto check_staged_store = [&](Impl::Tensor& t) {
    if (!t.staged || !t.desc.grad || !t.desc.data || t.desc.dtype == DType::F32 || t.chk) return;
    const auto& probes = exe_->desc->routes[t.route].probes;
    const auto probe = std::find(probes.begin(), probes.end(), "new parameter");
    if (probe == probes.end()) return;
    const auto* h = static_cast<const uint16_t*>(t.desc.data);
    const uint16_t exponent = t.desc.dtype == DType::BF16 ? 0x7f80 : 0x7c00;  // all ones: Inf or NaN
    if (std::any_of(h, h + t.numel(), [&](uint16_t x) { return (x & exponent) == exponent; })) t.chk |= 1u << (probe - probes.begin());
  };
  const KernelModule& module = kernels(true);
  step_kernels(module, nullptr, 0);
  std::vector<size_t> bad;
  for (size_t i = 0; i < ts.size(); ++i) {
    check_staged_store(ts[i]);
    if (ts[i].desc.grad && ts[i].chk) bad.push_back(i);
  }
  if (bad.empty()) return;
  const char* action = impl_->nonfinite == NonFinitePolicy::Raise  ? "raised"
                       : impl_->nonfinite == NonFinitePolicy::Skip ? "step skipped"
                                                                   : "gradient zeroed";
  for (size_t i : bad) impl_->events.push_back({ts[i].t, ts[i].desc.name, exe_->desc->routes[ts[i].route].label, first_stage(ts[i]), action});
  if (impl_->nonfinite != NonFinitePolicy::Zero) {
    for (auto& t : ts)
      if (t.desc.grad) restore(t);
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
    restore(ts[i]);
    std::memset(ts[i].desc.grad, 0, ts[i].numel() * exec::dtype_size(ts[i].desc.grad_dtype));  // +0 in every dtype
    ts[i].chk = 0;
    only[i] = 1;
  }
  step_kernels(module, &only, 0);
  for (size_t k = 0; k < bad.size(); ++k) {
    auto& t = ts[bad[k]];
    check_staged_store(t);
    if (!t.chk) continue;
    restore(t);  // non-finite even from a zero gradient (its state was already): no update
    ++t.t;       // it took part in the step all the same
    impl_->events[k].action = "left unchanged";
  }
}

}  // namespace opal
