// The static step cost (cost.h).
#include "compiler/exec/cost.h"

#include <algorithm>
#include <numeric>
#include <type_traits>

namespace opal::exec {

namespace {

// Floating-point operations of one library call on one matrix (the usual dense counts).
double call_flops(const LibraryCall& c, long long rows, long long cols) {
  auto dims = [&](size_t i) { return i < c.in.size() ? dims_of(c.in[i].extent, rows, cols) : Dims{}; };
  const Dims a = dims(0), b = dims(1);
  const double k = double(std::min(a.rows, a.cols)), K = double(std::max(a.rows, a.cols));
  return std::visit(
      [&](const auto& op) -> double {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, Gemm>) {
          const double m = double(op.ta ? a.cols : a.rows), inner = double(op.ta ? a.rows : a.cols), n = double(op.tb ? b.rows : b.cols);
          return 2 * m * inner * n;
        } else if constexpr (std::is_same_v<T, Gram>) {
          return 2 * k * k * K;
        } else if constexpr (std::is_same_v<T, GramApply>) {  // (B small, X full)
          const double bk = double(std::min(b.rows, b.cols)), bK = double(std::max(b.rows, b.cols));
          return 2 * bk * bk * bK;
        } else if constexpr (std::is_same_v<T, Eigh>) {
          return 9 * k * k * k;  // tridiagonalization and the implicit QR with vectors
        } else if constexpr (std::is_same_v<T, InvRoot>) {
          return 11 * k * k * k;  // an eigensolve and V f(L) V^T
        } else if constexpr (std::is_same_v<T, Qr>) {
          return 2 * K * k * k - 2.0 / 3 * k * k * k;
        } else if constexpr (std::is_same_v<T, NsSteps>) {  // per step: X X^T, A A, B X
          return double(op.coeffs.size()) * (4 * k * k * K + 2 * k * k * k);
        } else if constexpr (std::is_same_v<T, TriSolveLeft> || std::is_same_v<T, TriSolveRight>) {
          return double(b.count()) * double(std::min(a.rows, a.cols));
        } else {
          return double(a.count());  // diag, argsort, permutations, a norm bound: a pass over the input
        }
      },
      c.op);
}

// Bytes of buffer b (a table index) of a matrix.
double buffer_bytes(const Route& r, uint32_t b, long long rows, long long cols, int param_bytes) {
  if (b < kFirstSlotBuffer) return double(rows * cols) * param_bytes;
  if (b < kFirstSlotBuffer + r.slots.size()) {
    const Slot& s = r.slots[b - kFirstSlotBuffer];
    return double(slot_count(s, rows, cols)) * double(dtype_size(s.dtype));
  }
  return double(dims_of(r.scratch.at(b - kFirstSlotBuffer - r.slots.size()), rows, cols).count()) * 4;
}

}  // namespace

StepCost step_cost(const Route& route, const TensorView& v, size_t rank, const std::vector<double>& hparams, int param_bytes, int horizon) {
  // how often each kernel and call runs: its guard over steps 1..horizon
  std::vector<double> kernel_runs(route.kernels.size(), 0), call_runs(route.calls.size(), 0);
  std::vector<double> regs(std::max<size_t>(1, route.scalars.size()));
  const std::vector<double> hp = hparams.empty() ? std::vector<double>{0.0} : hparams;
  for (int t = 1; t <= horizon; ++t) {
    route.scalars.run(double(t), hp.data(), double(v.rows), double(v.cols), regs.data(), double(rank), double(v.numel()));
    for (size_t k = 0; k < route.kernels.size(); ++k) kernel_runs[k] += route.kernels[k].guard.holds(regs.data());
    for (size_t c = 0; c < route.calls.size(); ++c) call_runs[c] += route.calls[c].guard.holds(regs.data());
  }
  StepCost out;
  const double batch = double(v.batch);
  for (size_t k = 0; k < route.kernels.size(); ++k) {
    const double share = kernel_runs[k] / horizon;
    double bytes = 0;
    for (uint32_t b : route.kernels[k].reads) bytes += buffer_bytes(route, b, v.rows, v.cols, param_bytes);
    for (uint32_t b : route.kernels[k].writes) bytes += buffer_bytes(route, b, v.rows, v.cols, param_bytes);
    out.kernel_bytes += share * batch * bytes;
    out.launches += share;
  }
  for (size_t c = 0; c < route.calls.size(); ++c) {
    const double share = call_runs[c] / horizon;
    out.call_flops += share * batch * call_flops(route.calls[c], v.rows, v.cols);
    out.launches += share * batch;
  }
  return out;
}

std::vector<int> assign_owners(const std::vector<double>& costs, int world, std::vector<double>* loads) {
  std::vector<size_t> order(costs.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return costs[a] > costs[b]; });
  std::vector<double> load(size_t(std::max(world, 1)), 0.0);
  if (loads && loads->size() == load.size()) load = *loads;
  std::vector<int> owner(costs.size(), 0);
  for (size_t i : order) {
    const size_t r = size_t(std::min_element(load.begin(), load.end()) - load.begin());  // the first least loaded
    owner[i] = int(r);
    load[r] += costs[i];
  }
  if (loads) *loads = load;
  return owner;
}

}  // namespace opal::exec
