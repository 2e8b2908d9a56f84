// safetensors files: an 8-byte little-endian header length, a JSON header, raw tensor data.
// Reading validates everything (sizes, offsets, dtypes, overlap) before trusting it; writing
// is atomic (temp file, fsync, rename), so a crash never leaves a half-written file.
#pragma once
#include <cstdint>
#include <map>
#include <string_view>
#include <string>
#include <vector>

namespace opal {

struct TensorData {
  std::vector<int64_t> shape;
  std::vector<float> values;  // held as f32; F64/F16/BF16 inputs are converted on read, U8 (q8 codes) as 0..255
  std::string dtype = "F32";  // the dtype the file stored; writing stores F32, BF16 or F16 (values rounded to nearest even), or U8
};

struct SafetensorsFile {
  std::map<std::string, TensorData> tensors;
  std::map<std::string, std::string> metadata;
};

// Limits, each a clear error naming it: the JSON header's size, a tensor's rank and element
// count (also bounded by the bytes actually present: nothing is allocated before that check).
inline constexpr uint64_t kMaxHeaderBytes = 100u << 20;
inline constexpr size_t kMaxTensorRank = 16;
inline constexpr uint64_t kMaxFileTensorElements = uint64_t(1) << 40;
inline constexpr uint64_t kMaxDataBytes = uint64_t(64) << 30;  // the data section of one file

// Throws opal::Error naming the file and what is wrong.
SafetensorsFile read_safetensors(const std::string& path);
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& what);
void write_safetensors(const std::string& path, const SafetensorsFile& f);
std::string serialize_safetensors(const SafetensorsFile& f);
// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename, and
// an fsync of the folder, so a crash leaves either the old file or the new one.
void write_file_atomically(const std::string& path, std::string_view bytes);
// A whole file's bytes; IoError naming the file when it cannot be read (or is a directory).
std::string read_file(const std::string& path);
// The bytes of a safetensors file, read no further than its header says its data ends (a
// device such as /dev/zero, or a file with gigabytes appended, costs no more than its header).
std::string read_safetensors_bytes(const std::string& path);

}  // namespace opal
