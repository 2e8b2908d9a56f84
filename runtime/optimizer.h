// opal::Optimizer: an executable (a compiled spec's description and kernels: runtime/
// executable.h) bound to a set of parameters, stepped on a backend (the CPU, or a CUDA device:
// runtime/backend.h). To build one from a spec, see driver/build.h.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/checkpoint_types.h"
#include "runtime/diagnostics.h"
#include "runtime/executable.h"
#include "runtime/nonfinite.h"

namespace opal {

using exec::DType;
using exec::ParamRole;

// A parameter to optimize, in the memory of the optimizer's device (host pointers on the CPU,
// device pointers on CUDA). Null `data`/`grad` means the optimizer owns (zeroed) buffers, unless
// `external`: then the host binds memory later (Optimizer::bind) and a null gradient means the
// parameter sits out of steps (PyTorch, whose gradients come and go).
// `data` holds `dtype` elements and `grad` `grad_dtype` ones (f32, bf16 or f16, in any
// combination): the kernels load them into f32, compute in f32 and round the parameter's store
// (bf16: to nearest even, or stochastically: Optimizer::set_stochastic_rounding).
struct ParamDesc {
  std::string name;
  std::vector<int64_t> shape;  // [] scalar, [n] vector, [rows, cols...] matrix (trailing dims flattened)
  void* data = nullptr;
  void* grad = nullptr;
  bool external = false;
  ParamRole role = ParamRole::None;  // what it is in its model, for role routes (`embedding, head: ...`)
  DType dtype = DType::F32;
  DType grad_dtype = DType::F32;
  // A 16-bit parameter with an f32 master copy: the optimizer steps the copy and stores it,
  // rounded, into `data` after every step, so updates below the parameter's resolution
  // accumulate. The copy is state slot `master` (checkpoints, state_dict, read_state). No effect
  // on an f32 parameter. Memory written outside the optimizer after the first step (external
  // `data`) needs the copy written too (write_param does both; or write_state of `master`),
  // or the next step stores the old copy over it.
  bool master = false;
  // A parameter sharded by rows across processes (FSDP's dim-0 shards): this process holds
  // `shape[0]` of the `whole_shape[0]` indices of dim 0, from `shard_row` on, and the other dims
  // are whole. Empty: not sharded. Its steps run in phases (Optimizer::step_phase); the owner (one
  // process per parameter) steps the whole matrix where the route needs it.
  std::vector<int64_t> whole_shape = {};
  int64_t shard_row = 0;
  bool shard_owner = false;
};

// The phases of a step with sharded parameters, in this order, with the host's collectives
// between them (Optimizer::exchanges):
//  Local:  every parameter not sharded steps whole; each sharded one its local phase on this
//          process's rows (exec::ShardPhases);
//  Whole:  the owner steps the whole matrices it owns (after the host gathered their inputs);
//  Finish: each sharded parameter's last local phase (after the host scattered the results).
enum class StepPhase : uint8_t { Local = 0, Whole = 1, Finish = 2 };
const char* step_phase_name(StepPhase p);

// A buffer of a sharded parameter that the host moves between phases. After Local: each
// process's `local` part into the owner's `whole`, at byte `shard_row * unit_bytes` (a gather;
// `whole` is null except on the owner). After Whole: the owner's `whole` back, each process its
// rows (`split`), or the same value to every process (not split: a broadcast).
struct Exchange {
  uint32_t buffer = 0;  // table index: 0 the parameter, 1 its gradient, then slots and scratch
  std::string what;     // "w", "g", "scratch b7 (per row)"
  void* local = nullptr;
  size_t local_bytes = 0;
  void* whole = nullptr;
  size_t whole_bytes = 0;
  size_t unit_bytes = 0;  // bytes per index of dim 0 (split buffers)
  bool split = true;
};

// The state slot holding a 16-bit parameter's f32 master copy (ParamDesc::master).
inline constexpr const char* kMasterSlot = "master";

// Limit on one tensor's element count (a clear error, never an overflow).
inline constexpr int64_t kMaxTensorElements = int64_t(1) << 34;
// Limit on the side of a square matrix a route keeps per parameter (Kronecker factors, bases).
inline constexpr int64_t kMaxSideForSquares = 16384;
// Limit on a step count: `t` reaches the kernels as a double, exact up to 2^53.
inline constexpr int64_t kMaxStepCount = int64_t(1) << 53;

// Hyperparameters given when an optimizer is built (the others keep their defaults). Route
// conditions read them (`where(rows <= max_precond_dim)`), so those that decide routes are
// fixed from then on.
using HParams = std::map<std::string, double>;

class Optimizer {
 public:
  // Routes every parameter, on the device the kernels were built for. Throws Error for a
  // parameter no route takes, a vector on a matrix-only route, duplicate names or bad shapes,
  // an unknown or non-finite hyperparameter, and for a device this build or machine does not have.
  Optimizer(std::shared_ptr<const Executable> exe, std::vector<ParamDesc> params, const HParams& hparams = {});
  // On a backend of the caller's, with kernels built for it (build_executable(..., backend)).
  Optimizer(std::unique_ptr<Backend> backend, std::shared_ptr<const Executable> exe, std::vector<ParamDesc> params, const HParams& hparams = {});
  ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // The checks the constructor makes of one parameter (name, shape, route, size limits), with
  // its errors, allocating nothing.
  static void check_param(const exec::Description& d, const ParamDesc& p, const HParams& hparams = {});

