// safetensors reading (validated) and writing (atomic).
#include "runtime/safetensors.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/disk_cache.h"
#include "support/half.h"
#include "runtime/error.h"

namespace opal {

using json = nlohmann::json;

namespace {}  // namespace

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& what) {
  auto fail = [&](const std::string& why) { return Error(fmt::format("`{}` is not a valid safetensors file: {}", what, why)); };
  if (bytes.size() < 8) throw fail(fmt::format("{} bytes is shorter than the 8-byte header length", bytes.size()));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  if (n > kMaxHeaderBytes) throw fail(fmt::format("header length {} exceeds the limit of {} bytes", n, kMaxHeaderBytes));
  if (n > bytes.size() - 8) throw fail(fmt::format("header length {} runs past the end of the file ({} bytes): truncated?", n, bytes.size()));
  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + n);
  } catch (const json::exception& e) {
    throw fail(fmt::format("header is not JSON ({})", e.what()));
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - n;
  const char* data = bytes.data() + 8 + n;
  SafetensorsFile f;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw fail("__metadata__ is not an object");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string()) throw fail(fmt::format("metadata `{}` is not a string", k));
        f.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      throw fail(fmt::format("tensor `{}` lacks dtype, shape or data_offsets", name));
    const json &dt = entry["dtype"], &sh = entry["shape"], &off = entry["data_offsets"];
    if (!dt.is_string() || !sh.is_array() || !off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw fail(fmt::format("tensor `{}` has a malformed entry", name));
    std::string dtype = dt.get<std::string>();
    size_t width = dtype == "F32" ? 4 : dtype == "F64" ? 8 : (dtype == "F16" || dtype == "BF16") ? 2 : dtype == "U8" ? 1 : 0;
    if (!width) throw fail(fmt::format("tensor `{}` has dtype {}; Opal reads F32, F64, F16, BF16 and U8", name, dtype));
    TensorData t;
    t.dtype = dtype;
    uint64_t count = 1;
    if (sh.size() > kMaxTensorRank) throw fail(fmt::format("tensor `{}` has {} dimensions; the limit is {}", name, sh.size(), kMaxTensorRank));
    for (const auto& d : sh) {
      if (!d.is_number_unsigned()) throw fail(fmt::format("tensor `{}` has a non-integer dimension", name));
      uint64_t v = d.get<uint64_t>();
      if (v != 0 && count > kMaxFileTensorElements / v)
        throw fail(fmt::format("tensor `{}` has more elements than the limit of {}", name, kMaxFileTensorElements));
      count *= v;
      t.shape.push_back(int64_t(v));
    }
    uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size) throw fail(fmt::format("tensor `{}` has data offsets [{}, {}) outside the {} data bytes", name, b, e, data_size));
    if (e - b != count * width) throw fail(fmt::format("tensor `{}` has {} data bytes, but shape and dtype need {}", name, e - b, count * width));
    ranges.push_back({b, e});
    t.values.resize(count);
    const char* src = data + b;
    for (uint64_t i = 0; i < count; ++i) {
      if (dtype == "F32") std::memcpy(&t.values[i], src + 4 * i, 4);
      else if (dtype == "U8") t.values[i] = float(static_cast<unsigned char>(src[i]));
      else if (dtype == "F64") {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        t.values[i] = float(d);
      } else {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        if (dtype == "F16") t.values[i] = half::opal_ld_f16(h);
        else {
          uint32_t bits = uint32_t(h) << 16;
          std::memcpy(&t.values[i], &bits, 4);
        }
      }
    }
    f.tensors[name] = std::move(t);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) throw fail("two tensors overlap in the data section");
  return f;
}

