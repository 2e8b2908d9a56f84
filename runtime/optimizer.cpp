// The runtime's Optimizer: construction (routing by runtime/routing.cpp, buffers), state and
// hyperparameter access. The step loop is runtime/step.cpp, the checked step (non-finite
// policies) runtime/checked_step.cpp; the private state they share is runtime/optimizer_impl.h.
#include "runtime/optimizer.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "runtime/error.h"
#include "runtime/optimizer_impl.h"
#include "runtime/routing.h"
#include "support/half.h"
#include "support/q8.h"
#include "support/text.h"

namespace opal {

namespace {

// A state slot's initial value, for each of `batch` matrices: zeros, or the identity for
// `state Q = eye(...)`.
void init_slot(const exec::Slot& s, long long rows, long long cols, long long batch, std::vector<float>& v) {
  std::fill(v.begin(), v.end(), 0.f);
  if (s.init == exec::Init::Identity) {
    const long long n = exec::dims_of(s.extent, rows, cols).rows;
    for (long long b = 0; b < batch; ++b)
      for (long long i = 0; i < n; ++i) v[size_t(b * n * n + i * n + i)] = 1.f;
  }
}

}  // namespace

// Impl's members that need this file's helpers
Optimizer::Impl::Tensor& Optimizer::Impl::get(const std::string& name) {
  auto it = by_name.find(name);
  if (it == by_name.end()) {
    std::vector<std::string> names;
    for (const auto& [n, _] : by_name) names.push_back(n);
    std::string m = closest_match(name, names);
    throw NotFoundError(fmt::format("no parameter `{}`{}", name, m.empty() ? "" : fmt::format("; did you mean `{}`?", m)));
  }
  return tensors[it->second];
}

void Optimizer::Impl::reset_slot(const exec::Description& d, Tensor& t, size_t i) {
  std::vector<float> v(t.slots[i].n);
  init_slot(d.routes[t.route].slots[i], t.rows, t.cols, t.batch, v);
  write_f32(t.slots[i].p, t.slots[i].dt, v.data(), v.size());
}

namespace {

// The hyperparameters' values: the defaults, with `given` over them (checked).
std::vector<double> hparam_values(const exec::Description& d, const HParams& given) {
  std::vector<double> v = d.defaults;
  for (const auto& [k, x] : given) {
    Optimizer::check_hparam_value(d, k, x);
    v[Optimizer::hparam_index(d, k)] = x;
  }
  return v;
}

}  // namespace

Optimizer::Optimizer(std::shared_ptr<const Executable> exe, std::vector<ParamDesc> params, const HParams& hparams) {
  auto backend = make_backend(exe->device);
  init(std::move(backend), std::move(exe), std::move(params), hparams);
}

Optimizer::Optimizer(std::unique_ptr<Backend> backend, std::shared_ptr<const Executable> exe, std::vector<ParamDesc> params, const HParams& hparams) {
  init(std::move(backend), std::move(exe), std::move(params), hparams);
}

void Optimizer::init(std::unique_ptr<Backend> backend, std::shared_ptr<const Executable> exe, std::vector<ParamDesc> params, const HParams& hparams) {
  impl_ = std::make_unique<Impl>();
  impl_->backend = std::move(backend);
  exe_ = std::move(exe);
  const exec::Description& d = *exe_->desc;
  impl_->uniforms.assign(d.uniform_count(), 0.0);
  impl_->uniform_regs.assign(d.uniform_program.size(), 0.0);
  const std::vector<double> values = hparam_values(d, hparams);
  std::copy(values.begin(), values.end(), impl_->uniforms.begin() + 1);
  impl_->routes.resize(d.routes.size());
  for (auto& p : params) {
    if (impl_->by_name.count(p.name)) throw Error(fmt::format("parameter `{}` is given twice", p.name));
    if (!p.whole_shape.empty()) {
      add_sharded(d, p, values.data());
      continue;
    }
    RoutedParam rp = route_param(d, p, values.data());
    const exec::Route& route = d.routes[rp.route];
    impl_->check_call_side(route, p.name, rp.view);
    impl_->by_name[p.name] = impl_->tensors.size();
    impl_->tensors.emplace_back();  // owned by impl_ from here: released even if a later parameter fails
    Impl::Tensor& t = impl_->tensors.back();
    t.desc = p;
    t.desc.master = p.master || route.master;  // the spec's `state(..., master)`
    t.route = rp.route;
    t.rows = rp.view.rows;
    t.cols = rp.view.cols;
    t.batch = rp.view.batch;
    t.batch_shape = rp.view.batch_shape;
    t.perm = rp.view.perm;
    t.mrows = t.rows;
    t.mcols = t.cols;
    t.total = (long long)t.numel();
    t.regs.assign(route.scalars.size(), 0.0);
    if (p.external && !p.data) throw Error(fmt::format("parameter `{}`: the data pointer is null", p.name));
    if (!t.desc.data) t.desc.data = (t.owned_w = impl_->alloc(t.numel())).p;
    if (!t.desc.grad && !p.external) t.desc.grad = (t.owned_g = impl_->alloc(t.numel())).p;
    impl_->update_staging(d, t);
    impl_->sync_master(t);
    auto size_of = [&](exec::Extent s) { return size_t(t.batch * exec::dims_of(s, t.rows, t.cols).count()); };
    for (const auto& s : route.slots) {
      t.slots.push_back(impl_->alloc(size_t(t.batch * exec::slot_count(s, t.rows, t.cols)), s.dtype));
      if (s.init != exec::Init::Zeros) impl_->reset_slot(d, t, t.slots.size() - 1);
    }
    for (exec::Extent s : route.scratch) t.scratch.push_back(impl_->alloc(size_of(s)));
  }
  impl_->n_params = impl_->tensors.size();
  add_whole_parts(d, values.data());  // the owner's whole matrices of its sharded parameters
  // buffer tables: w, g, slots, scratch
  size_t max_zeroed = 0;
  for (const auto& r : d.routes)
    for (const auto& k : r.kernels) max_zeroed = std::max(max_zeroed, k.zeroed.size());
  size_t matrices = 0;
  for (size_t i = 0; i < impl_->tensors.size(); ++i) {
    auto& t = impl_->tensors[i];
    t.set_bufs();
    impl_->routes[t.route].tensors.push_back(i);
    matrices += size_t(t.batch);
  }
  refresh_tables();
  // the step loop's working lists, at their largest
  const size_t n = impl_->tensors.size();
  auto& S = impl_->scratch;
  S.subset.reserve(matrices);
  S.running.reserve(n);
  S.group.reserve(n);
  S.counts.reserve(n);
  S.call_tensors.reserve(matrices);
  S.zeroed.reserve(n * max_zeroed);
}

Optimizer::~Optimizer() = default;

namespace {

// A tensor's random stream: FNV-1a of its name, mixed with the seed. By name, so that it does
// not depend on the order or number of parameters (nor, sharded, on the world size).
uint64_t tensor_id(const std::string& name, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return half::opal_mix64(h ^ half::opal_mix64(seed + 0x9e3779b97f4a7c15ull));
}

}  // namespace

void Optimizer::refresh_tables() {
  bool mixed = false;
  if (impl_->flags.n < impl_->tensors.size()) {
    if (impl_->flags.p) impl_->backend->release(impl_->flags.p);
    impl_->flags = {};
    impl_->flags = impl_->alloc(impl_->tensors.size());
  }
  unsigned* flags = reinterpret_cast<unsigned*>(impl_->flags.p);
  for (auto& r : impl_->routes) {
    r.table.clear();
    r.first.clear();
    for (size_t i : r.tensors) {
      auto& t = impl_->tensors[i];
      t.id = tensor_id(t.desc.name, impl_->seed);
      // staged tensors step f32 copies (of w, and of g where it is staged too)
      const int dt = exec::dtype_code(t.staged ? DType::F32 : t.desc.dtype, t.staged_g ? DType::F32 : t.desc.grad_dtype, impl_->stochastic);
      mixed = mixed || (dt & (exec::kStochasticBit - 1)) != 0;
      r.first.push_back(r.table.size());
      for (long long b = 0; b < t.batch; ++b)
        r.table.push_back({t.matrix_bufs(b), t.rows, t.cols, t.total, flags + i, t.id, t.first + b * t.rows * t.cols, dt, t.mrows, t.mcols});
    }
  }
  impl_->needs_mixed = mixed;
  if (mixed) kernels(impl_->nonfinite != NonFinitePolicy::Off);  // compiled now: an error belongs to this call
}

const KernelModule& Optimizer::kernels(bool checked) {
  if (!impl_->needs_mixed) return checked ? *impl_->checked : *exe_->module;
  std::shared_ptr<KernelModule>& m = checked ? impl_->checked_mixed : impl_->mixed;
  if (!m) {
    try {
      m = impl_->backend->compile(checked ? exe_->checked_mixed_source : exe_->mixed_source, exe_->desc->symbols);
    } catch (const Error& e) {
      throw Error(
          fmt::format("cannot compile the kernels of `{}` for 16-bit parameters on {}: {}", exe_->desc->name, impl_->backend->describe(), e.what()));
    }
  }
  return *m;
}

void Optimizer::set_stochastic_rounding(bool on, uint64_t seed) {
  impl_->stochastic = on;
  impl_->seed = seed;
  refresh_tables();
}
bool Optimizer::stochastic_rounding() const { return impl_->stochastic; }

void Optimizer::check_param(const exec::Description& d, const ParamDesc& p, const HParams& hparams) {
  if (p.whole_shape.empty()) {
    route_param(d, p, hparam_values(d, hparams).data());
    return;
  }
  check_shard(d, p);  // a sharded parameter routes as its whole
  route_param(d, whole_param(p), hparam_values(d, hparams).data());
}

Device Optimizer::device() const { return impl_->backend->device(); }
std::string Optimizer::describe_device() const { return impl_->backend->describe(); }
void Optimizer::sync() { impl_->backend->sync(); }

void Optimizer::set_diagnostics(bool on) { impl_->diagnostics = on; }
bool Optimizer::diagnostics_on() const { return impl_->diagnostics; }
const std::vector<UpdateStats>& Optimizer::diagnostics() const { return impl_->stats; }

std::vector<int64_t> Optimizer::state_shape(const std::string& name, const std::string& slot) const {
  auto& t0 = impl_->get(name);
  const bool master = slot == kMasterSlot && t0.has_master();  // full size, as w
  auto& t = master ? t0 : impl_->holder(*exe_->desc, t0, slot);
  const exec::Slot* s = master ? nullptr : &exe_->desc->routes[t.route].slots[impl_->slot_index(*exe_->desc, t, slot)];
  const exec::Extent extent = s ? s->extent : exec::Extent::Full;
  if (s && s->is_scales()) {  // one per block of each matrix
    std::vector<int64_t> shape = t.batch_shape;
    shape.push_back(exec::slot_count(*s, t.rows, t.cols));
    return shape;
  }
  if (extent == exec::Extent::Full) {
    if (t.perm.empty()) return t.desc.shape;
    std::vector<int64_t> shape;  // kept in the view's axis order
    for (int a : t.perm) shape.push_back(t.desc.shape[size_t(a)]);
    return shape;
  }
  // one per matrix: the dims indexing the matrices, then the extent's (a scalar per tensor is
  // 0-dimensional, as torch keeps NAdam's mu_product)
  std::vector<int64_t> shape = t.batch_shape;
  if (extent == exec::Extent::Scalar) return shape;
  const exec::Dims dims = exec::dims_of(extent, t.rows, t.cols);
  shape.push_back(dims.rows);
  if (extent != exec::Extent::Rows && extent != exec::Extent::Cols) shape.push_back(dims.cols);
  return shape;
}

void Optimizer::set_nonfinite_policy(NonFinitePolicy p) {
  // (a checked step in phases makes its copies before the local phase and reads its flags after
  // the finish phase: the policy holds from one to the other)
  if (impl_->next_phase != 0 && p != impl_->nonfinite)
    throw Error(fmt::format("the non-finite policy cannot change between the phases of a step (its next phase is {}): finish the step first",
                            step_phase_name(StepPhase(impl_->next_phase))));
  if (p != NonFinitePolicy::Off && !impl_->checked) {
    if (exe_->check_finite) impl_->checked = exe_->module;
    else {
      try {
        impl_->checked = impl_->backend->compile(exe_->checked_source, exe_->desc->symbols);
      } catch (const Error& e) {
        throw Error(fmt::format("cannot compile the checked kernels of `{}` for {}: {}", exe_->desc->name, impl_->backend->describe(), e.what()));
      }
    }
  }
  impl_->nonfinite = p;
  if (impl_->needs_mixed) kernels(p != NonFinitePolicy::Off);
}
NonFinitePolicy Optimizer::nonfinite_policy() const { return impl_->nonfinite; }
const std::vector<NonFiniteEvent>& Optimizer::nonfinite_events() const { return impl_->events; }
int64_t Optimizer::skipped_steps() const { return impl_->skipped; }

namespace {
void check_step_count(int64_t t) {
  if (t < 0) throw Error(fmt::format("the step count cannot be negative (got {})", t));
  if (t > kMaxStepCount) throw Error(fmt::format("the step count cannot exceed 2^53 (got {}): `t` reaches the kernels as a double", t));
}
}  // namespace

void Optimizer::set_step_count(int64_t t) {
  check_step_count(t);
  impl_->undo.valid = false;
  t_ = t;
  for (auto& x : impl_->tensors) x.t = t;
}

int64_t Optimizer::step_count(const std::string& name) const { return impl_->get(name).t; }

void Optimizer::set_step_count(const std::string& name, int64_t t) {
  check_step_count(t);
  impl_->undo.valid = false;
  impl_->get(name).t = t;
}

void Optimizer::check_hparam_value(const std::string& name, double value) {
  if (!std::isfinite(value)) throw HyperparameterError(fmt::format("hyperparameter `{}` cannot be {}: it must be a finite number", name, value));
  if (std::abs(value) > double(FLT_MAX))
    throw HyperparameterError(fmt::format("hyperparameter `{}` = {:g} is out of range: the kernels compute in float32, whose largest value is {:g}",
                                          name, value, double(FLT_MAX)));
}

void Optimizer::check_hparam_value(const exec::Description& d, const std::string& name, double value) {
  const size_t hparam = hparam_index(d, name);
  check_hparam_value(name, value);
  for (const exec::HParamRange& r : d.ranges)
    if (r.hparam == hparam && !r.range.contains(value))
      throw HyperparameterError(
          fmt::format("hyperparameter `{}` = {:g} is out of range: it is {}, which takes {}", name, value, r.origin, r.range.takes()));
}

size_t Optimizer::hparam_index(const exec::Description& d, const std::string& name) {
  const auto& names = d.hparams;
  auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) {
    std::string m = closest_match(name, names);
    throw NotFoundError(fmt::format("optimizer `{}` has no hyperparameter `{}`{}", d.name, name,
                                    m.empty() ? fmt::format("; it has: {}", fmt::join(names, ", ")) : fmt::format("; did you mean `{}`?", m)));
  }
  return size_t(it - names.begin());
}

