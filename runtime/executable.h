// What the runtime runs: a compiled optimizer's executable description (compiler/exec/
// description.h, plain data) with its generated source, and the module holding its kernels,
// loaded for one backend. The driver (driver/build.h) builds it from a spec; the runtime
// neither parses nor compiles specs.
#pragma once
#include <memory>
#include <string>

#include "compiler/exec/description.h"
#include "runtime/backend.h"

namespace opal {

struct Executable {
  std::shared_ptr<const exec::Description> desc;
  Device device;               // the backend the module was loaded for (its target: cpu or cuda)
  std::string source;          // generated code of `module`
  std::string checked_source;  // the same kernels with fused non-finite checks (compiled when a policy asks)
  // The same kernels for parameters and gradients stored as bf16 or f16 too (exec::DType),
  // without and with the checks: compiled when such a parameter is bound.
  std::string mixed_source, checked_mixed_source;
  std::shared_ptr<KernelModule> module;
  bool from_cache = false;
  bool check_finite = false;  // `module` is the checked variant
};

}  // namespace opal
