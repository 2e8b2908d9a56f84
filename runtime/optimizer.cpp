// The runtime: routing, buffers, state and hyperparameter access. The step loop is
// runtime/step.cpp; the private state both share is runtime/optimizer_impl.h.
#include "runtime/optimizer.h"

#include <fnmatch.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "runtime/cpu/linalg.h"
#include "runtime/error.h"
#include "runtime/optimizer_impl.h"

namespace opal {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

bool route_accepts(const Route& r, const ParamDesc& p) {
  switch (r.kind) {
    case Route::Kind::Matrix: return p.shape.size() >= 2;
    case Route::Kind::Vector: return p.shape.size() <= 1;
    case Route::Kind::Other: return true;
    case Route::Kind::Pattern:
      for (const auto& pat : r.patterns)
        if (fnmatch(pat.c_str(), p.name.c_str(), FNM_CASEFOLD) == 0) return true;
      return false;
  }
  return false;
}

// Name patterns first (in spec order), then the shape classes, then `other`.
int select_route(const OptimizerDecl& o, const ParamDesc& p) {
  for (int pass = 0; pass < 3; ++pass)
    for (size_t i = 0; i < o.routes.size(); ++i) {
      Route::Kind k = o.routes[i].kind;
      bool in_pass = pass == 0 ? k == Route::Kind::Pattern : pass == 1 ? (k == Route::Kind::Matrix || k == Route::Kind::Vector) : k == Route::Kind::Other;
      if (in_pass && route_accepts(o.routes[i], p)) return int(i);
    }
  return -1;
}

// Where a parameter goes and how it is viewed, with every check that can fail (names, shapes,
// routes, size limits) and no allocation: the constructor and Optimizer::check_param share it.
struct RoutedParam {
  size_t route;
  long long rows, cols;
};

RoutedParam route_param(const CompiledOptimizer& co, const ParamDesc& p) {
  if (p.name.empty()) throw Error("a parameter has an empty name");
  int64_t numel = 1;
  for (int64_t d : p.shape) {
    if (d <= 0) throw Error(fmt::format("parameter `{}` has shape {}: every dimension must be positive", p.name, shape_str(p.shape)));
    if (numel > kMaxTensorElements / d) throw Error(fmt::format("parameter `{}` has more than {} elements", p.name, kMaxTensorElements));
    numel *= d;
  }
  // route: follow delegations down to a compiled route
  std::vector<RouteStep> path;
  const OptimizerDecl* o = co.decl;
  while (true) {
    int r = select_route(*o, p);
    if (r < 0) {
      throw Error(fmt::format("parameter `{}` ({}) matches no route of optimizer `{}` [UnroutedParameter]\n  = help: add an `other:` route, or a "
                              "pattern route such as \"{}\": ...",
                              p.name, p.shape.size() >= 2 ? "matrix " + shape_str(p.shape) : "vector " + shape_str(p.shape), o->name, p.name));
    }
    path.push_back({o, size_t(r)});
    const Route& route = o->routes[r];
    auto inner = co.program->optimizers.find(route.pipeline.size() == 1 ? route.pipeline[0].name : "");
    if (inner == co.program->optimizers.end() || co.program->components.count(route.pipeline[0].name)) break;
    o = inner->second;
  }
  size_t ri = co.routes.size();
  for (size_t i = 0; i < co.routes.size(); ++i) {
    const auto& cp = co.routes[i].path;
    if (cp.size() == path.size() && std::equal(cp.begin(), cp.end(), path.begin(), [](const RouteStep& a, const RouteStep& b) {
          return a.optimizer == b.optimizer && a.route == b.route;
        }))
      ri = i;
  }
  if (ri == co.routes.size()) throw Error(fmt::format("internal: no compiled route for parameter `{}`", p.name));
  const Plan& plan = co.routes[ri].plan;
  if (plan.graph.matrix_only && p.shape.size() < 2) {
    throw Error(fmt::format("{} needs a matrix, but parameter `{}` is a vector {} [MatrixOnly]\n  = help: route "
                            "vectors elsewhere with `vector:` or `other:` in optimizer `{}`",
                            plan.graph.matrix_reason, p.name, shape_str(p.shape), co.name));
  }
  RoutedParam rp{ri, 1, numel};
  if (p.shape.size() >= 2) {
    rp.rows = p.shape[0];
    rp.cols = numel / p.shape[0];
  }
  auto check_size = [&](ir::Shape s) {
    long long r, c;
    cpu::shape_dims(s, rp.rows, rp.cols, r, c);
    if (ir::is_square(s) && r > kMaxSideForSquares)
      throw Error(fmt::format("parameter `{}` {} would need a {} x {} matrix in route `{}`: the limit is {} [LimitExceeded]\n  = help: route "
                              "it to an elementwise pipeline by name or shape",
                              p.name, shape_str(p.shape), r, r, co.routes[ri].label, kMaxSideForSquares));
  };
  for (const auto& s : plan.graph.slots) check_size(s.shape);
  for (ir::Shape s : plan.buffers) check_size(s);
  return rp;
}

// A state slot's initial value: zeros, or the identity for `state Q = eye(...)`.
void init_slot(const ir::Slot& s, long long rows, long long cols, std::vector<float>& v) {
  std::fill(v.begin(), v.end(), 0.f);
  if (s.identity) {
    long long n = s.shape == ir::Shape::Left ? rows : cols;
    for (long long i = 0; i < n; ++i) v[i * n + i] = 1.f;
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

void Optimizer::Impl::reset_slot(const CompiledOptimizer& co, Tensor& t, size_t i) {
  std::vector<float> v(t.slots[i].n);
  init_slot(co.routes[t.route].plan.graph.slots[i], t.rows, t.cols, v);
  backend->upload(t.slots[i].p, v.data(), v.size());
}

Optimizer::Optimizer(const SpecRef& spec, std::vector<ParamDesc> params, Device device)
    : Optimizer(compile_spec(spec), std::move(params), device) {}

Optimizer::Optimizer(std::shared_ptr<const CompiledOptimizer> compiled, std::vector<ParamDesc> params, Device device) {
  auto backend = make_backend(device);
  auto exe = build_executable(std::move(compiled), false, backend.get());
  init(std::move(backend), std::move(exe), std::move(params));
}

Optimizer::Optimizer(std::shared_ptr<const Executable> exe, std::vector<ParamDesc> params) {
  auto backend = make_backend(exe->device);
  init(std::move(backend), std::move(exe), std::move(params));
}

Optimizer::Optimizer(std::unique_ptr<Backend> backend, std::shared_ptr<const Executable> exe, std::vector<ParamDesc> params) {
  init(std::move(backend), std::move(exe), std::move(params));
}

void Optimizer::init(std::unique_ptr<Backend> backend, std::shared_ptr<const Executable> exe, std::vector<ParamDesc> params) {
  impl_ = std::make_unique<Impl>();
  impl_->backend = std::move(backend);
  exe_ = std::move(exe);
  const CompiledOptimizer& co = *exe_->optimizer;
  impl_->uniforms.assign(1 + co.hparams.size(), 0.0);
  for (size_t i = 0; i < co.defaults.size(); ++i) impl_->uniforms[1 + i] = co.defaults[i];
  impl_->routes.resize(co.routes.size());
  for (auto& p : params) {
    if (impl_->by_name.count(p.name)) throw Error(fmt::format("parameter `{}` is given twice", p.name));
    RoutedParam rp = route_param(co, p);
    const Plan& plan = co.routes[rp.route].plan;
    impl_->by_name[p.name] = impl_->tensors.size();
    impl_->tensors.emplace_back();  // owned by impl_ from here: released even if a later parameter fails
    Impl::Tensor& t = impl_->tensors.back();
    t.desc = p;
    t.route = rp.route;
    t.rows = rp.rows;
    t.cols = rp.cols;
    if (p.external && !p.data) throw Error(fmt::format("parameter `{}`: the data pointer is null", p.name));
    if (!t.desc.data) t.desc.data = (t.owned_w = impl_->alloc(t.numel())).p;
    if (!t.desc.grad && !p.external) t.desc.grad = (t.owned_g = impl_->alloc(t.numel())).p;
    auto size_of = [&](ir::Shape s) -> size_t {
      long long r, c;
      cpu::shape_dims(s, t.rows, t.cols, r, c);
      return size_t(r * c);
    };
    for (const auto& s : plan.graph.slots) {
      t.slots.push_back(impl_->alloc(size_of(s.shape)));
      if (s.identity) impl_->reset_slot(co, t, t.slots.size() - 1);
    }
    for (ir::Shape s : plan.buffers) t.scratch.push_back(impl_->alloc(size_of(s)));
  }
  // buffer tables: w, g, slots, scratch
  for (size_t i = 0; i < impl_->tensors.size(); ++i) {
    auto& t = impl_->tensors[i];
    t.bufs = {t.desc.data, t.desc.grad};
    for (auto& s : t.slots) t.bufs.push_back(s.p);
    for (auto& s : t.scratch) t.bufs.push_back(s.p);
    impl_->routes[t.route].tensors.push_back(i);
  }
  for (auto& r : impl_->routes)
    for (size_t i : r.tensors) {
      const auto& t = impl_->tensors[i];
      r.table.push_back({t.bufs.data(), t.rows, t.cols, &impl_->tensors[i].chk});
    }
}

Optimizer::~Optimizer() = default;

void Optimizer::check_param(const CompiledOptimizer& co, const ParamDesc& p) { route_param(co, p); }

Device Optimizer::device() const { return impl_->backend->device(); }
std::string Optimizer::describe_device() const { return impl_->backend->describe(); }
void Optimizer::sync() { impl_->backend->sync(); }

void Optimizer::set_diagnostics(bool on) {
  if (on) impl_->need_host("update diagnostics: every parameter");
  impl_->diagnostics = on;
}
const std::vector<UpdateStats>& Optimizer::diagnostics() const { return impl_->stats; }

std::vector<int64_t> Optimizer::state_shape(const std::string& name, const std::string& slot) const {
  auto& t = impl_->get(name);
  const ir::Slot& s = exe_->optimizer->routes[t.route].plan.graph.slots[impl_->slot_index(*exe_->optimizer, t, slot)];
  if (s.shape == ir::Shape::Full) return t.desc.shape;
  long long r, c;
  cpu::shape_dims(s.shape, t.rows, t.cols, r, c);
  if (s.shape == ir::Shape::Rows || s.shape == ir::Shape::Cols) return {r};
  return {r, c};
}

void Optimizer::set_nonfinite_policy(NonFinitePolicy p) {
  if (p != NonFinitePolicy::Off) impl_->need_host("the non-finite policy: every parameter");
  if (p != NonFinitePolicy::Off && !impl_->checked) impl_->checked = build_executable(exe_->optimizer, true, impl_->backend.get());
  impl_->nonfinite = p;
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
  t_ = t;
  for (auto& x : impl_->tensors) x.t = t;
}

int64_t Optimizer::step_count(const std::string& name) const { return impl_->get(name).t; }

void Optimizer::set_step_count(const std::string& name, int64_t t) {
  check_step_count(t);
  impl_->get(name).t = t;
}

void Optimizer::check_hparam_value(const std::string& name, double value) {
  if (!std::isfinite(value)) throw Error(fmt::format("hyperparameter `{}` cannot be {}: it must be a finite number", name, value));
  if (std::abs(value) > double(FLT_MAX))
    throw Error(fmt::format("hyperparameter `{}` = {:g} is out of range: the kernels compute in float32, whose largest value is {:g}", name, value,
                            double(FLT_MAX)));
}

size_t Optimizer::hparam_index(const CompiledOptimizer& co, const std::string& name) {
  const auto& names = co.hparams;
  auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) {
    std::string m = closest_match(name, names);
    throw NotFoundError(fmt::format("optimizer `{}` has no hyperparameter `{}`{}", co.name, name,
                                    m.empty() ? fmt::format("; it has: {}", fmt::join(names, ", ")) : fmt::format("; did you mean `{}`?", m)));
  }
  return size_t(it - names.begin());
}

void Optimizer::set_hparam(const std::string& name, double value) {
  size_t i = hparam_index(*exe_->optimizer, name);
  check_hparam_value(name, value);
  impl_->uniforms[1 + i] = value;
}

double Optimizer::hparam(const std::string& name) const { return impl_->uniforms[1 + hparam_index(*exe_->optimizer, name)]; }

const std::vector<std::string>& Optimizer::hparam_names() const { return exe_->optimizer->hparams; }
size_t Optimizer::num_params() const { return impl_->tensors.size(); }
const std::string& Optimizer::param_name(size_t i) const { return impl_->tensors.at(i).desc.name; }
const std::vector<int64_t>& Optimizer::param_shape(const std::string& name) const { return impl_->get(name).desc.shape; }

std::span<float> Optimizer::param(const std::string& name) {
  auto& t = impl_->get(name);
  impl_->need_host(fmt::format("parameter `{}`", name));
  return {t.desc.data, t.numel()};
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
  return {t.desc.grad, t.numel()};
}
std::string Optimizer::route_of(const std::string& name) const { return exe_->optimizer->routes[impl_->get(name).route].label; }

std::vector<std::string> Optimizer::slots(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& s : exe_->optimizer->routes[impl_->get(name).route].plan.graph.slots) out.push_back(s.name);
  return out;
}

void Optimizer::reset_state(const std::string& name, const std::string& slot) {
  auto& t = impl_->get(name);
  impl_->reset_slot(*exe_->optimizer, t, impl_->slot_index(*exe_->optimizer, t, slot));
}

void Optimizer::bind(const std::string& name, float* data, float* grad) {
  impl_->get(name);  // NotFoundError, with "did you mean"
  bind(impl_->by_name.at(name), data, grad);
}

void Optimizer::bind(size_t index, float* data, float* grad) {
  auto& t = impl_->tensors.at(index);
  if (!data) throw Error(fmt::format("parameter `{}`: the data pointer is null", t.desc.name));
  if (data != t.desc.data) impl_->rebound = true;
  t.desc.data = t.bufs[0] = data;
  t.desc.grad = t.bufs[1] = grad;
}

std::span<float> Optimizer::state(const std::string& name, const std::string& slot) {
  auto& t = impl_->get(name);
  const Impl::Buffer& b = t.slots[impl_->slot_index(*exe_->optimizer, t, slot)];
  impl_->need_host(fmt::format("state `{}` of `{}`", slot, name));
  return {b.p, b.n};
}

float* Optimizer::state_data(const std::string& name, const std::string& slot) {
  auto& t = impl_->get(name);
  return t.slots[impl_->slot_index(*exe_->optimizer, t, slot)].p;
}

std::vector<float> Optimizer::read_param(const std::string& name) const {
  auto& t = impl_->get(name);
  std::vector<float> v(t.numel());
  impl_->backend->download(v.data(), t.desc.data, v.size());
  return v;
}

std::vector<float> Optimizer::read_state(const std::string& name, const std::string& slot) const {
  auto& t = impl_->get(name);
  const Impl::Buffer& b = t.slots[impl_->slot_index(*exe_->optimizer, t, slot)];
  std::vector<float> v(b.n);
  impl_->backend->download(v.data(), b.p, v.size());
  return v;
}

void Optimizer::write_param(const std::string& name, std::span<const float> values) {
  auto& t = impl_->get(name);
  if (values.size() != t.numel())
    throw Error(fmt::format("parameter `{}` has {} elements, and {} were given", name, t.numel(), values.size()));
  impl_->backend->upload(t.desc.data, values.data(), values.size());
}

void Optimizer::write_grad(const std::string& name, std::span<const float> values) {
  auto& t = impl_->get(name);
  if (!t.desc.grad) throw Error(fmt::format("parameter `{}` has no gradient bound", name));
  if (values.size() != t.numel())
    throw Error(fmt::format("the gradient of `{}` has {} elements, and {} were given", name, t.numel(), values.size()));
  impl_->backend->upload(t.desc.grad, values.data(), values.size());
}

void Optimizer::write_state(const std::string& name, const std::string& slot, std::span<const float> values) {
  auto& t = impl_->get(name);
  const Impl::Buffer& b = t.slots[impl_->slot_index(*exe_->optimizer, t, slot)];
  if (values.size() != b.n) throw Error(fmt::format("state `{}` of `{}` has {} elements, and {} were given", slot, name, b.n, values.size()));
  impl_->backend->upload(b.p, values.data(), values.size());
}

const CompiledOptimizer& Optimizer::compiled() const { return *exe_->optimizer; }

}  // namespace opal
