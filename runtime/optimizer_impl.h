// The private state of opal::Optimizer, shared by its two halves: runtime/optimizer.cpp
// (routing, buffers, access) and runtime/step.cpp (the step loop). Not an interface.
#pragma once
#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/library_calls.h"
#include "runtime/optimizer.h"

namespace opal {

// A parameter sharded by rows as a whole (its whole shape, no memory): how it routes.
inline ParamDesc whole_param(const ParamDesc& p) {
  ParamDesc w = p;
  w.shape = p.whole_shape;
  w.whole_shape.clear();
  w.data = w.grad = nullptr;
  w.external = false;
  w.shard_row = 0;
  w.shard_owner = false;
  return w;
}

// The checks of a sharded parameter's shard (runtime/sharded.cpp): Error naming what is wrong.
void check_shard(const exec::Description& d, const ParamDesc& p);

struct Optimizer::Impl {
  // A buffer of the backend's memory: n elements of dt (a bf16 state slot holds 16-bit words).
  struct Buffer {
    float* p = nullptr;
    size_t n = 0;
    DType dt = DType::F32;
    size_t bytes() const { return n * exec::dtype_size(dt); }
  };
  // A parameter. Its view (exec::tensor_view) is `batch` matrices of rows x cols: each matrix
  // is an entry of its own in the kernel table and in library calls, with its part of every
  // state slot and scratch buffer (each allocation is batch matrices' worth, matrix after
  // matrix). A tensor is `staged` when its route steps f32 copies of w and g (stage_w,
  // stage_g), copied in before the step and w copied back after: a view whose axis order is
  // not the parameter's (`perm`), or a 16-bit w or g in a route with library calls (which take
  // f32 operands). Otherwise the kernels load and store w and g as they are stored, in place.
  struct Tensor {
    ParamDesc desc;
    long long rows = 1, cols = 1;
    long long batch = 1;
    std::vector<int64_t> batch_shape;  // the dims that index the matrices
    std::vector<int> perm;
    Buffer owned_w, owned_g, stage_w, stage_g;
    bool staged = false;
    // A staged tensor's gradient is staged too, except where only the master copy stages it (an
    // elementwise route, the parameter's own axis order): its kernels load the 16-bit gradient
    // where it is, as they do unstaged (one pass over it less a step).
    bool staged_g = false;
    bool master_valid = false;  // stage_w holds the master copy (has_master), in step with the parameter
    uint64_t id = 0;            // its random stream (opal_tensor_t.id): its name and the optimizer's seed
    std::vector<Buffer> slots;
    std::vector<Buffer> scratch;
    size_t nbuf = 0;           // buffers per matrix: w, g, slots, scratch
    std::vector<float*> bufs;  // matrix b's table: bufs[b * nbuf, (b + 1) * nbuf)
    size_t route = 0;
    std::vector<double> regs;  // the route's host scalar program, evaluated for this tensor's step
    int64_t t = 0;             // the steps this parameter took part in
    unsigned chk = 0;          // non-finite probe flags of the last checked step (a copy of its word of Impl::flags)
    // A checked step's copies of the parameter (as stored), its state and its master copy, in
    // the backend's memory, to undo the step: allocated at the first checked step, then kept.
    Buffer saved_w, saved_master_values;
    std::vector<Buffer> saved_slots;
    bool saved_master = false;
    // A parameter sharded by rows (ParamDesc::whole_shape) is two tensors: its Local part, this
    // process's rows (rows x cols of the whole matrix's mrows x mcols, from element `first`), and on the
    // owner its Whole part (the whole matrix, w and g gathered into owned buffers), `twin` of each
    // other. Each holds the slots `phases` gives it; the kernels and the scalar program see the
    // whole matrix's mrows x mcols and `total` elements.
    enum class Part : uint8_t { All, Local, Whole } part = Part::All;
    exec::ShardPhases phases;
    size_t twin = SIZE_MAX;
    long long mrows = 1, mcols = 1, total = 1, first = 0;  // first: this part's first element in the whole tensor
    bool holds_slot(size_t i) const { return part == Part::All || (part == Part::Whole) == (phases.owner_slot[i] != 0); }
    size_t numel() const { return size_t(batch * rows * cols); }
    size_t bytes() const { return numel() * exec::dtype_size(desc.dtype); }
    bool is_f32() const { return desc.dtype == DType::F32 && desc.grad_dtype == DType::F32; }
    // An f32 master copy of a 16-bit parameter: the staged w, kept from step to step.
    bool has_master() const { return desc.master && desc.dtype != DType::F32; }
    float** matrix_bufs(long long b) { return bufs.data() + size_t(b) * nbuf; }
    // Points every matrix's table at w and g (or their staged copies) and at its part of the
    // slots and scratch.
    void set_bufs();
  };
  struct RouteExec {
    std::vector<size_t> tensors;
    std::vector<size_t> first;  // tensor k's matrices are table[first[k], first[k] + batch)
    std::vector<KernelTensor> table;
  };
  std::unique_ptr<Backend> backend;
  std::vector<Tensor> tensors;  // the parameters as given (n_params), then the Whole parts
  size_t n_params = 0;
  bool sharded = false;
  int next_phase = 0;  // of a sharded step (StepPhase)
  std::map<std::string, size_t> by_name;
  std::vector<RouteExec> routes;
  std::vector<double> uniforms;      // [t, hp...], the layout of `opal_uniforms_t`
  std::vector<double> uniform_regs;  // registers of the description's uniform program
  double derived_for = -1;           // the step count the host-computed uniforms hold (-1: none)
  // Working lists of the step loop, sized at construction so that a step allocates nothing.
  struct StepScratch {
    std::vector<KernelTensor> subset;
    std::vector<size_t> running, group;
    std::vector<int64_t> counts;
    std::vector<CallTensor> call_tensors;
    std::vector<std::pair<float*, size_t>> zeroed;
  } scratch;
  bool diagnostics = false;
  NonFinitePolicy nonfinite = NonFinitePolicy::Off;
  std::shared_ptr<KernelModule> checked;  // the kernels with fused non-finite checks
  // Their probe flags, a word per tensor (opal_tensor_t.chk), in the backend's memory: the
  // checked step zeroes them before its kernels and copies them into Tensor::chk after.
  Buffer flags;
  // The mixed program (Executable::mixed_source), and with the checks: compiled when a 16-bit
  // parameter or gradient is bound.
  std::shared_ptr<KernelModule> mixed, checked_mixed;
  bool needs_mixed = false;  // some tensor steps 16-bit w or g in place
  bool stochastic = false;   // bf16 parameter writes (Optimizer::set_stochastic_rounding)
  uint64_t seed = 0;
  std::vector<NonFiniteEvent> events;
  int64_t skipped = 0;
  // A checked step's record (its copies are Tensor::saved_*): each tensor's count before it and
  // whether it steps. Valid for Optimizer::undo_step once the step stayed, until anything else
  // changes a parameter, its state or a count.
  struct Undo {
    bool valid = false;
    bool advanced = false;  // the step advanced the optimizer's count (one in phases may not)
    std::vector<int64_t> counts;
    std::vector<char> stepped;
  } undo;
  // Puts t back from its saved copies, at step count `count`.
  void restore_saved(Tensor& t, int64_t count);
  std::vector<UpdateStats> stats;
  std::vector<std::vector<float>> before;
  std::atomic<bool> stepping{false};  // a step() is running (on some thread)
  bool rebound = true;                // memory was (re)bound since the last aliasing check

