// The kernel ABI, declared once: the per-tensor struct and the uniform block every generated
// kernel takes, and the bf16 rounding they share. The runtime uses the C++ declarations; both
// preludes (compiler/codegen/cpu, cuda) emit the C text generated from the same field lists.
//
//   opal_tensor_t    { buf: the tensor's buffer table (w, g, state slots, scratch: see
//                      exec::kParamBuffer ...), rows, cols: the matrix stepped, total: the
//                      whole parameter's elements (`numel`; rows * cols unless a view has many
//                      matrices, each an entry of its own), chk: non-finite probe flags }
//   opal_uniforms_t  { t: the step count, hp: the hyperparameters (at least one slot) }
#pragma once
#include <cstddef>
#include <string>

#include "support/bf16.h"

// (C type, name) of each field of opal_tensor_t, in order.
#define OPAL_TENSOR_FIELDS(X) X(float* const*, buf) X(long long, rows) X(long long, cols) X(long long, total) X(unsigned*, chk)

namespace opal::exec {

struct KernelTensor {
#define OPAL_DECLARE_FIELD(type, name) type name;
  OPAL_TENSOR_FIELDS(OPAL_DECLARE_FIELD)
#undef OPAL_DECLARE_FIELD
};

// The uniform block: t, then max(1, n) hyperparameters (a C array cannot be empty).
inline size_t uniform_slots(size_t n_hparams) { return 1 + (n_hparams == 0 ? 1 : n_hparams); }

// `typedef struct { ... } opal_tensor_t;`
inline std::string tensor_struct_c() {
  std::string s = "typedef struct { ";
#define OPAL_FIELD_TEXT(type, name) s += #type " " #name "; ";
  OPAL_TENSOR_FIELDS(OPAL_FIELD_TEXT)
#undef OPAL_FIELD_TEXT
  return s + "} opal_tensor_t;\n";
}

// `typedef struct { double t; double hp[N]; } opal_uniforms_t;`
inline std::string uniforms_struct_c(size_t n_hparams) {
  return "typedef struct { double t; double hp[" + std::to_string(uniform_slots(n_hparams) - 1) + "]; } opal_uniforms_t;\n";
}

// The body of `float opal_bf16(float x)` given the statements that load the bits of x into an
// unsigned `b` and store `b` back into x (memcpy on the CPU, intrinsics on CUDA).
inline std::string bf16_body_c(const std::string& load_bits, const std::string& store_bits) {
  return "  unsigned int b;\n  " + load_bits + "\n  if (" OPAL_XSTR(OPAL_BF16_IS_NAN(b)) ") return x;\n  b = " OPAL_XSTR(OPAL_BF16_ROUND(b)) ";\n  " +
         store_bits + "\n  return x;\n";
}

}  // namespace opal::exec
