// Every stdlib optimizer's generated CUDA compiles with NVRTC to PTX for sm_80 and sm_90.
// NVRTC needs no GPU, so this runs on the CPU-only CI machine.
#include <doctest/doctest.h>
#include <nvrtc.h>

#include <string>
#include <vector>

#include "compiler/codegen/c_emitter.h"
#include "runtime/executable.h"

using namespace opal;

namespace {
// Returns the NVRTC log on failure, "" on success.
std::string compile(const std::string& src, const std::string& arch, size_t& ptx_size) {
  nvrtcProgram prog;
  if (nvrtcCreateProgram(&prog, src.c_str(), "opal.cu", 0, nullptr, nullptr) != NVRTC_SUCCESS) return "create failed";
  std::string opt = "--gpu-architecture=" + arch;
  const char* opts[] = {opt.c_str(), "--std=c++17"};
  nvrtcResult r = nvrtcCompileProgram(prog, 2, opts);
  size_t log_size = 0;
  nvrtcGetProgramLogSize(prog, &log_size);
  std::string log(log_size, '\0');
  nvrtcGetProgramLog(prog, log.data());
  ptx_size = 0;
  if (r == NVRTC_SUCCESS) nvrtcGetPTXSize(prog, &ptx_size);
  nvrtcDestroyProgram(&prog);
  return r == NVRTC_SUCCESS ? "" : (log.empty() ? "compile failed" : log);
}
}  // namespace

TEST_CASE("generated CUDA of every stdlib optimizer compiles for sm_80 and sm_90, with and without non-finite checks") {
  Diagnostics d;
  auto program = load_program({}, d);
  REQUIRE_FALSE(d.has_errors());
  REQUIRE(program->optimizers.size() >= 10);
  for (const auto& [name, _] : program->optimizers) {
    auto c = compile_spec({name, "", ""});
    for (bool checked : {false, true}) {
      std::string src = emit_optimizer(*c, Target::Cuda, checked);
      CHECK((src.find("atomicOr(T.chk") != std::string::npos) == checked);
      for (const char* arch : {"compute_80", "compute_90"}) {
        size_t ptx = 0;
        std::string err = compile(src, arch, ptx);
        INFO(name << (checked ? " (checked)" : "") << " for " << arch << ":\n" << err);
        CHECK(err.empty());
        CHECK(ptx > 0);
      }
    }
  }
}
