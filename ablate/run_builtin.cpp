// One run of a built-in workload (see run_builtin.h).
#include "ablate/run_builtin.h"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "runtime/optimizer.h"

namespace opal {

RunRecord run_builtin(const Workload& wl, std::shared_ptr<const Executable> exe, RunRecord r) {
  auto begin = std::chrono::steady_clock::now();
  auto run = wl.start(r.seed);
  Optimizer opt(std::move(exe), run->params());
  for (const auto& [k, v] : r.hparams) opt.set_hparam(k, v);
  for (size_t i = 0; i < opt.num_params(); ++i)
    for (const auto& slot : opt.slots(opt.param_name(i))) {  // at each slot's real storage (`state m: bf16`)
      int64_t n = int64_t(exec::dtype_size(opt.state_dtype(opt.param_name(i), slot)));
      for (int64_t d : opt.state_shape(opt.param_name(i), slot)) n *= d;
      r.state_bytes += n;
    }
  double train_sum = 0;
  int train_n = 0;
  const int steps = wl.steps(), every = wl.eval_every();
  for (int step = 1; step <= steps; ++step) {
    double loss = run->train_step(step);
    if (!std::isfinite(loss)) {
      r.status = "diverged";
      r.error = fmt::format("training loss {} at step {}", loss, step);
      break;
    }
    train_sum += loss;
    ++train_n;
    opt.step();
    if (step % every == 0 || step == steps) {
      double acc = -1;
      double val = run->validate(wl.has_accuracy() ? &acc : nullptr);
      r.curve.push_back({step, train_sum / train_n, val, acc});
      train_sum = 0;
      train_n = 0;
      if (!std::isfinite(val)) {
        r.status = "diverged";
        r.error = fmt::format("validation loss {} at step {}", val, step);
        break;
      }
    }
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  if (r.status == "ok") {
    r.final_loss = r.curve.back().val_loss;
    r.final_accuracy = r.curve.back().accuracy;
  } else {
    r.final_loss = NAN;
  }
  return r;
}

}  // namespace opal
