// Library ops (matmul, eigh, qr, ...) of one route, on any backend: in place on host memory
// through Eigen; on a device through the backend's batched implementations (cuBLAS, cuSOLVER)
// where it has one, tensors of equal shape in one call, else on host copies.
#pragma once
#include <array>
#include <vector>

#include "compiler/plan.h"
#include "runtime/backend.h"

namespace opal {

struct CallTensor {
  float* const* bufs;  // the tensor's buffer table (Plan::table_index)
  long long rows, cols;
  std::array<double, 3> scalars;  // the uniform scalar operands, evaluated (by operand position)
};

void run_library_call(Backend& backend, const Plan& plan, const Call& call, const std::vector<CallTensor>& tensors);

}  // namespace opal
