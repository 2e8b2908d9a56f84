// CUDA target: the same kernel bodies as `extern "C" __global__` kernels, one launch updating
// every tensor of a route. An elementwise kernel (chunkable: full space, no reduction) runs one
// block per chunk of its elements (chunk_size), from a flat list over the tensors (multi-tensor
// apply: no empty blocks, no long tail on the largest tensor); any other is a grid-stride loop
// with one blockIdx.y per tensor. Reductions add up in
// a fixed order, whatever order blocks run in (deterministic run to run): a kernel with row or
// column sums walks 32 x 32 tiles, a block each, summing a tile's rows across lanes (a
// shuffle tree) and its columns across warps (in warp order); totals are per-thread doubles
// summed by a block tree; every block leaves its partials in the tensor's partial-sums buffer
// (exec::Partials), and they are added up in a fixed order: a total by the tensor's last block
// to finish (each thread a fixed stride of the blocks' partials, then a block tree); the row
// (column) sums of a strip of 32 rows (columns) by the block finishing the strip's last tile
// (warp w its tiles w, w + 8, ..., then the warps in order), so that work is spread over the
// grid. A kernel with row or column sums runs a block per tile, up to 1024 (the backend sizes
// the grid). Self-contained: NVRTC needs no headers.
#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "compiler/codegen/targets.h"
#include "support/check.h"
#include "compiler/exec/kernel_abi.h"

namespace opal {

namespace {

// $OPAL_CUDA_MIN_BLOCKS: every chunked kernel's minimum blocks per multiprocessor (0: no
// launch bounds), in place of the measured choice below; for experiments (bench/gpu_tuning.sh).
int min_blocks_override() {
  static const int n = [] {
    const char* v = std::getenv("OPAL_CUDA_MIN_BLOCKS");
    return v && *v ? std::max(0, std::atoi(v)) : -1;
  }();
  return n;
}

class CudaEmitter final : public CEmitter {
 public:
  std::string prelude(size_t n_hparams) const override {
    return exec::tensor_struct_c() + exec::kChunkStructC + exec::uniforms_struct_c(n_hparams) + R"(#define U_hp(k) (U.hp[k])
#define U_t (U.t)
__device__ static inline float opal_bf16(float x) {
)" + exec::bf16_body_c("b = __float_as_uint(x);", "x = __uint_as_float(b);") +
           R"(}
)" +
           exec::half_c(
               "__device__ static inline unsigned int opal_f2u(float x) { return __float_as_uint(x); }\n"
               "__device__ static inline float opal_u2f(unsigned int u) { return __uint_as_float(u); }\n",
               "__device__ static inline") +
           (q8 ? exec::q8_table_c("__device__ const", "opal_q8_values") +
                     fmt::format("__shared__ float opal_q8_tab[{}];\n", ::opal::q8::kTable.size()) + exec::q8_funcs_c("__device__ static inline")
               : std::string()) +
           R"(__device__ static inline int opal_nonfinite(float x) { return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u; }

)" + randn_prelude("__device__ static inline") +
           "\n";
  }

