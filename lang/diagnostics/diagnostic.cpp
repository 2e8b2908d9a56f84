// Diagnostic collection, "did you mean" suggestions, and rustc-style rendering.
#include "lang/diagnostics/diagnostic.h"

#include <algorithm>

#include <fmt/format.h>

namespace opal {

namespace {
struct KindInfo {
  const char* name;
  Severity severity;
};
constexpr KindInfo kKinds[] = {
#define OPAL_DIAG(name, sev, summary) {#name, Severity::sev},
#include "lang/diagnostics/diag_kind.def"
#undef OPAL_DIAG
};

// Optimal string alignment distance: insert, delete, substitute, swap two neighbours.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}
}  // namespace

const char* diag_kind_name(DiagKind k) { return kKinds[static_cast<int>(k)].name; }
Severity diag_kind_severity(DiagKind k) { return kKinds[static_cast<int>(k)].severity; }

void Diagnostics::report(DiagKind kind, SourceLoc loc, std::string message, std::string help) {
  for (const auto& d : diags_)
    if (d.kind == kind && d.loc.file == loc.file && d.loc.offset == loc.offset && d.message == message) return;
  if (diag_kind_severity(kind) == Severity::Error) ++errors_;
  diags_.push_back({kind, loc, std::move(message), std::move(help)});
}

std::string render_diagnostic(const Diagnostic& d) {
  const char* sev = diag_kind_severity(d.kind) == Severity::Error ? "error" : "warning";
  std::string out = d.loc.valid() ? fmt::format("{}: {}: {} [{}]\n", d.loc.str(), sev, d.message, diag_kind_name(d.kind))
                                  : fmt::format("{}: {} [{}]\n", sev, d.message, diag_kind_name(d.kind));
  if (d.loc.valid()) {
    auto [line, col] = d.loc.file->line_col(d.loc.offset);
    std::string_view text = d.loc.file->line(line);
    std::string num = std::to_string(line);
    std::string pad(num.size(), ' ');
    out += fmt::format(" {} | {}\n", num, text);
    size_t len = std::max<size_t>(1, std::min<size_t>(d.loc.length, text.size() >= col ? text.size() - col + 1 : 1));
    std::string marks = "^" + std::string(len - 1, '~');
    // keep tabs so the caret lines up under tab-indented source
    std::string lead;
    for (size_t i = 0; i + 1 < col && i < text.size(); ++i) lead += text[i] == '\t' ? '\t' : ' ';
    out += fmt::format(" {} | {}{}\n", pad, lead, marks);
    if (!d.help.empty()) out += fmt::format(" {} = help: {}\n", pad, d.help);
  } else if (!d.help.empty()) {
    out += fmt::format("  = help: {}\n", d.help);
  }
  return out;
}

std::string Diagnostics::render() const {
  std::string out;
  size_t warnings = 0;
  for (const auto& d : diags_) {
    out += render_diagnostic(d);
    if (diag_kind_severity(d.kind) == Severity::Warning) ++warnings;
  }
  if (errors_ > 0)
    out += fmt::format("{} error{}{} reported\n", errors_, errors_ == 1 ? "" : "s",
                       warnings ? fmt::format(", {} warning{}", warnings, warnings == 1 ? "" : "s") : "");
  return out;
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

}  // namespace opal
