// Eigen, for every part that uses it: include this, never <Eigen/...> directly. GCC 12 reports
// `__Y` of its own AVX-512 intrinsics headers as (maybe) used uninitialized once Eigen's
// vectorized code is inlined (a false positive, ~1300 lines of a -march=native build). The
// warnings are attributed to the headers' lines, so those headers are read here, first, with
// the two warnings off; warnings about our own code are untouched.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Dense>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