 protected:
  // How many blocks of 256 threads a chunked kernel asks ptxas to fit on a multiprocessor
  // (__launch_bounds__), so that enough loads are in flight: such a kernel is bound by memory,
  // and left alone ptxas gives the program for 16-bit parameters the registers of its heaviest
  // case (a switch over the dtypes, with stochastic rounding: 94 registers for AdamW, 2 blocks).
  // Measured on an H200 over GPT-2's 163M parameters (bench/gpu_notes.md): 5 took AdamW with
  // all-bf16 from 0.92 to 0.60 ms (60% to 97% of the copy bandwidth) and bf16 parameters with
  // f32 state from 0.96 to 0.93 ms; q8 state's kernel (65 registers, 3 blocks) went from 2.81 to
  // 1.71 ms with 8; the f32 program (52 registers, 4 blocks) gained nothing (1.15-1.18 ms with
  // none, 1.16 with 5, 1.21 with 6) and keeps its registers. A q8 kernel of the program for
  // 16-bit parameters takes 5: 8 would spill a kilobyte a thread.
  int min_blocks() const {
    if (!chunk_) return 0;
    if (min_blocks_override() >= 0) return min_blocks_override();
    if (mixed) return 5;
    return q8_kernel_ ? 8 : 0;
  }
  std::string signature(const std::string& name) const override {
    const int n = min_blocks();
    return fmt::format(
        "extern \"C\" __global__ void {}{}(const opal_tensor_t* __restrict__ ts, const opal_chunk_t* __restrict__ chunks, opal_uniforms_t U)",
        n ? fmt::format("__launch_bounds__({}, {}) ", exec::kCudaBlock, n) : "", name);
  }
  // A chunked kernel's block takes the chunk of its index (the tensor and a range of its
  // elements); any other's, the tensor of its blockIdx.y (its loops stride over the grid).
  std::string open_tensor() const override {
    if (chunk_)
      return fmt::format("  const opal_chunk_t C = chunks[blockIdx.x];  // {} elements of one tensor\n  const opal_tensor_t T = ts[C.tensor];\n",
                         chunk_);
    return "  (void)chunks;\n  const opal_tensor_t T = ts[blockIdx.y];\n";
  }
  std::string close_tensor() const override { return ""; }
  // A chunked kernel's elements: [opal_e0, opal_e1) of its tensor's space.
  std::string chunk_range() const {
    return fmt::format("  const long long opal_e0 = (long long)C.chunk * {0}LL, opal_e1 = n_e < opal_e0 + {0}LL ? n_e : opal_e0 + {0}LL;\n", chunk_);
  }
  std::string loop_open(const Kernel& k) const override {
    const char* var = k.domain == Domain::Rows ? "i" : k.domain == Domain::Cols ? "j" : "e";
    const char* bound = k.domain == Domain::Rows ? "rows" : k.domain == Domain::Cols ? "cols" : "n_e";
    std::string s = chunk_ ? chunk_range() + "  for (long long e = opal_e0 + threadIdx.x; e < opal_e1; e += blockDim.x) {\n"
                           : fmt::format(
                                 "  for (long long {0} = (long long)blockIdx.x * blockDim.x + threadIdx.x; {0} < {1}; {0} += (long long)gridDim.x * "
                                 "blockDim.x) {{\n",
                                 var, bound);
    if (k.domain == Domain::Full && k.indexed) s += "    {\n    const long long i = e / cols, j = e % cols;\n";
    return s;
  }
  std::string loop_close(const Kernel& k) const override { return k.domain == Domain::Full && k.indexed ? "    }\n  }\n" : "  }\n"; }
  // One warp per block of B elements, lane l taking elements r * 32 + l (coalesced), each
  // keeping its B / 32 values in registers; a slot's absmax and sign over each of its blocks are
  // warp shuffles (opal_q8_join is order-free: the bytes equal the CPU's).
  std::string q8_index() const override { return "opal_r"; }
  // A warp's lookups in the code are at random: from shared memory, not through the L1 from
  // global memory (bitsandbytes' 8-bit kernels keep their code in shared memory too). Every
  // thread reaches the barrier: it opens the kernel.
  std::string q8_table_load() const override {
    return fmt::format(
        "  for (int opal_i = threadIdx.x; opal_i < {0}; opal_i += blockDim.x) opal_q8_tab[opal_i] = opal_q8_values[opal_i];  // the q8 code\n"
        "  __syncthreads();\n",
        ::opal::q8::kTable.size());
  }
  std::string q8_loop(const Kernel& k, const std::string& body, const std::vector<Q8Store>& stores) const override {
    int B = 0;
    for (const Q8Store& q : stores) B = std::max(B, q.block);
    const int R = B / 32;
    std::string s = fmt::format(
        "  const long long opal_nb = (n_e + {0}) / {1};  // blocks of {1}, a warp each\n"
        "  const int opal_lane = threadIdx.x & 31;\n",
        B - 1, B);
    if (chunk_)  // the chunk's blocks (chunk_size is a multiple of every block size), a warp each
      s += fmt::format(
          "  const long long opal_b0 = (long long)C.chunk * {0}LL, opal_b1 = opal_nb < opal_b0 + {0}LL ? opal_nb : opal_b0 + {0}LL;\n"
          "  for (long long opal_blk = opal_b0 + (threadIdx.x >> 5); opal_blk < opal_b1; opal_blk += blockDim.x >> 5) {{\n",
          chunk_ / B);
    else
      s += "  for (long long opal_blk = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; opal_blk < opal_nb;"
           " opal_blk += ((long long)gridDim.x * blockDim.x) >> 5) {\n";
    for (const Q8Store& q : stores) {
      s += fmt::format("    float opal_q{}[{}];\n", q.codes, R);
      if (q.block == B) s += fmt::format("    const float opal_s{0} = sb{0}[opal_blk];\n    (void)opal_s{0};\n", q.scales);
    }
    s += fmt::format("    #pragma unroll\n    for (int opal_r = 0; opal_r < {}; ++opal_r) {{\n", R);
    s += fmt::format("    const long long e = opal_blk * {} + opal_r * 32 + opal_lane;\n", B);
    for (const Q8Store& q : stores) s += fmt::format("    opal_q{}[opal_r] = 0.0f;\n", q.codes);
    s += "    if (e < n_e) {\n";
    if (k.indexed) s += "    const long long i = e / cols, j = e % cols;\n";
    s += body + "    }\n    }\n";
    for (const Q8Store& q : stores) {
      const int r = q.block / 32;                                                                   // a warp's values per block of this slot
      if (!q.guard.empty()) s += fmt::format("    if ({}) {{  // a conditional write\n", q.guard);  // uniform: the whole warp
      s += fmt::format(
          "    #pragma unroll\n"
          "    for (int opal_s = 0; opal_s < {0}; ++opal_s) {{  // sb{1}'s blocks of {2}\n"
          "      unsigned int opal_m = 0u;\n      int opal_neg = 0;\n"
          "      #pragma unroll\n"
          "      for (int opal_r = opal_s * {3}; opal_r < (opal_s + 1) * {3}; ++opal_r) {{\n"
          "        opal_m = opal_q8_join(opal_m, opal_q8_mag(opal_q{4}[opal_r]));\n        opal_neg |= opal_q{4}[opal_r] < 0.0f;\n      }}\n"
          "      for (int opal_o = 16; opal_o > 0; opal_o >>= 1) {{\n"
          "        opal_m = opal_q8_join(opal_m, __shfl_xor_sync(0xffffffffu, opal_m, opal_o));\n"
          "        opal_neg |= __shfl_xor_sync(0xffffffffu, opal_neg, opal_o);\n      }}\n"
          "      const long long opal_sb = opal_blk * {0} + opal_s;\n"
          "      const float opal_a = opal_u2f(opal_m), opal_inv = opal_q8_inv(opal_a);\n"
          "      if (opal_sb * {2} < n_e) {{\n"
          "        #pragma unroll\n"
          "        for (int opal_r = opal_s * {3}; opal_r < (opal_s + 1) * {3}; ++opal_r) {{\n"
          "          const long long opal_e = opal_blk * {5} + opal_r * 32 + opal_lane;\n"
          "          if (opal_e < n_e) sb{4}[opal_e] = opal_q8_enc(opal_q{4}[opal_r], opal_inv, opal_neg);\n        }}\n"
          "        if (opal_lane == 0) sb{6}[opal_sb] = opal_neg ? -opal_a : opal_a;\n      }}\n    }}\n",
          B / q.block, q.codes, q.block, r, q.codes, B, q.scales);
      if (!q.guard.empty()) s += "    }\n";
    }
    return s + "  }\n";
  }
  std::string restrict_kw() const override { return "__restrict__"; }
  std::string merge_flags() const override { return "  if (opal_chk) atomicOr(T.chk, opal_chk);\n"; }
  // (the tiled loop's per-element row value and per-thread column value)
  std::string accumulate(size_t buf, bool rows, const std::string& val) const override {
    return fmt::format("opal_{}{} += {};", rows ? "rv" : "cv", buf, val);
  }
  std::string accumulate_total(const std::string& acc, const std::string&, const std::string& val) const override {
    return fmt::format("{} += (double){};", acc, val);
  }

