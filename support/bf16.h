// bfloat16 rounding (round to nearest even; a NaN stays NaN), declared once. The C++ function
// below, the C text of every generated prelude (compiler/exec/kernel_abi.h) and the CUDA
// backend's helper kernels all expand these macros, so the bit trick cannot drift apart.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

// On the bits `b` of a float (an unsigned 32-bit integer expression). Their text is emitted
// (OPAL_XSTR), so the formatter keeps its hands off.
// clang-format off
#define OPAL_BF16_IS_NAN(b) ((((b) & 0x7f800000u) == 0x7f800000u) && ((b) & 0x7fffffu))
#define OPAL_BF16_ROUND(b) (((b) + 0x7fffu + (((b) >> 16) & 1u)) & 0xffff0000u)
// clang-format on
// The text of an expansion, for emitted code: OPAL_XSTR(OPAL_BF16_ROUND(b)).
#define OPAL_STR(...) #__VA_ARGS__
#define OPAL_XSTR(...) OPAL_STR(__VA_ARGS__)

namespace opal {

inline float round_bf16(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  if (OPAL_BF16_IS_NAN(b)) return x;
  b = OPAL_BF16_ROUND(b);
  std::memcpy(&x, &b, 4);
  return x;
}

}  // namespace opal
