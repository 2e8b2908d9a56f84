// The built-in workloads: synthetic.cpp (linreg, quadratic, softmax), mlp.cpp, gpt.cpp.
#pragma once
#include "ablate/workload.h"

namespace opal::workloads {

struct GptConfig {
  int layers = 2, d = 64, heads = 4, ctx = 64, batch = 16, val_batches = 8;
};

std::unique_ptr<Workload> make_synthetic(const std::string& kind, const WorkloadOptions& opts);
std::unique_ptr<Workload> make_mlp(const WorkloadOptions& opts);
std::unique_ptr<Workload> make_gpt(const WorkloadOptions& opts);
// The gpt model on any text (tests use a small one).
std::unique_ptr<Workload> make_gpt_from_text(const std::string& text, const GptConfig& cfg, const WorkloadOptions& opts);

}  // namespace opal::workloads
