// Scratch files for tests: a fresh path under the system's temp folder, and a file written there.
#pragma once
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>

namespace opal::testing {

// The folders scratch() made, removed when the test process exits (not by a forked child).
struct ScratchFolders {
  std::vector<std::filesystem::path> paths;
  pid_t owner = ::getpid();
  ~ScratchFolders() {
    std::error_code ec;
    if (::getpid() == owner)
      for (const auto& p : paths) std::filesystem::remove_all(p, ec);
  }
};

// A fresh, empty folder for this process (`opal-hardening-<name>-<pid>`), removed at exit.
inline std::string scratch(const std::string& name) {
  namespace fs = std::filesystem;
  static ScratchFolders made;
  auto p = fs::temp_directory_path() / fmt::format("opal-hardening-{}-{}", name, ::getpid());
  fs::remove_all(p);
  fs::create_directories(p);
  made.paths.push_back(p);
  return p.string();
}

inline std::string write(const std::string& path, const std::string& text, bool executable = false) {
  std::ofstream(path) << text;
  if (executable) ::chmod(path.c_str(), 0755);
  return path;
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace opal::testing