  // One update of every parameter from its current gradient. Under NonFinitePolicy::Raise a
  // non-finite value undoes the step and throws NonFiniteError. On CUDA the step is queued on
  // `stream` (a cudaStream_t; null: the backend's own) and returns before it has run.
  // Two parameters bound to overlapping memory are an Error naming both, before anything is
  // stepped. One optimizer steps on one thread at a time: a step() while another thread's
  // step() of the same optimizer runs is an Error and changes nothing.
  void step(void* stream = nullptr);
  // A step of an optimizer with sharded parameters (ParamDesc::whole_shape), one phase at a
  // time: Local, then Whole, then Finish (any other order is an Error changing nothing). step()
  // refuses such an optimizer. Under the raise and skip policies the copies are made before the
  // local phase and the flags read after the finish phase (which raises, or undoes the step);
  // `zero` and update diagnostics are refused here.
  void step_phase(StepPhase phase, void* stream = nullptr);
  // What the host moves after phase `after` (Local: gathers to the owner; Whole: scatters from
  // it) for a sharded parameter; empty for one with nothing to move (every stage local).
  std::vector<Exchange> exchanges(const std::string& name, StepPhase after);
  bool sharded() const;  // some parameter is sharded by rows

  Device device() const;
  std::string describe_device() const;  // "cpu", "cuda:0 NVIDIA H100 ... (sm_90)"
  void sync();                          // waits for queued device work

  // NaN/Inf handling (runtime/nonfinite.h). Turning it on compiles the checked kernels once;
  // raise, skip and zero keep a copy of each stepped parameter and its state per step, to undo,
  // in the backend's memory. On CUDA a checked step waits for its kernels (their flags decide
  // what happens next), so it no longer returns before it has run.
  void set_nonfinite_policy(NonFinitePolicy p);
  NonFinitePolicy nonfinite_policy() const;
  const std::vector<NonFiniteEvent>& nonfinite_events() const;  // of the last step
  int64_t skipped_steps() const;
  // Puts the last step back, as the skip policy does: every parameter that stepped, its state
  // and the step counts, from the copies a checked step keeps (under skip it counts as a skipped
  // step; under raise the host is expected to raise). For
  // a host that learns after the step that the whole step must go (another parameter group or
  // another process met a NaN). An Error changing nothing when there is no such step: the last
  // one ran with the policy off, was already undone, or a parameter, state or count was written
  // since (through this API: a write through a host view, param() or state(), is not seen).
  void undo_step();
  // Steps are counted per parameter, as torch does: a parameter's count (its `t`: bias
  // corrections, schedules, refresh cadences) advances only on the steps it takes part in, so
  // one that sits a step out (no gradient) or joins late starts from its own count.
  // step_count(): the steps that updated at least one parameter.
  int64_t step_count() const { return t_; }
  int64_t step_count(const std::string& name) const;
  void set_step_count(int64_t t);  // every parameter's count, and the optimizer's
  void set_step_count(const std::string& name, int64_t t);

  // Hyperparameters are runtime values: changing one never recompiles. hparam_index: the
  // position of one in d.hparams (and d.defaults); NotFoundError with "did you mean".
  static size_t hparam_index(const exec::Description& d, const std::string& name);
  // HyperparameterError unless `value` is finite and within float32's range (the kernels
  // compute in f32); with the description, also unless it lies in every range the spec gives
  // the hyperparameter (`beta = 0.9 in [0, 1)`), and NotFoundError for a name it lacks.
  static void check_hparam_value(const std::string& name, double value);
  static void check_hparam_value(const exec::Description& d, const std::string& name, double value);
  // set_hparam's checks, changing nothing: the name, the value, and for a hyperparameter that
  // decides routes, that the value moves no parameter to another route.
  void check_set_hparam(const std::string& name, double value) const;
  void set_hparam(const std::string& name, double value);
  double hparam(const std::string& name) const;
  const std::vector<std::string>& hparam_names() const;