void Optimizer::set_hparam(const std::string& name, double value) {
  check_set_hparam(name, value);
  impl_->uniforms[1 + hparam_index(*exe_->desc, name)] = value;
}

// A hyperparameter that decides routes may change only where every parameter keeps its route
// and view: the state was allocated for them.
void Optimizer::check_set_hparam(const std::string& name, double value) const {
  const exec::Description& d = *exe_->desc;
  const size_t hparam = hparam_index(d, name);
  check_hparam_value(d, name, value);
  if (value == impl_->uniforms[1 + hparam] || !decides_routes(d, hparam)) return;
  std::vector<double> values(impl_->uniforms.begin() + 1, impl_->uniforms.begin() + 1 + ptrdiff_t(d.hparams.size()));
  values[hparam] = value;
  for (const auto& t : impl_->tensors) {
    if (t.part != Impl::Tensor::Part::All) {  // a sharded parameter routes as its whole
      if (t.part == Impl::Tensor::Part::Local && route_param(d, whole_param(t.desc), values.data()).route != t.route)
        throw Error(fmt::format(
            "hyperparameter `{}` decides routes: with {} sharded parameter `{}` would take another route; it is fixed once the optimizer is built",
            d.hparams[hparam], value, t.desc.name));
      continue;
    }
    const RoutedParam rp = route_param(d, t.desc, values.data());
    if (rp.route != t.route || rp.view.rows != t.rows || rp.view.cols != t.cols || rp.view.batch != t.batch)
      throw Error(
          fmt::format("hyperparameter `{}` decides routes: with {} parameter `{}` would take route `{}` instead of `{}`, whose state it "
                      "has; it is fixed once the optimizer is built\n  = help: give it when building the optimizer (opal.torch: to "
                      "the constructor or the parameter group)",
                      d.hparams[hparam], value, t.desc.name, d.routes[rp.route].label, d.routes[t.route].label));
  }
}

