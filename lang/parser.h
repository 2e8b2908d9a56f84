// Parser: tokens -> AST (recursive descent, precedence climbing for expressions).
#pragma once
#include "lang/ast.h"
#include "lang/diagnostics/diagnostic.h"

namespace opal {

// Parses a whole file. On a syntax error it reports, skips to the next top-level declaration
// and goes on, so one run reports every broken declaration. Nesting deeper than
// kMaxNesting is an error, never a stack overflow.
Module parse(const SourceFile& file, Diagnostics& diags);

// Parses a whole text as one state storage (`q8(128)`, `bf16, stochastic`): an optimizer's
// argument. Errors go to `diags` (check has_errors()).
StateStorage parse_state_storage(const SourceFile& file, Diagnostics& diags);

inline constexpr int kMaxNesting = 200;

}  // namespace opal
