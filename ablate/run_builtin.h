// One run of a built-in workload: an optimizer of the cell's executable steps the workload's
// parameters, validating every eval_every steps; a non-finite loss ends the run as diverged.
#pragma once
#include <memory>

#include "ablate/journal.h"
#include "ablate/workload.h"
#include "runtime/executable.h"

namespace opal {

// `r` arrives with its key, cell, hyperparameters and seed, and returns filled.
RunRecord run_builtin(const Workload& wl, std::shared_ptr<const Executable> exe, RunRecord r);

}  // namespace opal
