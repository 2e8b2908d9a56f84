// The kernel ABI, declared once: the per-tensor struct and the uniform block every generated
// kernel takes, and the bf16 rounding they share. The runtime uses the C++ declarations; both
// preludes (compiler/codegen/cpu, cuda) emit the C text generated from the same field lists.
//
//   opal_tensor_t    { buf: the tensor's buffer table (w, g, state slots, scratch: see
//                      exec::kParamBuffer ...), rows, cols: the matrix stepped, total: the
//                      whole parameter's elements (`numel`; rows * cols unless a view has many
//                      matrices, each an entry of its own), chk: non-finite probe flags,
//                      id: the tensor's random stream (randn, stochastic rounding: a hash of
//                      its name and the optimizer's seed), base: this matrix's first element
//                      in the tensor (random streams are keyed by the tensor's element),
//                      dt: storage of w and g (dtype_code),
//                      mrows, mcols: the matrix the spec's `rows` and `cols` read: the one
//                      stepped, or the whole matrix when a process steps its own rows of it }
//   opal_uniforms_t  { t: the step count, hp: the hyperparameters (at least one slot) }
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "support/bf16.h"
#include "support/half.h"
#include "support/q8.h"

// (C type, name) of each field of opal_tensor_t, in order.
#define OPAL_TENSOR_FIELDS(X) \
  X(float* const*, buf)       \
  X(long long, rows)          \
  X(long long, cols)          \
  X(long long, total) X(unsigned*, chk) X(unsigned long long, id) X(long long, base) X(int, dt) X(long long, mrows) X(long long, mcols)

namespace opal::exec {

// How a parameter, its gradient or a state slot is stored. Arithmetic is f32 in registers
// whatever the storage: loads widen, stores round (support/half.h). Q8 is a state slot's only:
// blockwise 8-bit codes, with their scales in a slot of their own (support/q8.h).
enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, Q8 = 3 };
inline constexpr DType kDTypes[] = {DType::F32, DType::BF16, DType::F16};  // of parameters and gradients
inline const char* dtype_name(DType d) { return d == DType::F32 ? "f32" : d == DType::BF16 ? "bf16" : d == DType::F16 ? "f16" : "q8"; }
inline size_t dtype_size(DType d) { return d == DType::F32 ? 4 : d == DType::Q8 ? 1 : 2; }
// opal_tensor_t.dt: w's dtype in bits 0-1, g's in bits 2-3, bit 4 stochastic rounding of bf16
// writes. Kernels of the f32 program ignore it (every tensor there is f32).
inline constexpr int kStochasticBit = 16;
inline int dtype_code(DType w, DType g, bool stochastic) { return int(w) | int(g) << 2 | (stochastic ? kStochasticBit : 0); }

struct KernelTensor {
#define OPAL_DECLARE_FIELD(type, name) type name;
  OPAL_TENSOR_FIELDS(OPAL_DECLARE_FIELD)
#undef OPAL_DECLARE_FIELD
};

// CUDA launch geometry, shared by the emitter and the backend: threads per block, and the most
// blocks per tensor entry (grid-stride loops cover the rest).
inline constexpr int kCudaBlock = 256, kCudaMaxBlocks = 1024;

// A chunked CUDA launch (KernelLaunch::chunk: an elementwise kernel over the full space): one
// block per chunk of `chunk` elements of one tensor, listed flat for every tensor of the launch
// (multi-tensor apply), so no block is empty and a large tensor does not leave its blocks
// looping while the small ones' blocks idle. `opal_chunk_t` in the CUDA text. A chunk is
// kCudaChunk elements, or 8 q8 blocks where a kernel quantizes blocks larger than 2048 (a warp
// per block: every warp of a CUDA block has one).
inline constexpr long long kCudaChunk = 16384;  // 64 elements per thread
struct KernelChunk {
  uint32_t tensor = 0;  // the launch's tensor entry
  uint32_t chunk = 0;   // elements [chunk * size, (chunk + 1) * size) of its space
};
inline constexpr const char* kChunkStructC = "typedef struct { unsigned tensor; unsigned chunk; } opal_chunk_t;\n";

// A kernel's reductions, counted: totals (Sum), row sums and column sums. On CUDA such a kernel
// adds up in a fixed order, whatever the order its blocks run in: each block writes partial sums
// (a total per block; a row sum per 32-column tile, a column sum per 32-row tile); the last
// block of the tensor to finish adds up the totals, and the block finishing the last tile of a
// strip of 32 rows (columns) adds up the strip's row (column) sums: that work spreads over the
// grid instead of leaving one block to read rows x cols / 32 partials. Both in a fixed order.
// The backend gives each tensor entry a buffer of partials_layout(..).end floats, zeroed once,
// at table index n_buffers (after the tensor's table); the kernel leaves its counters at zero
// for the next launch.
struct Partials {
  uint32_t sums = 0, rows = 0, cols = 0;
  bool any() const { return sums || rows || cols; }
};
inline constexpr long long kReduceTile = 32;
// Float offsets: the block counter (an unsigned, 2 floats), then per total kCudaMaxBlocks
// doubles, per row sum rows x ceil(cols / 32) floats, per column sum cols x ceil(rows / 32),
// then (with row or column sums) one unsigned counter per strip of 32 rows and one per strip of
// 32 columns: the tiles of the strip finished so far (the block finishing its last adds it up).
struct PartialsLayout {
  long long sums = 2, rows = 0, cols = 0, strips = 0, end = 0;
};
inline PartialsLayout partials_layout(const Partials& p, long long rows, long long cols) {
  PartialsLayout l;
  const long long tr = (rows + kReduceTile - 1) / kReduceTile, tc = (cols + kReduceTile - 1) / kReduceTile;
  l.rows = l.sums + 2LL * kCudaMaxBlocks * p.sums;
  l.cols = l.rows + (long long)p.rows * rows * tc;
  l.strips = l.cols + (long long)p.cols * cols * tr;
  l.end = l.strips + (p.rows || p.cols ? tr + tc : 0);
  return l;
}

