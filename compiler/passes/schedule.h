// The schedule of a plan: the execution order of kernels and library calls (by level; within a
// level calls first, then kernels by space and guard), and the temporaries between them, each
// with its producer and last use as schedule positions (plan_memory then assigns buffers).
#pragma once
#include <vector>

#include "compiler/plan.h"

namespace opal::passes {

std::vector<Launch> order_schedule(const std::vector<Kernel>& kernels, const std::vector<Call>& calls);

// The plan of `g` from its kernels, calls and their order: temporaries found and timed.
Plan assemble_plan(const ir::Graph& g, std::vector<Kernel> kernels, std::vector<Call> calls, std::vector<Launch> schedule);

}  // namespace opal::passes