  ~Impl() {
    for (auto& t : tensors) {
      for (Buffer* b : {&t.owned_w, &t.owned_g, &t.stage_w, &t.stage_g})
        if (b->p) backend->release(b->p);
      for (auto& b : t.slots) backend->release(b.p);
      for (auto& b : t.scratch) backend->release(b.p);
      for (Buffer* b : {&t.saved_w, &t.saved_master_values})
        if (b->p) backend->release(b->p);
      for (auto& b : t.saved_slots) backend->release(b.p);
    }
    if (flags.p) backend->release(flags.p);
  }

  Buffer alloc(size_t n, DType dt = DType::F32) { return {backend->alloc((n * exec::dtype_size(dt) + 3) / 4), n, dt}; }

  // A route with library calls takes matrices up to the backend's largest side.
  void check_call_side(const exec::Route& route, const std::string& name, const exec::TensorView& v) const {
    if (!route.calls.empty() && std::max(v.rows, v.cols) > backend->max_call_side())
      throw Error(
          fmt::format("parameter `{}` is a {} x {} matrix in route `{}`, whose matrix work on {} takes sides up to {} [LimitExceeded]\n"
                      "  = help: route it to an elementwise pipeline by name or shape",
                      name, v.rows, v.cols, route.label, backend->describe(), backend->max_call_side()));
  }

