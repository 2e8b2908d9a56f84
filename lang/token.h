// Tokens of the spec language.
#pragma once
#include <string>

#include "lang/source.h"

namespace opal {

enum class Tok {
  Eof,
  Ident,
  Number,
  String,
  KwComponent,
  KwOptimizer,
  KwFn,
  KwState,
  KwLet,
  LParen,
  RParen,
  LBrace,
  RBrace,
  LBracket,
  RBracket,
  Comma,
  Semi,
  Colon,
  Assign,
  Arrow,
  Plus,
  Minus,
  Star,
  Slash,
  At,
  Caret,
  Lt,
  Le,
  Gt,
  Ge,
  EqEq,
  NotEq,
  AndAnd,
  OrOr,
  Bang,
};

const char* tok_spelling(Tok t);

struct Token {
  Tok kind = Tok::Eof;
  SourceLoc loc;
  std::string text;  // identifier name, string contents, number spelling
  double number = 0;
};

}  // namespace opal
