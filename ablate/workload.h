// Workloads an ablation trains: a model with named parameters (matrices and vectors), a seeded
// data order and initialization shared by every cell of a grid, a training loss with gradients,
// and a validation loss. Built-in ones run in this process; `external:CMD` runs a trainer.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/optimizer.h"

namespace opal {

struct WorkloadOptions {
  int steps = 0;       // 0: the workload's default
  int eval_every = 0;  // 0: the workload's default
  std::string data_dir = "data";
  double timeout_s = 4 * 3600;  // an external trainer's run longer than this is stopped and recorded as failed
};

// One training run of a built-in workload: its own weights, gradients and data stream.
class WorkloadRun {
 public:
  virtual ~WorkloadRun() = default;
  // The parameters, pointing at this run's weights and gradients.
  virtual std::vector<ParamDesc> params() = 0;
  // Computes the gradients of the loss on the batch of `step` (1-based); returns that loss.
  virtual double train_step(int step) = 0;
  // Loss on the fixed validation set (and accuracy, for classifiers).
  virtual double validate(double* accuracy = nullptr) = 0;
};

class Workload {
 public:
  virtual ~Workload() = default;
  virtual std::string name() const = 0;
  virtual std::string describe() const = 0;  // one line: model, data, steps
  virtual int steps() const = 0;
  virtual int eval_every() const = 0;
  virtual bool has_accuracy() const { return false; }
  // Built-in workloads: a run with the initial weights and data order of `seed`.
  virtual std::unique_ptr<WorkloadRun> start(uint64_t seed) const = 0;
};

// The workloads by name: linreg, quadratic, softmax, mlp, gpt. `external:CMD` is not here (see
// runner.h). Throws Error for an unknown name (with the list) or missing data (with the command
// that fetches it).
std::unique_ptr<Workload> make_workload(const std::string& name, const WorkloadOptions& opts);
std::vector<std::string> workload_names();

}  // namespace opal
