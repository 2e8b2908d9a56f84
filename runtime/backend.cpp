// Backend selection: the CPU backend is built in; the CUDA one is a plugin loaded on request.
#include "runtime/backend.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "runtime/error.h"

namespace opal {

namespace fs = std::filesystem;

Device parse_device(const std::string& s) {
  if (s == "cpu") return {};
  if (s == "cuda") return {DeviceKind::Cuda, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9 && s.find_first_not_of("0123456789", 5) == std::string::npos)
    return {DeviceKind::Cuda, std::stoi(s.substr(5))};
  throw Error(fmt::format("unknown device `{}`: use cpu, cuda or cuda:N", s));
}

std::string device_name(Device d) { return d.kind == DeviceKind::Cpu ? "cpu" : fmt::format("cuda:{}", d.ordinal); }

std::string cuda_plugin_path() {
  if (const char* p = std::getenv("OPAL_CUDA_PLUGIN"); p && *p) return p;
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&cuda_plugin_path), &info) && info.dli_fname) {
    fs::path dir = fs::path(info.dli_fname).parent_path();
    // beside the library or tool, in the build tree's root, or in an installed prefix's libdir
    for (fs::path d : {dir, dir.parent_path(), dir.parent_path() / OPAL_INSTALL_LIBDIR}) {
      std::error_code ec;
      if (fs::exists(d / "libopal_cuda.so", ec)) return (d / "libopal_cuda.so").string();
    }
  }
#ifdef OPAL_CUDA_PLUGIN_BUILD_PATH
  return OPAL_CUDA_PLUGIN_BUILD_PATH;
#else
  return "libopal_cuda.so";
#endif
}

std::unique_ptr<Backend> make_backend(Device d) {
  if (d.kind == DeviceKind::Cpu) return make_cpu_backend();
#ifndef OPAL_HAVE_CUDA
  throw DeviceError(
      fmt::format("{} was asked for, but this build of Opal has no CUDA backend (it was configured without the CUDA toolkit)", device_name(d)));
#else
  // loaded once and never unloaded: the CUDA libraries do not support being unmapped
  static void* handle = nullptr;
  static std::string load_error;
  static std::string path;
  if (!handle && load_error.empty()) {
    path = cuda_plugin_path();
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) load_error = dlerror() ? dlerror() : "dlopen failed";
  }
  if (!handle) throw DeviceError(fmt::format("cannot load the CUDA backend `{}`: {} (set OPAL_CUDA_PLUGIN to its path)", path, load_error));
  using AbiFn = int (*)();
  using CreateFn = Backend* (*)(int ordinal, char* error, size_t error_size);
  auto abi = reinterpret_cast<AbiFn>(dlsym(handle, "opal_cuda_backend_abi"));
  auto create = reinterpret_cast<CreateFn>(dlsym(handle, "opal_cuda_backend_create"));
  if (!abi || !create) throw DeviceError(fmt::format("`{}` is not an Opal CUDA backend", path));
  if (abi() != kBackendAbi)
    throw DeviceError(fmt::format("the CUDA backend `{}` was built for backend ABI {}, this runtime has {}: rebuild it", path, abi(), kBackendAbi));
  char err[1024] = {0};
  Backend* b = create(d.ordinal, err, sizeof err);
  if (!b) throw DeviceError(fmt::format("no CUDA backend on {}: {}", device_name(d), err));
  return std::unique_ptr<Backend>(b);
#endif
}

}  // namespace opal
