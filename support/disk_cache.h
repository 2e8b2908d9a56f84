// The on-disk cache of compiled kernels, shared by the host compiler (shared objects) and
// NVRTC (CUDA binaries): content hashes for keys, the cache folder, and entries written
// atomically (temp file + rename) and validated on load (magic, key, length, checksum).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace opal {

// A stable 128-bit content hash (hex).
std::string content_hash(const std::string& data);

// Directory of the disk cache: $OPAL_CACHE_DIR, else $XDG_CACHE_HOME/opal, else ~/.cache/opal.
std::string cache_dir();

// Writes `payload` under `path` with a header naming `key`, atomically: readers see no file or
// the whole one. Returns an error message, or "" on success.
std::string cache_write(const std::string& path, const std::string& key, const std::string& payload);

// The payload stored under `path` for `key`; nullopt when the file is missing, truncated,
// corrupt or written for another key (the caller recompiles and overwrites it).
std::optional<std::string> cache_read(const std::string& path, const std::string& key);

// Writes all of `bytes` to an open file descriptor (retrying short and interrupted writes).
// Returns 0, or the errno of the write that failed (ENOSPC for a full disk).
int write_fully(int fd, std::string_view bytes);

}  // namespace opal