  // The named parameter; NotFoundError with "did you mean" when there is none.
  Tensor& get(const std::string& name);

  // A state slot's memory: one of the route's, or the master copy ("master"); NotFoundError
  // when it has none. The master copy is brought in step with the parameter first, unless only
  // the buffer's description is wanted (`sync` false: its dtype and size).
  Buffer& slot_buffer(const exec::Description& d, Tensor& t, const std::string& slot, bool sync = true) {
    if (slot == kMasterSlot && t.has_master()) {
      if (sync) sync_master(t);
      return t.stage_w;
    }
    Tensor& h = holder(d, t, slot);
    return h.slots[slot_index(d, h, slot)];
  }
  // The part of a sharded parameter that holds a slot (the owner's whole part, or this
  // process's rows); NotFoundError on a process that does not hold it.
  Tensor& holder(const exec::Description& d, Tensor& t, const std::string& slot) {
    const size_t i = slot_index(d, t, slot);
    if (t.holds_slot(i)) return t;
    if (t.twin != SIZE_MAX) return tensors[t.twin];
    throw NotFoundError(fmt::format("state `{}` of `{}` is kept whole by the parameter's owner process, not this one", slot, t.desc.name));
  }
  // The position of a state slot in a tensor's slot list; NotFoundError when it has none.
  size_t slot_index(const exec::Description& d, const Tensor& t, const std::string& slot) const {
    const auto& slots = d.routes[t.route].slots;
    for (size_t i = 0; i < slots.size(); ++i)
      if (slots[i].name == slot) return i;
    throw NotFoundError(fmt::format("parameter `{}` has no state slot `{}`", t.desc.name, slot));
  }

  // Whether t steps this step: a gradient is bound (to a whole part's rows, for a whole part).
  bool has_grad(const Tensor& t) const { return (t.part == Tensor::Part::Whole ? tensors[t.twin].desc.grad : t.desc.grad) != nullptr; }

  // Host views of backend memory exist only on host backends.
  void need_host(const std::string& what) const {
    if (!backend->host_memory())
      throw Error(fmt::format("{} lives on {}, not in host memory: copy it with read_param/read_state and write_param/write_state", what,
                              backend->describe()));
  }

  // Starts slot i of t over as the spec initializes it.
  void reset_slot(const exec::Description& d, Tensor& t, size_t i);

  // Whether t steps staged f32 copies (Tensor::staged), allocating them the first time.
  void update_staging(const exec::Description& d, Tensor& t);
  // w and g into their staged copies (before the step), the staged w back into w (after it,
  // rounded as the kernels round).
  void stage_in(Tensor& t);
  void stage_out(Tensor& t);
  // The master copy from the parameter, when it is not in step with it (before the first step,
  // after reset_state or a write of the parameter).
  void sync_master(Tensor& t);
  // The rounding of t's parameter writes at its current step (element `base` onward).
  Rounding rounding(const Tensor& t) const { return {stochastic, t.id, double(t.t), 0}; }
  // n elements of a tensor's w or g (of dtype `dt`, backend memory) as f32 host values, and back
  // (rounded to nearest even).
  std::vector<float> read_f32(const void* src, DType dt, size_t n) const;
  void write_f32(void* dst, DType dt, const float* src, size_t n);
  // Adds up a total of full-size values over the matrices of t (table buffer `buffer`), so that
  // every matrix holds the whole tensor's.
  void combine_whole(Tensor& t, uint32_t buffer);
  double sum_scalars(Tensor& t, uint32_t buffer, long long matrices);
  // The sum of t's share in table buffer `buffer`: each matrix's, or once.
  double share(Tensor& t, uint32_t buffer, bool per_matrix);
};

}  // namespace opal
