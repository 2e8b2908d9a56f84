// Blockwise 8-bit state (`state m: q8`), declared once. The C++ runtime (opal::q8 below: the
// checkpoint conversions), the CPU prelude and the CUDA prelude all expand OPAL_Q8_FUNCS over
// the same table, so a block quantizes to the same bytes everywhere.
//
// The code is bitsandbytes' dynamic (tree) code (Dettmers et al., "8-bit Optimizers via
// Block-wise Quantization", 2022: create_dynamic_map), not a linear absmax code: a linear code
// of a block of Adam's second moments rounds every value below absmax/254 to zero, and m/sqrt(v)
// then explodes; the dynamic code spans seven decades (down to 5.5e-7 of the block's absmax).
// Each block picks its variant from its values: the unsigned code (254 positive levels, 0 and 1)
// when none is negative, the signed code (127 levels each side, 0 and 1) otherwise. The block's
// scale is its absmax, stored negated for the signed code, so a reader needs nothing else. A
// block holding a NaN or an infinity has a non-finite scale and reads back non-finite.
//
//   opal_q8_tab[512]        the codes' values: [0, 256) signed, [256, 512) unsigned, ascending
//   opal_q8_enc(x, r, neg)  the code of x in a block with 1/absmax r (opal_q8_inv) and a negative
//                           value (neg: the signed code) or none: the nearest value to x * r
//                           (up to the last bit of the cell arithmetic below: a value within
//                           ~1e-6 of a tie may take either neighbour); the signed code mirrors
//                           its positive half (-1, absent from it, takes the code of -0.993)
//   opal_ld_q8(c, s)        code c of a block with scale s -> float
//   opal_q8_mag(x)          |x|'s bits, ordered as |x| is, a NaN above all: the absmax is
//   opal_q8_join(a, b)      their max (an integer max: NaN-sticky, order-free, so CPU loops and
//                           CUDA warp shuffles agree, and it vectorizes)
//   opal_q8_block(q, n, c, s)  quantizes n values: codes into c[0..n), the scale into *s
//
// Finding the nearest code is arithmetic, with no table lookup (a vector gather costs more
// than the rest of the step): a value's decade i is the count of the thresholds t1..t6 it
// reaches (each the midpoint between a decade's last code and the next one's first), and
// within a decade the codes are the centres of equal cells, so the nearest is the cell
// floor((a - 0.1 D_i) * n_i / (0.9 D_i)), clamped to the decade. Below t0 (half the smallest
// code) is code 0, from t7 up is 1. The constants are hex literals (a macro body cannot
// compute them); tests/unit/q8_test.cpp derives each from the table. The form (a - f) * c has
// no multiply-add to contract, so the host, CPU and CUDA compilers round it alike.
#pragma once
#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <string>

// No `//` comments inside: the body is also emitted as text (OPAL_XSTR), on one line. The
// includer defines opal_f2u and opal_u2f (support/half.h) and the table below.
// clang-format off
#define OPAL_Q8_FUNCS(Q) \
Q int opal_q8_pos(float a, int u) { \
  const float t0 = u ? 0x1.5cf752p-23f : 0x1.27476cp-22f, t1 = u ? 0x1.853b3ep-20f : 0x1.fe07p-20f; \
  const float t2 = u ? 0x1.9b0ab4p-17f : 0x1.e68a0cp-17f, t3 = u ? 0x1.d29dc8p-14f : 0x1.00e6bp-13f; \
  const float t4 = u ? 0x1.14e3bcp-10f : 0x1.23a29cp-10f, t5 = u ? 0x1.50e56p-7f : 0x1.5a1cacp-7f; \
  const float t6 = u ? 0x1.9f5c28p-4f : 0x1.a51eb8p-4f, t7 = u ? 0x1.ff199ap-1f : 0x1.fe3334p-1f; \
  int i = 0; \
  float f = 0x1.ad7f2ap-24f, c = 0x1.0f4472p+20f; \
  { const int g = a >= t1; i = g ? 1 : i; f = g ? 0x1.0c6f7ap-20f : f; c = g ? 0x1.b2071cp+17f : c; } \
  { const int g = a >= t2; i = g ? 2 : i; f = g ? 0x1.4f8b58p-17f : f; c = g ? 0x1.5b38e4p+15f : c; } \
  { const int g = a >= t3; i = g ? 3 : i; f = g ? 0x1.a36e2ep-14f : f; c = g ? 0x1.15c71cp+13f : c; } \
  { const int g = a >= t4; i = g ? 4 : i; f = g ? 0x1.0624dep-10f : f; c = g ? 0x1.bc71c8p+10f : c; } \
  { const int g = a >= t5; i = g ? 5 : i; f = g ? 0x1.47ae14p-7f : f; c = g ? 0x1.638e38p+8f : c; } \
  { const int g = a >= t6; i = g ? 6 : i; f = g ? 0x1.99999ap-4f : f; c = g ? 0x1.1c71c8p+6f : c; } \
  const int n = 1 << (i + u); \
  float t = (a - f) * c * (u ? 2.0f : 1.0f); \
  t = t > 0.0f ? t : 0.0f; \
  t = t < (float)(n - 1) ? t : (float)(n - 1); \
  return a >= t7 ? 128 + 127 * u : a >= t0 ? n - u + (int)t : 0; } \
