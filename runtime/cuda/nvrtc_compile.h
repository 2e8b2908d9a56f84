// NVRTC: generated CUDA source -> a CUBIN (or PTX) for one architecture, cached on disk by
// (source, NVRTC version, architecture, flags). Needs no GPU, so CI compiles every stdlib
// optimizer this way (tests/nvrtc).
#pragma once
#include <string>
#include <vector>

namespace opal::cuda {

struct NvrtcOutput {
  bool ok = false;
  std::string image;  // CUBIN (arch "sm_NN") or PTX text (arch "compute_NN")
  std::string log;    // NVRTC's log: the compile errors when !ok
  bool from_cache = false;
  std::string key;  // the cache key
};

// "13.0"
std::string nvrtc_version();

// The flags every kernel is compiled with: C++17, no FMA contraction (the CPU kernels are
// built with -ffp-contract=off: the same rounding on both), IEEE division and square roots.
const std::vector<std::string>& nvrtc_flags();

// Compiles `source` for `arch` ("sm_90" for a CUBIN, "compute_90" for PTX). With `use_cache`,
// looks the result up in cache_dir() first and stores it there after a compile.
NvrtcOutput nvrtc_compile(const std::string& source, const std::string& arch, bool use_cache = true);

}  // namespace opal::cuda
