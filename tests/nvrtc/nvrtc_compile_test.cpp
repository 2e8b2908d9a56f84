// The CUDA target without a GPU: every stdlib optimizer's generated CUDA (and the backend's own
// helper kernels) compiles with NVRTC for sm_80 and sm_90; the compile cache hits, rejects
// corrupt entries, and keys by architecture; compile errors carry NVRTC's log; asking for a
// CUDA device on a machine without one is a clear DeviceError.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/bf16.h"
#include "driver/build.h"
#include "compiler/codegen/c_emitter.h"
#include "runtime/backend.h"
#include "runtime/cuda/helpers.h"
#include "runtime/cuda/nvrtc_compile.h"
#include "runtime/error.h"
#include "runtime/executable.h"

using namespace opal;
namespace fs = std::filesystem;

namespace {

// A fresh cache folder for one test, restored afterwards.
struct TempCache {
  std::string dir, old;
  TempCache() {
    dir = (fs::temp_directory_path() / fs::path("opal-nvrtc-test-" + std::to_string(::getpid()))).string();
    fs::remove_all(dir);
    if (const char* o = std::getenv("OPAL_CACHE_DIR")) old = o;
    setenv("OPAL_CACHE_DIR", dir.c_str(), 1);
  }
  ~TempCache() {
    fs::remove_all(dir);
    if (old.empty()) unsetenv("OPAL_CACHE_DIR");
    else setenv("OPAL_CACHE_DIR", old.c_str(), 1);
  }
};
}  // namespace

// OPAL_NVRTC_PART=k/n: this process compiles the optimizers k, k + n, ... of the stdlib only
// (CTest runs the halves side by side: NVRTC compiles one program at a time per process).
TEST_CASE("generated CUDA of every stdlib optimizer compiles for sm_90 (and a sample for sm_80), with and without non-finite checks, f32 and mixed") {
  Diagnostics d;
  auto program = load_program({}, d);
  REQUIRE_FALSE(d.has_errors());
  REQUIRE(program->optimizers.size() >= 10);
  int part = 0, parts = 1;
  if (const char* p = std::getenv("OPAL_NVRTC_PART")) REQUIRE(std::sscanf(p, "%d/%d", &part, &parts) == 2);
  int index = -1;
  for (const auto& entry : program->optimizers) {
    if (++index % parts != part) continue;
    const std::string name = entry.first;  // (not a structured binding: clang 14 cannot capture one in INFO)
    auto c = compile_spec({name, "", ""});
    for (int variant = 0; variant < 4; ++variant) {
      const bool checked = variant & 1, mixed = variant & 2;
      // checked and mixed together: their changes to the text are independent (the flag merge
      // after the loop; the loop's loads and stores), and each is compiled alone for every
      // optimizer: together, for one in four (CI time: the mixed text is the largest)
      if (checked && mixed && index % 4 != 0) continue;
      std::string src = emit_optimizer(*c, Target::Cuda, checked, mixed);
      CHECK((src.find("atomicOr(T.chk") != std::string::npos) == checked);
      CHECK((src.find("opal_to_bf16(v") != std::string::npos) == mixed);  // a bf16 parameter store
      for (const char* arch : {"compute_80", "compute_90"}) {
        // the generated text has no architecture-dependent code: the second architecture is
        // compiled for the plain text of one optimizer in four (CI time)
        if ((mixed || checked || index % 4 != 0) && arch == std::string("compute_80")) continue;
        cuda::NvrtcOutput out = cuda::nvrtc_compile(src, arch, false);
        INFO(name << (checked ? " (checked)" : "") << (mixed ? " (mixed)" : "") << " for " << arch << ":\n" << out.log);
        CHECK(out.ok);
        CHECK(out.image.find(".entry opal_r0_k0") != std::string::npos);  // PTX text with the first kernel
      }
    }
  }
}

