// The C ABI over opal::Optimizer: argument checks, two-phase construction, and every C++
// exception turned into a status and a thread-local message.
#include "bindings/c_api/opal.h"

#include <algorithm>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <string>

#include <fmt/format.h>

#include "compiler/exec/describe.h"
#include "driver/build.h"
#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"

struct opal_optimizer {
  std::shared_ptr<const opal::CompiledOptimizer> compiled;       // kernels are built for the device once it is known
  std::shared_ptr<const opal::exec::Description> desc;           // its executable description (routing, hyperparameters)
  std::vector<opal::ParamDesc> params;                           // until the optimizer is built
  std::map<std::string, double> hparams;                         // set before it is built
  opal::NonFinitePolicy nonfinite = opal::NonFinitePolicy::Off;  // likewise
  bool stochastic = false;                                       // likewise (opal_set_rounding)
  bool master = false;                                           // opal_set_master_weights
  bool diagnostics = false;                                      // opal_set_diagnostics
  uint64_t seed = 0;
  opal::Device device;  // of the parameters added so far
  std::unique_ptr<opal::Optimizer> opt;
  std::set<std::string> strings;  // returned names, alive as long as the handle
  std::string report;
  std::string stats;  // opal_update_stats's text

  const char* keep(const std::string& s) { return strings.insert(s).first->c_str(); }
  opal::Optimizer& built() {
    if (!opt) {
      for (auto& p : params) p.master = master;
      auto o = opal::make_optimizer(compiled, params, device, hparams);
      o->set_nonfinite_policy(nonfinite);
      o->set_diagnostics(diagnostics);
      if (stochastic) o->set_stochastic_rounding(true, seed);
      opt = std::move(o);
      params.clear();
    }
    return *opt;
  }
};

