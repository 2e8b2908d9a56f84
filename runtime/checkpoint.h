// Optimizer checkpoints: a safetensors file holding every state slot under `state/<param>/<slot>`
// (keyed by names, never by position), optionally the parameters under `param/<name>`, and in
// its metadata the step count, hyperparameters, the spec's text and the compiled program's hash,
// a table of parameters and slots, and a checksum of the data section.
//
// Saving is atomic (temporary file, fsync, rename). Loading validates everything (structure,
// checksum, dtypes, parameter names and shapes, slot shapes) before it changes anything: a bad
// file is a clear error and the optimizer is left as it was.
#pragma once
#include <map>
#include <string>

#include "runtime/checkpoint_types.h"
#include "runtime/safetensors.h"

namespace opal {

class Optimizer;

inline constexpr int kCheckpointFormat = 1;

// The checkpoint as an in-memory safetensors file (what `save` writes; what Python's
// state_dict carries as tensors).
SafetensorsFile checkpoint_of(const Optimizer& opt, const CheckpointOptions& opts = {});
std::string serialize_checkpoint(const Optimizer& opt, const CheckpointOptions& opts = {});

// A checked checkpoint, ready to apply. `prepare_load` throws opal::Error and changes nothing;
// `apply_load` cannot fail. Two steps, so that a host restoring several optimizers (one per
// PyTorch parameter group) can check them all before changing any.
struct PendingLoad {
  LoadReport report;
  SafetensorsFile file;
  std::vector<std::pair<std::string, double>> hparams;  // the saved ones this spec has
  std::map<std::string, int64_t> param_steps;           // per-parameter step counts (all of them)
  // Each q8 slot the file holds ("param/slot"): its block size and the elements of each matrix.
  std::map<std::string, std::pair<int, long long>> q8;
};
PendingLoad prepare_load(const Optimizer& opt, SafetensorsFile file, const std::string& what);
LoadReport apply_load(Optimizer& opt, PendingLoad&& pending);

// Parses and checks serialized bytes (file contents), including the checksum.
PendingLoad prepare_load_bytes(const Optimizer& opt, const std::string& bytes, const std::string& what);

// The hash that tells whether a checkpoint came from the same compiled program.
std::string program_hash(const Optimizer& opt);

}  // namespace opal
