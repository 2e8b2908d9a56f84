// The plan: a graph partitioned into kernels, with the temporaries between them and the
// buffers they live in. Produced by fuse_elementwise, completed by plan_memory, consumed by
// codegen and the runtime.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "compiler/ir/ir.h"

namespace opal {

// The iteration space of a kernel: every element [m,n], every row [m], every column [n].
enum class Domain : uint8_t { Full, Rows, Cols };
const char* domain_name(Domain d);

struct Kernel {
  Domain domain = Domain::Full;
  int level = 0;                      // kernels of a level depend only on earlier levels
  std::vector<ir::ValueId> scalars;   // per-parameter scalars computed before the loop
  std::vector<ir::ValueId> body;      // elementwise values computed per iteration, in order
  std::vector<ir::ValueId> reductions;  // accumulated into temps (zeroed by the runtime first)
  std::vector<ir::ValueId> stores;    // values written to temps for later kernels
  std::vector<ir::ValueId> effects;   // state and parameter writes
  bool indexed = false;               // needs row/column indices (broadcast reads, row/col sums)
  bool serial = false;                // has column or total reductions: no parallel loop on the CPU
};

// A value passed between kernels through memory.
struct Temp {
  ir::ValueId value;
  ir::Shape shape;      // Rows, Cols, Full, or Scalar (a total reduction)
  int producer = -1;    // kernel index
  int last_use = -1;    // kernel index
  int buffer = -1;      // assigned by plan_memory
};

struct Plan {
  ir::Graph graph;
  std::vector<Kernel> kernels;       // in execution order
  std::vector<Temp> temps;
  std::map<uint32_t, int> temp_of;   // value id -> temp index
  std::vector<ir::Shape> buffers;    // scratch buffers (after plan_memory)
  int temp_buffer(ir::ValueId v) const { return temps[temp_of.at(v.v)].buffer; }
  bool is_temp(ir::ValueId v) const { return temp_of.count(v.v) != 0; }
};

std::string print_plan(const Plan& p);

}  // namespace opal