  // A chunked kernel's loop moving 4 elements of each buffer at a time, where every buffer is
  // aligned for it: f32 buffers by 16-byte loads and stores (float4), 16-bit ones (bf16 and f16
  // parameters, gradients and states) by 8-byte ones (uint2). Each thread takes 4 consecutive
  // elements (ILP 4), loads them into registers, runs the body on each from there, and stores
  // them back. The plain loop takes the chunk's last elements short of 4, or all of them where a
  // pointer is not aligned (a view into a larger buffer): the body is emitted twice, not three
  // times (NVRTC's time grows with it). (8 elements a thread where every buffer is 16-bit, by
  // 16-byte loads, was no faster on an H200: all-bf16 AdamW took 1.24 ms with no launch bounds
  // and 0.64 with 3 blocks, against 0.60 for this loop with 5; bench/gpu_notes.md.)
  std::string vector_loop(const Kernel& k, const std::string& body) const {
    auto has = [](const std::vector<size_t>& v, size_t b) { return std::find(v.begin(), v.end(), b) != v.end(); };
    std::string in_regs = body;
    for (size_t b : vec_.all) {
      const std::string from = fmt::format("sb{}[e]", b), to = fmt::format("opal_a{}[opal_l]", b);
      for (size_t at = in_regs.find(from); at != std::string::npos; at = in_regs.find(from, at + to.size())) in_regs.replace(at, from.size(), to);
    }
    std::string wide, narrow;  // the pointers' bits, f32 and 16-bit
    for (size_t b : vec_.all) {
      std::string& to = has(vec_.half, b) ? narrow : wide;
      to += fmt::format("{}(unsigned long long)sb{}", to.empty() ? "" : " | ", b);
    }
    std::string aligned = wide.empty() ? "" : fmt::format("(({}) & 15) == 0", wide);
    if (!narrow.empty()) aligned += fmt::format("{}(({}) & 7) == 0", aligned.empty() ? "" : " && ", narrow);
    // device memory (the backend refuses any other): global loads, not generic ones, although the
    // alignment test takes the pointers' bits
    std::string s;
    for (size_t b : vec_.all) s += fmt::format("  __builtin_assume(__isGlobal(sb{}));\n", b);
    s += chunk_range();
    s += fmt::format(
        "  long long opal_plain = opal_e0;  // where the plain loop starts\n"
        "  if ({}) {{  // 4 elements a load and a store, up to the chunk's last multiple of 4\n"
        "  const long long opal_v1 = opal_e0 + ((opal_e1 - opal_e0) & ~3LL);\n"
        "  for (long long opal_q = opal_e0 + 4LL * threadIdx.x; opal_q < opal_v1; opal_q += 4LL * blockDim.x) {{\n",
        aligned);
    for (size_t b : vec_.all) {
      const bool half = has(vec_.half, b);
      if (!has(vec_.load, b)) {
        s += fmt::format("    {} opal_a{}[4];\n", half ? "unsigned short" : "float", b);
        continue;
      }
      const char* type = half ? "uint2" : "float4";
      const std::string at = fmt::format("(const {}*)(sb{} + opal_q)", type, b);
      s += fmt::format("    const {} opal_l{} = {};\n", type, b, has(vec_.store, b) ? "*" + at : "__ldg(" + at + ")");
      if (half)
        s += fmt::format(
            "    unsigned short opal_a{0}[4] = {{(unsigned short)opal_l{0}.x, (unsigned short)(opal_l{0}.x >> 16), (unsigned short)opal_l{0}.y, "
            "(unsigned short)(opal_l{0}.y >> 16)}};\n",
            b);
      else s += fmt::format("    float opal_a{0}[4] = {{opal_l{0}.x, opal_l{0}.y, opal_l{0}.z, opal_l{0}.w}};\n", b);
    }
    s += "    #pragma unroll\n    for (int opal_l = 0; opal_l < 4; ++opal_l) {\n    const long long e = opal_q + opal_l;\n    (void)e;\n";
    s += in_regs + "    }\n";
    for (size_t b : vec_.store) {
      if (has(vec_.half, b))
        s += fmt::format(
            "    *(uint2*)(sb{0} + opal_q) = make_uint2((unsigned)opal_a{0}[0] | (unsigned)opal_a{0}[1] << 16, (unsigned)opal_a{0}[2] | "
            "(unsigned)opal_a{0}[3] << 16);\n",
            b);
      else s += fmt::format("    *(float4*)(sb{0} + opal_q) = make_float4(opal_a{0}[0], opal_a{0}[1], opal_a{0}[2], opal_a{0}[3]);\n", b);
    }
    s += "  }\n  opal_plain = opal_v1;\n  }\n";
    // (not unrolled: it is the rare path, and unrolled it would be the larger part of the code)
    return s + "  #pragma unroll 1\n  for (long long e = opal_plain + threadIdx.x; e < opal_e1; e += blockDim.x) {\n" + body + "  }\n";
  }

