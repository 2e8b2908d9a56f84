// Backend selection: the CPU backend is built in; the CUDA one is a plugin loaded on request.
#include "runtime/backend.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

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
    // this library, or the program it is linked into: a program's name may be relative (as it
    // was run), and dlopen needs a path with a slash to not search the library path instead
    fs::path self = info.dli_fname;
    std::error_code ec;
    if (self.is_relative()) {
      fs::path exe = fs::read_symlink("/proc/self/exe", ec);
      self = !ec && exe.filename() == self.filename() ? exe : fs::absolute(self, ec);
    }
    fs::path dir = self.parent_path();
    // beside the library or tool, in the build tree's root, or in an installed prefix's libdir
    for (fs::path d : {dir, dir.parent_path(), dir.parent_path() / OPAL_INSTALL_LIBDIR}) {
      if (fs::exists(d / "libopal_cuda.so", ec)) return (d / "libopal_cuda.so").string();
    }
  }
#ifdef OPAL_CUDA_PLUGIN_BUILD_PATH
  return OPAL_CUDA_PLUGIN_BUILD_PATH;
#else
  return "libopal_cuda.so";
#endif
}

#ifdef OPAL_HAVE_CUDA
namespace {

// The CUDA plugin, loaded once and never unloaded (the CUDA libraries do not support being
// unmapped), its ABI checked; DeviceError with the reason when it cannot be.
void* cuda_plugin() {
  static void* handle = nullptr;
  static std::string load_error;
  static std::string path;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (!handle && load_error.empty()) {
    path = cuda_plugin_path();
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* e = dlerror();  // (once: a second call returns null)
      load_error = e ? e : "dlopen failed";
    }
  }
  if (!handle) throw DeviceError(fmt::format("cannot load the CUDA backend `{}`: {} (set OPAL_CUDA_PLUGIN to its path)", path, load_error));
  using AbiFn = int (*)();
  auto abi = reinterpret_cast<AbiFn>(dlsym(handle, "opal_cuda_backend_abi"));
  if (!abi) throw DeviceError(fmt::format("`{}` is not an Opal CUDA backend", path));
  if (abi() != kBackendAbi)
    throw DeviceError(fmt::format("the CUDA backend `{}` was built for backend ABI {}, this runtime has {}: rebuild it", path, abi(), kBackendAbi));
  return handle;
}

template <typename Fn>
Fn plugin_function(const char* name) {
  auto f = reinterpret_cast<Fn>(dlsym(cuda_plugin(), name));
  if (!f) throw DeviceError(fmt::format("the CUDA backend has no `{}`: rebuild it", name));
  return f;
}

}  // namespace
#endif

std::unique_ptr<Backend> make_backend(Device d) {
  if (d.kind == DeviceKind::Cpu) return make_cpu_backend();
#ifndef OPAL_HAVE_CUDA
  throw DeviceError(
      fmt::format("{} was asked for, but this build of Opal has no CUDA backend (it was configured without the CUDA toolkit)", device_name(d)));
#else
  using CreateFn = Backend* (*)(int ordinal, char* error, size_t error_size);
  auto create = plugin_function<CreateFn>("opal_cuda_backend_create");
  char err[1024] = {0};
  Backend* b = create(d.ordinal, err, sizeof err);
  if (!b) throw DeviceError(fmt::format("no CUDA backend on {}: {}", device_name(d), err));
  return std::unique_ptr<Backend>(b);
#endif
}

int cuda_device_of(const void* p) {
#ifndef OPAL_HAVE_CUDA
  (void)p;
  throw DeviceError("CUDA memory was given, but this build of Opal has no CUDA backend (it was configured without the CUDA toolkit)");
#else
  using DeviceOfFn = int (*)(const void* p, int* ordinal, char* error, size_t error_size);
  auto device_of = plugin_function<DeviceOfFn>("opal_cuda_pointer_device");
  char err[1024] = {0};
  int ordinal = -1;
  if (!device_of(p, &ordinal, err, sizeof err)) throw DeviceError(err);
  return ordinal;
#endif
}

}  // namespace opal
