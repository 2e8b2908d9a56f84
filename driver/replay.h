// Replay: applies N steps of a spec to recorded parameters and gradients, to check a spec
// against a trace from another trainer (`opal replay`).
#pragma once
#include <map>
#include <string>

#include "runtime/diagnostics.h"
#include "driver/build.h"
#include "runtime/safetensors.h"

namespace opal {

struct ReplayRequest {
  SpecRef spec;
  SafetensorsFile init;   // tensor NAME: initial parameter
  SafetensorsFile grads;  // tensor NAME@t: gradient of step t (1-based)
  int steps = 1;
  std::map<std::string, double> hparams;
  std::vector<std::string> roles;                   // PATTERN=ROLE (driver/routes.h: assign_roles)
  std::vector<UpdateStats>* diagnostics = nullptr;  // when set: every parameter's stats, every step
};

// Returns the final parameters (NAME) and every state slot (NAME/slot); metadata records the
// optimizer, steps and hyperparameters. Throws Error for a missing or mis-shaped gradient
// before running any step.
SafetensorsFile replay(const ReplayRequest& req);

}  // namespace opal