double Optimizer::hparam(const std::string& name) const { return impl_->uniforms[1 + hparam_index(*exe_->desc, name)]; }

const std::vector<std::string>& Optimizer::hparam_names() const { return exe_->desc->hparams; }
size_t Optimizer::num_params() const { return impl_->n_params; }
const std::string& Optimizer::param_name(size_t i) const {
  if (i >= impl_->n_params) throw Error(fmt::format("no parameter {}: there are {}", i, impl_->n_params));
  return impl_->tensors[i].desc.name;
}
const std::vector<int64_t>& Optimizer::param_shape(const std::string& name) const { return impl_->get(name).desc.shape; }
ParamRole Optimizer::param_role(const std::string& name) const { return impl_->get(name).desc.role; }
DType Optimizer::param_dtype(const std::string& name) const { return impl_->get(name).desc.dtype; }
DType Optimizer::grad_dtype(const std::string& name) const { return impl_->get(name).desc.grad_dtype; }

namespace {
void need_f32(const std::string& what, DType dt) {
  if (dt != DType::F32)
    throw Error(fmt::format("{} is {}, not f32: read and write it with read_param and write_param (they convert)", what, exec::dtype_name(dt)));
}
}  // namespace

std::span<float> Optimizer::param(const std::string& name) {
  auto& t = impl_->get(name);
  impl_->need_host(fmt::format("parameter `{}`", name));
  need_f32(fmt::format("parameter `{}`", name), t.desc.dtype);
  return {static_cast<float*>(t.desc.data), t.numel()};
}
std::span<const float> Optimizer::param(const std::string& name) const { return const_cast<Optimizer*>(this)->param(name); }
std::span<const float> Optimizer::state(const std::string& name, const std::string& slot) const {
  return const_cast<Optimizer*>(this)->state(name, slot);
}
bool Optimizer::has_param(const std::string& name) const { return impl_->by_name.count(name) != 0; }