TEST_CASE("state stored as bf16 compiles for CUDA, f32 and mixed, rounding to nearest and stochastically") {
  const char* spec =
      "component mom16(beta = 0.9) {\n  state m: bf16 = zeros\n  m = beta * m + (1 - beta) * u\n  u = m / (1 - beta ^ t)\n}\n"
      "component rms16(beta = 0.99) {\n  state r: bf16 = zeros(rows)\n  r = beta * r + (1 - beta) * row_sum(u * u)\n  u = u / (sqrt(r) + 1e-8)\n}\n"
      "optimizer o(lr = 1e-2) {\n  matrix: mom16 -> rms16 -> scale(lr)\n  other state(bf16): adamw(lr = lr)\n}\n";
  auto c = compile_spec({spec, "", ""});
  for (bool mixed : {false, true}) {
    std::string src = emit_optimizer(*c, Target::Cuda, false, mixed);
    CHECK(src.find("opal_ld_bf16(sb") != std::string::npos);
    CHECK(src.find("if (opal_sr) {") != std::string::npos);
    cuda::NvrtcOutput out = cuda::nvrtc_compile(src, "compute_90", false);
    INFO((mixed ? "mixed" : "f32") << ":\n" << out.log);
    CHECK(out.ok);
  }
}

TEST_CASE("q8 state compiles for CUDA: warp-per-block quantization, every block size, f32 and mixed, with checks") {
  // a q8(64) slot and a q8(256) one stored by the same kernel (the warp quantizes the smaller
  // blocks in sub-blocks), an indexed kernel (row statistics) storing q8, and a route's state(q8):
  // the largest blocks in the f32 program (a warp keeps 128 values a slot: NVRTC takes ~25 s),
  // blocks of 512 in the others
  auto spec = [](int big) {
    return "component two() {\n  state m: q8(64) = zeros\n  state v: q8 = zeros\n  m = 0.9 * m + 0.1 * u\n  v = 0.99 * v + 0.01 * u * u\n"
           "  u = m / (sqrt(v) + 1e-8)\n}\n"
           "component rowq() {\n  state r = zeros(rows)\n  state m: q8(32) = zeros\n  r = row_sum(u * u)\n  m = u / (sqrt(r) + 1)\n  u = m\n}\n"
           "optimizer o(lr = 1e-2) {\n  matrix: two -> rowq -> scale(lr)\n  other state(q8(" +
           std::to_string(big) + ")): adamw(lr = lr)\n}\n";
  };
  auto largest = compile_spec({spec(4096), "", ""}), c512 = compile_spec({spec(512), "", ""});
  for (bool mixed : {false, true})
    for (bool checked : {false, true}) {
      std::string src = emit_optimizer(mixed || checked ? *c512 : *largest, Target::Cuda, checked, mixed);
      CHECK(src.find("__shfl_xor_sync(0xffffffffu, opal_m, opal_o)") != std::string::npos);
      CHECK(src.find("opal_ld_q8(sb") != std::string::npos);
      // the code's values are read from a shared-memory copy each decoding kernel loads first
      CHECK(src.find("__device__ const float opal_q8_values[512]") != std::string::npos);
      CHECK(src.find("__shared__ float opal_q8_tab[512];") != std::string::npos);
      CHECK(src.find("opal_q8_tab[opal_i] = opal_q8_values[opal_i];  // the q8 code\n  __syncthreads();") != std::string::npos);
      cuda::NvrtcOutput out = cuda::nvrtc_compile(src, "compute_90", false);
      INFO((mixed ? "mixed" : "f32") << (checked ? " checked" : "") << ":\n" << out.log);
      CHECK(out.ok);
      CHECK(out.image.find("ld.shared.f32") != std::string::npos);  // the PTX decodes from shared memory
    }
}

