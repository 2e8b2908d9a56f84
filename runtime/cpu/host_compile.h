// The CPU JIT: compiles generated C++ with the host compiler into a shared object, loads it
// with dlopen, and caches it on disk by content hash (source, compiler identity, flags, CPU),
// written atomically and validated on load.
#pragma once
#include <memory>
#include <string>

#include "support/disk_cache.h"

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
  std::string error;  // compiler output when it failed
  bool from_cache = false;
  std::string path;  // the cached shared object
};

// The compiler command used: $OPAL_CXX or `c++`, with flags chosen for vectorized loops.
HostCompileResult compile_host(const std::string& source);

}  // namespace opal