namespace {
std::ifstream open_for_reading(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw IoError(fmt::format("cannot read `{}`: it is a directory", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot read `{}`: {}", path, std::strerror(errno)));
  return in;
}

// Appends up to `n` bytes from `in` to `out`; false at the end of the input.
bool read_up_to(std::ifstream& in, uint64_t n, std::string& out, const std::string& path) {
  char chunk[1 << 16];
  while (n > 0) {
    std::streamsize want = std::streamsize(std::min<uint64_t>(n, sizeof chunk));
    in.read(chunk, want);
    if (in.bad()) throw IoError(fmt::format("cannot read `{}`", path));
    out.append(chunk, size_t(in.gcount()));
    n -= uint64_t(in.gcount());
    if (in.gcount() < want) return false;
  }
  return true;
}
}  // namespace

std::string read_file(const std::string& path) {
  std::ifstream in = open_for_reading(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string read_safetensors_bytes(const std::string& path) {
  std::ifstream in = open_for_reading(path);
  std::string bytes;
  if (!read_up_to(in, 8, bytes, path)) return bytes;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  if (n > kMaxHeaderBytes || !read_up_to(in, n, bytes, path)) return bytes;  // parse_safetensors says what is wrong
  // the data section ends where the header's last tensor ends: read that much, no more
  uint64_t end = 0;
  json header = json::parse(bytes.begin() + 8, bytes.end(), nullptr, false);
  if (header.is_object())
    for (auto& [name, e] : header.items())
      if (e.is_object() && e.contains("data_offsets") && e["data_offsets"].is_array() && e["data_offsets"].size() == 2 &&
          e["data_offsets"][1].is_number_unsigned())
        end = std::max(end, e["data_offsets"][1].get<uint64_t>());
  if (end > kMaxDataBytes)
    throw Error(fmt::format("`{}` is not a valid safetensors file: its header declares {} data bytes; the limit is {}", path, end, kMaxDataBytes));
  read_up_to(in, end, bytes, path);
  return bytes;
}

SafetensorsFile read_safetensors(const std::string& path) { return parse_safetensors(read_safetensors_bytes(path), path); }

std::string serialize_safetensors(const SafetensorsFile& f) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : f.tensors) {
    if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16" && t.dtype != "U8")
      throw Error(fmt::format("cannot write tensor `{}` as {}: Opal writes F32, BF16, F16 and U8", name, t.dtype));
    if (t.dtype == "U8")
      for (float v : t.values)
        if (!(v >= 0 && v <= 255 && v == float(int(v)))) throw Error(fmt::format("cannot write tensor `{}` as U8: it holds {}", name, v));
    uint64_t bytes = t.values.size() * (t.dtype == "F32" ? 4 : t.dtype == "U8" ? 1 : 2);
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!f.metadata.empty()) header["__metadata__"] = f.metadata;
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h += ' ';  // align the data section as the format recommends
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  out += h;
  for (const auto& [_, t] : f.tensors) {
    if (t.dtype == "F32") {
      out.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * 4);
      continue;
    }
    if (t.dtype == "U8") {
      for (float v : t.values) out += char(static_cast<unsigned char>(v));
      continue;
    }
    std::string words(t.values.size() * 2, '\0');  // rounded to nearest even (exact for values of that dtype)
    for (size_t i = 0; i < t.values.size(); ++i) {
      const uint16_t h = t.dtype == "BF16" ? half::opal_to_bf16(t.values[i], 0, 0, 0, 0) : half::opal_to_f16(t.values[i]);
      std::memcpy(&words[2 * i], &h, 2);
    }
    out += words;
  }
  return out;
}

void write_safetensors(const std::string& path, const SafetensorsFile& f) { write_file_atomically(path, serialize_safetensors(f)); }

namespace {
// Temporary files of earlier saves to `path` whose process is gone (killed mid-save).
void remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  std::string prefix = p.filename().string() + ".tmp.";
  std::error_code ec;
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    std::string pid = name.substr(prefix.size());
    pid = pid.substr(0, pid.find('.'));  // PID.SERIAL
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t id = pid_t(std::stol(pid));
    if (id != getpid() && ::kill(id, 0) != 0 && errno == ESRCH) fs::remove(it->path(), ec);
  }
}
}  // namespace

void write_file_atomically(const std::string& path, std::string_view bytes) {
  remove_stale_temporaries(path);
  // unique per save: two threads of one process may save to the same path at once
  static std::atomic<uint64_t> serial{0};
  std::string tmp = fmt::format("{}.tmp.{}.{}", path, getpid(), serial.fetch_add(1));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(fmt::format("cannot write `{}`: {}", tmp, std::strerror(errno)));
  if (int err = write_fully(fd, bytes)) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw IoError(fmt::format("cannot write `{}`: {}", tmp, std::strerror(err)));
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw IoError(fmt::format("cannot flush `{}`", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw IoError(fmt::format("cannot rename `{}` to `{}`: {}", tmp, path, std::strerror(err)));
  }
  // make the rename itself durable
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace opal
