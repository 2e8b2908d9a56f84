// A step allocates nothing: the runtime runs the executable description with working lists
// sized at construction. Counted by replacing the global operator new in this binary (its own
// executable, and not in sanitizer builds, whose runtimes own operator new).
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "driver/build.h"
#include "runtime/optimizer.h"

namespace {
std::atomic<long> g_allocations{0};
}

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace opal;

// allocations made by `steps` steps of `opt`, after two warm-up steps
long allocations_per_steps(Optimizer& opt, int steps) {
  for (size_t i = 0; i < opt.num_params(); ++i)
    for (float& g : opt.grad(opt.param_name(i))) g = 0.01f * float(i + 1);
  opt.step();
  opt.step();
  const long before = g_allocations.load();
  for (int s = 0; s < steps; ++s) opt.step();
  return g_allocations.load() - before;
}

std::vector<ParamDesc> model() {
  return {{"wte", {40, 8}},         {"blocks.0.attn.w", {8, 24}}, {"blocks.0.attn.b", {24}}, {"blocks.0.mlp.w", {8, 32}},
          {"blocks.0.mlp.b", {32}}, {"blocks.0.ln.w", {8}},       {"blocks.0.ln.b", {8}},    {"head.w", {8, 40}}};
}

}  // namespace

TEST_SUITE("alloc") {
TEST_CASE("a step of an elementwise optimizer allocates nothing on the host") {
  for (const char* spec : {"adamw", "lion", "signum", "adafactor", "paper_adam"}) {
    CAPTURE(spec);
    Optimizer opt(build_executable(SpecRef{spec, "", ""}), model());
    CHECK(allocations_per_steps(opt, 10) == 0);
  }
}

TEST_CASE("guarded kernels (every-N refreshes) allocate nothing either") {
  // the guard is a register of the route's host scalar program, evaluated once per step
  const char* spec =
      "component slow(every = 2) {\n"
      "  state m = zeros\n"
      "  every(every) { m = sign(u) }\n"
      "  u = m\n"
      "}\n"
      "optimizer every_other(lr = 1e-2, b1 = 0.9) {\n"
      "  other: momentum(b1) -> slow(3) -> scale(lr)\n"
      "}\n";
  Optimizer opt(build_executable(SpecRef{spec, "", ""}), model());
  CHECK(allocations_per_steps(opt, 10) == 0);
}

TEST_CASE("the counter counts: a parameter added late would allocate, a state read does") {
  Optimizer opt(build_executable(SpecRef{"adamw", "", ""}), model());
  const long before = g_allocations.load();
  auto v = opt.read_state("wte", "adapt.v");  // a host copy: one vector
  CHECK(g_allocations.load() - before >= 1);
  CHECK(v.size() == 40 * 8);
}
}
