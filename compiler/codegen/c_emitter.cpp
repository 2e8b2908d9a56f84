// The shared C emitter. Values are named after their IR ids: `sN` (double, per-parameter
// scalar, computed before the loop) and `vN` (float, per element). Every statement carries a
// comment naming its IR value and spec location.
#include "compiler/ir/attrs.h"
#include "compiler/codegen/c_emitter.h"
#include "compiler/exec/description.h"
#include "compiler/exec/host_uniforms.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "support/check.h"
#include "compiler/codegen/targets.h"

namespace opal {

using ir::Op;
using ir::Shape;
using ir::ValueId;

std::string randn_prelude(const std::string& q) {
  return fmt::format(R"({0} float opal_randn(unsigned long long x) {{
  const float u1 = ((float)(x >> 40) + 0.5f) * (1.0f / 16777216.0f);
  const float u2 = ((float)(x & 0xffffffull) + 0.5f) * (1.0f / 16777216.0f);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}}
)",
                     q);
}

std::string kernel_symbol(size_t route, size_t kernel) { return fmt::format("opal_r{}_k{}", route, kernel); }

std::string CEmitter::literal(double v) {
  // non-finite constants (a folded 1/0) as IEEE expressions both targets accept
  if (std::isnan(v)) return "(0.0 / 0.0)";
  if (std::isinf(v)) return v > 0 ? "(1.0 / 0.0)" : "(-1.0 / 0.0)";
  // the range check first: casting a double beyond long long's range is undefined
  if (std::abs(v) < 1e15 && v == double((long long)v)) return fmt::format("{}.0", (long long)v);
  return fmt::format("{:.17g}", v);
}

std::string CEmitter::comment(const ir::Graph& g, ValueId v) {
  const ir::Node& n = g.at(v);
  std::string s = fmt::format("%{} {}", v.v, ir::op_name(n.op));
  if (n.op == Op::HParam) s += " " + g.hparams[n.iattr];
  if (n.op == Op::StateRead || n.op == Op::StateWrite || n.op == Op::StateWriteIf) s += " " + g.slots[n.iattr].name;
  if (n.loc.valid()) s += " @" + n.loc.short_str();
  return s;
}

// Index of a buffer of shape `s` inside a kernel iterating `d`.
std::string CEmitter::index(Domain d, Shape s, bool indexed) const {
  switch (s) {
    case Shape::Full: return indexed ? "(i * cols + j)" : "e";
    case Shape::Rows: return "i";
    case Shape::Cols: return "j";
    case Shape::Scalar: return "0";
    case Shape::Left:
    case Shape::Right:
    case Shape::Small: return "e";  // only ever read in their own space
  }
  (void)d;
  return "?";
}

std::string CEmitter::scalar_expr(const ir::Graph& g, ValueId v, const Plan& p) const {
  const ir::Node& n = g.at(v);
  auto a = [&](int k) { return fmt::format("s{}", n.operands[k].v); };
  switch (n.op) {
    case Op::Const: return literal(n.fattr);
    case Op::HParam: return fmt::format("U_hp({})", n.iattr);
    case Op::Step: return "U_t";
    case Op::Dim:
      return ir::dim_kind(n) == ir::DimKind::Rows ? "(double)T.mrows" : ir::dim_kind(n) == ir::DimKind::Cols ? "(double)T.mcols" : "(double)T.total";
    case Op::Sum:
    case Op::NormLowerBound: return fmt::format("(double)sb{}[0]", p.temp_index(v));
    case Op::StateRead:  // a scalar state
      return g.slots[n.iattr].bf16 ? fmt::format("(double)opal_ld_bf16(sb{}[0])", p.slot_index(n.iattr))
                                   : fmt::format("(double)sb{}[0]", p.slot_index(n.iattr));
    default: {
      const char* c = ir::op_c_double(n.op);  // the registry's expression (ops.def)
      OPAL_CHECK(*c, "op %s is not a scalar op", ir::op_name(n.op));
      return fmt::format(fmt::runtime(c), n.n_operands > 0 ? a(0) : "", n.n_operands > 1 ? a(1) : "", n.n_operands > 2 ? a(2) : "");
    }
  }
  return {};
}

