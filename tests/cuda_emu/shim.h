// The text the emulator puts before a CUDA translation unit (after exec::kCMathDeclarations, the
// C math it and the kernels call) so that the host compiler builds it:
// CUDA's qualifiers and built-in variables, the intrinsics Opal's kernels use, and a trampoline
// per kernel (appended by the engine) that unpacks cudaLaunchKernel's `void** args`.
//
// The built-in variables read the engine's state (bound once per loaded module): the thread and
// block being run. `__syncthreads`, `__syncwarp` and the warp shuffles call back into the
// engine, which runs such kernels' threads as fibers (engine.cpp). Blocks run one at a time,
// so `__shared__` is a function-static array and atomics are plain read-modify-writes.
#pragma once

namespace opal::emu {

inline constexpr const char kShim[] = R"OPAL_EMU(
#include <string.h>
#include <stddef.h>
#include <type_traits>
#include <utility>
struct opal_emu_dim3 { unsigned x, y, z; };
struct opal_emu_state {
  opal_emu_dim3 thread, block, block_dim, grid_dim;
  void (*sync_block)(void);
  void (*sync_warp)(void);
  unsigned long long* exchange;
};
static opal_emu_state* opal_emu_s = nullptr;
extern "C" __attribute__((visibility("default"))) void opal_emu_bind(opal_emu_state* s) { opal_emu_s = s; }
#define threadIdx (opal_emu_s->thread)
#define blockIdx (opal_emu_s->block)
#define blockDim (opal_emu_s->block_dim)
#define gridDim (opal_emu_s->grid_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __shared__ static
#define __launch_bounds__(...)
static inline unsigned opal_emu_tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }
static inline void __syncthreads() { opal_emu_s->sync_block(); }
static inline void __syncwarp(unsigned = 0xffffffffu) { opal_emu_s->sync_warp(); }
static inline void __threadfence() {}
static inline void __threadfence_block() {}
static inline unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
static inline float __uint_as_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
static inline int __float_as_int(float x) { int u; memcpy(&u, &x, 4); return u; }
static inline float __int_as_float(int u) { float x; memcpy(&x, &u, 4); return x; }
static inline long long __double_as_longlong(double x) { long long u; memcpy(&u, &x, 8); return u; }
static inline double __longlong_as_double(long long u) { double x; memcpy(&x, &u, 8); return x; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __dadd_rn(double a, double b) { return a + b; }
template <class T> static inline T __ldg(const T* p) { return *p; }
// A device faults on a 16-byte access to an address that is not 16-byte aligned; x86 does not, so
// the vector type checks the address of every copy from or to memory.
#include <stdio.h>
#include <stdlib.h>
struct alignas(16) float4 {
  float x, y, z, w;
  float4() = default;
  float4(float a, float b, float c, float d) : x(a), y(b), z(c), w(d) {}
  static void check(const void* p) {
    if ((size_t)p & 15) { fprintf(stderr, "opal cuda emulator: misaligned 16-byte access at %p\n", p); abort(); }
  }
  float4(const float4& o) : x(o.x), y(o.y), z(o.z), w(o.w) { check(&o); }
  float4& operator=(const float4& o) { check(this); x = o.x; y = o.y; z = o.z; w = o.w; return *this; }
};
static inline float4 make_float4(float x, float y, float z, float w) { return float4(x, y, z, w); }
struct alignas(8) uint2 {
  unsigned x, y;
  uint2() = default;
  uint2(unsigned a, unsigned b) : x(a), y(b) {}
  static void check(const void* p) {
    if ((size_t)p & 7) { fprintf(stderr, "opal cuda emulator: misaligned 8-byte access at %p\n", p); abort(); }
  }
  uint2(const uint2& o) : x(o.x), y(o.y) { check(&o); }
  uint2& operator=(const uint2& o) { check(this); x = o.x; y = o.y; return *this; }
};
static inline uint2 make_uint2(unsigned x, unsigned y) { return uint2(x, y); }
static inline unsigned __isGlobal(const void*) { return 1u; }
#define __builtin_assume(x) ((void)0)
// a warp's lanes meet twice: every lane publishes its value, then every lane has read its source
template <class T> static inline T opal_emu_exchange(T v, unsigned src_lane) {
  static_assert(sizeof(T) <= 8, "a shuffled value is at most 8 bytes");
  const unsigned t = opal_emu_tid(), base = t & ~31u;
  unsigned long long bits = 0;
  memcpy(&bits, &v, sizeof(T));
  opal_emu_s->exchange[t] = bits;
  opal_emu_s->sync_warp();
  T r;
  memcpy(&r, &opal_emu_s->exchange[base + src_lane], sizeof(T));
  opal_emu_s->sync_warp();
  return r;
}
template <class T> static inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
  const unsigned lane = opal_emu_tid() & 31u, src = lane ^ (unsigned)mask;
  return opal_emu_exchange(v, (src & ~(unsigned)(width - 1)) == (lane & ~(unsigned)(width - 1)) ? src : lane);
}
template <class T> static inline T __shfl_down_sync(unsigned, T v, unsigned d, int width = 32) {
  const unsigned lane = opal_emu_tid() & 31u, seg = lane & ~(unsigned)(width - 1);
  return opal_emu_exchange(v, lane + d < seg + (unsigned)width ? lane + d : lane);
}
template <class T> static inline T __shfl_up_sync(unsigned, T v, unsigned d, int width = 32) {
  const unsigned lane = opal_emu_tid() & 31u, seg = lane & ~(unsigned)(width - 1);
  return opal_emu_exchange(v, lane >= seg + d ? lane - d : lane);
}
template <class T> static inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
  const unsigned lane = opal_emu_tid() & 31u;
  return opal_emu_exchange(v, (lane & ~(unsigned)(width - 1)) + ((unsigned)src & (unsigned)(width - 1)));
}
template <class T> static inline T atomicAdd(T* p, T v) { const T o = *p; *p = o + v; return o; }
template <class T> static inline T atomicSub(T* p, T v) { const T o = *p; *p = o - v; return o; }
template <class T> static inline T atomicOr(T* p, T v) { const T o = *p; *p = o | v; return o; }
template <class T> static inline T atomicAnd(T* p, T v) { const T o = *p; *p = o & v; return o; }
template <class T> static inline T atomicMax(T* p, T v) { const T o = *p; *p = o > v ? o : v; return o; }
template <class T> static inline T atomicMin(T* p, T v) { const T o = *p; *p = o < v ? o : v; return o; }
template <class T> static inline T atomicExch(T* p, T v) { const T o = *p; *p = v; return o; }
template <class T> static inline T atomicCAS(T* p, T c, T v) { const T o = *p; if (o == c) *p = v; return o; }
static inline unsigned atomicInc(unsigned* p, unsigned limit) { const unsigned o = *p; *p = o >= limit ? 0u : o + 1u; return o; }
template <class... A, size_t... I> static void opal_emu_call(void (*f)(A...), void** args, std::index_sequence<I...>) {
  f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}
template <class... A> static void opal_emu_invoke(void (*f)(A...), void** args) { opal_emu_call(f, args, std::index_sequence_for<A...>{}); }
#line 1 "cuda-source"
)OPAL_EMU";

}  // namespace opal::emu
