// A step on CUDA queues its work and returns: in steady state the host never waits for the
// device inside step(), so a trainer queues its next forward pass while the step runs. Counted
// on the emulator, whose synchronizing calls (cudaEventSynchronize, cudaStreamSynchronize,
// cudaDeviceSynchronize) count themselves; a real device has no such count, and the case is
// compiled for the emulator only.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "compiler/exec/kernel_abi.h"
#include "driver/build.h"
#include "runtime/optimizer.h"
#include "tests/unit/trajectory.h"
#ifdef OPAL_CUDA_EMULATOR
#include "tests/cuda_emu/engine.h"
#endif

using namespace opal;

#ifdef OPAL_CUDA_EMULATOR
namespace {

// Gradients for step t, written (a host copy: it waits) before the step is counted.
void write_grads(Optimizer& o, int t) {
  for (size_t p = 0; p < o.num_params(); ++p) {
    const std::string& n = o.param_name(p);
    std::vector<float> g(o.read_param(n).size());
    for (size_t i = 0; i < g.size(); ++i) g[i] = std::sin(0.37f * float(i) + 0.11f * float(t) * float(p + 1));
    o.write_grad(n, g);
  }
}

}  // namespace

TEST_CASE("steady-state steps on CUDA never wait for the device") {
  // matrices of two shapes (two of one: batched GEMMs and kernels), a vector; SOAP and Shampoo
  // refresh every 10 steps (steps 1, 11, ...): steps 4 to 6 are plain
  const std::vector<ParamDesc> ps = {{"h.0.w", {64, 48}}, {"h.1.w", {64, 48}}, {"wide.w", {24, 96}}, {"h.0.b", {48}}};
  struct Case {
    const char* name;
    const char* state;
    DType dtype;
  };
  for (const Case& c : {Case{"adamw", "", DType::F32}, Case{"lion", "", DType::F32}, Case{"adafactor", "", DType::F32}, Case{"muon", "", DType::F32},
                        Case{"soap", "", DType::F32}, Case{"shampoo", "", DType::F32}, Case{"adamuon", "", DType::F32},
                        Case{"adamw", "q8", DType::BF16}, Case{"muon", "bf16", DType::BF16}, Case{"soap", "", DType::BF16}}) {
    std::vector<ParamDesc> typed = ps;
    for (ParamDesc& p : typed) p.dtype = p.grad_dtype = c.dtype;
    auto o = make_optimizer(compile_spec(SpecRef{c.name, "", "", c.state}), typed, Device{DeviceKind::Cuda, 0});
    testing::init_params(*o);
    for (int t = 1; t <= 3; ++t) {
      write_grads(*o, t);
      o->step();
    }
    unsigned long long waits = 0;
    for (int t = 4; t <= 6; ++t) {
      write_grads(*o, t);
      const unsigned long long before = emu::host_waits();
      o->step();
      waits += emu::host_waits() - before;
    }
    INFO(fmt::format("{} state `{}` {}", c.name, c.state, exec::dtype_name(c.dtype)));
    CHECK(waits == 0);
  }
}
#endif
