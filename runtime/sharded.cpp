// Parameters sharded by rows across processes (FSDP's dim-0 shards, ParamDesc::whole_shape):
// a parameter's Local part (this process's rows) and, on its owner, its Whole part (the whole
// matrix), each with the slots its route's split gives it (exec::shard_phases); and what the
// host moves between the phases of a step (Optimizer::exchanges). The phased step itself is in
// runtime/step.cpp.
#include <fmt/format.h>

#include "runtime/optimizer_impl.h"
#include "runtime/routing.h"

namespace opal {

const char* step_phase_name(StepPhase p) {
  switch (p) {
    case StepPhase::Local: return "local";
    case StepPhase::Whole: return "whole";
    case StepPhase::Finish: return "finish";
  }
  return "?";
}

namespace {
std::string dims(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }
}  // namespace

// A sharded parameter's description, checked: dim 0 split, the others whole, a row range
// inside the whole.
void check_shard(const exec::Description& d, const ParamDesc& p) {
  const auto& w = p.whole_shape;
  if (p.shape.empty() || w.size() != p.shape.size())
    throw Error(fmt::format("parameter `{}` is sharded by rows: its shape {} and its whole shape {} must have the same number of dims, at least one",
                            p.name, dims(p.shape), dims(w)));
  for (size_t k = 1; k < w.size(); ++k)
    if (w[k] != p.shape[k])
      throw Error(
          fmt::format("parameter `{}` is sharded by rows: only dim 0 may differ from the whole shape, and its shape {} differs from {} in dim {}",
                      p.name, dims(p.shape), dims(w), k));
  if (p.shape[0] < 1 || p.shard_row < 0 || w[0] < 1 || p.shard_row > w[0] - p.shape[0])
    throw Error(
        fmt::format("parameter `{}` is sharded by rows: rows [{}, {}) are not a non-empty part of its {} rows\n"
                    "  = help: a process that holds no rows of a parameter leaves it out",
                    p.name, p.shard_row, p.shard_row + p.shape[0], w[0]));
  if (p.master) throw Error(fmt::format("parameter `{}`: a sharded parameter cannot keep an f32 master copy (not yet available)", p.name));
  if (!d.globals.empty())
    throw Error(
        fmt::format("optimizer `{}` adds up sums over every parameter ({}), which sharded parameters cannot take part in yet; parameter `{}` is "
                    "sharded [Unsupported]",
                    d.name, fmt::join(d.globals, ", "), p.name));
}

// The Local part: this process's rows. Routed as the whole parameter, so that conditions and
// views see the whole; split by the route's phases where the whole is one matrix whose rows
// the split follows; a vector's part is a range of its elements (its elementwise stages stay
// local); a batched or permuted view steps whole on the owner.
void Optimizer::add_sharded(const exec::Description& d, const ParamDesc& p, const double* hparams) {
  check_shard(d, p);
  const RoutedParam rp = route_param(d, whole_param(p), hparams);
  const exec::Route& route = d.routes[rp.route];
  impl_->check_call_side(route, p.name, rp.view);
  if (route.master)
    throw Error(
        fmt::format("parameter `{}`: route `{}` keeps f32 master copies, which sharded parameters cannot (not yet available)", p.name, route.label));
  const long long whole0 = p.whole_shape[0];
  const bool one = rp.view.batch == 1 && rp.view.perm.empty();  // one matrix, in the parameter's order
  const bool by_rows = one && p.shape.size() >= 2 && rp.view.rows % whole0 == 0;
  impl_->by_name[p.name] = impl_->tensors.size();
  impl_->tensors.emplace_back();
  Impl::Tensor& t = impl_->tensors.back();
  t.desc = p;
  t.part = Impl::Tensor::Part::Local;
  t.route = rp.route;
  // a vector's part is a range of its elements: its elementwise stages are local too
  t.phases = by_rows && route.shards.owner_slot.size() == route.slots.size() ? route.shards
                                                                             : exec::shard_phases(route, by_rows ? exec::ShardAxis::Rows
                                                                                                         : one   ? exec::ShardAxis::Elements
                                                                                                                 : exec::ShardAxis::Whole);
  t.mrows = rp.view.rows;
  t.mcols = rp.view.cols;
  t.total = rp.view.numel();
  const long long per_index = t.total / whole0;  // elements per index of dim 0
  if (by_rows) {
    t.rows = p.shape[0] * (rp.view.rows / whole0);
    t.cols = rp.view.cols;
  } else {  // its rows as one flat run of elements (stepped by elementwise stages only)
    t.rows = 1;
    t.cols = p.shape[0] * per_index;
  }
  t.first = p.shard_row * per_index;
  t.regs.assign(route.scalars.size(), 0.0);
  impl_->sharded = true;
  if (p.external && !p.data) throw Error(fmt::format("parameter `{}`: the data pointer is null", p.name));
  if (!t.desc.data) t.desc.data = (t.owned_w = impl_->alloc(t.numel(), p.dtype)).p;
  if (!t.desc.grad && !p.external) t.desc.grad = (t.owned_g = impl_->alloc(t.numel(), p.grad_dtype)).p;
  impl_->update_staging(d, t);
  for (size_t i = 0; i < route.slots.size(); ++i) {
    const exec::Slot& s = route.slots[i];
    const bool held = t.holds_slot(i);
    // a q8 slot's blocks must be the whole's: this process's rows start and end on block edges
    if (held && s.block != 0 && (t.first % s.block != 0 || (t.first + (long long)t.numel() != t.total && (long long)t.numel() % s.block != 0)))
      throw Error(
          fmt::format("parameter `{}`: its rows [{}, {}) cut the {}-element blocks of q8 state `{}`; shard it on block edges or store the "
                      "state otherwise",
                      p.name, p.shard_row, p.shard_row + p.shape[0], s.block, s.name));
    t.slots.push_back(impl_->alloc(held ? size_t(exec::slot_count(s, t.rows, t.cols)) : 0, s.dtype));
    if (held && s.init != exec::Init::Zeros) impl_->reset_slot(d, t, i);
  }
  for (exec::Extent s : route.scratch) t.scratch.push_back(impl_->alloc(size_t(exec::dims_of(s, t.rows, t.cols).count())));
}

// On the owner, each sharded parameter's Whole part: the whole matrix, its w and g in buffers
// of its own (the gathers' targets), with the slots the whole phase keeps.
void Optimizer::add_whole_parts(const exec::Description& d, const double* hparams) {
  for (size_t i = 0; i < impl_->n_params; ++i) {
    if (impl_->tensors[i].part != Impl::Tensor::Part::Local || !impl_->tensors[i].desc.shard_owner) continue;
    const ParamDesc whole = whole_param(impl_->tensors[i].desc);
    const RoutedParam rp = route_param(d, whole, hparams);
    const exec::Route& route = d.routes[rp.route];
    impl_->tensors.emplace_back();
    Impl::Tensor& t = impl_->tensors.back();
    Impl::Tensor& local = impl_->tensors[i];
    local.twin = impl_->tensors.size() - 1;
    t.twin = i;
    t.desc = whole;
    t.part = Impl::Tensor::Part::Whole;
    t.route = rp.route;
    t.phases = local.phases;
    t.rows = t.mrows = rp.view.rows;
    t.cols = t.mcols = rp.view.cols;
    t.batch = rp.view.batch;
    t.batch_shape = rp.view.batch_shape;
    t.perm = rp.view.perm;
    t.total = (long long)t.numel();
    t.regs.assign(route.scalars.size(), 0.0);
    t.desc.data = (t.owned_w = impl_->alloc(t.numel(), whole.dtype)).p;
    t.desc.grad = (t.owned_g = impl_->alloc(t.numel(), whole.grad_dtype)).p;
    impl_->update_staging(d, t);
    for (size_t k = 0; k < route.slots.size(); ++k) {
      const exec::Slot& s = route.slots[k];
      const bool held = t.holds_slot(k);
      t.slots.push_back(impl_->alloc(held ? size_t(t.batch * exec::slot_count(s, t.rows, t.cols)) : 0, s.dtype));
      if (held && s.init != exec::Init::Zeros) impl_->reset_slot(d, t, k);
    }
    for (exec::Extent s : route.scratch) t.scratch.push_back(impl_->alloc(size_t(t.batch * exec::dims_of(s, t.rows, t.cols).count())));
  }
}

bool Optimizer::sharded() const { return impl_->sharded; }

std::vector<Exchange> Optimizer::exchanges(const std::string& name, StepPhase after) {
  Impl::Tensor& t = impl_->get(name);
  if (after == StepPhase::Finish) throw Error("nothing moves after the finish phase: it ends the step");
  if (t.part != Impl::Tensor::Part::Local) return {};
  const exec::Route& route = exe_->desc->routes[t.route];
  Impl::Tensor* w = t.twin != SIZE_MAX ? &impl_->tensors[t.twin] : nullptr;
  const long long whole0 = t.desc.whole_shape[0];
  std::vector<Exchange> out;
  for (uint32_t b : after == StepPhase::Local ? t.phases.gather : t.phases.scatter) {
    const exec::Extent e = exec::buffer_extent(route, b);
    Exchange x;
    x.buffer = b;
    x.split = exec::split_by_rows(e);
    size_t es = 4;
    auto count = [&](const Impl::Tensor& p) {
      return size_t(e == exec::Extent::Full ? (long long)p.numel() : p.batch * exec::dims_of(e, p.rows, p.cols).count());
    };
    if (b == exec::kParamBuffer || b == exec::kGradBuffer) {
      const bool is_w = b == exec::kParamBuffer;
      es = exec::dtype_size(is_w ? t.desc.dtype : t.desc.grad_dtype);
      x.what = std::string(1, is_w ? 'w' : 'g');
      x.local = is_w ? t.desc.data : t.desc.grad;
      if (w) x.whole = is_w ? w->desc.data : w->desc.grad;
    } else {
      const size_t j = b - exec::kFirstSlotBuffer - route.slots.size();
      x.what = fmt::format("scratch b{} ({})", b, exec::extent_name(e));
      x.local = t.scratch.at(j).p;
      if (w) x.whole = w->scratch.at(j).p;
    }
    x.local_bytes = count(t) * es;
    if (w) x.whole_bytes = count(*w) * es;
    if (x.split) x.unit_bytes = size_t(e == exec::Extent::Full ? t.total / whole0 : t.mrows / whole0) * es;
    out.push_back(std::move(x));
  }
  return out;
}

}  // namespace opal
