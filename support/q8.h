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
//   opal_q8_tab[512]           the codes' values: [0, 256) signed, [256, 512) unsigned, ascending
//   opal_q8_code(tab, x)       the code of tab nearest x (ties to the lower), by binary search
//   opal_ld_q8(c, s)           code c of a block with scale s -> float
//   opal_q8_join(a, b)         the max of two absmaxes, NaN-sticky (order-free: CPU loops and
//                              CUDA warp shuffles agree)
//   opal_q8_enc(x, a, neg)     the code of x in a block of absmax a (neg: it has a negative value)
//   opal_q8_block(q, n, c, s)  quantizes n values: codes into c[0..n), the scale into *s
#pragma once
#include <algorithm>
#include <array>
#include <string>

// No `//` comments inside: the body is also emitted as text (OPAL_XSTR), on one line.
// clang-format off
#define OPAL_Q8_FUNCS(Q) \
Q unsigned char opal_q8_code(const float* tab, float x) { \
  int lo = 0; \
  for (int k = 128; k > 0; k >>= 1) if (tab[lo + k] <= x) lo += k; \
  const int hi = lo < 255 ? lo + 1 : 255; \
  return (unsigned char)(x - tab[lo] <= tab[hi] - x ? lo : hi); } \
Q float opal_ld_q8(unsigned char c, float s) { return s >= 0.0f ? opal_q8_tab[256 + c] * s : opal_q8_tab[c] * -s; } \
Q float opal_q8_join(float a, float b) { return (a != a || b != b) ? a + b : (a > b ? a : b); } \
Q unsigned char opal_q8_enc(float x, float a, int neg) { return a > 0.0f ? opal_q8_code(neg ? opal_q8_tab : opal_q8_tab + 256, x / a) : (unsigned char)0; } \
Q void opal_q8_block(const float* q, long long n, unsigned char* c, float* s) { \
  float a = 0.0f; \
  int neg = 0; \
  for (long long k = 0; k < n; ++k) { a = opal_q8_join(a, q[k] < 0.0f ? -q[k] : q[k]); neg |= q[k] < 0.0f; } \
  for (long long k = 0; k < n; ++k) c[k] = opal_q8_enc(q[k], a, neg); \
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

// The name of a q8 slot's scales (one per block): an ordinary state slot of its own.
inline std::string scales_name(const std::string& slot) { return slot + ".absmax"; }

}  // namespace opal::q8
