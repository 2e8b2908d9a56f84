// What saving and loading a checkpoint take and report (kept apart from checkpoint.h so that
// optimizer.h can name them without the safetensors types).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace opal {

struct CheckpointOptions {
  // Also store the parameters' values (`param/<name>`): for hosts whose parameters the
  // optimizer owns, or that want one file for both. Loading restores them when present.
  bool params = false;
};

// What a load did. With the same compiled spec every slot is restored; after a spec change,
// slots whose name and shape match are kept, new ones start as the spec initializes them, and
// slots the spec no longer has are dropped.
struct LoadReport {
  bool spec_changed = false;
  int64_t step = 0;
  std::vector<std::string> restored;         // "param/slot"
  std::vector<std::string> initialized;      // in the optimizer, not (or not with this shape) in the file
  std::vector<std::string> dropped;          // in the file, not in the optimizer
  std::vector<std::string> hparams_ignored;  // saved hyperparameters the spec no longer has
  std::vector<std::string> converted;        // "param/slot (BF16 -> F32)": saved in another storage than this spec keeps
  bool params_restored = false;
  std::string summary() const;  // one paragraph for people
};

}  // namespace opal
