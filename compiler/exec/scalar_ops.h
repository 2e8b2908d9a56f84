// IR scalars -> host scalar programs. host_scalar_op: the host scalar op computing an
// elementwise IR op (nullopt for the others): with exec::eval_scalar, the one host meaning of
// each op, used by the executable description's scalar programs and by constant folding alike.
// ScalarCompiler: a graph's uniform scalars appended to a program, each value once.
#pragma once
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "compiler/exec/description.h"
#include "compiler/ir/ir.h"
#include "compiler/plan.h"

namespace opal {

std::optional<exec::ScalarOp> host_scalar_op(ir::Op op);

// Appends the instructions computing scalar values of graph `g` to `out` (operands first), and
// gives the register of each. The graph's interning already merged its equal subexpressions;
// with `share`, an instruction equal to one already in `out` (from another graph) is reused.
class ScalarCompiler {
 public:
  ScalarCompiler(const ir::Graph& g, exec::ScalarProgram& out, bool share = false);
  uint32_t reg(ir::ValueId v);
  exec::Guard guard(const Guard& gd);

 private:
  uint32_t push(const exec::ScalarInstr& in);
  const ir::Graph& g_;
  exec::ScalarProgram& prog_;
  bool share_;
  std::unordered_map<uint32_t, uint32_t> regs_;                                        // value id -> register
  std::map<std::tuple<int, uint32_t, uint32_t, uint32_t, uint64_t>, uint32_t> equal_;  // (share) instruction (imm's bits) -> register
};

}  // namespace opal
