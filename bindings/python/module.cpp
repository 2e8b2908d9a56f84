// The `opal._opal` extension: compiled specs, optimizers stepping host memory given by address,
// zero-copy views of state, and checkpoints. The PyTorch-facing class is Python
// (bindings/python/opal/torch.py); this layer knows nothing of torch.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>

#include <fmt/format.h>

#include "driver/build.h"
#include "driver/cost_report.h"
#include "driver/routes.h"
#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/executable.h"
#include "runtime/optimizer.h"

namespace py = pybind11;
using namespace opal;

namespace {

// A compiled spec: shared by every optimizer built from it (one per PyTorch parameter group).
struct Compiled {
  std::shared_ptr<const CompiledOptimizer> compiled;
  std::shared_ptr<const Executable> exe;  // built for the CPU
};

// A contiguous block of state owned by an optimizer (float32, the 16-bit words of a bf16 slot
// exposed as int16 for torch to view as bfloat16, or the bytes of a q8 slot's codes), through
// the buffer protocol; it keeps the optimizer alive as long as any view of it is.
struct StateView {
  std::shared_ptr<Optimizer> owner;
  void* data;
  size_t size;
  size_t width = 4;  // bytes per element: 4, 2 or 1
};

struct Pending {
  std::shared_ptr<Optimizer> target;
  std::unique_ptr<PendingLoad> load;
};

py::dict report_dict(const LoadReport& r) {
  py::dict d;
  d["spec_changed"] = r.spec_changed;
  d["step"] = r.step;
  d["restored"] = r.restored;
  d["initialized"] = r.initialized;
  d["dropped"] = r.dropped;
  d["hparams_ignored"] = r.hparams_ignored;
  d["converted"] = r.converted;
  d["params_restored"] = r.params_restored;
  d["summary"] = r.summary();
  return d;
}

std::string dtype_code(const std::string& torch_dtype) {
  if (torch_dtype == "torch.float32") return "F32";
  if (torch_dtype == "torch.float16") return "F16";
  if (torch_dtype == "torch.bfloat16") return "BF16";
  if (torch_dtype == "torch.float64") return "F64";
  if (torch_dtype == "torch.uint8") return "U8";  // q8 codes
  return torch_dtype;
}

}  // namespace

namespace {
// "f32", "bf16", "f16" (opal.torch's spellings of torch.float32, bfloat16, float16).
DType dtype_by_name(const std::string& param, const std::string& name) {
  for (DType d : exec::kDTypes)
    if (name == exec::dtype_name(d)) return d;
  throw Error(fmt::format("parameter `{}`: dtype `{}` is not one Opal steps (f32, bf16, f16)", param, name));
}

StepPhase phase_by_name(const std::string& name) {
  for (StepPhase p : {StepPhase::Local, StepPhase::Whole, StepPhase::Finish})
    if (name == step_phase_name(p)) return p;
  throw Error(fmt::format("no step phase `{}`: local, whole or finish", name));
}

// Binds every parameter's memory before a step (grad address 0: it sits out; grad_dtypes empty:
// as before), all checked first.
void bind_all(Optimizer& o, const std::vector<uintptr_t>& data, const std::vector<uintptr_t>& grads, const std::vector<std::string>& grad_dtypes) {
  if (data.size() != o.num_params() || grads.size() != o.num_params())
    throw Error(fmt::format("step needs {} data and gradient addresses, got {} and {}", o.num_params(), data.size(), grads.size()));
  if (!grad_dtypes.empty() && grad_dtypes.size() != o.num_params())
    throw Error(fmt::format("step needs {} gradient dtypes, got {}", o.num_params(), grad_dtypes.size()));
  std::vector<DType> dts;
  for (size_t i = 0; i < grad_dtypes.size(); ++i) dts.push_back(dtype_by_name(o.param_name(i), grad_dtypes[i]));
  for (size_t i = 0; i < data.size(); ++i) {
    void* w = reinterpret_cast<void*>(data[i]);
    void* g = reinterpret_cast<void*>(grads[i]);
    if (dts.empty()) o.bind(i, w, g);
    else o.bind(i, w, g, dts[i]);
  }
}
}  // namespace

