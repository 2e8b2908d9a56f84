// Source files, line tables and locations.
#include "lang/source.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace opal {

SourceFile::SourceFile(std::string path, std::string text) : path_(std::move(path)), text_(std::move(text)) {
  line_starts_.push_back(0);
  for (uint32_t i = 0; i < text_.size(); ++i)
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
}

std::pair<uint32_t, uint32_t> SourceFile::line_col(uint32_t offset) const {
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  uint32_t line = static_cast<uint32_t>(it - line_starts_.begin());
  return {line, offset - line_starts_[line - 1] + 1};
}

std::string_view SourceFile::line(uint32_t line) const {
  if (line == 0 || line > line_starts_.size()) return {};
  uint32_t b = line_starts_[line - 1];
  uint32_t e = line < line_starts_.size() ? line_starts_[line] - 1 : static_cast<uint32_t>(text_.size());
  std::string_view v(text_.data() + b, e - b);
  if (!v.empty() && v.back() == '\r') v.remove_suffix(1);
  return v;
}

std::string SourceLoc::str() const {
  if (!file) return "<builtin>";
  auto [l, c] = file->line_col(offset);
  return fmt::format("{}:{}:{}", file->path(), l, c);
}

std::string_view SourceLoc::text() const {
  if (!file || offset > file->text().size()) return {};
  return std::string_view(file->text()).substr(offset, length);
}

const SourceFile& SourceManager::add(std::string path, std::string text) {
  total_bytes_ += text.size();
  files_.push_back(std::make_unique<SourceFile>(std::move(path), std::move(text)));
  return *files_.back();
}

const SourceFile* SourceManager::load(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read `{}`", path);
    return nullptr;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return &add(path, ss.str());
}

}  // namespace opal