  // Where a kernel's partial sums start: totals, then row sums, then column sums (exec::partials_layout).
  std::string partial_offsets() const {
    exec::Partials n;
    for (const Reduction& r : reductions_) (r.op == ir::Op::Sum ? n.sums : r.op == ir::Op::RowSum ? n.rows : n.cols)++;
    return fmt::format(
        "  const long long opal_tr = (rows + {0}) / {1}, opal_tc = (cols + {0}) / {1};  // tiles\n"
        "  const long long opal_prow = {2}, opal_pcol = opal_prow + {3}LL * rows * opal_tc, opal_pstrip = opal_pcol + {4}LL * cols * opal_tr;\n"
        "  (void)opal_tr; (void)opal_pcol; (void)opal_pstrip;\n",
        exec::kReduceTile - 1, exec::kReduceTile, exec::partials_layout(n, 0, 0).rows, n.rows, n.cols);
  }
  // The reduction's index among those of its kind.
  size_t nth(size_t k) const {
    size_t i = 0;
    for (size_t q = 0; q < k; ++q) i += reductions_[q].op == reductions_[k].op;
    return i;
  }

  std::string loop(const Kernel& k, const std::string& body) const override {
    bool tiled = false;
    for (const Reduction& r : reductions_) tiled = tiled || r.op != ir::Op::Sum;
    if (!tiled) return vec_.all.empty() ? loop_open(k) + body + loop_close(k) : vector_loop(k, body);
    OPAL_CHECK(k.domain == Domain::Full, "row or column sums outside the full space");
    constexpr int warps = exec::kCudaBlock / 32, per_warp = int(exec::kReduceTile) / warps;
    std::string s = fmt::format("  {{  // tiles of 32 x 32: lane l takes column l, warp w rows w, w + {0}, ...\n  float* opal_part = T.buf[{1}];\n",
                                warps, table_size_);
    s += partial_offsets();
    s += "  const int opal_lane = threadIdx.x & 31, opal_warp = threadIdx.x >> 5;\n";
    for (const Reduction& r : reductions_)
      if (r.op == ir::Op::ColSum) s += fmt::format("  __shared__ float opal_cs{}[{}];\n", r.buf, exec::kCudaBlock);
    s += "  for (long long opal_t = blockIdx.x; opal_t < opal_tr * opal_tc; opal_t += gridDim.x) {\n";
    s += "    const long long opal_r0 = (opal_t / opal_tc) * 32, opal_c0 = (opal_t % opal_tc) * 32;\n";
    s += "    const long long j = opal_c0 + opal_lane;\n";
    for (const Reduction& r : reductions_)
      if (r.op == ir::Op::ColSum) s += fmt::format("    float opal_cv{} = 0.0f;\n", r.buf);
    s += fmt::format("    for (int opal_k = 0; opal_k < {}; ++opal_k) {{\n      const long long i = opal_r0 + opal_warp + {} * opal_k;\n", per_warp,
                     warps);
    for (const Reduction& r : reductions_)
      if (r.op == ir::Op::RowSum) s += fmt::format("      float opal_rv{} = 0.0f;\n", r.buf);
    s += "      if (i < rows && j < cols) {\n      const long long e = i * cols + j;\n      (void)e;\n" + body + "      }\n";
    for (size_t q = 0; q < reductions_.size(); ++q) {
      const Reduction& r = reductions_[q];
      if (r.op != ir::Op::RowSum) continue;
      s += fmt::format(
          "      for (int opal_o = 16; opal_o > 0; opal_o >>= 1) opal_rv{0} += __shfl_xor_sync(0xffffffffu, opal_rv{0}, opal_o);\n"
          "      if (opal_lane == 0 && i < rows) opal_part[opal_prow + {1}LL * rows * opal_tc + (opal_c0 / 32) * rows + i] = opal_rv{0};\n",
          r.buf, nth(q));
    }
    s += "    }\n";
    bool cols = false;
    for (const Reduction& r : reductions_)
      if (r.op == ir::Op::ColSum) s += fmt::format("    opal_cs{0}[threadIdx.x] = opal_cv{0};\n", r.buf), cols = true;
    if (cols) {
      s += "    __syncthreads();\n";
      for (size_t q = 0; q < reductions_.size(); ++q) {
        const Reduction& r = reductions_[q];
        if (r.op != ir::Op::ColSum) continue;
        s += fmt::format(
            "    if (opal_warp == 0 && j < cols) {{\n      float opal_s = 0.0f;\n"
            "      for (int opal_w = 0; opal_w < {2}; ++opal_w) opal_s += opal_cs{0}[opal_w * 32 + opal_lane];\n"
            "      opal_part[opal_pcol + {1}LL * cols * opal_tr + (opal_r0 / 32) * cols + j] = opal_s;\n    }}\n",
            r.buf, nth(q), warps);
      }
      s += "    __syncthreads();\n";
    }
    return s + finish_strips() + "  }\n  }\n";
  }