namespace {

// The CUDA device of a parameter's memory (DeviceError, OPAL_ERROR_UNSUPPORTED, naming it).
int cuda_ordinal(const char* name, const char* what, const void* p) {
  try {
    return opal::cuda_device_of(p);
  } catch (const opal::DeviceError& e) {
    throw opal::DeviceError(fmt::format("parameter `{}`: its {}: {}", name, what, e.what()));
  }
}

thread_local std::string last_error;

struct Failure {
  opal_status status;
  std::string message;
};

opal_status fail(opal_status s, std::string message) {
  last_error = std::move(message);
  return s;
}

// Runs `f`, turning every exception into a status; nothing escapes.
template <class F>
opal_status guarded(F&& f) noexcept {
  try {
    f();
    return OPAL_OK;
  } catch (const Failure& e) {
    return fail(e.status, e.message);
  } catch (const opal::CompileError& e) {
    return fail(OPAL_ERROR_SPEC, e.what());
  } catch (const opal::NotFoundError& e) {
    return fail(OPAL_ERROR_NOT_FOUND, e.what());
  } catch (const opal::CheckpointError& e) {
    return fail(OPAL_ERROR_CHECKPOINT, e.what());
  } catch (const opal::IoError& e) {
    return fail(OPAL_ERROR_IO, e.what());
  } catch (const opal::NonFiniteError& e) {
    return fail(OPAL_ERROR_NONFINITE, e.what());
  } catch (const opal::DeviceError& e) {
    return fail(OPAL_ERROR_UNSUPPORTED, e.what());
  } catch (const opal::Error& e) {
    return fail(OPAL_ERROR_ARGUMENT, e.what());
  } catch (const std::bad_alloc&) {
    return fail(OPAL_ERROR_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return fail(OPAL_ERROR_INTERNAL, fmt::format("internal error: {}", e.what()));
  } catch (...) {
    return fail(OPAL_ERROR_INTERNAL, "internal error: unknown exception");
  }
}

void need(bool ok, const char* what) {
  if (!ok) throw Failure{OPAL_ERROR_ARGUMENT, fmt::format("{} must not be NULL", what)};
}

const char* dtype_name(opal_dtype d);

// The storage of a parameter or gradient given as `d`: f32, bf16 and f16 are stepped.
opal::DType storage(const char* name, opal_dtype d) {
  switch (d) {
    case OPAL_F32: return opal::DType::F32;
    case OPAL_BF16: return opal::DType::BF16;
    case OPAL_F16: return opal::DType::F16;
    default: break;
  }
  throw Failure{OPAL_ERROR_UNSUPPORTED,
                fmt::format("parameter `{}` is {}; Opal steps f32, bf16 and f16 parameters and gradients", name, dtype_name(d))};
}

const char* dtype_name(opal_dtype d) {
  switch (d) {
    case OPAL_F32: return "f32";
    case OPAL_F16: return "f16";
    case OPAL_BF16: return "bf16";
    case OPAL_F64: return "f64";
  }
  return "an unknown dtype";
}

}  // namespace

extern "C" {

const char* opal_version(void) { return OPAL_VERSION; }
int opal_abi_version(void) { return OPAL_ABI_VERSION; }
const char* opal_last_error(void) { return last_error.c_str(); }

const char* opal_status_name(opal_status s) {
  switch (s) {
    case OPAL_OK: return "OPAL_OK";
    case OPAL_ERROR_SPEC: return "OPAL_ERROR_SPEC";
    case OPAL_ERROR_ARGUMENT: return "OPAL_ERROR_ARGUMENT";
    case OPAL_ERROR_NOT_FOUND: return "OPAL_ERROR_NOT_FOUND";
    case OPAL_ERROR_IO: return "OPAL_ERROR_IO";
    case OPAL_ERROR_CHECKPOINT: return "OPAL_ERROR_CHECKPOINT";
    case OPAL_ERROR_UNSUPPORTED: return "OPAL_ERROR_UNSUPPORTED";
    case OPAL_ERROR_STATE: return "OPAL_ERROR_STATE";
    case OPAL_ERROR_NONFINITE: return "OPAL_ERROR_NONFINITE";
    case OPAL_ERROR_INTERNAL: return "OPAL_ERROR_INTERNAL";
  }
  return "an unknown status";
}

opal_status opal_create(const char* spec, const char* optimizer, opal_optimizer** out) { return opal_create_stored(spec, optimizer, nullptr, out); }

opal_status opal_create_stored(const char* spec, const char* optimizer, const char* state, opal_optimizer** out) {
  return guarded([&] {
    need(spec, "spec");
    need(out, "out");
    auto h = std::make_unique<opal_optimizer>();
    h->compiled = opal::compile_spec({spec, optimizer ? optimizer : "", "", state ? state : ""});
    h->desc = std::make_shared<const opal::exec::Description>(opal::describe(*h->compiled));
    *out = h.release();
  });
}

void opal_destroy(opal_optimizer* opt) { delete opt; }

opal_status opal_add_param(opal_optimizer* opt, const char* name, int ndim, const int64_t* shape, opal_dtype dtype, opal_device device, void* data,
                           void* grad) {
  return guarded([&] {
    need(opt, "opt");
    need(name, "name");
    need(ndim == 0 || shape, "shape");
    if (opt->opt) throw Failure{OPAL_ERROR_STATE, fmt::format("cannot add parameter `{}`: the parameter list was fixed by an earlier call", name)};
    if (ndim < 0 || ndim > 8) throw Failure{OPAL_ERROR_ARGUMENT, fmt::format("parameter `{}` has {} dimensions; 0 to 8 are allowed", name, ndim)};
    if (device != OPAL_CPU && device != OPAL_CUDA)
      throw Failure{OPAL_ERROR_ARGUMENT, fmt::format("parameter `{}`: unknown device {}", name, int(device))};
    opal::Device dev{device == OPAL_CUDA ? opal::DeviceKind::Cuda : opal::DeviceKind::Cpu, 0};
    if (dev.kind == opal::DeviceKind::Cuda) {  // the device the memory is on (cuda:LOCAL_RANK under DDP), not device 0
      const int on = data ? cuda_ordinal(name, "data", data) : grad ? cuda_ordinal(name, "gradient", grad) : 0;
      if (data && grad && cuda_ordinal(name, "gradient", grad) != on)
        throw Failure{OPAL_ERROR_ARGUMENT,
                      fmt::format("parameter `{}` is on cuda:{} and its gradient on cuda:{}", name, on, cuda_ordinal(name, "gradient", grad))};
      dev.ordinal = on;
    }
    if (!opt->params.empty() && (dev.kind != opt->device.kind || dev.ordinal != opt->device.ordinal))
      throw Failure{OPAL_ERROR_ARGUMENT, fmt::format("parameter `{}` is on {}, and the earlier ones on {}: one optimizer steps one device", name,
                                                     opal::device_name(dev), opal::device_name(opt->device))};
    // no CUDA here: say so now (DeviceError); device pointers were already checked, so only
    // optimizer-owned memory needs the backend made (it is made again when the list is fixed)
    if (dev.kind == opal::DeviceKind::Cuda && opt->params.empty() && !data && !grad) opal::make_backend(dev);
    const opal::DType dt = storage(name, dtype);
    for (const auto& p : opt->params)
      if (p.name == name) throw Failure{OPAL_ERROR_ARGUMENT, fmt::format("parameter `{}` is given twice", name)};
    opal::ParamDesc p{name, std::vector<int64_t>(shape, shape + ndim), data, grad};
    p.dtype = p.grad_dtype = dt;
    // check shape and routing now, so that the error names this call
    opal::Optimizer::check_param(*opt->desc, p, opt->hparams);
    opt->params.push_back(std::move(p));
    opt->device = dev;
  });
}

opal_status opal_set_param_role(opal_optimizer* opt, const char* name, const char* role) {
  return guarded([&] {
    need(opt, "opt");
    need(name, "name");
    need(role, "role");
    if (opt->opt) throw Failure{OPAL_ERROR_STATE, fmt::format("cannot set the role of `{}`: the parameter list was fixed by an earlier call", name)};
    opal::ParamRole r = opal::ParamRole::None;
    if (*role && !opal::exec::role_by_name(role, r)) throw Failure{OPAL_ERROR_ARGUMENT, opal::exec::unknown_role(role) + " (or \"\" for none)"};
    auto it = std::find_if(opt->params.begin(), opt->params.end(), [&](const opal::ParamDesc& p) { return p.name == name; });
    if (it == opt->params.end()) throw Failure{OPAL_ERROR_NOT_FOUND, fmt::format("no parameter `{}` was added", name)};
    opal::ParamDesc p = *it;
    p.role = r;
    opal::Optimizer::check_param(*opt->desc, p, opt->hparams);  // its new route must take it
    *it = std::move(p);
  });
}

opal_status opal_set_param_shard(opal_optimizer* opt, const char* name, const int64_t* whole_shape, int64_t row, int owner) {
  return guarded([&] {
    need(opt, "opt");
    need(name, "name");
    need(whole_shape, "whole_shape");
    if (opt->opt) throw Failure{OPAL_ERROR_STATE, fmt::format("cannot shard `{}`: the parameter list was fixed by an earlier call", name)};
    auto it = std::find_if(opt->params.begin(), opt->params.end(), [&](const opal::ParamDesc& p) { return p.name == name; });
    if (it == opt->params.end()) throw Failure{OPAL_ERROR_NOT_FOUND, fmt::format("no parameter `{}` was added", name)};
    opal::ParamDesc p = *it;
    p.whole_shape.assign(whole_shape, whole_shape + p.shape.size());
    p.shard_row = row;
    p.shard_owner = owner != 0;
    opal::Optimizer::check_param(*opt->desc, p, opt->hparams);
    *it = std::move(p);
  });
}

namespace {
std::vector<opal::Exchange> exchanges_of(opal_optimizer* opt, const char* param, int after) {
  need(opt, "opt");
  need(param, "param");
  if (after != OPAL_PHASE_LOCAL && after != OPAL_PHASE_WHOLE)
    throw Failure{OPAL_ERROR_ARGUMENT, "exchanges follow OPAL_PHASE_LOCAL (gathers) or OPAL_PHASE_WHOLE (scatters)"};
  return opt->built().exchanges(param, opal::StepPhase(after));
}
}  // namespace

opal_status opal_step_phase(opal_optimizer* opt, int phase, void* stream) {
  return guarded([&] {
    need(opt, "opt");
    if (phase != OPAL_PHASE_LOCAL && phase != OPAL_PHASE_WHOLE && phase != OPAL_PHASE_FINISH)
      throw Failure{OPAL_ERROR_ARGUMENT, fmt::format("unknown phase {}: OPAL_PHASE_LOCAL, OPAL_PHASE_WHOLE or OPAL_PHASE_FINISH", phase)};
    opt->built().step_phase(opal::StepPhase(phase), stream);
  });
}

opal_status opal_num_exchanges(opal_optimizer* opt, const char* param, int after, size_t* out) {
  return guarded([&] {
    need(out, "out");
    *out = exchanges_of(opt, param, after).size();
  });
}

opal_status opal_get_exchange(opal_optimizer* opt, const char* param, int after, size_t index, opal_exchange* out) {
  return guarded([&] {
    need(out, "out");
    const auto xs = exchanges_of(opt, param, after);
    if (index >= xs.size()) throw Failure{OPAL_ERROR_ARGUMENT, fmt::format("parameter `{}` has {} exchanges, not {}", param, xs.size(), index + 1)};
    const opal::Exchange& x = xs[index];
    *out = {x.buffer, x.split ? 1 : 0, x.local, x.local_bytes, x.whole, x.whole_bytes, x.unit_bytes};
  });
}

opal_status opal_bind_param(opal_optimizer* opt, const char* name, void* data, void* grad) {
  return guarded([&] {
    need(opt, "opt");
    need(name, "name");
    need(data, "data");
    opt->built().bind(name, data, grad);
  });
}

opal_status opal_bind_grad(opal_optimizer* opt, const char* name, void* grad, opal_dtype dtype) {
  return guarded([&] {
    need(opt, "opt");
    need(name, "name");
    const opal::DType dt = storage(name, dtype);
    opt->built().bind_grad(name, grad, dt);
  });
}

opal_status opal_set_master_weights(opal_optimizer* opt, int on) {
  return guarded([&] {
    need(opt, "opt");
    if (opt->opt) throw Failure{OPAL_ERROR_STATE, "cannot change master weights: the parameter list was fixed by an earlier call"};
    opt->master = on != 0;
  });
}

opal_status opal_set_rounding(opal_optimizer* opt, const char* mode, uint64_t seed) {
  return guarded([&] {
    need(opt, "opt");
    need(mode, "mode");
    const std::string m = mode;
    if (m != "nearest" && m != "stochastic")
      throw Failure{OPAL_ERROR_ARGUMENT, fmt::format("unknown rounding `{}`: use \"nearest\" or \"stochastic\"", m)};
    if (opt->opt) opt->opt->set_stochastic_rounding(m == "stochastic", seed);
    opt->stochastic = m == "stochastic";
    opt->seed = seed;
  });
}

opal_status opal_param_data(opal_optimizer* opt, const char* name, float** data, float** grad, int64_t* numel) {
  return guarded([&] {
    need(opt, "opt");
    need(name, "name");
    auto& o = opt->built();
    auto w = o.param(name);
    auto g = o.grad(name);
    if (data) *data = w.data();
    if (grad) *grad = g.data();
    if (numel) *numel = int64_t(w.size());
  });
}

opal_status opal_step(opal_optimizer* opt, void* stream) {
  return guarded([&] {
    need(opt, "opt");
    opt->built().step(stream);
  });
}

opal_status opal_set_nonfinite(opal_optimizer* opt, const char* policy) {
  return guarded([&] {
    need(opt, "opt");
    need(policy, "policy");
    opal::NonFinitePolicy p = opal::parse_nonfinite_policy(policy);
    if (opt->opt) opt->opt->set_nonfinite_policy(p);
    opt->nonfinite = p;
  });
}

opal_status opal_skipped_steps(opal_optimizer* opt, int64_t* out) {
  return guarded([&] {
    need(opt, "opt");
    need(out, "out");
    *out = opt->opt ? opt->opt->skipped_steps() : 0;
  });
}

opal_status opal_undo_step(opal_optimizer* opt) {
  return guarded([&] {
    need(opt, "opt");
    opt->built().undo_step();
  });
}

opal_status opal_set_diagnostics(opal_optimizer* opt, int on) {
  return guarded([&] {
    need(opt, "opt");
    if (opt->opt) opt->opt->set_diagnostics(on != 0);
    opt->diagnostics = on != 0;
  });
}

opal_status opal_update_stats(opal_optimizer* opt, const char** json) {
  return guarded([&] {
    need(opt, "opt");
    need(json, "json");
    opt->stats = opt->opt ? opal::to_json_lines(opt->opt->diagnostics()) : std::string();
    *json = opt->stats.c_str();
  });
}

opal_status opal_step_count(opal_optimizer* opt, int64_t* out) {
  return guarded([&] {
    need(opt, "opt");
    need(out, "out");
    *out = opt->opt ? opt->opt->step_count() : 0;
  });
}

opal_status opal_param_step_count(opal_optimizer* opt, const char* param, int64_t* out) {
  return guarded([&] {
    need(opt, "opt");
    need(param, "param");
    need(out, "out");
    *out = opt->built().step_count(param);
  });
}

opal_status opal_set_hparam(opal_optimizer* opt, const char* name, double value) {
  return guarded([&] {
    need(opt, "opt");
    need(name, "name");
    if (opt->opt) {
      opt->opt->set_hparam(name, value);
      return;
    }
    opal::Optimizer::check_hparam_value(*opt->desc, name, value);  // the name (with "did you mean"), the value, its ranges
    std::map<std::string, double> next = opt->hparams;
    next[name] = value;
    for (const auto& p : opt->params) opal::Optimizer::check_param(*opt->desc, p, next);  // route conditions may read it
    opt->hparams = std::move(next);
  });
}

opal_status opal_get_hparam(opal_optimizer* opt, const char* name, double* out) {
  return guarded([&] {
    need(opt, "opt");
    need(name, "name");
    need(out, "out");
    if (opt->opt) {
      *out = opt->opt->hparam(name);
      return;
    }
    auto it = opt->hparams.find(name);
    *out = it != opt->hparams.end() ? it->second : opt->desc->defaults[opal::Optimizer::hparam_index(*opt->desc, name)];
  });
}

opal_status opal_num_hparams(opal_optimizer* opt, size_t* out) {
  return guarded([&] {
    need(opt, "opt");
    need(out, "out");
    *out = opt->desc->hparams.size();
  });
}

opal_status opal_hparam_name(opal_optimizer* opt, size_t index, const char** out) {
  return guarded([&] {
    need(opt, "opt");
    need(out, "out");
    const auto& names = opt->desc->hparams;
    if (index >= names.size())
      throw Failure{OPAL_ERROR_NOT_FOUND, fmt::format("hyperparameter index {} is out of range (there are {})", index, names.size())};
    *out = names[index].c_str();
  });
}

opal_status opal_save(opal_optimizer* opt, const char* path, unsigned flags) {
  return guarded([&] {
    need(opt, "opt");
    need(path, "path");
    if (flags & ~OPAL_SAVE_PARAMS) throw Failure{OPAL_ERROR_ARGUMENT, fmt::format("unknown save flags {:#x}", flags & ~OPAL_SAVE_PARAMS)};
    opt->built().save(path, {.params = (flags & OPAL_SAVE_PARAMS) != 0});
  });
}

opal_status opal_load(opal_optimizer* opt, const char* path, const char** report) {
  return guarded([&] {
    need(opt, "opt");
    need(path, "path");
    opt->report = opt->built().load(path).summary();
    if (report) *report = opt->report.c_str();
  });
}

opal_status opal_num_slots(opal_optimizer* opt, const char* param, size_t* out) {
  return guarded([&] {
    need(opt, "opt");
    need(param, "param");
    need(out, "out");
    *out = opt->built().slots(param).size();
  });
}

opal_status opal_slot_name(opal_optimizer* opt, const char* param, size_t index, const char** out) {
  return guarded([&] {
    need(opt, "opt");
    need(param, "param");
    need(out, "out");
    auto slots = opt->built().slots(param);
    if (index >= slots.size())
      throw Failure{OPAL_ERROR_NOT_FOUND, fmt::format("parameter `{}` has {} state slots; index {} is out of range", param, slots.size(), index)};
    *out = opt->keep(slots[index]);
  });
}

opal_status opal_state(opal_optimizer* opt, const char* param, const char* slot, float** data, int64_t* numel) {
  return guarded([&] {
    need(opt, "opt");
    need(param, "param");
    need(slot, "slot");
    opal::Optimizer& o = opt->built();
    if (const opal::DType d = o.state_dtype(param, slot); d != opal::DType::F32)
      throw Failure{OPAL_ERROR_ARGUMENT, fmt::format("state `{}` of `{}` is stored as {}, not f32: read and write its values with opal_read_state "
                                                     "and opal_write_state (they convert)",
                                                     slot, param, opal::exec::dtype_name(d))};
    auto s = o.state(param, slot);
    if (data) *data = s.data();
    if (numel) *numel = int64_t(s.size());
  });
}

namespace {
// The checks opal_read_state and opal_write_state open with: the arguments, and the slot's
// element count, which the caller's must match. Returns the built optimizer.
opal::Optimizer& state_access(opal_optimizer* opt, const char* param, const char* slot, const void* buffer, const char* buffer_name, int64_t count) {
  need(opt, "opt");
  need(param, "param");
  need(slot, "slot");
  need(buffer, buffer_name);
  opal::Optimizer& o = opt->built();
  const auto shape = o.state_shape(param, slot);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (count != n) throw Failure{OPAL_ERROR_ARGUMENT, fmt::format("state `{}` of `{}` has {} values, and count is {}", slot, param, n, count)};
  return o;
}
}  // namespace

opal_status opal_read_state(opal_optimizer* opt, const char* param, const char* slot, float* out, int64_t count) {
  return guarded([&] {
    opal::Optimizer& o = state_access(opt, param, slot, out, "out", count);
    const std::vector<float> v = o.read_state_values(param, slot);
    std::copy(v.begin(), v.end(), out);
  });
}

opal_status opal_write_state(opal_optimizer* opt, const char* param, const char* slot, const float* values, int64_t count) {
  return guarded([&] {
    opal::Optimizer& o = state_access(opt, param, slot, values, "values", count);
    o.write_state_values(param, slot, {values, size_t(count)});
  });
}

opal_status opal_state_shape(opal_optimizer* opt, const char* param, const char* slot, int* ndim, int64_t shape[8]) {
  return guarded([&] {
    need(opt, "opt");
    need(param, "param");
    need(slot, "slot");
    need(ndim, "ndim");
    auto s = opt->built().state_shape(param, slot);
    if (s.size() > 8) throw Failure{OPAL_ERROR_INTERNAL, "a state slot with more than 8 dimensions"};
    *ndim = int(s.size());
    if (shape)
      for (size_t i = 0; i < s.size(); ++i) shape[i] = s[i];
  });
}

opal_status opal_route(opal_optimizer* opt, const char* param, const char** out) {
  return guarded([&] {
    need(opt, "opt");
    need(param, "param");
    need(out, "out");
    *out = opt->keep(opt->built().route_of(param));
  });
}

}  // extern "C"