std::span<float> Optimizer::grad(const std::string& name) {
  auto& t = impl_->get(name);
  impl_->need_host(fmt::format("the gradient of `{}`", name));
  if (!t.desc.grad) return {};
  need_f32(fmt::format("the gradient of `{}`", name), t.desc.grad_dtype);
  return {static_cast<float*>(t.desc.grad), t.numel()};
}
std::string Optimizer::route_of(const std::string& name) const { return exe_->desc->routes[impl_->get(name).route].label; }

std::vector<std::string> Optimizer::slots(const std::string& name) const {
  std::vector<std::string> out;
  const auto& t = impl_->get(name);
  const auto& route = exe_->desc->routes[t.route];
  for (size_t i = 0; i < route.slots.size(); ++i)  // a sharded parameter's: those this process holds
    if (t.holds_slot(i) || t.twin != SIZE_MAX) out.push_back(route.slots[i].name);
  if (t.has_master()) out.push_back(kMasterSlot);
  return out;
}

void Optimizer::reset_state(const std::string& name, const std::string& slot) {
  auto& t = impl_->get(name);
  impl_->undo.valid = false;
  if (slot == kMasterSlot && t.has_master()) {  // again from the parameter
    t.master_valid = false;
    impl_->sync_master(t);
    return;
  }
  auto& h = impl_->holder(*exe_->desc, t, slot);
  impl_->reset_slot(*exe_->desc, h, impl_->slot_index(*exe_->desc, h, slot));
}