  // After a tile: its row strip and its column strip count one more finished tile; the block
  // finishing a strip's last tile adds up its 32 row (column) sums over the strip's tiles, warp
  // w taking tiles w, w + 8, ... and warp 0 adding the warps' sums in warp order (a fixed order,
  // whichever block it is), and sets the counter back to zero for the next launch.
  std::string finish_strips() const {
    constexpr int warps = exec::kCudaBlock / 32;
    bool rows = false, cols = false;
    for (const Reduction& r : reductions_) {
      rows = rows || r.op == ir::Op::RowSum;
      cols = cols || r.op == ir::Op::ColSum;
    }
    std::string s = fmt::format(
        "    {{  // this tile's strips\n"
        "    __shared__ int opal_fin[2];\n    __shared__ float opal_fs[{}];\n"
        "    unsigned* opal_strip = (unsigned*)(opal_part + opal_pstrip);\n"
        "    const volatile float* opal_v = opal_part;\n"
        "    __threadfence();\n    __syncthreads();\n"
        "    if (threadIdx.x == 0) {{\n",
        exec::kCudaBlock);
    if (rows) s += "      opal_fin[0] = atomicAdd(&opal_strip[opal_r0 / 32], 1u) == (unsigned)(opal_tc - 1);\n";
    if (cols) s += "      opal_fin[1] = atomicAdd(&opal_strip[opal_tr + opal_c0 / 32], 1u) == (unsigned)(opal_tr - 1);\n";
    s += "    }\n    __syncthreads();\n";
    auto strip = [&](bool by_rows) {
      // by rows: lane l adds row r0 + l over the strip's tiles (columns); else column c0 + l
      const char* fin = by_rows ? "opal_fin[0]" : "opal_fin[1]";
      const char* at = by_rows ? "opal_r0" : "opal_c0";
      const char* n = by_rows ? "rows" : "cols";
      const char* tiles = by_rows ? "opal_tc" : "opal_tr";
      std::string t = fmt::format("    if ({}) {{\n      __threadfence();\n      const long long opal_x = {} + opal_lane;\n", fin, at);
      for (size_t q = 0; q < reductions_.size(); ++q) {
        const Reduction& r = reductions_[q];
        if (r.op != (by_rows ? ir::Op::RowSum : ir::Op::ColSum)) continue;
        t += fmt::format(
            "      {{\n        float opal_s = 0.0f;\n"
            "        if (opal_x < {0})\n"
            "          for (long long opal_k = opal_warp; opal_k < {1}; opal_k += {2}) opal_s += opal_v[{3} + {4}LL * {0} * {1} + opal_k * {0} + "
            "opal_x];\n"
            "        opal_fs[threadIdx.x] = opal_s;\n        __syncthreads();\n"
            "        if (opal_warp == 0 && opal_x < {0}) {{\n          float opal_w = 0.0f;\n"
            "          for (int opal_u = 0; opal_u < {2}; ++opal_u) opal_w += opal_fs[opal_u * 32 + opal_lane];\n"
            "          sb{5}[opal_x] = opal_w;\n        }}\n        __syncthreads();\n      }}\n",
            n, tiles, warps, by_rows ? "opal_prow" : "opal_pcol", nth(q), r.buf);
      }
      return t + fmt::format("      if (threadIdx.x == 0) opal_strip[{}] = 0u;  // for the next launch\n    }}\n",
                             by_rows ? "opal_r0 / 32" : "opal_tr + opal_c0 / 32");
    };
    if (rows) s += strip(true);
    if (cols) s += strip(false);
    return s + "    }\n";
  }

