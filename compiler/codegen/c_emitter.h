// The kernel emitter: one C-like renderer of plans, shared by the CPU and CUDA targets.
// A target is a small subclass overriding the kernel signature, the loops and a few spellings.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "compiler/plan.h"

namespace opal {

enum class Target { Cpu, Cuda };

// The kernels of one compiled optimizer, route by route, as the emitter sees them.
struct EmitRoute {
  std::string label;
  const Plan* plan;
};

struct EmitInput {
  std::string optimizer;
  size_t n_hparams = 0;  // the uniform block's hp[]: hyperparameters, global sums, host-computed uniforms
  std::vector<EmitRoute> routes;
  // Fused non-finite checks: every kernel ORs bit i into its tensor's flag word (`chk`) where
  // probe i of the route's graph holds a NaN or an infinity. Off: no check is emitted at all.
  bool check_finite = false;
  // The mixed program (CEmitter::mixed): kernels for w and g stored as f32, bf16 or f16, chosen
  // per tensor. Off: every tensor is f32, and the code is as small as it can be.
  bool mixed = false;
};

// Kernel entry points: `void NAME(const opal_tensor_t* ts, long long n, const opal_uniforms_t* U)`
// on the CPU; `__global__ void NAME(const opal_tensor_t* ts, opal_uniforms_t U)` with one
// blockIdx.y per tensor on CUDA. Each tensor's buffer table is: 0 w, 1 g, 2.. the state slots,
// then the plan's scratch buffers; `chk` points at its non-finite flag word (checked kernels).
std::string kernel_symbol(size_t route, size_t kernel);

// The whole translation unit (prelude, ABI structs, every kernel of every route).
std::string emit_program(const EmitInput& in, Target target);

}  // namespace opal
