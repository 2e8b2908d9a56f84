// libFuzzer target: bytes as a safetensors file, then as a checkpoint of a small AdamW
// optimizer (structure, checksum, names, shapes, dtypes). Every input must parse or end in
// opal::Error; a checkpoint that passes the checks must apply without failing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "driver/build.h"
#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"
#include "runtime/safetensors.h"

namespace {

// Never destroyed: unloading its kernel module at exit would unmap the libgomp that module
// pulled into this (libomp-linked, clang) process and turn libgomp's allocations into leaks.
opal::Optimizer& optimizer() {
  static opal::Optimizer* opt =
      new opal::Optimizer(opal::build_executable(opal::SpecRef{"adamw", "", OPAL_SOURCE_STDLIB}), {{"w", {4, 3}}, {"b", {3}}});
  return *opt;
}

}  // namespace

// Seeds: with $OPAL_FUZZ_SEEDS set, a checkpoint of the optimizer (and one with its parameters)
// is written there, so the corpus always starts from files the current format accepts.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("OPAL_FUZZ_SEEDS")) {
    opal::CheckpointOptions with_params;
    with_params.params = true;
    opal::write_file_atomically(std::string(dir) + "/checkpoint.safetensors", opal::serialize_checkpoint(optimizer()));
    opal::write_file_atomically(std::string(dir) + "/checkpoint_params.safetensors", opal::serialize_checkpoint(optimizer(), with_params));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    opal::SafetensorsFile f = opal::parse_safetensors(bytes, "fuzz.safetensors");
    (void)opal::serialize_safetensors(f);
  } catch (const opal::Error&) {}
  try {
    opal::PendingLoad p = opal::prepare_load_bytes(optimizer(), bytes, "fuzz.safetensors");
    opal::apply_load(optimizer(), std::move(p));
  } catch (const opal::Error&) {}
  return 0;
}
