// Lexer: spec text -> tokens. `#` starts a comment; newlines are whitespace.
#pragma once
#include <vector>

#include "lang/diagnostics/diagnostic.h"
#include "lang/token.h"

namespace opal {

// Tokenizes the whole file; errors are reported and the bad characters skipped, so the parser
// still sees the rest. The result always ends with an Eof token.
std::vector<Token> lex(const SourceFile& file, Diagnostics& diags);

}  // namespace opal
