// An environment variable set for a scope, then restored (or unset where it was unset).
#pragma once
#include <cstdlib>
#include <string>

namespace opal::testing {

struct ScopedEnv {
  std::string name, saved;
  bool had;
  ScopedEnv(const char* n, const std::string& v) : name(n) {
    const char* p = std::getenv(n);
    had = p != nullptr;
    if (had) saved = p;
    setenv(n, v.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had) setenv(name.c_str(), saved.c_str(), 1);
    else unsetenv(name.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
};

}  // namespace opal::testing
