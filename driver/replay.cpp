// opal replay.
#include "driver/replay.h"

#include <fmt/format.h>

#include "driver/routes.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"

namespace opal {

SafetensorsFile replay(const ReplayRequest& req) {
  if (req.steps < 0) throw Error("--steps must be at least 0");
  if (req.init.tensors.empty()) throw Error("the init file has no tensors");
  for (const auto& [name, t] : req.init.tensors)
    for (int s = 1; s <= req.steps; ++s) {
      auto it = req.grads.tensors.find(fmt::format("{}@{}", name, s));
      if (it == req.grads.tensors.end()) throw Error(fmt::format("the grads file has no tensor `{}@{}`", name, s));
      if (it->second.shape != t.shape)
        throw Error(fmt::format("gradient `{}@{}` has shape [{}], but the parameter has [{}]", name, s, fmt::join(it->second.shape, ", "),
                                fmt::join(t.shape, ", ")));
    }
  // Each parameter is stored as the init file stores it (F32, BF16, F16; others as f32), in
  // the optimizer's own memory, and its gradients as the grads file stores the first: a bf16
  // run replays as bf16.
  std::vector<ParamDesc> params;
  for (const auto& [name, t] : req.init.tensors) {
    params.push_back({name, t.shape, nullptr, nullptr});
    params.back().dtype = param_storage(t.dtype);
    params.back().grad_dtype = req.steps > 0 ? param_storage(req.grads.tensors.at(fmt::format("{}@1", name)).dtype) : params.back().dtype;
  }
  assign_roles(params, req.roles);
  Optimizer opt(build_executable(req.spec), params, req.hparams);
  for (const auto& [name, t] : req.init.tensors) opt.write_param(name, t.values);
  opt.set_diagnostics(req.diagnostics != nullptr);
  for (int s = 1; s <= req.steps; ++s) {
    for (const auto& [name, _] : req.init.tensors) opt.write_grad(name, req.grads.tensors.at(fmt::format("{}@{}", name, s)).values);
    opt.step();
    if (req.diagnostics) req.diagnostics->insert(req.diagnostics->end(), opt.diagnostics().begin(), opt.diagnostics().end());
  }
  SafetensorsFile out;
  for (const auto& [name, t] : req.init.tensors) {
    out.tensors[name] = {t.shape, opt.read_param(name), param_storage(t.dtype) == DType::F32 ? "F32" : t.dtype};
    // each slot's values as f32, whatever its storage (--state bf16 widened, q8 dequantized;
    // a q8 slot's scales are a slot of their own)
    for (const auto& slot : opt.slots(name)) out.tensors[name + "/" + slot] = {opt.state_shape(name, slot), opt.read_state_values(name, slot)};
  }
  out.metadata["optimizer"] = opt.description().name;
  out.metadata["steps"] = std::to_string(req.steps);
  for (const auto& h : opt.hparam_names()) out.metadata["hparam." + h] = fmt::format("{}", opt.hparam(h));
  return out;
}

}  // namespace opal