// A float operand inside the loop: a per-element value, or a scalar narrowed to float.
std::string CEmitter::operand(const ir::Graph& g, ValueId v) const {
  return g.at(v).shape == Shape::Scalar ? fmt::format("(float)s{}", v.v) : fmt::format("v{}", v.v);
}

std::string CEmitter::element_expr(const ir::Graph& g, ValueId v) const {
  const ir::Node& n = g.at(v);
  auto a = [&](int k) { return operand(g, n.operands[k]); };
  switch (n.op) {
    case Op::Triu: {
      const char* side = n.shape == Shape::Left ? "rows" : n.shape == Shape::Right ? "cols" : "(rows < cols ? rows : cols)";
      return fmt::format("(e % {0} >= e / {0} ? {1} : 0.0f)", side, a(0));
    }
    default: {
      const char* c = ir::op_c_float(n.op);  // the registry's expression (ops.def)
      OPAL_CHECK(*c, "op %s is not elementwise", ir::op_name(n.op));
      return fmt::format(fmt::runtime(c), n.n_operands > 0 ? a(0) : "", n.n_operands > 1 ? a(1) : "", n.n_operands > 2 ? a(2) : "");
    }
  }
  return {};
}

void CEmitter::kernel(std::string& out, const Plan& p, size_t route, size_t k) const {
  const ir::Graph& g = p.graph;
  const Kernel& K = p.kernels[k];
  auto buf_of_slot = [&](int64_t s) { return p.slot_index(s); };
  auto buf_of_temp = [&](ValueId v) { return p.temp_index(v); };
  chunk_ = chunk_size(p, K);
  // a kernel decoding q8 slots (reads, and conditional writes keeping the old value) may need
  // the code's table loaded first
  const bool decodes_q8 =
      std::any_of(K.body.begin(), K.body.end(), [&](ValueId v) { return g.at(v).op == Op::StateRead && g.slots[g.at(v).iattr].q8; }) ||
      std::any_of(K.effects.begin(), K.effects.end(), [&](ValueId v) { return g.at(v).op == Op::StateWriteIf && g.slots[g.at(v).iattr].q8; });
  q8_kernel_ = decodes_q8 ||
               std::any_of(K.effects.begin(), K.effects.end(), [&](ValueId v) { return g.at(v).op == Op::StateWrite && g.slots[g.at(v).iattr].q8; });
  out += fmt::format("// {} kernel {}: {} space, level {}\n", g.name, k, domain_name(K.domain), K.level);
  out += signature(kernel_symbol(route, k)) + " {\n";
  if (decodes_q8) out += q8_table_load();
  out += open_tensor();
  out += "  const long long rows = T.rows, cols = T.cols, numel = rows * cols;\n";
  static const char* extent[] = {"numel", "rows", "cols", "rows * rows", "cols * cols", "(rows < cols ? rows : cols) * (rows < cols ? rows : cols)",
                                 "1"};
  out += fmt::format("  const long long n_e = {};  // elements of the {} space\n", extent[int(K.domain)], domain_name(K.domain));
  out += "  (void)rows; (void)cols; (void)numel; (void)n_e;\n";
  // buffers this kernel touches
  const KernelBuffers touched = kernel_buffers(p, K);
  const std::set<size_t> bufs = touched.all();
  const std::vector<ValueId>& temp_reads = touched.temp_reads;
  // probes this kernel sees (computed in the body or read from a temp), each value under the
  // first probe that names it: the earliest stage to hold a non-finite value gets the blame
  std::vector<std::pair<ValueId, size_t>> checks;
  if (checked) {
    auto seen = [&](ValueId v) {
      return std::find(K.body.begin(), K.body.end(), v) != K.body.end() || std::find(temp_reads.begin(), temp_reads.end(), v) != temp_reads.end();
    };
    for (size_t i = 0; i < g.probes.size(); ++i) {
      ValueId v = g.probes[i].value;
      bool first = std::none_of(g.probes.begin(), g.probes.begin() + i, [&](const ir::Probe& q) { return q.value == v; });
      if (first && g.at(v).shape != Shape::Scalar && seen(v)) checks.push_back({v, i});
    }
  }
  // w and g are typed per variant (the mixed program); state, scratch and temps are f32
  const bool uses_w = bufs.count(exec::kParamBuffer) != 0, uses_g = bufs.count(exec::kGradBuffer) != 0;
  // bf16 state slots are addressed as 16-bit words (`state m: bf16`), q8 codes as bytes
  auto slot_of_buf = [&](size_t b) -> const ir::Slot* {
    return b >= exec::kFirstSlotBuffer && b < buf_of_slot(0) + g.slots.size() ? &g.slots[b - buf_of_slot(0)] : nullptr;
  };
  bool stores_bf16_slot = false;
  std::vector<Q8Store> q8_stores;  // the q8 slots this kernel stores: quantized a block at a time
  for (ValueId e : K.effects) {
    const ir::Node& n = g.at(e);
    if (n.op != Op::StateWrite && n.op != Op::StateWriteIf) continue;
    const ir::Slot& s = g.slots[n.iattr];
    if (s.bf16) stores_bf16_slot = true;
    if (!s.q8) continue;
    Q8Store q{buf_of_slot(n.iattr), buf_of_slot(s.scales), s.q8, ""};
    if (n.op == Op::StateWriteIf && g.at(n.operands[1]).shape == Shape::Scalar) q.guard = fmt::format("{} != 0.0f", operand(g, n.operands[1]));
    q8_stores.push_back(q);
  }
  OPAL_CHECK(q8_stores.empty() || K.domain == Domain::Full, "a q8 slot stored outside the full space");
  // a slot stored here in blocks of the loop's size has one scale per loop block: read once
  // (`opal_s<scales>`, which q8_loop declares), not per element
  int q8_loop_block = 0;
  for (const Q8Store& q : q8_stores) q8_loop_block = std::max(q8_loop_block, q.block);
  auto hoisted_scale = [&](const ir::Slot& s) {
    return s.q8 == q8_loop_block &&
           std::any_of(q8_stores.begin(), q8_stores.end(), [&](const Q8Store& q) { return q.scales == buf_of_slot(s.scales); });
  };
  const bool writes_bf16 = (mixed && uses_w) || stores_bf16_slot;
  for (size_t b : bufs) {
    const ir::Slot* s = slot_of_buf(b);
    if (s && s->bf16) out += fmt::format("  unsigned short* {} sb{} = (unsigned short*)T.buf[{}];\n", restrict_kw(), b, b);
    else if (s && s->q8 && s->scales_of < 0) out += fmt::format("  unsigned char* {} sb{} = (unsigned char*)T.buf[{}];\n", restrict_kw(), b, b);
    else if (!mixed || b >= exec::kFirstSlotBuffer) out += fmt::format("  float* {} sb{} = T.buf[{}];\n", restrict_kw(), b, b);
  }
  // stochastic rounding of bf16 stores, where the tensor asks for it
  if (writes_bf16) out += fmt::format("  const int opal_sr = (T.dt & {}) != 0;\n  (void)opal_sr;\n", exec::kStochasticBit);
  // scalars
  // scalars (the step-uniform ones computed on the host: uniforms after the global sums)
  for (ValueId v : kernel_scalars(p, K)) {
    auto hosted = p.host_uniforms.find(v.v);
    const std::string rhs = hosted != p.host_uniforms.end() ? fmt::format("U_hp({})", hosted->second) : scalar_expr(g, v, p);
    out += fmt::format("  const double s{} = {};  // {}{}\n", v.v, rhs, comment(g, v), hosted != p.host_uniforms.end() ? " (host)" : "");
  }
  // total reductions accumulate in double
  reductions_.clear();
  table_size_ = exec::kFirstSlotBuffer + g.slots.size() + p.buffers.size();
  for (ValueId r : K.reductions) {
    reductions_.push_back({buf_of_temp(r), g.at(r).op, fmt::format("acc{}", r.v)});
    if (g.at(r).op == Op::Sum) out += fmt::format("  double acc{} = 0.0;\n", r.v);
  }
  if (checked) out += "  unsigned opal_chk = 0u;\n";
  // the loop, for w and g stored as `wt` and `gt`
  std::string ind = K.indexed && K.domain == Domain::Full ? "      " : "    ";
  auto idx = [&](Shape s) { return index(K.domain, s, K.indexed); };
  // A flat parallel loop may stage its bf16 stores (stages_bf16): each value goes to the
  // chunk's `opal_h<b>`, rounded a vector at a time after it (to nearest, or stochastically).
  const bool stageable = stages_bf16() && !K.indexed && !K.serial && K.domain == Domain::Full && K.reductions.empty() && q8_stores.empty();
  auto render_sr = [&](exec::DType wt, exec::DType gt, const char* sr) {
    auto load = [&](exec::DType t, size_t b) {
      const std::string at = fmt::format("sb{}[{}]", b, idx(Shape::Full));
      return t == exec::DType::F32 ? at : fmt::format("{}({})", t == exec::DType::BF16 ? "opal_ld_bf16" : "opal_ld_f16", at);
    };
    auto load_slot = [&](int64_t k) {
      const ir::Slot& s = g.slots[k];
      const std::string at = idx(s.shape);
      if (s.bf16) return fmt::format("opal_ld_bf16(sb{}[{}])", buf_of_slot(k), at);
      if (s.q8 && hoisted_scale(s)) return fmt::format("opal_ld_q8(sb{}[{}], opal_s{})", buf_of_slot(k), at, buf_of_slot(s.scales));
      if (s.q8) return fmt::format("opal_ld_q8(sb{}[{}], sb{}[({}) / {}])", buf_of_slot(k), at, buf_of_slot(s.scales), at, s.q8);
      return fmt::format("sb{}[{}]", buf_of_slot(k), at);
    };
    const bool nearest = std::string(sr) == "0";
    // the random stream of a bf16 slot's stochastic rounding: the tensor's id mixed with the
    // slot's index (w's is the tensor's id)
    auto slot_stream = [](int64_t k) { return fmt::format("T.id + {}ull * 0x632be59bd9b4e019ull", k + 1); };
    // the body; `staged`: where given, the bf16 stores it may stage, and it collects them
    auto body = [&](std::vector<StagedStore>* staged) {
      std::string out;
      for (ValueId t : temp_reads) out += fmt::format("{}const float v{} = sb{}[{}];  // temp\n", ind, t.v, buf_of_temp(t), idx(g.at(t).shape));
      for (ValueId v : K.body) {
        const ir::Node& n = g.at(v);
        std::string rhs;
        if (n.op == Op::RandN) rhs = fmt::format("opal_randn(opal_key(T.id, U_t, T.base + {}))", idx(Shape::Full));
        else if (n.op == Op::Eye) rhs = n.shape == Shape::Left ? "(float)(e % (rows + 1) == 0)" : "(float)(e % (cols + 1) == 0)";
        else if (n.op == Op::Param) rhs = load(wt, exec::kParamBuffer);
        else if (n.op == Op::Grad) rhs = load(gt, exec::kGradBuffer);
        else if (n.op == Op::StateRead) rhs = load_slot(n.iattr);
        else rhs = element_expr(g, v);
        out += fmt::format("{}const float v{} = {};  // {}\n", ind, v.v, rhs, comment(g, v));
      }
      for (auto [v, i] : checks) out += fmt::format("{}if (opal_nonfinite(v{})) opal_chk |= {}u;  // {}\n", ind, v.v, 1u << i, g.probes[i].stage);
      for (ValueId r : K.reductions) {
        const ir::Node& n = g.at(r);
        std::string val = operand(g, n.operands[0]);
        if (n.op == Op::Sum) out += fmt::format("{}{}\n", ind, accumulate_total(fmt::format("acc{}", r.v), fmt::format("sb{}", buf_of_temp(r)), val));
        else out += fmt::format("{}{}  // {}\n", ind, accumulate(buf_of_temp(r), n.op == Op::RowSum, val), comment(g, r));
      }
      for (ValueId s : K.stores) out += fmt::format("{}sb{}[{}] = v{};  // temp\n", ind, buf_of_temp(s), idx(g.at(s).shape), s.v);
      for (ValueId e : K.effects) {
        const ir::Node& n = g.at(e);
        std::string val = operand(g, n.operands[0]);
        if (n.op == Op::ParamWrite) {
          const std::string at = idx(Shape::Full);
          const std::string stored = wt == exec::DType::F32    ? val
                                     : wt == exec::DType::BF16 ? fmt::format("opal_to_bf16({}, {}, T.id, U_t, T.base + {})", val, sr, at)
                                                               : fmt::format("opal_to_f16({})", val);
          // a 16-bit store can overflow a finite f32 value (f16 from 65520 up): the new value's
          // probe checks what is stored, too
          const auto probe = std::find_if(checks.begin(), checks.end(), [&](const auto& c) { return c.first == n.operands[0]; });
          if (staged && wt == exec::DType::BF16 && probe == checks.end()) {
            staged->push_back({exec::kParamBuffer, nearest ? "" : "T.id"});
            out += fmt::format("{}opal_h{}[e - opal_c] = {};  // {}\n", ind, exec::kParamBuffer, val, comment(g, e));
          } else if (wt != exec::DType::F32 && probe != checks.end()) {
            const char* inf = wt == exec::DType::BF16 ? "0x7f80u" : "0x7c00u";  // the exponent bits all ones: Inf or NaN
            out += fmt::format("{}const unsigned short opal_w{} = {};\n", ind, e.v, stored);
            out += fmt::format("{0}if ((opal_w{1} & {2}) == {2}) opal_chk |= {3}u;  // {4}, as stored\n", ind, e.v, inf, 1u << probe->second,
                               g.probes[probe->second].stage);
            out += fmt::format("{}sb0[{}] = opal_w{};  // {}\n", ind, at, e.v, comment(g, e));
          } else out += fmt::format("{}sb0[{}] = {};  // {}\n", ind, at, stored, comment(g, e));
        } else if (n.op == Op::GlobalPut) out += fmt::format("{}sb{}[0] = {};  // {}\n", ind, buf_of_temp(e), val, comment(g, e));
        else {
          // a q8 slot's value waits for its block (q8_loop quantizes it)
          if (g.slots[n.iattr].q8) {
            const std::string q = fmt::format("opal_q{}[{}]", buf_of_slot(n.iattr), q8_index());
            if (n.op == Op::StateWriteIf)
              out += fmt::format("{}{} = {} != 0.0f ? {} : {};  // {}\n", ind, q, operand(g, n.operands[1]), val, load_slot(n.iattr), comment(g, e));
            else out += fmt::format("{}{} = {};  // {}\n", ind, q, val, comment(g, e));
            continue;
          }
          // a bf16 slot rounds its store, stochastically from a stream of its own
          const ir::Slot& slot = g.slots[n.iattr];
          const std::string at = idx(slot.shape);
          const bool stochastic = slot.stochastic || !nearest;
          if (staged && slot.bf16 && n.op == Op::StateWrite && slot.shape == Shape::Full) {
            staged->push_back({buf_of_slot(n.iattr), stochastic ? slot_stream(n.iattr) : ""});
            out += fmt::format("{}opal_h{}[e - opal_c] = {};  // {}\n", ind, buf_of_slot(n.iattr), val, comment(g, e));
            continue;
          }
          const std::string stored =
              slot.bf16 ? fmt::format("opal_to_bf16({}, {}, {}, U_t, T.base + {})", val, stochastic ? "1" : "0", slot_stream(n.iattr), at) : val;
          if (n.op == Op::StateWriteIf)
            out += fmt::format("{}if ({} != 0.0f) sb{}[{}] = {};  // {}\n", ind, operand(g, n.operands[1]), buf_of_slot(n.iattr), at, stored,
                               comment(g, e));
          else out += fmt::format("{}sb{}[{}] = {};  // {}\n", ind, buf_of_slot(n.iattr), at, stored, comment(g, e));
        }
      }
      return out;
    };
    const std::string out = body(nullptr);
    // the f32 buffers it reads and writes element by element (`sb<b>[e]`): a target may move
    // them 16 bytes at a time
    vec_ = {};
    if (chunk_ && !K.indexed && q8_stores.empty())
      for (size_t b : bufs) {
        const ir::Slot* s = slot_of_buf(b);
        // f32 or 16-bit elements, read and written at [e]
        const bool full = b <= exec::kGradBuffer ? true
                          : s                    ? !s->q8 && s->scales_of < 0 && s->shape == Shape::Full
                                                 : p.buffers[b - exec::kFirstSlotBuffer - g.slots.size()] == Shape::Full;
        if (!full) continue;
        const bool half = b == exec::kParamBuffer ? wt != exec::DType::F32 : b == exec::kGradBuffer ? gt != exec::DType::F32 : s && s->bf16;
        if (half) vec_.half.push_back(b);
        // a conditional write keeps the old value: load it too
        bool cond = false;
        for (ValueId e : K.effects) cond = cond || (g.at(e).op == Op::StateWriteIf && buf_of_slot(g.at(e).iattr) == b);
        if (touched.reads.count(b) || cond) vec_.load.push_back(b);
        if (touched.writes.count(b)) vec_.store.push_back(b);
        if (touched.reads.count(b) || touched.writes.count(b)) vec_.all.push_back(b);
      }
    if (!q8_stores.empty()) return q8_loop(K, out, q8_stores);
    std::vector<StagedStore> staged;
    const std::string staged_body = stageable ? body(&staged) : std::string();
    auto by_buf = [](const StagedStore& a, const StagedStore& b) { return a.buf < b.buf; };
    std::sort(staged.begin(), staged.end(), by_buf);
    staged.erase(std::unique(staged.begin(), staged.end(), [](const auto& a, const auto& b) { return a.buf == b.buf; }), staged.end());
    // a target may emit the body more than once
    return staged.empty() ? loop(K, out) : staged_loop(K, out, staged_body, staged);
  };
  // A loop storing bf16 is emitted twice, rounding stochastically and to nearest, so that the
  // common case computes no random bits at all.
  auto render = [&](exec::DType wt, exec::DType gt) {
    if (!stores_bf16_slot && wt != exec::DType::BF16) return render_sr(wt, gt, "0");
    return "  if (opal_sr) {\n" + render_sr(wt, gt, "1") + "  } else {\n" + render_sr(wt, gt, "0") + "  }\n";
  };
  if (!mixed) out += render(exec::DType::F32, exec::DType::F32);
  else {
    // one loop per storage of w and g this kernel touches, chosen per tensor
    const int mask = (uses_w ? 3 : 0) | (uses_g ? 3 << 2 : 0);
    out += fmt::format("  switch (T.dt & {}) {{\n", mask);
    for (exec::DType wt : exec::kDTypes) {
      if (!uses_w && wt != exec::DType::F32) continue;
      for (exec::DType gt : exec::kDTypes) {
        if (!uses_g && gt != exec::DType::F32) continue;
        out += fmt::format("  case {}: {{  // w {}, g {}\n", exec::dtype_code(wt, gt, false), exec::dtype_name(wt), exec::dtype_name(gt));
        auto decl = [&](exec::DType t, size_t b, bool write) {
          const char* c = t == exec::DType::F32 ? "float" : "unsigned short";
          out += fmt::format("  {}{}* {} sb{} = ({}{}*)T.buf[{}];\n", write ? "" : "const ", c, restrict_kw(), b, write ? "" : "const ", c, b);
        };
        if (uses_w) decl(wt, exec::kParamBuffer, true);
        if (uses_g) decl(gt, exec::kGradBuffer, false);
        out += render(wt, gt);
        out += "  } break;\n";
      }
    }
    out += "  default: break;\n  }\n";
  }
  if (checked) out += merge_flags();
  out += finish_reductions();
  out += close_tensor();
  out += "}\n\n";
}

std::string emit_program(const EmitInput& in, Target target) {
  std::unique_ptr<CEmitter> em = target == Target::Cpu ? make_cpu_emitter() : make_cuda_emitter();
  em->checked = in.check_finite;
  em->mixed = in.mixed;
  em->bf16 = in.mixed;
  for (const EmitRoute& r : in.routes)
    for (const ir::Slot& s : r.plan->graph.slots) em->q8 = em->q8 || s.q8 != 0, em->bf16 = em->bf16 || s.bf16;
  std::string out = fmt::format("// Generated by Opal from optimizer `{}` for the {} target{}{}. Do not edit.\n", in.optimizer,
                                target == Target::Cpu ? "cpu" : "cuda", in.check_finite ? ", with non-finite checks" : "",
                                in.mixed ? ", for f32, bf16 and f16 parameters and gradients" : "");
  out += em->prelude(in.n_hparams);
  for (size_t r = 0; r < in.routes.size(); ++r)
    for (size_t k = 0; k < in.routes[r].plan->kernels.size(); ++k) em->kernel(out, *in.routes[r].plan, r, k);
  return out;
}

}  // namespace opal
