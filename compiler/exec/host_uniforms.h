// The step's uniform scalars, computed on the host. A kernel's scalars that depend only on
// constants, hyperparameters, global sums and the step count (bias corrections `1 - b1^t`,
// schedules) are the same for every tensor and thread: rather than each CUDA thread (or each
// CPU tensor) computing them, with `pow` per thread, the runtime runs one host scalar program
// per launch and passes the values in the uniform block, after the hyperparameters and the
// global sums. Both targets read the same values, computed by exec::eval_scalar: the CPU and
// CUDA kernels see bit-identical scalars.
#pragma once
#include <vector>

#include "compiler/exec/description.h"
#include "compiler/plan.h"

namespace opal {

// The most doubles the uniform block holds after t: CUDA passes it by value, within the 4 KB of
// kernel parameters every CUDA version accepts. Values past it stay in the kernels.
inline constexpr size_t kMaxUniformSlots = 480;

struct HostUniforms {
  exec::ScalarProgram program;  // over t and the hyperparameters and global sums (no sizes)
  std::vector<uint32_t> regs;   // uniform k (hp[first + k]) is register regs[k]
};

// Gives each plan's step-uniform scalars that its kernels need a uniform slot
// (Plan::host_uniforms, as hp indices from `first` = hyperparameters + global sums), equal
// values shared across routes, and returns the program computing them.
HostUniforms assign_host_uniforms(const std::vector<Plan*>& plans, size_t first);

// The scalars kernel K of plan p computes itself, in order: those its loop, effects and
// reductions read, less the host's (whose operands it then needs not).
std::vector<ir::ValueId> kernel_scalars(const Plan& p, const Kernel& K);

}  // namespace opal
