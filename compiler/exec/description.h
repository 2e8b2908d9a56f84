// The executable description: everything the runtime needs to run a compiled optimizer, as
// plain data. The compiler produces it (compiler/exec/describe.h); the runtime consumes it and
// includes nothing else of the compiler, and nothing of the language. It holds:
//  - the routing table: selectors (name patterns, shape classes) to routes, with delegation;
//  - per route: its state slots (extent, initial value), scratch buffers, the ordered schedule
//    of kernel launches and typed library calls (buffer-table indices, no packed attributes),
//    and the host scalar program (guards, library-call scalars) as a flat instruction list,
//    run once per tensor and step with no recursion and no allocation.
// `print` shows it (`opal ir --after describe`); `verify` checks its invariants.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "compiler/exec/kernel_abi.h"
#include "support/interval.h"

namespace opal::exec {

// The extent of a buffer or an iteration space, symbolic in the parameter's rows x cols (the
// order of ir::Shape): one value, one per row [m], one per column [n], every element [m,n], or
// a square: left [m,m], right [n,n], small [k,k] with k = min(m,n).
enum class Extent : uint8_t { Scalar, Rows, Cols, Full, Left, Right, Small };
const char* extent_name(Extent e);
bool is_square(Extent e);
// The one shape-to-size rule: rows and columns of an extent for a rows x cols parameter (inline:
// the CUDA plugin shares it).
struct Dims {
  long long rows = 1, cols = 1;
  long long count() const { return rows * cols; }
};
inline Dims dims_of(Extent e, long long rows, long long cols) {
  switch (e) {
    case Extent::Full: return {rows, cols};
    case Extent::Left: return {rows, rows};
    case Extent::Right: return {cols, cols};
    case Extent::Small: return {rows < cols ? rows : cols, rows < cols ? rows : cols};
    case Extent::Rows: return {rows, 1};
    case Extent::Cols: return {cols, 1};
    case Extent::Scalar: return {1, 1};
  }
  return {1, 1};
}
// How a parameter of rank >= 2 is seen as matrices (a vector or scalar is always one 1 x n):
//  First:   one matrix, dim 0 by the rest (the default; torch's (out, in * kh * kw));
//  Last:    one matrix, the leading dims by the last;
//  Batch:   one matrix per index of the leading dims, each the last two dims (torch's Adafactor);
//  Largest: one matrix per index of the other dims, each the two largest axes in their order
//           (optax's factored dims: a stable argsort, ties to the later axis); where those are
//           not the last two, the runtime steps an axis-permuted copy.
enum class View : uint8_t { First, Last, Batch, Largest };
const char* view_name(View v);
struct TensorView {
  long long batch = 1, rows = 1, cols = 1;
  std::vector<int64_t> batch_shape;  // the dims that index the matrices (empty: one matrix)
  std::vector<int> perm;             // the axis order stepped, when not the identity
  long long numel() const { return batch * rows * cols; }
};
TensorView tensor_view(const std::vector<int64_t>& shape, View v);
// The one-matrix summary of a view (rows stacked over the batch), for printing and sizes.
Dims matrix_view(const std::vector<int64_t>& shape, View v);

// What a parameter is in its model, as the host says (opal.torch infers it from the module that
// holds the parameter): routes can select by it (`embedding, head: adamw(...)`). None: no role
// known, or none of these.
enum class ParamRole : uint8_t { None, Embedding, Head, Norm, Bias, Conv };
inline constexpr ParamRole kParamRoles[] = {ParamRole::Embedding, ParamRole::Head, ParamRole::Norm, ParamRole::Bias, ParamRole::Conv};
const char* role_name(ParamRole r);  // "embedding", ...; "" for None
bool role_by_name(const std::string& name, ParamRole& out);
// "`embeding` is not a role (did you mean `embedding`?); the roles are embedding, head, ..."
std::string unknown_role(const std::string& given);

// ---- The host scalar program ----------------------------------------------------------------
// Instruction i writes register i. Operands name earlier registers. Inputs: the step count t,
// hyperparameter `index`, the parameter's rows, cols and numel.
enum class ScalarOp : uint8_t {
  Const,
  Step,
  HParam,
  Rows,
  Cols,
  Numel,
  Rank,  // the parameter's number of dimensions (route conditions only)
  Neg,
  Not,
  Sqrt,
  Abs,
  Sign,
  Exp,
  Log,
  Cos,
  Sin,
  Tanh,
  Floor,
  Bf16,
  Add,
  Sub,
  Mul,
  Div,
  Pow,
  Min,
  Max,
  Mod,
  Lt,
  Le,
  Gt,
  Ge,
  Eq,
  Ne,
  And,
  Or,
  Select,
};
const char* scalar_op_name(ScalarOp op);
int scalar_arity(ScalarOp op);  // register operands (0 for the inputs and Const)
// The host meaning of an arithmetic op (Neg .. Select) on evaluated operands: the one host
// evaluator, also used by constant folding.
double eval_scalar(ScalarOp op, const double* a);

struct ScalarInstr {
  ScalarOp op = ScalarOp::Const;
  uint32_t a = 0, b = 0, c = 0;  // operand registers; HParam: a is the index
  double imm = 0;                // Const: the value
};
struct ScalarProgram {
  std::vector<ScalarInstr> code;
  size_t size() const { return code.size(); }
  // Fills regs[0 .. size()).
  // numel: the whole parameter's elements (rows * cols unless a batched view has many matrices).
  void run(double t, const double* hparams, double rows, double cols, double* regs, double rank = 0, double numel = -1) const;
};

// A conjunction over registers: holds when each register is nonzero (zero where negated).
struct GuardTerm {
  uint32_t reg = 0;
  bool negated = false;
};
struct Guard {
  std::vector<GuardTerm> all;
  bool always() const { return all.empty(); }
  bool holds(const double* regs) const {
    for (const GuardTerm& g : all)
      if ((regs[g.reg] != 0) == g.negated) return false;
    return true;
  }
};

// ---- Buffers --------------------------------------------------------------------------------
// A tensor's buffer table (the kernel ABI): 0 the parameter w, 1 its gradient g, then the
// route's state slots, then its scratch buffers.
inline constexpr uint32_t kParamBuffer = 0, kGradBuffer = 1, kFirstSlotBuffer = 2;

enum class Init : uint8_t { Zeros, Identity };
struct Slot {
  std::string name;  // "<stage>.<state>", e.g. "adapt.v": the checkpoint key
  Extent extent = Extent::Full;
  Init init = Init::Zeros;
  DType dtype = DType::F32;  // its storage (`state m: bf16`): the kernels widen loads, round stores
  // A q8 slot (`state m: q8`): its codes (dtype Q8, one byte per element) and its scales (F32,
  // one per block, named q8::scales_name of the codes' slot) both say the block's elements.
  uint32_t block = 0;
  bool is_scales() const { return block != 0 && dtype != DType::Q8; }
};
// A slot's elements per matrix: its extent's, or one per block for a q8 slot's scales.
inline long long slot_count(const Slot& s, long long rows, long long cols) {
  const long long n = dims_of(s.extent, rows, cols).count();
  return s.is_scales() ? (n + s.block - 1) / s.block : n;
}

// ---- The schedule ---------------------------------------------------------------------------
struct KernelLaunch {
  uint32_t symbol = 0;           // index into Description::symbols
  Extent domain = Extent::Full;  // iteration space (grid sizing)
  Guard guard;
  std::vector<uint32_t> zeroed;  // buffers the kernel accumulates into, zeroed before it runs
  // Its totals of full-size values (scalar buffers): under a view with many matrices, the runtime
  // adds each up over the matrices after the launch, so they span the whole tensor.
  std::vector<uint32_t> whole_sums;
  // The buffers (table indices) it reads and writes: what it moves through memory (exec/cost.h).
  std::vector<uint32_t> reads, writes;
  Partials partials;   // its reductions: where a device backend adds up in a fixed order
  uint32_t chunk = 0;  // elementwise over the full space: a device may launch it as chunks of this many elements (KernelChunk); 0: not
};

// Library calls, one type per operation.
struct Gemm {  // op(a) op(b)
  bool ta = false, tb = false, bf16 = false;
};
struct Gram {  // X X^T on the wide side (X^T X when tall): small [k,k]
  bool bf16 = false;
};
struct GramApply {  // (B small, X full): B X when wide, X B when tall
  bool bf16 = false;
};
struct Eigh {  // eigenvectors (columns) of a symmetric matrix, canonical (runtime/cpu/linalg.h)
  bool descending = false;
};
struct InvRoot {  // (S, eps): V f(lambda) V^T, f = (|l|^(1/p) + eps)^-1, or (max(l,0) + eps)^(-1/p) damped
  int p = 2;
  bool damped = false;
};
struct Qr {};
struct Diag {};
struct Argsort {
  bool descending = false;
};
struct PermuteRows {};
struct PermuteCols {};
struct TriSolveLeft {};   // (Q upper, X): Q^-T X
struct TriSolveRight {};  // (X, Q upper): X Q^-1
struct NormLowerBound {};
// Newton-Schulz's quintic steps on a normalized X (full): per step (a, b, c), on the wide
// orientation (X^T when tall), A = X X^T, B = c A A + b A, X = B X + a X, each product with its
// scalars in the GEMM's epilogue (alpha, beta) and, bf16, rounded once when written (operands
// are bf16 already: X comes rounded, A and B are written rounded).
struct NsSteps {
  std::vector<std::array<double, 3>> coeffs;
  bool bf16 = false;
};
using CallOp = std::variant<Gemm, Gram, GramApply, Eigh, InvRoot, Qr, Diag, Argsort, PermuteRows, PermuteCols, TriSolveLeft, TriSolveRight,
                            NormLowerBound, NsSteps>;
const char* call_name(const CallOp& op);

// An operand: a buffer of the table, or a scalar register.
struct Operand {
  Extent extent = Extent::Full;
  int32_t buffer = -1;  // table index, or -1 for a scalar
  int32_t reg = -1;     // scalar register, when a scalar
};
struct LibraryCall {
  CallOp op;
  std::vector<Operand> in;
  uint32_t out = 0;  // table index
  Extent out_extent = Extent::Full;
  Guard guard;
};

struct ScheduleEntry {
  bool is_call = false;
  uint32_t index = 0;  // into kernels or calls
};

// A tensor's share of global sum `global`, left in scratch buffer `buffer` (table index) by the
// first phase of the step.
struct GlobalShare {
  uint32_t global = 0;
  uint32_t buffer = 0;
  // The share reads a per-matrix value (a total of row or column statistics, a scalar state, a
  // library call): under a view with many matrices, each matrix adds its own. Otherwise every
  // matrix holds the same value and the tensor adds it once.
  bool per_matrix = false;
};

// How a route steps a parameter whose rows are split across processes (FSDP's dim-0 shards;
// the runtime's Optimizer::step_phase). schedule[0, local_end) runs on each process's own rows
// (the local phase); schedule[local_end, whole_end) on the whole matrix, on the parameter's
// owner only, after the host gathers `gather` there (the whole phase); schedule[whole_end, end)
// on each process's rows again, after the host sends `scatter` back (the finish phase). A
// route whose every stage is elementwise has no whole phase (local_end == whole_end == end).
struct ShardPhases {
  uint32_t local_end = 0, whole_end = 0;
  // Table buffers: gathered, the whole phase's inputs from the local one (w, g, scratch);
  // scattered, the finish phase's inputs from the whole one (its rows to each process where the
  // extent is split by rows, full or one per row; else the same value to every process).
  std::vector<uint32_t> gather, scatter;
  // Per slot: kept whole by the owner (the whole phase touches it), else split by rows.
  std::vector<char> owner_slot;
  bool has_whole() const { return local_end < whole_end; }
};
// Whether an extent is split by rows when a parameter's rows are (full, one per row).
inline bool split_by_rows(Extent e) { return e == Extent::Full || e == Extent::Rows; }

struct Route {
  std::string label;     // "matrix", "other>vector"
  std::string pipeline;  // the stages as written, innermost optimizer ("adam: momentum -> adapt")
  std::vector<Slot> slots;
  std::vector<Extent> scratch;
  std::vector<KernelLaunch> kernels;
  std::vector<LibraryCall> calls;
  std::vector<ScheduleEntry> schedule;
  // A step with global sums runs in two phases: every route's schedule[0, phase_split) (which
  // writes the shares), then the sums, then every route's schedule[phase_split, end).
  std::vector<GlobalShare> shares;
  uint32_t phase_split = 0;
  ShardPhases shards;  // its split for parameters sharded by rows (exec::shard_phases)
  ScalarProgram scalars;
  std::vector<std::string> probes;  // stage of each non-finite probe bit (checked kernels)
  bool matrix_only = false;
  std::string matrix_reason;
  View view = View::First;  // how a tensor of rank >= 2 is seen (the innermost explicit `view(...)`)
  bool master = false;      // its 16-bit parameters keep an f32 master copy (`state(..., master)`)
  size_t table_size() const { return kFirstSlotBuffer + slots.size() + scratch.size(); }
};

// ---- Routing --------------------------------------------------------------------------------
// Selectors are tried by kind: name patterns first (in spec order), then roles, then conditions
// on the shape (in spec order), then the shape classes, then `other`. A selector leads to a
// compiled route or delegates to another table.
enum class SelectorKind : uint8_t { Pattern, Matrix, Vector, Other, Where, Role };
inline constexpr size_t kMaxConditionLength = 64;  // instructions of a route condition
struct Selector {
  SelectorKind kind = SelectorKind::Other;
  std::vector<std::string> patterns;  // fnmatch, case-insensitive
  std::vector<ParamRole> roles;       // Role: any of these
  ScalarProgram condition;            // Where: holds when its last register is nonzero
  std::string condition_text;         // Where: as written
  View view = View::First;            // Where: the view the condition sees (its route's own)
  int32_t route = -1;                 // index into Description::routes
  int32_t table = -1;                 // delegation: index into Description::tables
};
struct RoutingTable {
  std::string optimizer;
  std::vector<Selector> selectors;
};

// A range a hyperparameter's values must lie in: declared on the optimizer's own parameter, or
// on a component's (or a delegated optimizer's) parameter, or an `every(N)` cadence, that takes
// the hyperparameter as it is. The runtime refuses a value outside any of them.
struct HParamRange {
  uint32_t hparam = 0;
  Interval range;
  std::string origin;  // what declares it: "`beta` of `momentum` (momentum.opal:5:31)"
  bool operator==(const HParamRange&) const = default;
};

struct Description {
  std::string name;
  std::vector<std::string> hparams;
  std::vector<double> defaults;
  std::vector<HParamRange> ranges;
  std::vector<std::string> globals;  // global sums: uniforms after the hyperparameters
  std::vector<RoutingTable> tables;  // tables[0]: the optimizer's own routes
  std::vector<Route> routes;
  std::vector<std::string> symbols;  // kernel symbols of the generated source, in KernelLaunch::symbol order
  std::string spec_text;             // the source file the optimizer was declared in
  std::string fingerprint;           // content hash of the compiled optimizer (checkpoints)
  // The step-uniform scalars the kernels read rather than compute (bias corrections,
  // schedules: compiler/exec/host_uniforms.h): the runtime runs `uniform_program` (over t, the
  // hyperparameters and the global sums) before each launch, and uniform k is its register
  // uniform_regs[k].
  ScalarProgram uniform_program;
  std::vector<uint32_t> uniform_regs;
  // The values of the uniform block of every kernel (`opal_uniforms_t`, kernel_abi.h): t, then
  // the hyperparameters, then the global sums of the step, then the host-computed uniforms.
  size_t uniform_count() const { return 1 + hparams.size() + globals.size() + uniform_regs.size(); }
  // Fills the host-computed uniforms of `uniforms` (uniform_count() values, t and the
  // hyperparameters and sums set) using `regs` (uniform_program.size() doubles).
  void derive_uniforms(double* uniforms, double* regs) const;
};

// A table buffer's extent (w and g are full).
Extent buffer_extent(const Route& r, uint32_t buffer);
// How a sharded parameter's part is laid out: Rows, a range of rows of one matrix; Elements, a
// range of elements of one (a vector's); Whole, neither (a batched or permuted view).
enum class ShardAxis : uint8_t { Rows, Elements, Whole };
// The phases of a route for a parameter sharded by rows: the longest local prefix and suffix
// whose kernels are elementwise over rows (a full or per-row space, writing only full or per-row
// buffers, touching no slot the whole phase touches), and between them every library call,
// reduction across rows and per-tensor reduction. Elements: local kernels are elementwise over
// full buffers only. Whole: everything in the whole phase.
ShardPhases shard_phases(const Route& r, ShardAxis axis = ShardAxis::Rows);

std::string print(const Description& d);
std::string print_route(const Description& d, size_t route);
std::string print_uniforms(const Description& d);  // the host-computed uniforms' program ("" when none)
// `opal hparams`: each hyperparameter, its default and the ranges its values must lie in.
std::string print_hparams(const Description& d);
// Invariants (indices in range, operand registers earlier, selectors lead somewhere). Returns
// "" when valid, else the first violation.
std::string verify(const Description& d);

}  // namespace opal::exec
