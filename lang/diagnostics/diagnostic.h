// Diagnostics: produced by every phase, collected (never printed or thrown on the spot), then
// rendered rustc-style with file:line:col, the source line, a caret under the span and a help.
#pragma once
#include <string>
#include <vector>

#include "lang/source.h"
#include "support/text.h"

namespace opal {

enum class DiagKind {
#define OPAL_DIAG(name, sev, summary) name,
#include "lang/diagnostics/diag_kind.def"
#undef OPAL_DIAG
};

enum class Severity { Warning, Error };

const char* diag_kind_name(DiagKind k);
Severity diag_kind_severity(DiagKind k);

struct Diagnostic {
  DiagKind kind;
  SourceLoc loc;
  std::string message;
  std::string help;  // empty when there is nothing useful to add
};

class Diagnostics {
 public:
  // Reports one diagnostic; an identical one (kind, place, message) is reported once only, so
  // a component used by many routes does not repeat its errors.
  void report(DiagKind kind, SourceLoc loc, std::string message, std::string help = {});
  bool has_errors() const { return errors_ > 0; }
  size_t error_count() const { return errors_; }
  // Every error reported, repeats included: a pass compares it before and after to learn
  // whether its own input had errors, even ones reported earlier by another pass.
  size_t error_events() const { return error_events_; }
  const std::vector<Diagnostic>& all() const { return diags_; }
  // Renders every diagnostic followed by a one-line summary when there are errors.
  std::string render() const;

 private:
  std::vector<Diagnostic> diags_;
  size_t errors_ = 0;
  size_t error_events_ = 0;
};

std::string render_diagnostic(const Diagnostic& d);

}  // namespace opal
