// Host compiler invocation (posix_spawn, no shell, a time limit), content-addressed cache whose
// entries are checked whole before dlopen, and dlopen.
#include "runtime/cpu/host_compile.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
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
// $OPAL_CXXFLAGS (split at whitespace) come after these, and are part of the cache key.
std::vector<std::string> flags() {
  std::vector<std::string> f = {"-std=c++17",        "-O3",      "-march=native", "-fno-math-errno", "-fno-trapping-math",
                                "-ffp-contract=off", "-fopenmp", "-fPIC",         "-shared",         "-w"};
  const char* extra = std::getenv("OPAL_CXXFLAGS");
  std::istringstream in(extra ? extra : "");
  for (std::string w; in >> w;) f.push_back(w);
  return f;
}

// Seconds a host compiler may run: $OPAL_COMPILE_TIMEOUT (default 300).
double compile_timeout() {
  const char* v = std::getenv("OPAL_COMPILE_TIMEOUT");
  if (v && *v) {
    char* end = nullptr;
    double s = std::strtod(v, &end);
    if (end && *end == '\0' && s > 0 && std::isfinite(s)) return s;
  }
  return 300;
}

// Runs argv in its own process group, capturing stdout+stderr. Returns the exit status, or -1
// when it could not start (or was killed), with `output` saying why. A run past the timeout is
// killed with everything it started.
int run(const std::vector<std::string>& argv, std::string& output) {
  char tmpl[] = "/tmp/opal-cc-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) {
    output = fmt::format("cannot create a temporary file for the compiler's output: {}", std::strerror(errno));
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, 1);
  posix_spawn_file_actions_adddup2(&fa, fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  int status = -1;
  bool timed_out = false;
  const double limit = compile_timeout();
  if (rc == 0) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit);
    while (true) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid || (w < 0 && errno != EINTR)) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(-pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        timed_out = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
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
  if (timed_out) {
    output =
        fmt::format("`{}` did not finish within {:g} s and was stopped (OPAL_COMPILE_TIMEOUT sets the limit in seconds)\n{}", argv[0], limit, output);
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

// A cache entry is the shared object followed by a trailer, so that one rename publishes both:
//   "\nOPALSO1 <object bytes, decimal> <content hash of the object, hex>\n"  (kTrailerBytes)
// The loader ignores bytes past the object's segments. The whole file is checked before it is
// mapped: dlopen of a truncated object maps past the end of the file (SIGBUS at first use), and
// a patched one would run altered kernels.
constexpr size_t kTrailerBytes = 64;

std::string trailer_of(const std::string& object) {
  std::string t = fmt::format("\nOPALSO1 {:020} {}", object.size(), content_hash(object));
  t.resize(kTrailerBytes - 1, ' ');
  return t + "\n";
}

bool read_whole(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return bool(in) || in.eof();
}

// True when `bytes` is a whole entry: an object with its trailer, whose hash matches.
bool entry_intact(const std::string& bytes) {
  if (bytes.size() <= kTrailerBytes) return false;
  std::string object = bytes.substr(0, bytes.size() - kTrailerBytes);
  return bytes.compare(object.size(), kTrailerBytes, trailer_of(object)) == 0;
}

// The loaded module, or null with `why` (the loader's reason, or a key mismatch).
std::shared_ptr<HostModule> load_module(const std::string& path, const std::string& key, std::string& why) {
  // The OpenMP runtime the module uses is linked into opal_core too (CMakeLists.txt), so
  // unloading a module never unmaps libgomp under its idle worker threads. (Not in a clang
  // build, which links libomp: there, keep modules loaded while their kernels may run.)
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();  // once: a second call returns null
    why = e ? e : "the dynamic loader gave no reason";
    return nullptr;
  }
  auto mod = std::make_shared<HostModule>(h);
  auto fn = reinterpret_cast<const char* (*)()>(mod->symbol("opal_cache_key"));
  if (!fn || key != fn()) {
    why = "it was built for another cache key";
    return nullptr;
  }
  return mod;
}

// "No space left on device" and its kin get a hint of their own.
std::string io_hint(int err) {
  if (err == ENOSPC || err == EDQUOT) return "the disk holding the kernel cache is full: free some space, or set OPAL_CACHE_DIR to another disk";
  return "set OPAL_CACHE_DIR to a writable folder";
}

// Writes all of `bytes` to `path` (opened with `flags`), or returns errno.
int write_all(const std::string& path, const std::string& bytes, int flags) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | flags, 0644);
  if (fd < 0) return errno;
  int err = write_fully(fd, bytes);
  if (::close(fd) != 0 && !err) err = errno;
  return err;
}

}  // namespace

HostCompileResult compile_host(const std::string& source) {
  static std::mutex mu;  // one compile at a time per process keeps 2-core machines responsive
  std::lock_guard<std::mutex> lock(mu);
  HostCompileResult res;
  const std::vector<std::string> cflags = flags();
  std::string flagline;
  for (const auto& f : cflags) flagline += f + " ";
  std::string key = content_hash(source + "\n--\n" + flagline + "\n--\n" + toolchain_identity());
  std::string dir = cache_dir();
  std::error_code ec;
  fs::create_directories(dir, ec);
  res.path = dir + "/" + key + ".so";
  std::string bytes, why;
  if (read_whole(res.path, bytes)) {
    if (entry_intact(bytes)) {
      res.module = load_module(res.path, key, why);
      if (res.module) {
        res.from_cache = true;
        return res;
      }
    }
    fs::remove(res.path, ec);  // truncated, altered or foreign: rebuild it
  }
  std::mt19937_64 rng(std::random_device{}());
  std::string stem = fmt::format("{}/{}.{}.{:x}", dir, key, getpid(), rng());
  std::string src = stem + ".cpp", tmp = stem + ".so";
  auto cleanup = [&] {
    fs::remove(src, ec);
    fs::remove(tmp, ec);
  };
  if (int err = write_all(src, source, O_CREAT | O_TRUNC)) {
    cleanup();
    res.error = fmt::format("cannot write `{}`: {} ({})", src, std::strerror(err), io_hint(err));
    return res;
  }
  std::vector<std::string> argv = {compiler()};
  argv.insert(argv.end(), cflags.begin(), cflags.end());
  argv.push_back(fmt::format("-DOPAL_CACHE_KEY=\"{}\"", key));
  argv.insert(argv.end(), {"-x", "c++", src, "-o", tmp});
  std::string output;
  int rc = run(argv, output);
  fs::remove(src, ec);
  if (rc != 0) {
    cleanup();
    bool full = output.find("No space left on device") != std::string::npos;
    res.error =
        rc < 0 ? output : fmt::format("the host compiler failed (exit {}){}:\n{}", rc, full ? fmt::format(" ({})", io_hint(ENOSPC)) : "", output);
    return res;
  }
  std::string object;
  if (!read_whole(tmp, object)) {
    cleanup();
    res.error = fmt::format("cannot read the compiled kernels `{}`", tmp);
    return res;
  }
  if (int err = write_all(tmp, trailer_of(object), O_APPEND)) {
    cleanup();
    res.error = fmt::format("cannot write `{}`: {} ({})", tmp, std::strerror(err), io_hint(err));
    return res;
  }
  fs::rename(tmp, res.path, ec);  // atomic: readers see the old state or the whole file
  if (ec) {
    cleanup();
    res.error = fmt::format("cannot move the compiled kernels into the cache: {}", ec.message());
    return res;
  }
  res.module = load_module(res.path, key, why);
  if (!res.module) res.error = fmt::format("cannot load the compiled kernels `{}`: {}", res.path, why);
  return res;
}

}  // namespace opal
