// Library call dispatch (see library_calls.h).
#include "runtime/library_calls.h"

#include <map>

#include "runtime/cpu/linalg.h"

namespace opal {

namespace {

// Matrix products as one batched GEMM over tensors of the same shape (the operands' layouts
// follow cpu::run_call).
bool gemm_batch(Backend& b, const exec::LibraryCall& call, const std::vector<const CallTensor*>& ts, long long rows, long long cols) {
  GemmBatch gb;
  const exec::Dims d0 = exec::dims_of(call.in[0].extent, rows, cols);
  const exec::Dims d1 = call.in.size() > 1 ? exec::dims_of(call.in[1].extent, rows, cols) : exec::Dims{};
  size_t a = 0, bo = 1;  // which operand is the left factor
  if (const auto* g = std::get_if<exec::Gemm>(&call.op)) {
    gb.bf16 = g->bf16;
    gb.ta = g->ta;
    gb.tb = g->tb;
    gb.m = gb.ta ? d0.cols : d0.rows;
    gb.k = gb.ta ? d0.rows : d0.cols;
    gb.n = gb.tb ? d1.rows : d1.cols;
  } else if (const auto* g = std::get_if<exec::Gram>(&call.op)) {  // X X^T on the wide side: X^T X when tall
    gb.bf16 = g->bf16;
    bo = 0;
    gb.ta = rows > cols;
    gb.tb = rows <= cols;
    gb.m = gb.n = std::min(rows, cols);
    gb.k = std::max(rows, cols);
  } else if (const auto* g = std::get_if<exec::GramApply>(&call.op)) {  // B X when wide, X B when tall
    gb.bf16 = g->bf16;
    gb.m = rows;
    gb.n = cols;
    gb.k = rows <= cols ? rows : cols;
    if (rows > cols) std::swap(a, bo);
  } else {
    return false;
  }
  for (const CallTensor* t : ts) {
    gb.A.push_back(t->bufs[call.in[a].buffer]);
    gb.B.push_back(t->bufs[call.in[bo].buffer]);
    gb.C.push_back(t->bufs[call.out]);
  }
  return b.gemm(gb);
}

}  // namespace

void run_library_call(Backend& backend, const exec::LibraryCall& call, const std::vector<CallTensor>& tensors) {
  if (backend.run_call(call, tensors.data(), tensors.size())) return;
  auto operand_ptr = [&](const CallTensor& t, size_t o) -> const float* { return call.in[o].buffer < 0 ? nullptr : t.bufs[call.in[o].buffer]; };
  // tensors of one shape together
  std::map<std::pair<long long, long long>, std::vector<const CallTensor*>> groups;
  for (const CallTensor& t : tensors) groups[{t.rows, t.cols}].push_back(&t);
  for (const auto& [dims, ts] : groups) {
    const auto [rows, cols] = dims;
    if (gemm_batch(backend, call, ts, rows, cols)) continue;
    if (std::holds_alternative<exec::Eigh>(call.op) || std::holds_alternative<exec::InvRoot>(call.op)) {
      const long long r0 = exec::dims_of(call.in[0].extent, rows, cols).rows;
      std::vector<const float*> in;
      for (const CallTensor* t : ts) in.push_back(operand_ptr(*t, 0));
      std::vector<double> values(ts.size() * r0), vectors(ts.size() * r0 * r0);
      if (backend.eigh(r0, in, values.data(), vectors.data())) {
        std::vector<float> out(r0 * r0);
        for (size_t i = 0; i < ts.size(); ++i) {
          cpu::finish_eigh_call(call, r0, values.data() + i * r0, vectors.data() + i * r0 * r0, ts[i]->regs, out.data());
          backend.upload(ts[i]->bufs[call.out], out.data(), out.size());
        }
        continue;
      }
    }
    // no implementation on this backend: the host one, on copies
    for (const CallTensor* t : ts) {
      std::vector<float> host[3];
      const float* in[3] = {nullptr, nullptr, nullptr};
      for (size_t o = 0; o < call.in.size(); ++o) {
        if (call.in[o].buffer < 0) continue;
        host[o].resize(exec::dims_of(call.in[o].extent, rows, cols).count());
        backend.download(host[o].data(), operand_ptr(*t, o), host[o].size());
        in[o] = host[o].data();
      }
      std::vector<float> out(exec::dims_of(call.out_extent, rows, cols).count());
      cpu::run_call(call, in, t->regs, out.data(), rows, cols);
      backend.upload(t->bufs[call.out], out.data(), out.size());
    }
  }
}

}  // namespace opal
