// Lexer for the spec language.
#include "lang/lexer.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <unordered_map>

#include <fmt/format.h>

namespace opal {

const char* tok_spelling(Tok t) {
  switch (t) {
    case Tok::Eof: return "end of file";
    case Tok::Ident: return "identifier";
    case Tok::Number: return "number";
    case Tok::String: return "string";
    case Tok::KwComponent: return "component";
    case Tok::KwOptimizer: return "optimizer";
    case Tok::KwFn: return "fn";
    case Tok::KwState: return "state";
    case Tok::KwLet: return "let";
    case Tok::LParen: return "(";
    case Tok::RParen: return ")";
    case Tok::LBrace: return "{";
    case Tok::RBrace: return "}";
    case Tok::LBracket: return "[";
    case Tok::RBracket: return "]";
    case Tok::Comma: return ",";
    case Tok::Semi: return ";";
    case Tok::Colon: return ":";
    case Tok::Assign: return "=";
    case Tok::Arrow: return "->";
    case Tok::Plus: return "+";
    case Tok::Minus: return "-";
    case Tok::Star: return "*";
    case Tok::At: return "@";
    case Tok::Slash: return "/";
    case Tok::Caret: return "^";
    case Tok::Lt: return "<";
    case Tok::Le: return "<=";
    case Tok::Gt: return ">";
    case Tok::Ge: return ">=";
    case Tok::EqEq: return "==";
    case Tok::NotEq: return "!=";
    case Tok::AndAnd: return "&&";
    case Tok::OrOr: return "||";
    case Tok::Bang: return "!";
  }
  return "?";
}

namespace {
// The hint for a character that starts no token: what the writer most likely meant.
const char* unexpected_hint(char c) {
  switch (c) {
    case '%': return "the remainder is `mod(a, b)`";
    case '\'': return "name patterns are strings in double quotes: \"embed*\"";
    case '&': return "`&&` is logical and";
    case '|': return "`||` is logical or";
    default: return "comments start with `#`";
  }
}
}  // namespace

std::vector<Token> lex(const SourceFile& file, Diagnostics& diags) {
  static const std::unordered_map<std::string, Tok> keywords = {
      {"component", Tok::KwComponent}, {"optimizer", Tok::KwOptimizer}, {"fn", Tok::KwFn}, {"state", Tok::KwState}, {"let", Tok::KwLet}};
  const std::string& s = file.text();
  std::vector<Token> out;
  size_t i = 0;
  auto loc = [&](size_t b, size_t e) { return SourceLoc{&file, uint32_t(b), uint32_t(e - b)}; };
  auto push = [&](Tok k, size_t b, size_t e) { out.push_back({k, loc(b, e), s.substr(b, e - b), 0}); };
  while (i < s.size()) {
    char c = s[i];
    if (c == '#') {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    size_t b = i;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
      std::string word = s.substr(b, i - b);
      auto kw = keywords.find(word);
      push(kw == keywords.end() ? Tok::Ident : kw->second, b, i);
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
      if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
        if (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) {
          i = j;
          while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
        }
      }
      // a letter glued to a number (`1e`, `3x`) is a typo, not two tokens
      size_t end = i;
      while (end < s.size() && (std::isalnum(static_cast<unsigned char>(s[end])) || s[end] == '_' || s[end] == '.')) ++end;
      std::string text = s.substr(b, end - b);
      char* stop = nullptr;
      errno = 0;
      double v = std::strtod(text.c_str(), &stop);
      if (end != i || stop != text.c_str() + text.size()) {
        diags.report(DiagKind::InvalidNumber, loc(b, end), fmt::format("invalid number `{}`", text), "numbers look like `3`, `0.9` or `1e-8`");
        v = 0;
      } else if (errno == ERANGE && (v == 0 || std::isinf(v))) {
        // (a subnormal result also sets ERANGE; it is a number all the same)
        diags.report(DiagKind::InvalidNumber, loc(b, end), fmt::format("number `{}` is out of range", text),
                     "numbers are doubles: from about 2.2e-308 to 1.8e308 in magnitude");
        v = 0;
      }
      i = end;
      out.push_back({Tok::Number, loc(b, end), text, v});
      continue;
    }
    if (c == '"') {
      ++i;
      while (i < s.size() && s[i] != '"' && s[i] != '\n') ++i;
      if (i >= s.size() || s[i] != '"') {
        diags.report(DiagKind::UnterminatedString, loc(b, i), "unterminated string", "close it with `\"` on the same line");
        out.push_back({Tok::String, loc(b, i), s.substr(b + 1, i - b - 1), 0});
        continue;
      }
      ++i;
      out.push_back({Tok::String, loc(b, i), s.substr(b + 1, i - b - 2), 0});
      continue;
    }
    auto two = [&](char a, char b2) { return c == a && i + 1 < s.size() && s[i + 1] == b2; };
    Tok k;
    size_t n = 1;
    if (two('-', '>')) k = Tok::Arrow, n = 2;
    else if (two('<', '=')) k = Tok::Le, n = 2;
    else if (two('>', '=')) k = Tok::Ge, n = 2;
    else if (two('=', '=')) k = Tok::EqEq, n = 2;
    else if (two('!', '=')) k = Tok::NotEq, n = 2;
    else if (two('&', '&')) k = Tok::AndAnd, n = 2;
    else if (two('|', '|')) k = Tok::OrOr, n = 2;
    else {
      switch (c) {
        case '(': k = Tok::LParen; break;
        case ')': k = Tok::RParen; break;
        case '{': k = Tok::LBrace; break;
        case '}': k = Tok::RBrace; break;
        case '[': k = Tok::LBracket; break;  // only a parameter's range: `in [0, 1)`
        case ']': k = Tok::RBracket; break;
        case ',': k = Tok::Comma; break;
        case ';': k = Tok::Semi; break;
        case ':': k = Tok::Colon; break;
        case '=': k = Tok::Assign; break;
        case '+': k = Tok::Plus; break;
        case '-': k = Tok::Minus; break;
        case '*': k = Tok::Star; break;
        case '@': k = Tok::At; break;
        case '/': k = Tok::Slash; break;
        case '^': k = Tok::Caret; break;
        case '<': k = Tok::Lt; break;
        case '>': k = Tok::Gt; break;
        case '!': k = Tok::Bang; break;
        default: {
          // skip one whole UTF-8 sequence so the caret covers the character
          size_t e = i + 1;
          while (e < s.size() && (static_cast<unsigned char>(s[e]) & 0xC0) == 0x80) ++e;
          diags.report(DiagKind::UnexpectedCharacter, loc(b, e), fmt::format("unexpected character `{}`", s.substr(b, e - b)), unexpected_hint(c));
          i = e;
          continue;
        }
      }
    }
    i += n;
    push(k, b, i);
  }
  out.push_back({Tok::Eof, loc(s.size(), s.size()), "", 0});
  return out;
}

}  // namespace opal
