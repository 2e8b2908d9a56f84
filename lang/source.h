// Source files and locations: every token, AST node and IR op points back into spec text.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace opal {

class SourceFile {
 public:
  SourceFile(std::string path, std::string text);
  const std::string& path() const { return path_; }
  const std::string& text() const { return text_; }
  // 1-based line and column of a byte offset.
  std::pair<uint32_t, uint32_t> line_col(uint32_t offset) const;
  // The text of a 1-based line, without its newline.
  std::string_view line(uint32_t line) const;

 private:
  std::string path_;
  std::string text_;
  std::vector<uint32_t> line_starts_;
};

// A span in a source file. A default-constructed location is "nowhere" (internal values).
struct SourceLoc {
  const SourceFile* file = nullptr;
  uint32_t offset = 0;
  uint32_t length = 0;
  bool valid() const { return file != nullptr; }
  std::string str() const;        // "path:line:col" or "<builtin>"
  std::string short_str() const;  // "file:line:col" with the file's base name, or "<builtin>"
  std::string_view text() const;  // the text it spans ("" for nowhere)
};

// The largest spec file read (SourceLocs address 32-bit offsets; specs are a few KB).
inline constexpr size_t kMaxSourceBytes = size_t(4) << 20;

// Owns every source file of a compilation so that SourceLocs stay valid.
class SourceManager {
 public:
  const SourceFile& add(std::string path, std::string text);
  // Reads a file; returns nullptr and sets `error` when it cannot be read, is a directory or
  // is larger than kMaxSourceBytes.
  const SourceFile* load(const std::string& path, std::string& error);
  size_t total_bytes() const { return total_bytes_; }

 private:
  std::vector<std::unique_ptr<SourceFile>> files_;
  size_t total_bytes_ = 0;
};

}  // namespace opal
