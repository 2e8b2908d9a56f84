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
//                           value (neg: the signed code) or none: the nearest value to x * r,
//                           ties toward zero; the signed code mirrors its positive half
//                           (-1, absent from it, takes the code of -0.993)
//   opal_ld_q8(c, s)        code c of a block with scale s -> float
//   opal_q8_mag(x)          |x|'s bits, ordered as |x| is, a NaN above all: the absmax is
//   opal_q8_join(a, b)      their max (an integer max: NaN-sticky, order-free, so CPU loops and
//                           CUDA warp shuffles agree, and it vectorizes)
//   opal_q8_block(q, n, c, s)  quantizes n values: codes into c[0..n), the scale into *s
//
// Finding the nearest code costs two compares, not a binary search: the float's top 16 bits
// (exponent and 7 mantissa bits) index a bucket table (opal_q8_bkt) holding the code of the
// bucket's lower edge, and a bucket spans at most two midpoints (opal_q8_mid) of the codes: a
// bucket is 2^-7 wide relatively, and neighbouring codes lie at least 0.7% apart. Below 2^-23
// (under half the smallest code) everything is code 0.
#pragma once
#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <string>

// No `//` comments inside: the body is also emitted as text (OPAL_XSTR), on one line. The
// includer defines opal_f2u and opal_u2f (support/half.h) and the tables below.
// clang-format off
#define OPAL_Q8_FUNCS(Q) \
Q int opal_q8_pos(const float* mid, const int* bkt, float ay) { \
  const int b = (int)(opal_f2u(ay) >> 16) - OPAL_Q8_BUCKET0; \
  int c = bkt[b < 0 ? 0 : b > OPAL_Q8_BUCKETS - 1 ? OPAL_Q8_BUCKETS - 1 : b]; \
  c += ay > mid[c]; \
  c += ay > mid[c]; \
  return b < 0 ? 0 : c; } \
Q unsigned char opal_q8_code(const float* mid, const int* bkt, float y, int neg) { \
  const int p = opal_q8_pos(mid, bkt, opal_u2f(opal_f2u(y) & 0x7fffffffu)); \
  const int s = y < 0.0f ? 127 - (p < 127 ? p : 127) : 127 + p; \
  return (unsigned char)(neg ? s : p); } \
Q unsigned char opal_q8_enc(float x, float r, int neg) { \
  return opal_q8_code(neg ? opal_q8_mid : opal_q8_mid + 129, neg ? opal_q8_bkt : opal_q8_bkt + OPAL_Q8_BUCKETS, x * r, neg); } \
Q float opal_ld_q8(unsigned char c, float s) { return opal_q8_tab[(s >= 0.0f ? 256 : 0) + c] * (s >= 0.0f ? s : -s); } \
Q unsigned int opal_q8_mag(float x) { return opal_f2u(x) & 0x7fffffffu; } \
Q unsigned int opal_q8_join(unsigned int a, unsigned int b) { return a > b ? a : b; } \
Q float opal_q8_inv(float a) { return a > 0.0f ? 1.0f / a : 0.0f; } \
Q void opal_q8_block(const float* __restrict__ q, long long n, unsigned char* __restrict__ c, float* __restrict__ s) { \
  unsigned int m = 0u; \
  int neg = 0; \
  for (long long k = 0; k < n; ++k) { m = opal_q8_join(m, opal_q8_mag(q[k])); neg |= q[k] < 0.0f; } \
  const float a = opal_u2f(m), r = opal_q8_inv(a); \
  const float* __restrict__ mid = neg ? opal_q8_mid : opal_q8_mid + 129; \
  const int* __restrict__ bkt = neg ? opal_q8_bkt : opal_q8_bkt + OPAL_Q8_BUCKETS; \
  for (long long k = 0; k < n; ++k) c[k] = opal_q8_code(mid, bkt, q[k] * r, neg); \
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

// The positive halves searched for the nearest code: the signed code from its 0 up (129 values,
// 1 included), the unsigned code (256). Midpoint k lies between value k and k + 1, in double
// rounded once; past the last value, +inf.
inline constexpr size_t kSignedHalf = 129;
constexpr std::array<float, 385> make_midpoints() {
  std::array<float, 385> m{};
  for (size_t k = 0; k < kSignedHalf; ++k)
    m[k] = k + 1 < kSignedHalf ? static_cast<float>((double(kTable[127 + k]) + double(kTable[128 + k])) / 2) : __builtin_huge_valf();
  for (size_t k = 0; k < 256; ++k)
    m[kSignedHalf + k] = k + 1 < 256 ? static_cast<float>((double(kTable[256 + k]) + double(kTable[257 + k])) / 2) : __builtin_huge_valf();
  return m;
}
inline constexpr std::array<float, 385> kMidpoints = make_midpoints();

// Bucket b holds the floats whose top 16 bits are OPAL_Q8_BUCKET0 + b: from 2^-23 to 1.
#define OPAL_Q8_BUCKET0 13312
#define OPAL_Q8_BUCKETS 2945
// (int, not bytes: a vector gather loads 32-bit lanes)
constexpr std::array<int, 2 * OPAL_Q8_BUCKETS> make_buckets() {
  std::array<int, 2 * OPAL_Q8_BUCKETS> t{};
  for (size_t half = 0; half < 2; ++half) {
    const float* mid = kMidpoints.data() + (half ? kSignedHalf : 0);
    for (size_t b = 0; b < OPAL_Q8_BUCKETS; ++b) {
      const float edge = std::bit_cast<float>(uint32_t((OPAL_Q8_BUCKET0 + b) << 16));
      unsigned c = 0;
      while (mid[c] < edge) ++c;
      t[half * OPAL_Q8_BUCKETS + b] = int(c);
    }
  }
  return t;
}
inline constexpr std::array<int, 2 * OPAL_Q8_BUCKETS> kBuckets = make_buckets();

inline unsigned int opal_f2u(float x) { return std::bit_cast<unsigned int>(x); }
inline float opal_u2f(unsigned int u) { return std::bit_cast<float>(u); }
inline constexpr const float* opal_q8_tab = kTable.data();
inline constexpr const float* opal_q8_mid = kMidpoints.data();
inline constexpr const int* opal_q8_bkt = kBuckets.data();

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