Q unsigned char opal_q8_code(float y, int neg) { \
  const int p = opal_q8_pos(opal_u2f(opal_f2u(y) & 0x7fffffffu), !neg); \
  const int s = y < 0.0f ? 127 - (p < 127 ? p : 127) : 127 + p; \
  return (unsigned char)(neg ? s : p); } \
Q unsigned char opal_q8_enc(float x, float r, int neg) { return opal_q8_code(x * r, neg); } \
Q float opal_ld_q8(unsigned char c, float s) { return opal_q8_tab[(s >= 0.0f ? 256 : 0) + c] * (s >= 0.0f ? s : -s); } \
Q unsigned int opal_q8_mag(float x) { return opal_f2u(x) & 0x7fffffffu; } \
Q unsigned int opal_q8_join(unsigned int a, unsigned int b) { return a > b ? a : b; } \
Q float opal_q8_inv(float a) { return a > 0.0f ? 1.0f / a : 0.0f; } \
Q void opal_q8_block(const float* __restrict__ q, long long n, unsigned char* __restrict__ c, float* __restrict__ s) { \
  unsigned int m = 0u; \
  int neg = 0; \
  for (long long k = 0; k < n; ++k) { m = opal_q8_join(m, opal_q8_mag(q[k])); neg |= q[k] < 0.0f; } \
  const float a = opal_u2f(m), r = opal_q8_inv(a); \
  for (long long k = 0; k < n; ++k) c[k] = opal_q8_code(q[k] * r, neg); \
  *s = neg ? -a : a; }
// clang-format on

namespace opal::q8 {

// Block sizes: powers of two from 32 (a CUDA warp) to 4096.
inline constexpr int kMinBlock = 32, kMaxBlock = 4096, kDefaultBlock = 256;
inline bool valid_block(long long b) { return b >= kMinBlock && b <= kMaxBlock && (b & (b - 1)) == 0; }

// bitsandbytes' create_dynamic_map(signed, max_exponent_bits=7, total_bits=8): for each decade
// i = 0..6, the midpoints of linspace(0.1, 1, n_i + 1) scaled by 10^(i-6), with n_i = 2^i per
// sign (signed) or 2^(i+1) (unsigned); then 0 and 1. Computed in double, rounded once to float
// (bitsandbytes computes in float32: a value may differ from its table in the last bit).
constexpr std::array<float, 256> dynamic_code(bool is_signed) {
  std::array<double, 256> v{};
  size_t k = 0;
  for (int i = 0; i < 7; ++i) {
    const int n = is_signed ? 1 << i : 1 << (i + 1);
    double decade = 1;
    for (int d = i; d < 6; ++d) decade *= 10;  // 10^(6-i), exact
    for (int j = 0; j < n; ++j) {
      const double lo = 0.1 + 0.9 * j / n, hi = 0.1 + 0.9 * (j + 1) / n;
      const double mid = (lo + hi) / 2 / decade;
      v[k++] = mid;
      if (is_signed) v[k++] = -mid;
    }
  }
  v[k++] = 0;
  v[k++] = 1;
  std::sort(v.begin(), v.end());
  std::array<float, 256> out{};
  for (size_t i = 0; i < 256; ++i) out[i] = static_cast<float>(v[i]);
  return out;
}

constexpr std::array<float, 512> make_table() {
  std::array<float, 512> t{};
  const auto s = dynamic_code(true), u = dynamic_code(false);
  for (size_t i = 0; i < 256; ++i) t[i] = s[i], t[256 + i] = u[i];
  return t;
}
inline constexpr std::array<float, 512> kTable = make_table();

inline unsigned int opal_f2u(float x) { return std::bit_cast<unsigned int>(x); }
inline float opal_u2f(unsigned int u) { return std::bit_cast<float>(u); }
inline constexpr const float* opal_q8_tab = kTable.data();

OPAL_Q8_FUNCS(inline)

// Quantizes n values in blocks of `block`: codes[n], scales[ceil(n / block)].
inline void quantize(const float* x, size_t n, int block, unsigned char* codes, float* scales) {
  for (size_t b = 0; b * size_t(block) < n; ++b) {
    const size_t e0 = b * size_t(block), m = std::min(size_t(block), n - e0);
    opal_q8_block(x + e0, (long long)m, codes + e0, scales + b);
  }
}
inline void dequantize(const unsigned char* codes, const float* scales, size_t n, int block, float* x) {
  for (size_t e = 0; e < n; ++e) x[e] = opal_ld_q8(codes[e], scales[e / size_t(block)]);
}
inline size_t blocks(size_t n, int block) { return (n + size_t(block) - 1) / size_t(block); }

// The same over matrices of m elements each (blocks restart at each matrix, as the kernels
// tile a batched view): n / m matrices, each with blocks(m, block) scales.
inline void quantize_matrices(const float* x, size_t n, size_t m, int block, unsigned char* codes, float* scales) {
  for (size_t b = 0; b * m < n; ++b) quantize(x + b * m, m, block, codes + b * m, scales + b * blocks(m, block));
}
inline void dequantize_matrices(const unsigned char* codes, const float* scales, size_t n, size_t m, int block, float* x) {
  for (size_t b = 0; b * m < n; ++b) dequantize(codes + b * m, scales + b * blocks(m, block), m, block, x + b * m);
}

// The name of a q8 slot's scales (one per block): an ordinary state slot of its own.
inline std::string scales_name(const std::string& slot) { return slot + ".absmax"; }

}  // namespace opal::q8
