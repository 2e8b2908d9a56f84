// The typed attribute schema of the IR ops: a node stores its attributes as one integer (and
// one double) so that interning can compare them; this header is the only place that packs or
// unpacks them. Every other file reads and writes the structs.
#pragma once
#include <cstdint>

#include "compiler/ir/ir.h"

namespace opal::ir {

// MatMul: op(a) op(b); Gram and GramApply use bf16 only.
struct MatMulAttrs {
  bool ta = false, tb = false;
  bool bf16 = false;  // operands and result rounded to bfloat16, f32 accumulation
};
// Eigh (eigenvalue order of the eigenvectors), Argsort.
struct OrderAttrs {
  bool descending = false;
};
// InvRoot: V f(lambda) V^T with the root p (1..64), damped or not.
struct InvRootAttrs {
  int p = 2;
  bool damped = false;
};
// NewtonSchulz, NsSteps: `steps` quintic iterations with coefficient set `coeffs` (0 keller,
// 1 you).
struct NewtonSchulzAttrs {
  int steps = 5;
  int coeffs = 0;
  bool bf16 = false;  // (its second operand is eps, a runtime scalar)
};
// Dim: which size of the parameter.
enum class DimKind : int64_t { Rows = 0, Cols = 1, Numel = 2 };

inline int64_t encode(const MatMulAttrs& a) { return int64_t(a.ta) | int64_t(a.tb) << 1 | int64_t(a.bf16) << 2; }
inline MatMulAttrs matmul_attrs(int64_t i) { return {(i & 1) != 0, (i & 2) != 0, (i & 4) != 0}; }
inline MatMulAttrs matmul_attrs(const Node& n) { return matmul_attrs(n.iattr); }

inline int64_t encode(const OrderAttrs& a) { return int64_t(a.descending); }
inline OrderAttrs order_attrs(const Node& n) { return {(n.iattr & 1) != 0}; }

inline int64_t encode(const InvRootAttrs& a) { return int64_t(a.p) | int64_t(a.damped) << 8; }
inline InvRootAttrs inv_root_attrs(const Node& n) { return {int(n.iattr & 0xff), (n.iattr >> 8) != 0}; }

inline int64_t encode(const NewtonSchulzAttrs& a) { return int64_t(a.steps) | int64_t(a.coeffs) << 8 | int64_t(a.bf16) << 12; }
inline NewtonSchulzAttrs newton_schulz_attrs(const Node& n) { return {int(n.iattr & 0xff), int((n.iattr >> 8) & 0xf), ((n.iattr >> 12) & 1) != 0}; }

inline DimKind dim_kind(const Node& n) { return DimKind(n.iattr); }

}  // namespace opal::ir
