// OPAL_CHECK: internal invariants. A failure is a bug in Opal, never a user error: it prints
// the condition and aborts. User errors are Diagnostics (lang/diagnostics) or opal::Error.
#pragma once
#include <cstdio>
#include <cstdlib>

#define OPAL_CHECK(cond, ...)                                                                               \
  do {                                                                                                      \
    if (!(cond)) {                                                                                          \
      std::fprintf(stderr, "opal internal error at %s:%d: check `%s` failed: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                                                    \
      std::fprintf(stderr, "\n");                                                                           \
      std::abort();                                                                                         \
    }                                                                                                       \
  } while (0)
