// Codegen: the emitted CPU and CUDA text, and the disk cache of compiled kernels.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "driver/build.h"
#include "compiler/codegen/c_emitter.h"
#include "compiler/exec/describe.h"
#include "runtime/cpu/host_compile.h"
#include "runtime/executable.h"

using namespace opal;

namespace {
std::string emit(const std::string& spec, Target t) {
  auto c = compile_spec({spec, "", ""});
  return emit_optimizer(*c, t);
}
size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}
}  // namespace

TEST_SUITE("codegen") {
TEST_CASE("AdamW's CPU code: one vectorizable loop, each buffer read once and written once") {
  std::string src = emit("adamw", Target::Cpu);
  CHECK(count(src, "extern \"C\" void opal_r") == 1);
  // the loop twice: on the thread pool for big tensors, without an OpenMP region for small ones
  CHECK(count(src, "if (n_e < 65536) {") == 1);
  CHECK(count(src, "#pragma omp simd\n") == 1);
  CHECK(count(src, "#pragma omp parallel for simd") == 1);
  CHECK(count(src, "= sb0[e]") == 2);   // w read, once in each
  CHECK(count(src, "= sb1[e]") == 2);   // g read
  CHECK(count(src, "sb0[e] = ") == 2);  // w written
  CHECK(count(src, "sb2[e] = ") == 2);  // m written
  CHECK(count(src, "sb3[e] = ") == 2);  // v written
  // the bias corrections (1 - b1, 1 - b1^t, 1 - b2, 1 - b2^t) are computed on the host once per
  // launch and read from the uniform block: no pow in the kernels of either target
  const std::string kernels = src.substr(src.find("extern \"C\" void opal_r"));  // (the prelude declares pow)
  CHECK(count(kernels, "pow(") == 0);
  CHECK(count(src, "(host)") == 4);
  CHECK(count(emit("adamw", Target::Cuda), "pow(") == 0);
}

TEST_CASE("CUDA launches: elementwise kernels are chunked (q8 ones by whole blocks), kernels with sums are not") {
  // Adafactor: row and column sums (tiled, one blockIdx.y per tensor) and elementwise kernels
  auto co = compile_spec({"adafactor", "", ""});
  const exec::Description d = describe(*co);
  size_t chunked = 0, whole = 0;
  for (const auto& r : d.routes)
    for (const auto& k : r.kernels) {
      CHECK_FALSE((k.chunk && (k.partials.any() || k.domain != exec::Extent::Full)));
      (k.chunk ? chunked : whole)++;
    }
  CHECK(chunked > 0);
  CHECK(whole > 0);
  const std::string cuda = emit_optimizer(*co, Target::Cuda);
  CHECK(count(cuda, "chunks[blockIdx.x]") == chunked);
  // a q8 store quantizes a block per warp: a chunk holds 8 blocks at least (a warp each)
  for (const char* state : {"q8", "q8(4096)"}) {
    auto q8 = compile_spec({"adamw", "", "", state});
    for (const auto& r : describe(*q8).routes)
      for (const auto& k : r.kernels) CHECK(k.chunk == (std::string(state) == "q8" ? exec::kCudaChunk : 8 * 4096));
    CHECK(count(emit_optimizer(*q8, Target::Cuda), "opal_blk += blockDim.x >> 5") == 1);
  }
}

TEST_CASE("host uniforms: the step-uniform scalars, one program for every route, equal values shared") {
  auto co = compile_spec({"adamw", "", ""});
  REQUIRE(co);
  const exec::Description d = describe(*co);
  REQUIRE(d.uniform_regs.size() == 4);
  CHECK(d.uniform_count() == 1 + d.hparams.size() + 4);
  CHECK(exec::verify(d).empty());
  // t = 3, lr, b1, b2, eps, wd as given: the slots are 1 - b1, 1 - b1^3, 1 - b2, 1 - b2^3
  std::vector<double> u(d.uniform_count(), 0.0), regs(d.uniform_program.size());
  u[0] = 3;
  const double hp[] = {1e-3, 0.9, 0.99, 1e-8, 0.1};
  std::copy(std::begin(hp), std::end(hp), u.begin() + 1);
  d.derive_uniforms(u.data(), regs.data());
  const double* got = u.data() + 1 + d.hparams.size();
  CHECK(got[0] == 1 - 0.9);
  CHECK(got[1] == 1 - std::pow(0.9, 3.0));
  CHECK(got[2] == 1 - 0.99);
  CHECK(got[3] == 1 - std::pow(0.99, 3.0));
  // the program reads no size: a malformed one is refused by verify
  exec::Description bad = d;
  bad.uniform_program.code.push_back({exec::ScalarOp::Rows});
  CHECK(exec::verify(bad).find("size") != std::string::npos);
  bad = d;
  bad.uniform_regs.push_back(uint32_t(bad.uniform_program.size()));
  CHECK_FALSE(exec::verify(bad).empty());
}

TEST_CASE("the CUDA text wraps the same bodies in chunked __global__ kernels, 16 bytes at a time where aligned") {
  std::string cpu = emit("lion", Target::Cpu), cuda = emit("lion", Target::Cuda);
  CHECK(count(cuda, "extern \"C\" __global__ void opal_r0_k0") == 1);
  // elementwise: one block per chunk of a tensor (multi-tensor apply), not a grid per tensor
  CHECK(count(cuda, "chunks[blockIdx.x]") == 1);
  CHECK(count(cuda, "blockIdx.y") == 0);
  CHECK(cuda.find("#include") == std::string::npos);  // NVRTC needs no headers
  auto body = [](const std::string& s) { return s.substr(s.find("const float v"), s.find("sb0[e] = ") - s.find("const float v")); };
  const std::string plain = body(cpu);
  // the plain body once (a chunk's last elements, or all on unaligned memory), and once on
  // registers filled by 16-byte loads (w, g and the momentum: lion's every buffer)
  CHECK(count(cuda, plain) == 1);
  std::string in_regs = plain;
  for (int b : {0, 1, 2})
    for (size_t at; (at = in_regs.find(fmt::format("sb{}[e]", b))) != std::string::npos;) in_regs.replace(at, 6, fmt::format("opal_a{}[opal_l]", b));
  CHECK(count(cuda, in_regs) == 1);
  CHECK(count(cuda, "= *(const float4*)(sb") == 2);        // w, m
  CHECK(count(cuda, "= __ldg((const float4*)(sb1") == 1);  // g: read only
  CHECK(count(cuda, "*(float4*)(sb") == 2);                // w and m stored
  CHECK(count(cuda, "((((unsigned long long)sb0 | (unsigned long long)sb1 | (unsigned long long)sb2) & 15) == 0)") == 1);
}

TEST_CASE("chunked CUDA kernels for 16-bit parameters or q8 state ask for more blocks per multiprocessor") {
  auto bounds = [](const std::string& spec, const std::string& state, bool mixed) {
    const std::string s = emit_optimizer(*compile_spec({spec, "", "", state}), Target::Cuda, false, mixed);
    std::vector<std::string> out;
    for (size_t at = s.find("__global__ void "); at != std::string::npos; at = s.find("__global__ void ", at + 1)) {
      const size_t from = at + 16;
      out.push_back(s.compare(from, 18, "__launch_bounds__(") == 0 ? s.substr(from, s.find(')', from) - from + 1) : "");
    }
    return out;
  };
  // f32: as ptxas chooses (AdamW's 52 registers fit 4 blocks)
  for (const std::string& b : bounds("adamw", "", false)) CHECK(b.empty());
  // the program for 16-bit parameters: the registers of its heaviest dtype case would leave 2
  for (const std::string& b : bounds("adamw", "bf16", true)) CHECK(b == "__launch_bounds__(256, 5)");
  for (const std::string& b : bounds("adamw", "q8", false)) CHECK(b == "__launch_bounds__(256, 8)");
  for (const std::string& b : bounds("adamw", "q8", true)) CHECK(b == "__launch_bounds__(256, 5)");
  // Adafactor's tiled kernels (row and column sums) are not chunked: none; its chunked ones are
  const auto af = bounds("adafactor", "", true);
  CHECK(std::count(af.begin(), af.end(), "") > 0);
  CHECK(std::count(af.begin(), af.end(), "__launch_bounds__(256, 5)") > 0);
}

TEST_CASE("the disk cache: a warm build loads without compiling; a corrupt entry is rebuilt") {
  auto tmp = std::filesystem::temp_directory_path() / "opal-cache-test";
  std::filesystem::remove_all(tmp);
  const char* prev = std::getenv("OPAL_CACHE_DIR");
  std::string saved = prev ? prev : "";
  setenv("OPAL_CACHE_DIR", tmp.c_str(), 1);
  std::string src = emit("signum", Target::Cpu);
  HostCompileResult a = compile_host(src);
  REQUIRE(a.module);
  CHECK_FALSE(a.from_cache);
  HostCompileResult b = compile_host(src);
  REQUIRE(b.module);
  CHECK(b.from_cache);
  a.module.reset();
  b.module.reset();
  { std::ofstream(a.path, std::ios::trunc) << "not a shared object"; }
  HostCompileResult c = compile_host(src);
  REQUIRE(c.module);
  CHECK_FALSE(c.from_cache);
  CHECK(c.module->symbol("opal_r0_k0") != nullptr);
  HostCompileResult bad = compile_host("this is not C++");
  CHECK_FALSE(bad.module);
  CHECK(bad.error.find("host compiler failed") != std::string::npos);
  if (prev) setenv("OPAL_CACHE_DIR", saved.c_str(), 1);
  else unsetenv("OPAL_CACHE_DIR");
  std::filesystem::remove_all(tmp);
}
}
