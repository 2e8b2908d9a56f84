// Host compiler invocation (posix_spawn, no shell), content-addressed cache, dlopen.
#include "compiler/codegen/cpu/host_compile.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace opal {

namespace fs = std::filesystem;

HostModule::~HostModule() {
  if (handle_) dlclose(handle_);
}

void* HostModule::symbol(const std::string& name) const { return dlsym(handle_, name.c_str()); }

namespace {

std::string compiler() {
  const char* c = std::getenv("OPAL_CXX");
  return c && *c ? c : "c++";
}

// -ffp-contract=off: no fused multiply-adds, so an element's result does not depend on whether
// it fell in a vectorized body or a scalar remainder, nor on whether the kernel carries the
// non-finite checks (which change how GCC vectorizes).
const std::vector<std::string>& flags() {
  static const std::vector<std::string> f = {"-std=c++17", "-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off",
                                             "-fopenmp", "-fPIC", "-shared", "-w"};
  return f;
}

// Runs argv, capturing stdout+stderr. Returns the exit status (or -1 when it could not start).
int run(const std::vector<std::string>& argv, std::string& output) {
  char tmpl[] = "/tmp/opal-cc-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, 1);
  posix_spawn_file_actions_adddup2(&fa, fd, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  int status = -1;
  if (rc == 0) {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  }
  close(fd);
  std::ifstream in(tmpl);
  std::stringstream ss;
  ss << in.rdbuf();
  output = ss.str();
  unlink(tmpl);
  if (rc != 0) {
    output = fmt::format("cannot run `{}`: {}", argv[0], std::strerror(rc));
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Compiler identity and CPU model, computed once per process: part of every cache key.
const std::string& toolchain_identity() {
  static std::string id = [] {
    std::string version;
    run({compiler(), "--version"}, version);
    std::string cpu;
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("model name", 0) == 0 || line.rfind("flags", 0) == 0) {
        cpu += line + "\n";
        if (line.rfind("flags", 0) == 0) break;
      }
    return compiler() + "\n" + version + "\n" + cpu;
  }();
  return id;
}

std::shared_ptr<HostModule> load_validated(const std::string& path, const std::string& key) {
  // The OpenMP runtime the module uses is linked into opal_core too (CMakeLists.txt), so
  // unloading a module never unmaps libgomp under its idle worker threads. (Not in a clang
  // build, which links libomp: there, keep modules loaded while their kernels may run.)
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) return nullptr;
  auto mod = std::make_shared<HostModule>(h);
  auto fn = reinterpret_cast<const char* (*)()>(mod->symbol("opal_cache_key"));
  if (!fn || key != fn()) return nullptr;
  return mod;
}

}  // namespace

HostCompileResult compile_host(const std::string& source) {
  static std::mutex mu;  // one compile at a time per process keeps 2-core machines responsive
  std::lock_guard<std::mutex> lock(mu);
  HostCompileResult res;
  std::string flagline;
  for (const auto& f : flags()) flagline += f + " ";
  std::string key = content_hash(source + "\n--\n" + flagline + "\n--\n" + toolchain_identity());
  std::string dir = cache_dir();
  std::error_code ec;
  fs::create_directories(dir, ec);
  res.path = dir + "/" + key + ".so";
  if (fs::exists(res.path, ec)) {
    res.module = load_validated(res.path, key);
    if (res.module) {
      res.from_cache = true;
      return res;
    }
    fs::remove(res.path, ec);  // corrupt or foreign: rebuild it
  }
  std::mt19937_64 rng(std::random_device{}());
  std::string stem = fmt::format("{}/{}.{}.{:x}", dir, key, getpid(), rng());
  std::string src = stem + ".cpp", tmp = stem + ".so";
  {
    std::ofstream out(src, std::ios::binary);
    out << source;
    if (!out) {
      res.error = fmt::format("cannot write `{}` (set OPAL_CACHE_DIR to a writable folder)", src);
      return res;
    }
  }
  std::vector<std::string> argv = {compiler()};
  argv.insert(argv.end(), flags().begin(), flags().end());
  argv.push_back(fmt::format("-DOPAL_CACHE_KEY=\"{}\"", key));
  argv.insert(argv.end(), {"-x", "c++", src, "-o", tmp});
  std::string output;
  int rc = run(argv, output);
  fs::remove(src, ec);
  if (rc != 0) {
    fs::remove(tmp, ec);
    res.error = fmt::format("the host compiler failed (exit {}):\n{}", rc, output);
    return res;
  }
  fs::rename(tmp, res.path, ec);  // atomic: readers see the old state or the whole file
  if (ec) {
    res.error = fmt::format("cannot move the compiled kernels into the cache: {}", ec.message());
    return res;
  }
  res.module = load_validated(res.path, key);
  if (!res.module) res.error = fmt::format("cannot load `{}`: {}", res.path, dlerror() ? dlerror() : "key mismatch");
  return res;
}

}  // namespace opal
