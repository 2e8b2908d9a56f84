// Spec reference -> compiled optimizer -> executable description and kernels, loaded.
#include "driver/build.h"

#include <filesystem>

#include <fmt/format.h>

#include "compiler/exec/describe.h"
#include "lang/parser.h"
#include "runtime/error.h"

namespace opal {

namespace {
bool is_spec_text(const std::string& s) { return s.find('{') != std::string::npos; }
}  // namespace

std::shared_ptr<Program> load_spec_program(const SpecRef& ref, Diagnostics& diags) {
  LoadRequest req;
  if (!ref.stdlib_dir.empty()) req.stdlib_dir = ref.stdlib_dir;
  std::error_code ec;
  if (is_spec_text(ref.spec)) req.texts.push_back({"<spec>", ref.spec});
  else if (ref.spec.find(".opal") != std::string::npos || std::filesystem::exists(ref.spec, ec)) req.files.push_back(ref.spec);
  return std::shared_ptr<Program>(load_program(req, diags));
}

const OptimizerDecl* pick_optimizer(const Program& p, const SpecRef& ref, Diagnostics& diags) {
  std::string name = ref.optimizer;
  bool named_stdlib = !is_spec_text(ref.spec) && p.user_optimizers.empty() && ref.spec.find(".opal") == std::string::npos;
  if (name.empty() && named_stdlib) name = ref.spec;
  if (name.empty()) {
    if (p.user_optimizers.empty()) {
      diags.report(DiagKind::UnknownOptimizer, {}, fmt::format("`{}` defines no optimizer", ref.spec), "add `optimizer NAME(...) { ... }`");
      return nullptr;
    }
    if (p.user_optimizers.size() > 1) {
      std::vector<std::string> names;
      for (auto* o : p.user_optimizers) names.push_back(o->name);
      diags.report(DiagKind::UnknownOptimizer, p.user_optimizers[1]->loc,
                   fmt::format("`{}` defines several optimizers: {}", ref.spec, fmt::join(names, ", ")), "choose one with --optimizer NAME");
      return nullptr;
    }
    return p.user_optimizers[0];
  }
  if (const OptimizerDecl* o = p.find_optimizer(name)) return o;
  std::string m = closest_match(name, p.optimizer_names());
  diags.report(DiagKind::UnknownOptimizer, {}, fmt::format("unknown optimizer `{}`", name),
               m.empty() ? "`opal list` shows the stdlib optimizers" : fmt::format("did you mean `{}`?", m));
  return nullptr;
}

std::string stdlib_dir() { return default_stdlib_dir(); }

CompileOptions compile_options(const SpecRef& ref, Diagnostics& diags) {
  CompileOptions opts;
  if (ref.state.empty()) return opts;
  opts.state_source = std::make_shared<const SourceFile>("<state>", ref.state);
  opts.state = parse_state_storage(*opts.state_source, diags);
  return opts;
}

std::shared_ptr<const CompiledOptimizer> compile_spec(const SpecRef& ref, std::string* warnings) {
  Diagnostics diags;
  std::shared_ptr<Program> program = load_spec_program(ref, diags);
  const OptimizerDecl* decl = diags.has_errors() ? nullptr : pick_optimizer(*program, ref, diags);
  const CompileOptions opts = compile_options(ref, diags);
  std::optional<CompiledOptimizer> c;
  if (decl && !diags.has_errors()) c = compile_optimizer(program, *decl, diags, opts);
  if (!c || diags.has_errors()) throw CompileError(diags.render());
  if (warnings) *warnings = diags.render();
  return std::make_shared<const CompiledOptimizer>(std::move(*c));
}

std::shared_ptr<const Executable> build_executable(const SpecRef& ref, Device device) {
  auto compiled = compile_spec(ref);
  std::unique_ptr<Backend> backend = make_backend(device);
  return build_executable(std::move(compiled), false, backend.get());
}

std::unique_ptr<Optimizer> make_optimizer(std::shared_ptr<const CompiledOptimizer> compiled, std::vector<ParamDesc> params, Device device,
                                          const HParams& hparams) {
  std::unique_ptr<Backend> backend = make_backend(device);
  auto exe = build_executable(std::move(compiled), false, backend.get());
  return std::make_unique<Optimizer>(std::move(backend), std::move(exe), std::move(params), hparams);
}

std::shared_ptr<const Executable> build_executable(std::shared_ptr<const CompiledOptimizer> compiled, bool check_finite, Backend* backend) {
  std::unique_ptr<Backend> cpu;
  if (!backend) backend = (cpu = make_cpu_backend()).get();
  auto exe = std::make_shared<Executable>();
  exe->desc = std::make_shared<const exec::Description>(describe(*compiled));
  exe->check_finite = check_finite;
  exe->device = backend->device();
  const Target target = exe->device.kind == DeviceKind::Cpu ? Target::Cpu : Target::Cuda;
  exe->checked_source = emit_optimizer(*compiled, target, true);
  exe->mixed_source = emit_optimizer(*compiled, target, false, true);
  exe->checked_mixed_source = emit_optimizer(*compiled, target, true, true);
  exe->source = check_finite ? exe->checked_source : emit_optimizer(*compiled, target, false);
  try {
    exe->module = backend->compile(exe->source, exe->desc->symbols);
  } catch (const Error& e) {
    throw Error(fmt::format("cannot compile the kernels of `{}` for {}: {}", exe->desc->name, backend->describe(), e.what()));
  }
  exe->from_cache = exe->module->from_cache;
  return exe;
}

}  // namespace opal
