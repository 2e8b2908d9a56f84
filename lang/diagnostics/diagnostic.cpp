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

}  // namespace

const char* diag_kind_name(DiagKind k) { return kKinds[static_cast<int>(k)].name; }
Severity diag_kind_severity(DiagKind k) { return kKinds[static_cast<int>(k)].severity; }

void Diagnostics::report(DiagKind kind, SourceLoc loc, std::string message, std::string help) {
  if (diag_kind_severity(kind) == Severity::Error) ++error_events_;
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

}  // namespace opal