TEST_CASE("the CUDA backend's helper and eigenbasis kernels compile to CUBINs for sm_80 and sm_90") {
  for (const char* arch : {"sm_80", "sm_90"})
    for (const std::string& src : {cuda::helpers_source(), cuda::linalg_source()}) {
      cuda::NvrtcOutput out = cuda::nvrtc_compile(src, arch, false);
      INFO(arch << ":\n" << out.log);
      CHECK(out.ok);
      CHECK(out.image.size() > 1000);
      CHECK(out.image.compare(0, 4,
                              "\x7f"
                              "ELF") == 0);
    }
}

TEST_CASE("NVRTC results are cached by source, architecture and NVRTC version; a corrupt entry is recompiled") {
  TempCache cache;
  auto c = compile_spec({"adamw", "", ""});
  std::string src = emit_optimizer(*c, Target::Cuda, false);
  cuda::NvrtcOutput a = cuda::nvrtc_compile(src, "sm_90");
  REQUIRE(a.ok);
  CHECK_FALSE(a.from_cache);
  cuda::NvrtcOutput b = cuda::nvrtc_compile(src, "sm_90");
  REQUIRE(b.ok);
  CHECK(b.from_cache);
  CHECK(b.image == a.image);
  CHECK(b.key == a.key);
  // another architecture is another entry
  cuda::NvrtcOutput c80 = cuda::nvrtc_compile(src, "sm_80");
  REQUIRE(c80.ok);
  CHECK_FALSE(c80.from_cache);
  CHECK(c80.key != a.key);
  // one flipped byte in the stored CUBIN: detected, recompiled, rewritten
  std::string path;
  for (const auto& e : fs::directory_iterator(cache.dir))
    if (e.path().filename().string().rfind(a.key, 0) == 0 && e.path().string().find("sm_90") != std::string::npos) path = e.path().string();
  REQUIRE_FALSE(path.empty());
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-10, std::ios::end);
    f.put('\x5a');
  }
  cuda::NvrtcOutput d = cuda::nvrtc_compile(src, "sm_90");
  REQUIRE(d.ok);
  CHECK_FALSE(d.from_cache);
  CHECK(d.image == a.image);
  // a truncated entry likewise
  fs::resize_file(path, fs::file_size(path) / 2);
  CHECK_FALSE(cuda::nvrtc_compile(src, "sm_90").from_cache);
  CHECK(cuda::nvrtc_compile(src, "sm_90").from_cache);
}

TEST_CASE("a CUDA compile error reports NVRTC's log with the line") {
  TempCache cache;
  cuda::NvrtcOutput out = cuda::nvrtc_compile("extern \"C\" __global__ void k(float* x) {\n  x[0] = undefined_name;\n}\n", "sm_90");
  CHECK_FALSE(out.ok);
  CHECK(out.image.empty());
  CHECK(out.log.find("undefined_name") != std::string::npos);
  CHECK(out.log.find("(2)") != std::string::npos);             // NVRTC's "opal_kernels.cu(2): error ..."
  CHECK((!fs::exists(cache.dir) || fs::is_empty(cache.dir)));  // nothing cached for a failed compile
}

TEST_CASE("devices: names parse, and a machine without a GPU says so") {
  CHECK(parse_device("cpu").kind == DeviceKind::Cpu);
  CHECK(parse_device("cuda").kind == DeviceKind::Cuda);
  CHECK(parse_device("cuda:3").ordinal == 3);
  CHECK_THROWS_AS(parse_device("gpu"), Error);
  CHECK_THROWS_AS(parse_device("cuda:x"), Error);
  CHECK(make_backend({})->host_memory());
  if (std::getenv("OPAL_EXPECT_GPU")) return;  // the gpu suite covers machines with one
  try {
    make_backend({DeviceKind::Cuda, 0});
    MESSAGE("a CUDA device is present: nothing to check here");
  } catch (const DeviceError& e) {
    std::string m = e.what();
    INFO(m);
    CHECK(m.find("cuda:0") != std::string::npos);
    CHECK(m.size() > 30);  // with the reason (no driver, no device)
  }
}
