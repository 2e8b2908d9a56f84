// 16-bit storage formats (bf16, IEEE fp16) and the counter-based bits of stochastic rounding,
// declared once. The C++ runtime (opal::half below), the text of every generated prelude
// (compiler/exec/kernel_abi.h: half_c) and the CUDA backend's conversion kernel all expand
// OPAL_HALF_FUNCS, so the CPU, the generated kernels and CUDA round the same way, bit for bit.
//
// The includer first defines `unsigned int opal_f2u(float)` and `float opal_u2f(unsigned int)`
// (the bits of a float and back: memcpy on the CPU, __float_as_uint on CUDA).
//
//   opal_key(id, t, e)      64 random bits for element e of tensor `id` at step t: splitmix64
//                           of the three, so equal on every backend and independent of the order
//                           elements are visited in
//   opal_sr_key(id, t)      the key of tensor `id`'s rounding bits at step t (salted apart from
//                           randn's): splitmix64 of the two
//   opal_sr_bits(k, e)      16 random bits for element e under key k: the 16-bit word e of the
//                           stream splitmix64(k ^ 0), splitmix64(k ^ 1), ..., each hash giving
//                           four elements their words, low bits first. One hash every four
//                           elements, and a vector loop reads the words of a chunk in place
//                           (cpu_codegen.cpp: opal_st_bf16x64_sr): the CPU's stochastic rounding
//                           went from 0.66 to 0.47 ns an element (bench/cpu_notes.md)
//   opal_ld_bf16(h)         bf16 bits -> float (exact)
//   opal_to_bf16(x, sr, id, t, e)  float -> bf16 bits: round to nearest even, or with `sr`
//                           stochastically (up with probability equal to the fraction cut off,
//                           adding opal_sr_bits(opal_sr_key(id, t), e) below the kept bits); a NaN
//                           stays NaN (chosen by a select on x != x, not a branch on its bits:
//                           vectorized, one compare and a blend: all-bf16 AdamW's kernel takes
//                           12% less time)
//   opal_ld_f16(h)          fp16 bits -> float (exact, subnormals included)
//   opal_to_f16(x)          float -> fp16 bits, round to nearest even; beyond 65504 rounds to
//                           infinity as IEEE says
#pragma once
#include <cstdint>
#include <cstring>

#include "support/bf16.h"

// No `//` comments inside: the body is also emitted as text (OPAL_XSTR), on one line.
// clang-format off
#define OPAL_HALF_FUNCS(Q) \
Q unsigned long long opal_mix64(unsigned long long x) { \
  x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull; x ^= x >> 27; x *= 0x94d049bb133111ebull; return x ^ (x >> 31); } \
Q unsigned long long opal_key(unsigned long long id, double t, long long e) { \
  return opal_mix64(opal_mix64(id + (unsigned long long)t * 0x9e3779b97f4a7c15ull) ^ (unsigned long long)e); } \
Q unsigned long long opal_sr_key(unsigned long long id, double t) { \
  return opal_mix64((id ^ 0x5352ull) + (unsigned long long)t * 0x9e3779b97f4a7c15ull); } \
Q unsigned int opal_sr_bits(unsigned long long k, long long e) { \
  return (unsigned int)(opal_mix64(k ^ ((unsigned long long)e >> 2)) >> (16 * ((unsigned long long)e & 3u))) & 0xffffu; } \
Q float opal_ld_bf16(unsigned short h) { return opal_u2f((unsigned int)h << 16); } \
Q unsigned short opal_to_bf16(float x, int sr, unsigned long long id, double t, long long e) { \
  const unsigned int b = opal_f2u(x); \
  const unsigned int r = sr ? opal_sr_bits(opal_sr_key(id, t), e) : 0x7fffu + ((b >> 16) & 1u); \
  return x != x ? (unsigned short)((b >> 16) | 0x40u) : (unsigned short)((b + r) >> 16); } \
Q float opal_ld_f16(unsigned short h) { \
  const unsigned int s = ((unsigned int)h & 0x8000u) << 16, m = ((unsigned int)h & 0x7fffu) << 13, e = m & 0x0f800000u; \
  float f; \
  if (e == 0x0f800000u) f = opal_u2f(m + 0x70000000u); \
  else if (e == 0u) f = opal_u2f(m + 0x38800000u) - opal_u2f(0x38800000u); \
  else f = opal_u2f(m + 0x38000000u); \
  return opal_u2f(opal_f2u(f) | s); } \
Q unsigned short opal_to_f16(float x) { \
  const unsigned int b = opal_f2u(x), s = (b >> 16) & 0x8000u, a = b & 0x7fffffffu; \
  unsigned int o; \
  if (a >= 0x47800000u) o = a > 0x7f800000u ? 0x7e00u : 0x7c00u; \
  else if (a < 0x38800000u) o = opal_f2u(opal_u2f(a) + 0.5f) - 0x3f000000u; \
  else o = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13; \
  return (unsigned short)(o | s); }
// clang-format on

namespace opal::half {

inline unsigned int opal_f2u(float x) {
  unsigned int u;
  std::memcpy(&u, &x, 4);
  return u;
}
inline float opal_u2f(unsigned int u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
OPAL_HALF_FUNCS(inline)

}  // namespace opal::half
