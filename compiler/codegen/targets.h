// The emitter's target interface (private to codegen): the shared CEmitter renders values and
// statements; a target subclass renders signatures, loops, reductions and the prelude.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "compiler/codegen/c_emitter.h"

namespace opal {

class CEmitter {
 public:
  virtual ~CEmitter() = default;
  void kernel(std::string& out, const Plan& p, size_t route, size_t k) const;
  virtual std::string prelude(size_t n_hparams) const = 0;
  // Checked kernels: each probe (ir::Probe) a kernel computes or reads is tested for NaN/Inf,
  // into a per-thread flag word `opal_chk` merged into the tensor's `*T.chk` after the loop.
  bool checked = false;
  // The mixed program: every kernel touching w or g has one loop per storage of each (f32, bf16,
  // f16: exec::DType), picked per tensor by `T.dt`, loading into f32 and rounding stores
  // (bf16 stochastically where T.dt says).
  bool mixed = false;
  // Some slot is stored as q8: the prelude defines support/q8.h's table and functions.
  bool q8 = false;
  // Some store is bf16 (a slot, or w in the mixed program): a target may define what staging
  // them needs (stages_bf16).
  bool bf16 = false;

 protected:
  // A q8 slot a kernel stores: its codes' and scales' buffers and its block size.
  struct Q8Store {
    size_t codes = 0, scales = 0;
    int block = 0;
    // A write under a uniform condition (`every(N)`, `when(c)`): the blocks are quantized only
    // when it holds, so a step that skips the write keeps the bytes (quantizing a dequantized
    // block again is not exact: the signed code has no -1).
    std::string guard;
  };
  virtual std::string signature(const std::string& name) const = 0;
  virtual std::string open_tensor() const = 0;  // binds `T` (and opens the per-tensor loop)
  virtual std::string close_tensor() const = 0;
  virtual std::string loop_open(const Kernel& k) const = 0;
  virtual std::string loop_close(const Kernel& k) const = 0;
  // The loop over a kernel's space around its body; by default loop_open + body + loop_close.
  virtual std::string loop(const Kernel& k, const std::string& body) const { return loop_open(k) + body + loop_close(k); }
  // The loop of a kernel storing q8 slots (full space): over blocks of the largest block size,
  // each element's value for slot `codes` kept in `opal_q<codes>[q8_index()]`, then each slot's
  // blocks quantized (support/q8.h), its scales at element / block. A slot whose blocks are
  // the loop's reads its scale once per block, as `opal_s<scales>`.
  virtual std::string q8_loop(const Kernel& k, const std::string& body, const std::vector<Q8Store>& stores) const = 0;
  virtual std::string q8_index() const = 0;
  // Staged bf16 stores. A target converting bf16 faster a vector at a time says so here; then
  // the flat, parallel loops of the full space without reductions get staged_loop() with two
  // bodies: `body` as loop() takes it, and `staged_body`, which writes each value it would
  // store as bf16 (unconditionally) into `opal_h<b>[e - opal_c]` instead, e running over a
  // chunk that starts at opal_c. `staged`: those buffers b (16-bit words), each once, with the
  // stream of their stochastic rounding (empty: to nearest). The target stores the chunk,
  // rounding as opal_to_bf16 does, bit for bit.
  struct StagedStore {
    size_t buf = 0;
    std::string stream;  // the id opal_to_bf16 rounds stochastically with (`T.id`), or empty
  };
  virtual bool stages_bf16() const { return false; }
  virtual std::string staged_loop(const Kernel& k, const std::string& body, const std::string& staged_body,
                                  const std::vector<StagedStore>& staged) const {
    (void)staged_body, (void)staged;
    return loop(k, body);
  }
  // Opens a kernel that reads q8 slots: where the target keeps its own copy of the code's table
  // (`opal_q8_tab`), it loads it here.
  virtual std::string q8_table_load() const { return ""; }
  virtual std::string restrict_kw() const = 0;
  // A kernel's reductions (set by kernel() before it renders the loops): the output buffer of
  // each, its kind, and the per-thread accumulator of a total (`acc<value>`).
  struct Reduction {
    size_t buf = 0;
    ir::Op op = ir::Op::Sum;
    std::string acc;
  };
  mutable std::vector<Reduction> reductions_;
  mutable size_t table_size_ = 0;   // the route's buffer table: a device's partial sums follow it
  mutable bool q8_kernel_ = false;  // the kernel being rendered reads or writes a q8 slot
  mutable long long chunk_ = 0;     // chunk_size (plan.h): a device launches the kernel as chunks of this many elements; 0: not
  // Of a chunked kernel without row or column indices, for the loop being rendered: its
  // full-size buffers (read as `sb<b>[e]`), those it loads (reads, or writes conditionally),
  // those it stores, and those of 16-bit elements (bf16, f16; the others are f32).
  struct VectorBuffers {
    std::vector<size_t> all, load, store, half;
  };
  mutable VectorBuffers vec_;
  // Adds `val` to row i (`rows`) or column j of buffer `buf` (RowSum, ColSum).
  virtual std::string accumulate(size_t buf, bool rows, const std::string& val) const = 0;
  virtual std::string accumulate_total(const std::string& acc, const std::string& buf, const std::string& val) const = 0;
  // After the loops: the totals (and where a target needs it, row and column sums) into their
  // buffers.
  virtual std::string finish_reductions() const = 0;
  virtual std::string merge_flags() const = 0;  // after the loop: `opal_chk` into *T.chk

  static std::string literal(double v);
  static std::string comment(const ir::Graph& g, ir::ValueId v);
  std::string index(Domain d, ir::Shape s, bool indexed) const;
  std::string scalar_expr(const ir::Graph& g, ir::ValueId v, const Plan& p) const;
  std::string element_expr(const ir::Graph& g, ir::ValueId v) const;
  std::string operand(const ir::Graph& g, ir::ValueId v) const;
};

// The counter-based normal generator both targets define (`qualifier`: "static inline" or
// "__device__ static inline"): opal_randn(key) = Box-Muller of two 24-bit uniforms taken from
// the key's bits; kernels key it by opal_key(tensor id, t, element) (support/half.h). Same
// numbers on every backend; every tensor draws its own noise.
std::string randn_prelude(const std::string& qualifier);

std::unique_ptr<CEmitter> make_cpu_emitter();
std::unique_ptr<CEmitter> make_cuda_emitter();

}  // namespace opal