void Optimizer::bind(const std::string& name, void* data, void* grad) {
  impl_->get(name);  // NotFoundError, with "did you mean"
  bind(impl_->by_name.at(name), data, grad);
}
void Optimizer::bind(const std::string& name, void* data, void* grad, DType grad_dtype) {
  impl_->get(name);
  bind(impl_->by_name.at(name), data, grad, grad_dtype);
}
void Optimizer::bind_grad(const std::string& name, void* grad, DType grad_dtype) {
  auto& t = impl_->get(name);
  bind(impl_->by_name.at(name), t.desc.data, grad, grad_dtype);
}
void Optimizer::bind(size_t index, void* data, void* grad) { bind(index, data, grad, impl_->tensors.at(index).desc.grad_dtype); }

void Optimizer::bind(size_t index, void* data, void* grad, DType grad_dtype) {
  if (index >= impl_->n_params) throw Error(fmt::format("no parameter {}: there are {}", index, impl_->n_params));
  auto& t = impl_->tensors[index];
  if (!data) throw Error(fmt::format("parameter `{}`: the data pointer is null", t.desc.name));
  if (data != t.desc.data) impl_->rebound = true, impl_->undo.valid = false;
  const bool retable = grad_dtype != t.desc.grad_dtype;
  const DType before = t.desc.grad_dtype;
  t.desc.grad_dtype = grad_dtype;
  try {
    impl_->update_staging(*exe_->desc, t);  // may allocate, or compile the mixed program: may fail
    if (retable) refresh_tables();
  } catch (...) {
    t.desc.grad_dtype = before;
    impl_->update_staging(*exe_->desc, t);
    refresh_tables();
    throw;
  }
  t.desc.data = data;
  t.desc.grad = grad;
  t.set_bufs();
}

