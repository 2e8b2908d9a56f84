// Library op dispatch (see library_calls.h).
#include "runtime/library_calls.h"

#include <map>

#include "runtime/cpu/linalg.h"

namespace opal {

namespace {

using ir::Op;
using ir::Shape;

long long count_of(Shape s, long long rows, long long cols) {
  long long r, c;
  cpu::shape_dims(s, rows, cols, r, c);
  return r * c;
}

// Matrix products as one batched GEMM over tensors of the same shape (the operands' layouts
// follow cpu::run_library_op).
bool gemm_batch(Backend& b, const Plan& plan, ir::ValueId v, const std::vector<const CallTensor*>& ts, long long rows, long long cols) {
  const ir::Graph& g = plan.graph;
  const ir::Node& n = g.at(v);
  GemmBatch gb;
  gb.bf16 = n.iattr & 4;
  long long r0, c0, r1 = 1, c1 = 1;
  cpu::shape_dims(g.at(n.operands[0]).shape, rows, cols, r0, c0);
  if (n.n_operands > 1) cpu::shape_dims(g.at(n.operands[1]).shape, rows, cols, r1, c1);
  auto ptr = [&](const CallTensor* t, int o) -> const float* { return t->bufs[plan.table_index(n.operands[o])]; };
  int a = 0, bo = 1;  // which operand is the left factor
  switch (n.op) {
    case Op::MatMul:
      gb.ta = n.iattr & 1;
      gb.tb = n.iattr & 2;
      gb.m = gb.ta ? c0 : r0;
      gb.k = gb.ta ? r0 : c0;
      gb.n = gb.tb ? r1 : c1;
      break;
    case Op::Gram:  // X X^T on the wide side: X^T X when tall
      bo = 0;
      gb.ta = rows > cols;
      gb.tb = rows <= cols;
      gb.m = gb.n = std::min(rows, cols);
      gb.k = std::max(rows, cols);
      break;
    case Op::GramApply:  // B X when wide, X B when tall
      gb.m = rows;
      gb.n = cols;
      gb.k = rows <= cols ? rows : cols;
      if (rows > cols) std::swap(a, bo);
      break;
    default: return false;
  }
  for (const CallTensor* t : ts) {
    gb.A.push_back(ptr(t, a));
    gb.B.push_back(ptr(t, bo));
    gb.C.push_back(t->bufs[plan.temp_index(v)]);
  }
  return b.gemm(gb);
}

}  // namespace

void run_library_call(Backend& backend, const Plan& plan, const Call& call, const std::vector<CallTensor>& tensors) {
  const ir::Graph& g = plan.graph;
  const ir::Node& n = g.at(call.value);
  const size_t out_index = plan.temp_index(call.value);
  ir::Shape shapes[3];
  for (int o = 0; o < n.n_operands; ++o) shapes[o] = g.at(n.operands[o]).shape;
  auto operand_ptr = [&](const CallTensor& t, int o) -> const float* {
    return shapes[o] == Shape::Scalar ? nullptr : t.bufs[plan.table_index(n.operands[o])];
  };
  if (backend.host_memory()) {
    for (const CallTensor& t : tensors) {
      const float* in[3] = {nullptr, nullptr, nullptr};
      for (int o = 0; o < n.n_operands; ++o) in[o] = operand_ptr(t, o);
      cpu::run_library_op(n, shapes, in, t.scalars.data(), t.bufs[out_index], t.rows, t.cols);
    }
    return;
  }
  // a device: tensors of one shape together
  std::map<std::pair<long long, long long>, std::vector<const CallTensor*>> groups;
  for (const CallTensor& t : tensors) groups[{t.rows, t.cols}].push_back(&t);
  for (const auto& [dims, ts] : groups) {
    const auto [rows, cols] = dims;
    if (gemm_batch(backend, plan, call.value, ts, rows, cols)) continue;
    if (n.op == Op::Eigh || n.op == Op::InvRoot) {
      long long r0, c0;
      cpu::shape_dims(shapes[0], rows, cols, r0, c0);
      std::vector<const float*> in;
      for (const CallTensor* t : ts) in.push_back(operand_ptr(*t, 0));
      std::vector<double> values(ts.size() * r0), vectors(ts.size() * r0 * r0);
      if (backend.eigh(r0, in, values.data(), vectors.data())) {
        std::vector<float> out(r0 * r0);
        for (size_t i = 0; i < ts.size(); ++i) {
          cpu::finish_eigh_op(n, r0, values.data() + i * r0, vectors.data() + i * r0 * r0, ts[i]->scalars.data(), out.data());
          backend.upload(ts[i]->bufs[out_index], out.data(), out.size());
        }
        continue;
      }
    }
    // no device implementation: the host one, on copies
    for (const CallTensor* t : ts) {
      std::vector<float> host[3];
      const float* in[3] = {nullptr, nullptr, nullptr};
      for (int o = 0; o < n.n_operands; ++o) {
        if (shapes[o] == Shape::Scalar) continue;
        host[o].resize(count_of(shapes[o], rows, cols));
        backend.download(host[o].data(), operand_ptr(*t, o), host[o].size());
        in[o] = host[o].data();
      }
      std::vector<float> out(count_of(n.shape, rows, cols));
      cpu::run_library_op(n, shapes, in, t->scalars.data(), out.data(), rows, cols);
      backend.upload(t->bufs[out_index], out.data(), out.size());
    }
  }
}

}  // namespace opal
