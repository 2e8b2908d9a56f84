// Source files, line tables and locations.
#include "lang/source.h"

#include <algorithm>
#include <filesystem>
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

std::string SourceLoc::short_str() const {
  if (!file) return "<builtin>";
  auto [l, c] = file->line_col(offset);
  const std::string& path = file->path();
  auto slash = path.find_last_of('/');
  return fmt::format("{}:{}:{}", slash == std::string::npos ? path : path.substr(slash + 1), l, c);
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
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    error = fmt::format("`{}` is a directory, not a spec file", path);
    return nullptr;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read `{}`", path);
    return nullptr;
  }
  // read at most one chunk past the limit: a device such as /dev/zero has no end
  std::string text;
  char chunk[1 << 16];
  while (text.size() <= kMaxSourceBytes && in.read(chunk, sizeof chunk).gcount() > 0) text.append(chunk, size_t(in.gcount()));
  if (in.bad()) {
    error = fmt::format("cannot read `{}`", path);
    return nullptr;
  }
  if (text.size() > kMaxSourceBytes) {
    error = fmt::format("`{}` is larger than the limit of {} bytes for a spec file", path, kMaxSourceBytes);
    return nullptr;
  }
  return &add(path, std::move(text));
}

}  // namespace opal
