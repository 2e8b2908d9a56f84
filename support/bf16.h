// bfloat16 rounding (round to nearest even), shared by constant folding, the CPU backend's
// matrix routines and the reference tests. The same bit trick is emitted into kernels.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace opal {

inline float round_bf16(float x) {
  if (std::isnan(x)) return x;
  uint32_t b;
  std::memcpy(&b, &x, 4);
  b = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&x, &b, 4);
  return x;
}

}  // namespace opal
