// Disk cache entries: "OPALCACHE 1\n<key>\n<length>\n<payload hash>\n" then the payload.
#include "support/disk_cache.h"

#include <unistd.h>

#include <cerrno>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>

namespace opal {

namespace fs = std::filesystem;

std::string content_hash(const std::string& data) {
  uint64_t h1 = 1469598103934665603ull, h2 = 0x9e3779b97f4a7c15ull;
  for (unsigned char c : data) {
    h1 = (h1 ^ c) * 1099511628211ull;
    h2 = (h2 ^ c) * 0x100000001b3ull + (h2 >> 29);
  }
  return fmt::format("{:016x}{:016x}", h1, h2);
}

std::string cache_dir() {
  if (const char* d = std::getenv("OPAL_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/opal";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/opal";
  return "/tmp/opal-cache";
}

namespace {
const char kMagic[] = "OPALCACHE 1";
}

std::string cache_write(const std::string& path, const std::string& key, const std::string& payload) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::mt19937_64 rng(std::random_device{}());
  std::string tmp = fmt::format("{}.{}.{:x}.tmp", path, getpid(), rng());
  {
    std::ofstream out(tmp, std::ios::binary);
    out << kMagic << '\n' << key << '\n' << payload.size() << '\n' << content_hash(payload) << '\n';
    out.write(payload.data(), std::streamsize(payload.size()));
    if (!out) {
      out.close();
      fs::remove(tmp, ec);
      return fmt::format("cannot write `{}` (set OPAL_CACHE_DIR to a writable folder)", tmp);
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return fmt::format("cannot move `{}` into the cache: {}", path, ec.message());
  }
  return "";
}

std::optional<std::string> cache_read(const std::string& path, const std::string& key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string magic, k, len, hash;
  if (!std::getline(in, magic) || magic != kMagic || !std::getline(in, k) || k != key || !std::getline(in, len) || !std::getline(in, hash))
    return std::nullopt;
  if (len.empty() || len.size() > 12 || len.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  std::string payload(std::stoull(len), '\0');
  in.read(payload.data(), std::streamsize(payload.size()));
  if (in.gcount() != std::streamsize(payload.size()) || in.peek() != std::char_traits<char>::eof()) return std::nullopt;
  if (content_hash(payload) != hash) return std::nullopt;
  return payload;
}

int write_fully(int fd, std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += size_t(w);
  }
  return 0;
}

}  // namespace opal