PYBIND11_MODULE(_opal, m) {
  m.doc() = "Opal runtime bindings (use opal.torch.Optimizer from PyTorch)";
  m.attr("__version__") = OPAL_VERSION;
  m.def("role_names", [] {
    std::vector<std::string> out;
    for (ParamRole r : exec::kParamRoles) out.push_back(exec::role_name(r));
    return out;
  });
  m.def("stdlib_dir", &stdlib_dir, "The folder the stdlib is read from: $OPAL_STDLIB, else the one installed with Opal");

  static py::exception<Error> error(m, "OpalError", PyExc_RuntimeError);
  static py::exception<CompileError> spec_error(m, "SpecError", error.ptr());
  static py::exception<CheckpointError> checkpoint_error(m, "CheckpointError", error.ptr());
  static py::exception<NotFoundError> not_found(m, "NotFoundError", error.ptr());
  static py::exception<NonFiniteError> nonfinite_error(m, "NonFiniteError", error.ptr());
  static py::exception<DeviceError> device_error(m, "DeviceError", error.ptr());
  // a ValueError as well, as torch.optim raises for a learning rate or beta out of range
  static py::exception<HyperparameterError> hparam_error(m, "HyperparameterError", py::make_tuple(error, py::handle(PyExc_ValueError)).release());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const CompileError& e) {
      spec_error(e.what());
    } catch (const CheckpointError& e) {
      checkpoint_error(e.what());
    } catch (const NotFoundError& e) {
      not_found(e.what());
    } catch (const NonFiniteError& e) {
      nonfinite_error(e.what());
    } catch (const DeviceError& e) {
      device_error(e.what());
    } catch (const HyperparameterError& e) {
      hparam_error(e.what());
    } catch (const Error& e) {
      error(e.what());
    }
  });

  m.def(
      "check",
      [](const std::string& spec) {
        Diagnostics d;
        SpecRef ref{spec, "", "", ""};
        auto program = load_spec_program(ref, d);
        if (program && !d.has_errors()) check_program(program, d);
        if (d.has_errors()) throw CompileError(d.render());
        return d.render();  // warnings, if any
      },
      py::arg("spec"), "Checks every declaration of a spec (name, path or text); raises SpecError, returns warnings.");

  m.def(
      "assign_owners",
      [](const std::vector<double>& costs, int world, std::vector<double> loads) {
        if (world < 1) throw Error(fmt::format("a world of {} ranks: give 1 or more", world));
        std::vector<int> owners = exec::assign_owners(costs, world, &loads);
        return std::make_pair(owners, loads);
      },
      py::arg("costs"), py::arg("world"), py::arg("loads") = std::vector<double>{},
      "Longest processing time first: (each cost's rank, each rank's load after), from `loads` before.");

  m.def(
      "check_hparam_value", [](const std::string& name, double value) { Optimizer::check_hparam_value(name, value); }, py::arg("name"),
      py::arg("value"), "Raises OpalError unless the value is finite and within float32's range (the runtime's own rule).");

  py::class_<Compiled>(m, "Compiled")
      .def(py::init([](const std::string& spec, const std::string& optimizer, const std::string& state) {
             auto co = compile_spec({spec, optimizer, "", state});
             return Compiled{co, build_executable(co)};
           }),
           py::arg("spec"), py::arg("optimizer") = "", py::arg("state") = "")
      .def_property_readonly("name", [](const Compiled& c) { return c.exe->desc->name; })
      // the compiled program's hash (a checkpoint's opal.program_hash): equal on every rank that runs the same optimizer
      .def_property_readonly("fingerprint", [](const Compiled& c) { return c.exe->desc->fingerprint; })
      // each parameter's static step cost in nominal seconds (compiler/exec/cost.h), routed as an
      // Optimizer would route it, without allocating: params [(name, shape, role, dtype)]
      .def(
          "costs",
          [](const Compiled& c, const std::vector<std::tuple<std::string, std::vector<int64_t>, std::string, std::string>>& params,
             const HParams& hparams) {
            const exec::Description& d = *c.exe->desc;
            std::vector<ParamDesc> ps;
            for (const auto& [name, shape, role, dtype] : params) {
              ParamDesc p{name, shape};
              if (!role.empty() && !exec::role_by_name(role, p.role)) throw Error(fmt::format("parameter `{}`: {}", name, exec::unknown_role(role)));
              p.dtype = p.grad_dtype = dtype_by_name(name, dtype);
              ps.push_back(std::move(p));
            }
            std::vector<double> hp = d.defaults;
            for (const auto& [k, v] : hparams) hp[Optimizer::hparam_index(d, k)] = v;
            std::vector<double> out;
            for (const exec::StepCost& cost : param_costs(d, ps, hp)) out.push_back(cost.seconds());
            return out;
          },
          py::arg("params"), py::arg("hparams") = HParams{})
      .def_property_readonly("hparams",
                             [](const Compiled& c) {
                               py::dict d;
                               const auto& co = *c.exe->desc;
                               for (size_t i = 0; i < co.hparams.size(); ++i) d[py::str(co.hparams[i])] = co.defaults[i];
                               return d;
                             })
      .def(
          "check_hparam", [](const Compiled& c, const std::string& name, double value) { Optimizer::check_hparam_value(*c.exe->desc, name, value); },
          py::arg("name"), py::arg("value"),
          "Raises HyperparameterError (a ValueError) unless the value is finite, within float32's range and in every range the spec "
          "gives the hyperparameter; NotFoundError for a name it lacks.")
      // {name: ["[0, 1): `beta` of `momentum` (momentum.opal:5:31)", ...]}: the ranges each hyperparameter must lie in
      .def_property_readonly("ranges",
                             [](const Compiled& c) {
                               py::dict out;
                               const auto& d = *c.exe->desc;
                               for (const auto& r : d.ranges) {
                                 py::str key(d.hparams[r.hparam]);
                                 if (!out.contains(key)) out[key] = py::list();
                                 out[key].cast<py::list>().append(fmt::format("{}: {}", r.range.str(), r.origin));
                               }
                               return out;
                             })
      .def_property_readonly("routes",
                             [](const Compiled& c) {
                               std::vector<std::string> out;
                               for (const auto& r : c.exe->desc->routes) out.push_back(r.label);
                               return out;
                             })
      .def_property_readonly("name_patterns",
                             [](const Compiled& c) {
                               std::vector<std::string> out;  // every name pattern of its routing, delegations included
                               for (const auto& t : c.exe->desc->tables)
                                 for (const auto& sel : t.selectors) out.insert(out.end(), sel.patterns.begin(), sel.patterns.end());
                               return out;
                             })
      .def_property_readonly("route_roles",
                             [](const Compiled& c) {
                               std::vector<std::string> out;  // every role its routing selects by, delegations included
                               for (const auto& t : c.exe->desc->tables)
                                 for (const auto& sel : t.selectors)
                                   for (ParamRole r : sel.roles) out.push_back(exec::role_name(r));
                               return out;
                             })
      .def("format_routes", [](const Compiled& c, const Optimizer& o) { return format_routes(describe_routes(o, *c.compiled)); })
      .def_property_readonly("source", [](const Compiled& c) { return c.exe->source; })
      .def_property_readonly("from_cache", [](const Compiled& c) { return c.exe->from_cache; })
      .def("__repr__", [](const Compiled& c) { return fmt::format("<opal.Compiled {}>", c.exe->desc->name); });

  py::class_<StateView>(m, "StateView", py::buffer_protocol()).def_buffer([](StateView& v) {
    if (v.width == 1) return py::buffer_info(v.data, 1, py::format_descriptor<uint8_t>::format(), 1, {py::ssize_t(v.size)}, {py::ssize_t(1)});
    if (v.width == 2) return py::buffer_info(v.data, 2, py::format_descriptor<int16_t>::format(), 1, {py::ssize_t(v.size)}, {py::ssize_t(2)});
    return py::buffer_info(v.data, sizeof(float), py::format_descriptor<float>::format(), 1, {py::ssize_t(v.size)}, {py::ssize_t(sizeof(float))});
  });

  py::class_<Pending>(m, "PendingLoad").def_property_readonly("report", [](const Pending& p) { return report_dict(p.load->report); });

  py::class_<Optimizer, std::shared_ptr<Optimizer>>(m, "Optimizer")
      // params: [(name, shape, data address, role, dtype)] (role "" for none; dtype "f32", "bf16", "f16");
      // gradients are bound at each step. device: "cpu", "cuda", "cuda:N" (the addresses are then device pointers)
      .def(py::init([](const Compiled& c,
                       const std::vector<std::tuple<std::string, std::vector<int64_t>, uintptr_t, std::string, std::string>>& params,
                       const std::string& device, const HParams& hparams, bool master,
                       const std::map<std::string, std::tuple<std::vector<int64_t>, int64_t, bool>>& shards) {
             std::vector<ParamDesc> ps;
             for (const auto& [name, shape, data, role, dtype] : params) {
               ParamRole r = ParamRole::None;
               if (!role.empty() && !exec::role_by_name(role, r)) throw Error(fmt::format("parameter `{}`: {}", name, exec::unknown_role(role)));
               const DType dt = dtype_by_name(name, dtype);
               ps.push_back({name, shape, reinterpret_cast<void*>(data), nullptr, true, r, dt, dt, master});
               if (auto it = shards.find(name); it != shards.end()) std::tie(ps.back().whole_shape, ps.back().shard_row, ps.back().shard_owner) = it->second;
             }
             const Device d = parse_device(device);
             if (d.kind == DeviceKind::Cpu) return std::make_shared<Optimizer>(c.exe, std::move(ps), hparams);
             return std::shared_ptr<Optimizer>(make_optimizer(c.compiled, std::move(ps), d, hparams));
           }),
           py::arg("compiled"), py::arg("params"), py::arg("device") = "cpu", py::arg("hparams") = HParams{}, py::arg("master") = false,
           py::arg("shards") = std::map<std::string, std::tuple<std::vector<int64_t>, int64_t, bool>>{},
           "shards: {name: (whole shape, first index of dim 0 held here, owner)} for parameters sharded by rows")
      .def_property_readonly("device", &Optimizer::describe_device)
      .def(
          "step",
          [](Optimizer& o, const std::vector<uintptr_t>& data, const std::vector<uintptr_t>& grads, uintptr_t stream,
             const std::vector<std::string>& grad_dtypes) {
            bind_all(o, data, grads, grad_dtypes);
            py::gil_scoped_release release;
            o.step(reinterpret_cast<void*>(stream));
          },
          py::arg("data"), py::arg("grads"), py::arg("stream") = 0, py::arg("grad_dtypes") = std::vector<std::string>{},
          "Binds every parameter's memory (grad address 0: sits out; grad_dtypes: each gradient's \"f32\", \"bf16\" or \"f16\", "
          "empty: as before) and steps (on CUDA: queued on `stream`, a cudaStream_t address).")
      .def(
          "step_phase",
          [](Optimizer& o, const std::string& phase, const std::vector<uintptr_t>& data, const std::vector<uintptr_t>& grads, uintptr_t stream,
             const std::vector<std::string>& grad_dtypes) {
            const StepPhase p = phase_by_name(phase);
            if (p == StepPhase::Local) bind_all(o, data, grads, grad_dtypes);
            py::gil_scoped_release release;
            o.step_phase(p, reinterpret_cast<void*>(stream));
          },
          py::arg("phase"), py::arg("data") = std::vector<uintptr_t>{}, py::arg("grads") = std::vector<uintptr_t>{}, py::arg("stream") = 0,
          py::arg("grad_dtypes") = std::vector<std::string>{},
          "One phase (\"local\", \"whole\", \"finish\") of a step with parameters sharded by rows; \"local\" binds the memory as step does.")
      .def(
          "exchanges",
          [](Optimizer& o, const std::string& name, const std::string& after) {
            std::vector<std::tuple<uint32_t, bool, uintptr_t, size_t, uintptr_t, size_t, size_t>> out;
            for (const Exchange& x : o.exchanges(name, phase_by_name(after)))
              out.emplace_back(x.buffer, x.split, reinterpret_cast<uintptr_t>(x.local), x.local_bytes, reinterpret_cast<uintptr_t>(x.whole),
                               x.whole_bytes, x.unit_bytes);
            return out;
          },
          "What moves after phase `after` for a sharded parameter: [(buffer, split, local address, local bytes, whole address (0 but "
          "on the owner), whole bytes, bytes per index of dim 0)]")
      .def_property_readonly("sharded", &Optimizer::sharded)
      .def(
          "set_rounding",
          [](Optimizer& o, const std::string& mode, uint64_t seed) {
            if (mode != "nearest" && mode != "stochastic") throw Error(fmt::format("rounding must be nearest or stochastic, not `{}`", mode));
            o.set_stochastic_rounding(mode == "stochastic", seed);
          },
          py::arg("mode"), py::arg("seed") = 0)
      .def("param_dtype", [](const Optimizer& o, const std::string& name) { return std::string(exec::dtype_name(o.param_dtype(name))); })
      .def_property(
          "step_count", [](const Optimizer& o) { return o.step_count(); }, [](Optimizer& o, int64_t t) { o.set_step_count(t); })
      .def("param_step_count", [](const Optimizer& o, const std::string& name) { return o.step_count(name); })
      // a parameter's state started over (opal.torch's `del opt.state[p]`): every slot as the spec
      // initializes it, and its step count 0
      .def("reset_param",
           [](Optimizer& o, const std::string& name) {
             for (const auto& slot : o.slots(name)) o.reset_state(name, slot);
             o.set_step_count(name, 0);
           })
      .def("set_hparam", &Optimizer::set_hparam)
      .def_property(
          "nonfinite", [](const Optimizer& o) { return std::string(nonfinite_policy_name(o.nonfinite_policy())); },
          [](Optimizer& o, const std::string& p) { o.set_nonfinite_policy(parse_nonfinite_policy(p)); })
      .def_property_readonly("skipped_steps", &Optimizer::skipped_steps)
      .def_property(
          "diagnostics", [](const Optimizer& o) { return o.diagnostics_on(); }, &Optimizer::set_diagnostics)
      .def_property_readonly("update_stats",
                             [](const Optimizer& o) {
                               py::list out;
                               for (const UpdateStats& s : o.diagnostics()) {
                                 py::dict d;
                                 d["param"] = s.param;
                                 d["step"] = s.step;
                                 d["update_rms"] = s.update_rms;
                                 if (!std::isnan(s.sv_ratio)) {  // matrices
                                   d["sv_max"] = s.sv_max;
                                   d["sv_mean"] = s.sv_mean;
                                   d["sv_ratio"] = s.sv_ratio;
                                 }
                                 out.append(d);
                               }
                               return out;
                             })
      .def("undo_step", &Optimizer::undo_step, py::call_guard<py::gil_scoped_release>(),
           "Puts the last step back, as the skip policy does (a step taken under a policy other than off)")
      .def_property_readonly("nonfinite_events",
                             [](const Optimizer& o) {
                               py::list out;
                               for (const auto& e : o.nonfinite_events()) {
                                 py::dict d;
                                 d["step"] = e.step;
                                 d["param"] = e.param;
                                 d["route"] = e.route;
                                 d["stage"] = e.stage;
                                 d["action"] = e.action;
                                 d["message"] = describe(e);
                                 out.append(d);
                               }
                               return out;
                             })
      .def("hparam", &Optimizer::hparam)
      .def_property_readonly("hparam_names", &Optimizer::hparam_names)
      .def_property_readonly("param_names",
                             [](const Optimizer& o) {
                               std::vector<std::string> out;
                               for (size_t i = 0; i < o.num_params(); ++i) out.push_back(o.param_name(i));
                               return out;
                             })
      .def("route", &Optimizer::route_of)
      .def("slots", &Optimizer::slots)
      .def("has_param", &Optimizer::has_param)
      .def("state_shape", &Optimizer::state_shape)
      .def("param_role", [](const Optimizer& o, const std::string& name) { return std::string(exec::role_name(o.param_role(name))); })
      // the address of a state slot in the optimizer's device memory (CUDA views are built on it)
      .def("state_address",
           [](Optimizer& o, const std::string& name, const std::string& slot) { return reinterpret_cast<uintptr_t>(o.state_data(name, slot)); })
      .def("state_view",
           [](std::shared_ptr<Optimizer> o, const std::string& name, const std::string& slot) {
             if (o->state_dtype(name, slot) == DType::F32) {
               auto s = o->state(name, slot);
               return StateView{o, s.data(), s.size()};
             }
             if (o->device().kind != DeviceKind::Cpu)
               throw Error(fmt::format("state `{}` of `{}` lives on {}: view it through its address", slot, name, o->describe_device()));
             size_t n = 1;
             for (int64_t d : o->state_shape(name, slot)) n *= size_t(d);
             return StateView{o, o->state_data(name, slot), n, exec::dtype_size(o->state_dtype(name, slot))};
           })
      .def("state_dtype", [](const Optimizer& o, const std::string& name,
                             const std::string& slot) { return std::string(exec::dtype_name(o.state_dtype(name, slot))); })
      .def(
          "save", [](const Optimizer& o, const std::string& path, bool params) { o.save(path, {.params = params}); }, py::arg("path"),
          py::arg("params") = false)
      .def("load", [](Optimizer& o, const std::string& path) { return report_dict(o.load(path)); })
      // (metadata, {key: (shape, bytes)}): the checkpoint as Python values
      .def("export_state",
           [](const Optimizer& o) {
             SafetensorsFile f = checkpoint_of(o);
             py::dict tensors;
             for (const auto& [k, t] : f.tensors) {  // (shape, bytes, "F32", "BF16", "F16" or "U8": as the slot is stored)
               if (t.dtype == "F32") {
                 tensors[py::str(k)] =
                     py::make_tuple(t.shape, py::bytes(reinterpret_cast<const char*>(t.values.data()), t.values.size() * 4), t.dtype);
                 continue;
               }
               if (t.dtype == "U8") {  // q8 codes
                 std::string bytes(t.values.begin(), t.values.end());
                 tensors[py::str(k)] = py::make_tuple(t.shape, py::bytes(bytes), t.dtype);
                 continue;
               }
               std::string words(t.values.size() * 2, '\0');
               convert_host(words.data(), t.dtype == "BF16" ? DType::BF16 : DType::F16, t.values.data(), DType::F32, t.values.size());
               tensors[py::str(k)] = py::make_tuple(t.shape, py::bytes(words), t.dtype);
             }
             return py::make_tuple(f.metadata, tensors);
           })
      // tensors: {key: (shape, torch dtype name, address, numel)}; checks everything, changes nothing
      .def("prepare_load",
           [](std::shared_ptr<Optimizer> o, const std::map<std::string, std::string>& metadata,
              const std::map<std::string, std::tuple<std::vector<int64_t>, std::string, uintptr_t, int64_t>>& tensors, const std::string& what) {
             SafetensorsFile f;
             f.metadata = metadata;
             for (const auto& [k, v] : tensors) {
               const auto& [shape, dtype, addr, numel] = v;
               TensorData t;
               t.shape = shape;
               t.dtype = dtype_code(dtype);
               int64_t want = 1;
               for (int64_t d : shape) want *= d;
               if (numel != want)
                 throw CheckpointError(
                     fmt::format("cannot load `{}`: tensor `{}` has {} elements for shape [{}]", what, k, numel, fmt::join(shape, ", ")));
               // any float storage: converted to f32 here, and to the slot's storage when applied
               t.values.resize(size_t(numel));
               if (numel == 0) {
               } else if (t.dtype == "F32") {
                 const float* p = reinterpret_cast<const float*>(addr);
                 t.values.assign(p, p + numel);
               } else if (t.dtype == "BF16" || t.dtype == "F16") {
                 convert_host(t.values.data(), DType::F32, reinterpret_cast<const void*>(addr), t.dtype == "BF16" ? DType::BF16 : DType::F16,
                              size_t(numel));
               } else if (t.dtype == "U8") {  // q8 codes
                 const uint8_t* p = reinterpret_cast<const uint8_t*>(addr);
                 t.values.assign(p, p + numel);
               } else if (t.dtype == "F64") {
                 const double* p = reinterpret_cast<const double*>(addr);
                 for (int64_t i = 0; i < numel; ++i) t.values[size_t(i)] = float(p[i]);
               } else {
                 throw CheckpointError(fmt::format("cannot load `{}`: tensor `{}` is {}, not a floating-point tensor", what, k, dtype));
               }
               f.tensors[k] = std::move(t);
             }
             return Pending{o, std::make_unique<PendingLoad>(prepare_load(*o, std::move(f), what))};
           })
      .def("apply_load", [](Optimizer& o, Pending& p) {
        if (!p.load) throw Error("this pending load was applied already");
        if (p.target.get() != &o) throw Error("this pending load was prepared for another optimizer");
        LoadReport r = apply_load(o, std::move(*p.load));
        p.load.reset();
        return report_dict(r);
      });
}
