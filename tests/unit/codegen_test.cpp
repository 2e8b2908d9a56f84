// Codegen: the emitted CPU and CUDA text, and the disk cache of compiled kernels.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "driver/build.h"
#include "compiler/codegen/c_emitter.h"
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
  CHECK(count(src, "pow(") == 2);       // bias corrections once per tensor, outside the loop
}

TEST_CASE("the CUDA text wraps the same bodies in grid-stride __global__ kernels") {
  std::string cpu = emit("lion", Target::Cpu), cuda = emit("lion", Target::Cuda);
  CHECK(count(cuda, "extern \"C\" __global__ void opal_r0_k0") == 1);
  CHECK(count(cuda, "blockIdx.y") == 1);
  CHECK(cuda.find("#include") == std::string::npos);  // NVRTC needs no headers
  auto body = [](const std::string& s) { return s.substr(s.find("const float v"), s.find("sb0[e] = ") - s.find("const float v")); };
  CHECK(body(cpu) == body(cuda));
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
