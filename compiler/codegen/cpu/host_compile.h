// The CPU JIT: compiles generated C++ with the host compiler into a shared object, loads it
// with dlopen, and caches it on disk by content hash (source, compiler identity, flags, CPU),
// written atomically and validated on load.
#pragma once
#include <memory>
#include <string>

namespace opal {

class HostModule {
 public:
  explicit HostModule(void* handle) : handle_(handle) {}
  ~HostModule();
  HostModule(const HostModule&) = delete;
  HostModule& operator=(const HostModule&) = delete;
  void* symbol(const std::string& name) const;  // nullptr when absent

 private:
  void* handle_;
};

struct HostCompileResult {
  std::shared_ptr<HostModule> module;
  std::string error;        // compiler output when it failed
  bool from_cache = false;
  std::string path;         // the cached shared object
};

// Directory of the disk cache: $OPAL_CACHE_DIR, else $XDG_CACHE_HOME/opal, else ~/.cache/opal.
std::string cache_dir();

// The compiler command used: $OPAL_CXX or `c++`, with flags chosen for vectorized loops.
HostCompileResult compile_host(const std::string& source);

// A stable 128-bit content hash (hex).
std::string content_hash(const std::string& data);

}  // namespace opal
