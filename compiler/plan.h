// The plan: a graph partitioned into kernels, with the temporaries between them and the
// buffers they live in. Produced by fuse_elementwise, completed by plan_memory, consumed by
// codegen and the runtime.
#pragma once
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "compiler/ir/ir.h"

namespace opal {

// The iteration space of a kernel: every element [m,n], every row [m], every column [n], or
// every element of a square matrix: left [m,m], right [n,n], small [k,k].
// One: a single element per tensor (the write of a scalar state), after the others in a level.
enum class Domain : uint8_t { Full, Rows, Cols, Left, Right, Small, One };
const char* domain_name(Domain d);

// When a kernel or call runs: always (no literals), or on the steps where every literal holds:
// a uniform scalar `cond` (a function of t, hyperparameters and sizes, evaluated on the host)
// that is nonzero (zero when `negated`). every(N)/when regions and selects on uniform
// conditions become guards; nested ones are conjunctions.
struct GuardLiteral {
  ir::ValueId cond;
  bool negated = false;
  bool operator==(const GuardLiteral& o) const { return cond == o.cond && negated == o.negated; }
  bool operator<(const GuardLiteral& o) const { return cond.v != o.cond.v ? cond.v < o.cond.v : negated < o.negated; }
};
struct Guard {
  std::vector<GuardLiteral> all;  // sorted, unique
  bool always() const { return all.empty(); }
  // this guard and one more literal (a contradiction keeps both: it never runs)
  Guard with(GuardLiteral l) const {
    Guard g = *this;
    auto it = std::lower_bound(g.all.begin(), g.all.end(), l);
    if (it == g.all.end() || !(*it == l)) g.all.insert(it, l);
    return g;
  }
  bool operator==(const Guard& o) const { return all == o.all; }
  bool operator<(const Guard& o) const { return all < o.all; }
};

struct Kernel {
  Domain domain = Domain::Full;
  Guard guard;
  int level = 0;                        // kernels of a level depend only on earlier levels
  std::vector<ir::ValueId> scalars;     // per-parameter scalars computed before the loop
  std::vector<ir::ValueId> body;        // elementwise values computed per iteration, in order
  std::vector<ir::ValueId> reductions;  // accumulated into temps (zeroed by the runtime first)
  std::vector<ir::ValueId> stores;      // values written to temps for later kernels
  std::vector<ir::ValueId> effects;     // state and parameter writes
  bool indexed = false;                 // needs row/column indices (broadcast reads, row/col sums)
  bool serial = false;                  // has column or total reductions: no parallel loop on the CPU
};

// A library op (matmul, eigh, qr, ...) run by the backend between kernels. Its tensor operands
// are leaves read in place (w, g, states) or temps; its result is a temp.
struct Call {
  ir::ValueId value;
  int level = 0;
  Guard guard;
};

// One entry of the execution order: a kernel launch or a library call.
struct Launch {
  bool is_call = false;
  int index = 0;
};

// A value passed between kernels and calls through memory.
struct Temp {
  ir::ValueId value;
  ir::Shape shape;    // Rows, Cols, Full, a square, or Scalar (a total reduction)
  int producer = -1;  // schedule position
  int last_use = -1;  // schedule position
  int buffer = -1;    // assigned by plan_memory
};

struct Plan {
  ir::Graph graph;
  std::vector<Kernel> kernels;
  std::vector<Call> calls;
  std::vector<Launch> schedule;  // execution order of kernels and calls
  std::vector<Temp> temps;
  std::map<uint32_t, int> temp_of;  // value id -> temp index
  std::vector<ir::Shape> buffers;   // scratch buffers (after plan_memory)
  // The step-uniform scalars computed on the host (exec/host_uniforms.h): value id -> index
  // into the uniform block's hp[] (after the hyperparameters and global sums).
  std::map<uint32_t, uint32_t> host_uniforms;
  int temp_buffer(ir::ValueId v) const { return temps[temp_of.at(v.v)].buffer; }
  // Indices into a tensor's buffer table (the kernel ABI): 0 w, 1 g, 2.. state slots, then
  // scratch buffers. `table_index` maps a value read from memory: w, g, a state read or a temp.
  size_t slot_index(int64_t slot) const { return 2 + size_t(slot); }
  size_t temp_index(ir::ValueId v) const { return 2 + graph.slots.size() + size_t(temp_buffer(v)); }
  size_t table_index(ir::ValueId v) const {
    const ir::Node& n = graph.at(v);
    if (n.op == ir::Op::Param) return 0;
    if (n.op == ir::Op::Grad) return 1;
    if (n.op == ir::Op::StateRead) return slot_index(n.iattr);
    return temp_index(v);
  }
  bool is_temp(ir::ValueId v) const { return temp_of.count(v.v) != 0; }
};

std::string print_plan(const Plan& p);

// What kernel K touches: the buffers (table indices) it reads and writes (a q8 slot's codes
// with their scales), and the temps it reads element by element (in value order). A scalar kept
// in a temp (a total reduction, a norm bound) is read whole, not its operands.
struct KernelBuffers {
  std::set<size_t> reads, writes;
  std::vector<ir::ValueId> temp_reads;
  std::set<size_t> all() const {
    std::set<size_t> u = reads;
    u.insert(writes.begin(), writes.end());
    return u;
  }
};
KernelBuffers kernel_buffers(const Plan& p, const Kernel& K);

// Where K is elementwise over the full space (no reduction), so that a device may run it as a
// flat list of equal chunks: their elements (exec::kCudaChunk, or 8 of the largest q8 block K
// stores where that is more). 0: not so.
long long chunk_size(const Plan& p, const Kernel& K);

}  // namespace opal