  size_t num_params() const;
  const std::string& param_name(size_t i) const;
  const std::vector<int64_t>& param_shape(const std::string& name) const;
  ParamRole param_role(const std::string& name) const;
  bool has_param(const std::string& name) const;
  DType param_dtype(const std::string& name) const;
  DType grad_dtype(const std::string& name) const;
  // param() and grad() view f32 host memory: a 16-bit parameter or gradient is an Error naming
  // its dtype (read_param and write_param convert).
  std::span<float> param(const std::string& name);
  std::span<const float> param(const std::string& name) const;
  std::span<float> grad(const std::string& name);
  // The route a parameter took, e.g. "matrix" or "other>vector".
  std::string route_of(const std::string& name) const;
  // State slots of a parameter ("momentum.m", "adapt.v"; then "master" for a master copy), their contents and shapes
  // ([rows, cols] for full slots, [rows] per row, [rows, rows] for a left factor, ...).
  std::vector<std::string> slots(const std::string& name) const;
  // param(), grad() and state() view host memory: on a device they throw Error; read_* and
  // write_* copy on every backend (sizes checked).
  std::span<float> state(const std::string& name, const std::string& slot);
  std::span<const float> state(const std::string& name, const std::string& slot) const;
  float* state_data(const std::string& name, const std::string& slot);        // in the backend's memory, on any backend
  DType state_dtype(const std::string& name, const std::string& slot) const;  // its storage (`state m: bf16`)
  // Parameters and gradients are read and written as f32 whatever their storage (a write to a
  // 16-bit one rounds to nearest even).
  std::vector<float> read_param(const std::string& name) const;
  std::vector<float> read_state(const std::string& name, const std::string& slot) const;
  void write_param(const std::string& name, std::span<const float> values);
  void write_grad(const std::string& name, std::span<const float> values);  // Error when it has none bound
  void write_state(const std::string& name, const std::string& slot, std::span<const float> values);
  std::vector<int64_t> state_shape(const std::string& name, const std::string& slot) const;
  // A q8 slot (`state m: q8`, state_dtype Q8) reads and writes as its codes, 0..255, and its
  // scales (one per block of each matrix) as slot q8::scales_name(slot): two ordinary slots, so
  // checkpoints and state_dicts keep them by name. These two read and write any slot as numbers:
  // a q8 slot dequantized, or quantized (its scales written too); others as read_state does.
  std::vector<float> read_state_values(const std::string& name, const std::string& slot) const;
  void write_state_values(const std::string& name, const std::string& slot, std::span<const float> values);
  // A q8 slot's block size and the elements of each matrix its blocks tile; {0, 0} for others.
  std::pair<int, long long> state_blocks(const std::string& name, const std::string& slot) const;

  // Starts a slot over as the spec initializes it (zeros, or the identity for `eye` states).
  void reset_state(const std::string& name, const std::string& slot);

  // Points a parameter at new memory (a host trainer that reallocates its gradients). A null
  // `grad` leaves the parameter out of the following steps (PyTorch's `grad is None`) until a
  // gradient is bound again. The memory must hold as many elements as the parameter, of its
  // dtype (data) and of `grad_dtype` (the gradient's may change from bind to bind: a host that
  // accumulates in f32 some steps).
  void bind(const std::string& name, void* data, void* grad);
  void bind(const std::string& name, void* data, void* grad, DType grad_dtype);
  void bind(size_t index, void* data, void* grad);  // the index-th parameter, as given
  void bind(size_t index, void* data, void* grad, DType grad_dtype);
  void bind_grad(const std::string& name, void* grad, DType grad_dtype);  // the parameter's memory stays

  // Rounding of 16-bit parameter writes: bf16 to nearest even (the default), or stochastically
  // (up with probability equal to the fraction cut off: small updates, lr * wd * w say, survive
  // in expectation instead of vanishing below bf16's resolution), from bits keyed by (seed,
  // step, parameter name, element): the same on every run, backend and world size. The seed
  // also keys `randn`. f16 writes round to nearest even.
  void set_stochastic_rounding(bool on, uint64_t seed = 0);
  bool stochastic_rounding() const;

  // Checkpoints (runtime/checkpoint.h): optimizer state keyed by parameter and slot name.
  void save(const std::string& path, const CheckpointOptions& opts = {}) const;
  LoadReport load(const std::string& path);

  // Update statistics of every parameter after each step (update RMS; singular-value spread
  // of matrices), off by default: it copies each parameter to the host before and after the
  // step (on CUDA: waiting for the step) and runs an SVD there.
  void set_diagnostics(bool on);
  bool diagnostics_on() const;
  const std::vector<UpdateStats>& diagnostics() const;  // of the last step

  struct Impl;  // the private state (runtime/optimizer_impl.h): not an interface

  const exec::Description& description() const { return *exe_->desc; }
  const Executable& executable() const { return *exe_; }

 private:
  void init(std::unique_ptr<Backend> backend, std::shared_ptr<const Executable> exe, std::vector<ParamDesc> params, const HParams& hparams);
  const KernelModule& kernels(bool checked);  // the program the step runs (f32 or mixed)
  void refresh_tables();                      // after dtypes, rounding or the seed change
  // phase: 0 a whole step, else 1 + StepPhase
  void step_kernels(const KernelModule& module, const std::vector<char>* only, int phase);
  void run_phase(const KernelModule& module, const std::vector<char>* only, bool second, int phase);
  void add_sharded(const exec::Description& d, const ParamDesc& p, const double* hparams);
  void add_whole_parts(const exec::Description& d, const double* hparams);
  // The checked step of the non-finite policies (runtime/checked_step.cpp).
  void step_checked();
  void checked_begin(bool advanced);
  void checked_kernels(const std::vector<char>* only, int phase, const std::vector<size_t>* which);
  void checked_end();
  void checked_undo(const std::vector<size_t>* which);
  void check_aliasing();
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<const Executable> exe_;
  int64_t t_ = 0;
};

}  // namespace opal