  // The totals: each block's (a block tree of its threads' doubles), then the tensor's last
  // block adds up the blocks' in a fixed order. (Row and column sums finish per strip: finish_strips.)
  std::string finish_reductions() const override {
    bool totals = false;
    for (const Reduction& r : reductions_) totals = totals || r.op == ir::Op::Sum;
    if (!totals) return "";
    std::string s =
        fmt::format("  {{  // the totals, added up by the tensor's last block in a fixed order\n  float* opal_pe = T.buf[{}];\n", table_size_);
    s += fmt::format("  __shared__ double opal_red[{}];\n  __shared__ int opal_last;\n  double* opal_ps = (double*)(opal_pe + 2);\n",
                     exec::kCudaBlock);
    for (size_t q = 0; q < reductions_.size(); ++q) {
      const Reduction& r = reductions_[q];
      if (r.op != ir::Op::Sum) continue;
      s += fmt::format(
          "  opal_red[threadIdx.x] = {0};\n  __syncthreads();\n"
          "  for (int opal_o = {1}; opal_o > 0; opal_o >>= 1) {{\n"
          "    if (threadIdx.x < opal_o) opal_red[threadIdx.x] += opal_red[threadIdx.x + opal_o];\n    __syncthreads();\n  }}\n"
          "  if (threadIdx.x == 0) opal_ps[{2} * {3} + blockIdx.x] = opal_red[0];\n  __syncthreads();\n",
          r.acc, exec::kCudaBlock / 2, nth(q), exec::kCudaMaxBlocks);
    }
    s += "  __threadfence();\n  __syncthreads();\n"
         "  if (threadIdx.x == 0) opal_last = atomicAdd((unsigned*)opal_pe, 1u) == gridDim.x - 1;\n"
         "  __syncthreads();\n"
         "  if (opal_last) {\n    __threadfence();\n    const volatile double* opal_vs = opal_ps;\n";
    for (size_t q = 0; q < reductions_.size(); ++q) {
      const Reduction& r = reductions_[q];
      if (r.op != ir::Op::Sum) continue;
      // every thread adds the blocks' partials of a fixed stride, then a fixed tree
      s += fmt::format(
          "    {{\n      double opal_s = 0.0;\n"
          "      for (unsigned opal_b = threadIdx.x; opal_b < gridDim.x; opal_b += blockDim.x) opal_s += opal_vs[{1} * {2} + opal_b];\n"
          "      opal_red[threadIdx.x] = opal_s;\n      __syncthreads();\n"
          "      for (int opal_o = {3}; opal_o > 0; opal_o >>= 1) {{\n"
          "        if (threadIdx.x < opal_o) opal_red[threadIdx.x] += opal_red[threadIdx.x + opal_o];\n        __syncthreads();\n      }}\n"
          "      if (threadIdx.x == 0) sb{0}[0] = (float)opal_red[0];\n      __syncthreads();\n    }}\n",
          r.buf, nth(q), exec::kCudaMaxBlocks, exec::kCudaBlock / 2);
    }
    s += "    if (threadIdx.x == 0) *(volatile unsigned*)opal_pe = 0u;  // for the next launch\n  }\n  }\n";
    return s;
  }
};

}  // namespace

std::unique_ptr<CEmitter> make_cuda_emitter() { return std::make_unique<CudaEmitter>(); }

}  // namespace opal
