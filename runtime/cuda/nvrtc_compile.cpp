// NVRTC compilation with the shared disk cache (support/disk_cache.h).
#include "runtime/cuda/nvrtc_compile.h"

#include <nvrtc.h>

#include <mutex>

#include <fmt/format.h>

#include "support/disk_cache.h"

namespace opal::cuda {

std::string nvrtc_version() {
  int major = 0, minor = 0;
  nvrtcVersion(&major, &minor);
  return fmt::format("{}.{}", major, minor);
}

const std::vector<std::string>& nvrtc_flags() {
  static const std::vector<std::string> f = {"--std=c++17",      "--fmad=false", "--prec-div=true",
                                             "--prec-sqrt=true", "--ftz=false",  "--extra-device-vectorization"};
  return f;
}

namespace {

NvrtcOutput compile_uncached(const std::string& source, const std::string& arch) {
  NvrtcOutput out;
  nvrtcProgram prog;
  nvrtcResult r = nvrtcCreateProgram(&prog, source.c_str(), "opal_kernels.cu", 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) {
    out.log = fmt::format("nvrtcCreateProgram: {}", nvrtcGetErrorString(r));
    return out;
  }
  std::vector<std::string> opts = nvrtc_flags();
  opts.push_back("--gpu-architecture=" + arch);
  std::vector<const char*> argv;
  for (const auto& o : opts) argv.push_back(o.c_str());
  r = nvrtcCompileProgram(prog, int(argv.size()), argv.data());
  size_t n = 0;
  nvrtcGetProgramLogSize(prog, &n);
  out.log.assign(n, '\0');
  if (n) nvrtcGetProgramLog(prog, out.log.data());
  while (!out.log.empty() && (out.log.back() == '\0' || out.log.back() == '\n')) out.log.pop_back();
  if (r != NVRTC_SUCCESS) {
    if (out.log.empty()) out.log = nvrtcGetErrorString(r);
    nvrtcDestroyProgram(&prog);
    return out;
  }
  const bool cubin = arch.rfind("sm_", 0) == 0;
  size_t size = 0;
  r = cubin ? nvrtcGetCUBINSize(prog, &size) : nvrtcGetPTXSize(prog, &size);
  if (r == NVRTC_SUCCESS) {
    out.image.assign(size, '\0');
    r = cubin ? nvrtcGetCUBIN(prog, out.image.data()) : nvrtcGetPTX(prog, out.image.data());
  }
  nvrtcDestroyProgram(&prog);
  if (r != NVRTC_SUCCESS || out.image.empty()) {
    out.log = fmt::format("cannot read the compiled {}: {}", cubin ? "CUBIN" : "PTX", nvrtcGetErrorString(r));
    out.image.clear();
    return out;
  }
  out.ok = true;
  return out;
}

}  // namespace

NvrtcOutput nvrtc_compile(const std::string& source, const std::string& arch, bool use_cache) {
  std::string flagline;
  for (const auto& f : nvrtc_flags()) flagline += f + " ";
  const std::string key = content_hash(fmt::format("{}\n--\nnvrtc {}\n--\n{}\n--\n{}", source, nvrtc_version(), arch, flagline));
  const std::string path = fmt::format("{}/{}.{}.{}", cache_dir(), key, arch, arch.rfind("sm_", 0) == 0 ? "cubin" : "ptx");
  if (use_cache) {
    if (auto hit = cache_read(path, key)) {
      NvrtcOutput out;
      out.ok = true;
      out.image = std::move(*hit);
      out.from_cache = true;
      out.key = key;
      return out;
    }
  }
  static std::mutex mu;  // NVRTC is thread-safe, but one compile at a time keeps small machines responsive
  std::lock_guard<std::mutex> lock(mu);
  NvrtcOutput out = compile_uncached(source, arch);
  out.key = key;
  if (out.ok && use_cache) {
    std::string err = cache_write(path, key, out.image);
    (void)err;  // a read-only cache only costs the next process a compile
  }
  return out;
}

}  // namespace opal::cuda