// The C library's math functions host-compiled kernels may call (ir/ops.def's C forms,
// opal_randn's), declared rather than included: in C++, <math.h> brings libstdc++'s <cmath>,
// some 20,000 lines that took a third of a small optimizer's compile (0.24 s of adamw's 0.31 s
// was parsing). The compilers know them as builtins (sqrtf inlines under -fno-math-errno). The
// CPU prelude and the CUDA emulator's shim both start with it.
inline constexpr const char* kCMathDeclarations =
    "extern \"C\" {\n"
    "float sqrtf(float); float expf(float); float logf(float); float powf(float, float); float tanhf(float);\n"
    "float cosf(float); float sinf(float); float fabsf(float); float floorf(float); float fmaxf(float, float); float fminf(float, float);\n"
    "double sqrt(double); double exp(double); double log(double); double pow(double, double); double tanh(double);\n"
    "double cos(double); double sin(double); double fabs(double); double floor(double); double fmax(double, double); double fmin(double, double);\n"
    "}\n";

// The uniform block: t, then max(1, n) hyperparameters (a C array cannot be empty).
inline size_t uniform_slots(size_t n_hparams) { return 1 + (n_hparams == 0 ? 1 : n_hparams); }

// `typedef struct { ... } opal_tensor_t;`
inline std::string tensor_struct_c() {
  std::string s = "typedef struct { ";
#define OPAL_FIELD_TEXT(type, name) s += #type " " #name "; ";
  OPAL_TENSOR_FIELDS(OPAL_FIELD_TEXT)
#undef OPAL_FIELD_TEXT
  return s + "} opal_tensor_t;\n";
}

// `typedef struct { double t; double hp[N]; } opal_uniforms_t;`
inline std::string uniforms_struct_c(size_t n_hparams) {
  return "typedef struct { double t; double hp[" + std::to_string(uniform_slots(n_hparams) - 1) + "]; } opal_uniforms_t;\n";
}

// The body of `float opal_bf16(float x)` given the statements that load the bits of x into an
// unsigned `b` and store `b` back into x (memcpy on the CPU, intrinsics on CUDA).
inline std::string bf16_body_c(const std::string& load_bits, const std::string& store_bits) {
  return "  unsigned int b;\n  " + load_bits + "\n  if (" OPAL_XSTR(OPAL_BF16_IS_NAN(b)) ") return x;\n  b = " OPAL_XSTR(OPAL_BF16_ROUND(b)) ";\n  " +
         store_bits + "\n  return x;\n";
}

// A macro body's text (OPAL_XSTR) with each OPAL_Q replaced by a function qualifier
// ("static inline", "__device__ static inline").
inline std::string qualified_c(const std::string& body, const std::string& qualifier) {
  std::string out;
  for (size_t at = 0;;) {  // OPAL_Q: the qualifier
    size_t q = body.find("OPAL_Q", at);
    out += body.substr(at, q == std::string::npos ? std::string::npos : q - at);
    if (q == std::string::npos) break;
    out += "\n" + qualifier;
    at = q + 6;
  }
  return out + "\n";
}
// The 16-bit conversions and random keys of support/half.h as C text, given the definitions of
// opal_f2u / opal_u2f and the qualifier of every function.
inline std::string half_c(const std::string& bit_casts, const std::string& qualifier) {
  return bit_casts + qualified_c(OPAL_XSTR(OPAL_HALF_FUNCS(OPAL_Q)), qualifier);
}

// The blockwise 8-bit code of support/q8.h as C text: its table as `storage float name[512]`
// ("static const", "__device__ const"), and its functions, which read the table as
// `opal_q8_tab` (the CPU's is the table itself, CUDA's a shared-memory copy).
inline std::string q8_table_c(const std::string& storage, const std::string& name) {
  std::string t = fmt::format("{} float {}[{}] = {{", storage, name, q8::kTable.size());
  for (size_t i = 0; i < q8::kTable.size(); ++i) t += fmt::format("{}{:a}f", i == 0 ? "\n  " : i % 8 ? ", " : ",\n  ", q8::kTable[i]);
  return t + "};\n";
}
inline std::string q8_funcs_c(const std::string& qualifier) { return qualified_c(OPAL_XSTR(OPAL_Q8_FUNCS(OPAL_Q)), qualifier); }

}  // namespace opal::exec