std::span<float> Optimizer::state(const std::string& name, const std::string& slot) {
  auto& t = impl_->get(name);
  const Impl::Buffer& b = impl_->slot_buffer(*exe_->desc, t, slot);
  impl_->need_host(fmt::format("state `{}` of `{}`", slot, name));
  if (b.dt != DType::F32)
    throw Error(fmt::format("state `{}` of `{}` is stored as {}: read and write it with read_state and write_state (they convert)", slot, name,
                            exec::dtype_name(b.dt)));
  return {b.p, b.n};
}

DType Optimizer::state_dtype(const std::string& name, const std::string& slot) const {
  auto& t = impl_->get(name);
  return impl_->slot_buffer(*exe_->desc, t, slot, false).dt;  // a query: no conversion of a master copy
}

float* Optimizer::state_data(const std::string& name, const std::string& slot) {
  auto& t = impl_->get(name);
  return impl_->slot_buffer(*exe_->desc, t, slot).p;
}

std::vector<float> Optimizer::read_param(const std::string& name) const {
  auto& t = impl_->get(name);
  return impl_->read_f32(t.desc.data, t.desc.dtype, t.numel());
}

std::vector<float> Optimizer::read_state(const std::string& name, const std::string& slot) const {
  auto& t = impl_->get(name);
  const Impl::Buffer& b = impl_->slot_buffer(*exe_->desc, t, slot);
  return impl_->read_f32(b.p, b.dt, b.n);
}

void Optimizer::write_param(const std::string& name, std::span<const float> values) {
  auto& t = impl_->get(name);
  if (values.size() != t.numel()) throw Error(fmt::format("parameter `{}` has {} elements, and {} were given", name, t.numel(), values.size()));
  impl_->undo.valid = false;
  impl_->write_f32(t.desc.data, t.desc.dtype, values.data(), values.size());
  if (t.has_master()) {  // the master copy takes the values as written, not rounded
    if (t.perm.empty()) impl_->backend->upload(t.stage_w.p, values.data(), values.size());
    t.master_valid = t.perm.empty();
  }
}

void Optimizer::write_grad(const std::string& name, std::span<const float> values) {
  auto& t = impl_->get(name);
  if (!t.desc.grad) throw Error(fmt::format("parameter `{}` has no gradient bound", name));
  if (values.size() != t.numel()) throw Error(fmt::format("the gradient of `{}` has {} elements, and {} were given", name, t.numel(), values.size()));
  impl_->write_f32(t.desc.grad, t.desc.grad_dtype, values.data(), values.size());
}

void Optimizer::write_state(const std::string& name, const std::string& slot, std::span<const float> values) {
  auto& t = impl_->get(name);
  const Impl::Buffer& b = impl_->slot_buffer(*exe_->desc, t, slot);
  if (values.size() != b.n) throw Error(fmt::format("state `{}` of `{}` has {} elements, and {} were given", slot, name, b.n, values.size()));
  if (b.dt == DType::Q8)
    for (size_t i = 0; i < values.size(); ++i)
      if (!(values[i] >= 0 && values[i] <= 255 && values[i] == std::floor(values[i])))
        throw Error(fmt::format("state `{}` of `{}` holds q8 codes, whole numbers from 0 to 255, and element {} is {}", slot, name, i, values[i]));
  impl_->undo.valid = false;
  impl_->write_f32(b.p, b.dt, values.data(), values.size());
}

std::pair<int, long long> Optimizer::state_blocks(const std::string& name, const std::string& slot) const {
  auto& t0 = impl_->get(name);
  if (slot == kMasterSlot && t0.has_master()) return {0, 0};
  auto& t = impl_->holder(*exe_->desc, t0, slot);
  const exec::Slot& s = exe_->desc->routes[t.route].slots[impl_->slot_index(*exe_->desc, t, slot)];
  return s.dtype == DType::Q8 ? std::pair<int, long long>{int(s.block), t.rows * t.cols} : std::pair<int, long long>{0, 0};
}

std::vector<float> Optimizer::read_state_values(const std::string& name, const std::string& slot) const {
  const auto [block, m] = state_blocks(name, slot);
  std::vector<float> codes = read_state(name, slot);
  if (!block) return codes;
  const std::vector<float> scales = read_state(name, q8::scales_name(slot));
  const std::vector<unsigned char> bytes(codes.begin(), codes.end());
  q8::dequantize_matrices(bytes.data(), scales.data(), bytes.size(), size_t(m), block, codes.data());
  return codes;
}

void Optimizer::write_state_values(const std::string& name, const std::string& slot, std::span<const float> values) {
  const auto [block, m] = state_blocks(name, slot);
  if (!block) return write_state(name, slot, values);
  auto& t = impl_->holder(*exe_->desc, impl_->get(name), slot);
  if (values.size() != t.numel())
    throw Error(fmt::format("state `{}` of `{}` has {} elements, and {} were given", slot, name, t.numel(), values.size()));
  std::vector<unsigned char> bytes(values.size());
  std::vector<float> scales(q8::blocks(size_t(m), block) * size_t(t.batch));
  q8::quantize_matrices(values.data(), values.size(), size_t(m), block, bytes.data(), scales.data());
  const std::vector<float> codes(bytes.begin(), bytes.end());
  write_state(name, slot, codes);
  write_state(name, q8::scales_name(slot), scales);
}

}  // namespace opal
