// The executable description's helpers: sizes, the host scalar program, printing, verifying.
#include "compiler/exec/description.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "support/bf16.h"
#include "support/text.h"

namespace opal::exec {

const char* extent_name(Extent e) {
  static const char* names[] = {"scalar", "rows", "cols", "full", "left", "right", "small"};
  return names[size_t(e)];
}

bool is_square(Extent e) { return e == Extent::Left || e == Extent::Right || e == Extent::Small; }

const char* view_name(View v) {
  static const char* names[] = {"first", "last", "batch", "largest"};
  return names[size_t(v)];
}

const char* role_name(ParamRole r) {
  static const char* names[] = {"", "embedding", "head", "norm", "bias", "conv"};
  return names[size_t(r)];
}

bool role_by_name(const std::string& name, ParamRole& out) {
  for (ParamRole r : kParamRoles)
    if (name == role_name(r)) {
      out = r;
      return true;
    }
  return false;
}

std::string unknown_role(const std::string& given) {
  std::vector<std::string> names;
  for (ParamRole r : kParamRoles) names.push_back(role_name(r));
  const std::string close = closest_match(given, names);
  return fmt::format("`{}` is not a role{}; the roles are {}", given, close.empty() ? "" : " (did you mean `" + close + "`?)",
                     fmt::join(names, ", "));
}

TensorView tensor_view(const std::vector<int64_t>& shape, View v) {
  TensorView tv;
  long long numel = 1;
  for (int64_t d : shape) numel *= d;
  const size_t r = shape.size();
  if (r < 2) {
    tv.cols = numel;
    return tv;
  }
  if (v == View::First || v == View::Last) {
    tv.cols = v == View::Last ? shape.back() : numel / shape[0];
    tv.rows = numel / tv.cols;
    return tv;
  }
  size_t a = r - 2, b = r - 1;  // the matrix axes, in their order
  if (v == View::Largest) {
    std::vector<int> order(r);
    for (size_t i = 0; i < r; ++i) order[i] = int(i);
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return shape[size_t(x)] < shape[size_t(y)]; });
    a = size_t(std::min(order[r - 2], order[r - 1]));
    b = size_t(std::max(order[r - 2], order[r - 1]));
  }
  for (size_t i = 0; i < r; ++i)
    if (i != a && i != b) {
      tv.batch_shape.push_back(shape[i]);
      tv.perm.push_back(int(i));
    }
  tv.perm.push_back(int(a));
  tv.perm.push_back(int(b));
  bool identity = true;
  for (size_t i = 0; i < r; ++i) identity = identity && tv.perm[i] == int(i);
  if (identity) tv.perm.clear();
  tv.rows = shape[a];
  tv.cols = shape[b];
  tv.batch = numel / (tv.rows * tv.cols);
  return tv;
}

Dims matrix_view(const std::vector<int64_t>& shape, View v) {
  const TensorView tv = tensor_view(shape, v);
  return {tv.batch * tv.rows, tv.cols};
}

const char* scalar_op_name(ScalarOp op) {
  static const char* names[] = {"const", "step", "hparam", "rows", "cols", "numel", "rank", "neg", "not", "sqrt", "abs", "sign",
                                "exp",   "log",  "cos",    "sin",  "tanh", "floor", "bf16", "add", "sub", "mul",  "div", "pow",
                                "min",   "max",  "mod",    "lt",   "le",   "gt",    "ge",   "eq",  "ne",  "and",  "or",  "select"};
  return names[size_t(op)];
}

int scalar_arity(ScalarOp op) {
  if (op <= ScalarOp::Rank) return 0;
  if (op <= ScalarOp::Bf16) return 1;
  if (op <= ScalarOp::Or) return 2;
  return 3;
}

double eval_scalar(ScalarOp op, const double* a) {
  switch (op) {
    case ScalarOp::Neg: return -a[0];
    case ScalarOp::Not: return double(a[0] == 0);
    case ScalarOp::Sqrt: return std::sqrt(a[0]);
    case ScalarOp::Abs: return std::fabs(a[0]);
    case ScalarOp::Sign: return double((a[0] > 0) - (a[0] < 0));
    case ScalarOp::Exp: return std::exp(a[0]);
    case ScalarOp::Log: return std::log(a[0]);
    case ScalarOp::Cos: return std::cos(a[0]);
    case ScalarOp::Sin: return std::sin(a[0]);
    case ScalarOp::Tanh: return std::tanh(a[0]);
    case ScalarOp::Floor: return std::floor(a[0]);
    case ScalarOp::Bf16: return double(round_bf16(float(a[0])));
    case ScalarOp::Mod: return a[0] - a[1] * std::floor(a[0] / a[1]);
    case ScalarOp::Add: return a[0] + a[1];
    case ScalarOp::Sub: return a[0] - a[1];
    case ScalarOp::Mul: return a[0] * a[1];
    case ScalarOp::Div: return a[0] / a[1];
    case ScalarOp::Pow: return std::pow(a[0], a[1]);
    case ScalarOp::Min: return std::fmin(a[0], a[1]);
    case ScalarOp::Max: return std::fmax(a[0], a[1]);
    case ScalarOp::Lt: return double(a[0] < a[1]);
    case ScalarOp::Le: return double(a[0] <= a[1]);
    case ScalarOp::Gt: return double(a[0] > a[1]);
    case ScalarOp::Ge: return double(a[0] >= a[1]);
    case ScalarOp::Eq: return double(a[0] == a[1]);
    case ScalarOp::Ne: return double(a[0] != a[1]);
    case ScalarOp::And: return double(a[0] != 0 && a[1] != 0);
    case ScalarOp::Or: return double(a[0] != 0 || a[1] != 0);
    case ScalarOp::Select: return a[0] != 0 ? a[1] : a[2];
    default: return 0.0;  // the inputs are not arithmetic
  }
}

void ScalarProgram::run(double t, const double* hparams, double rows, double cols, double* regs, double rank, double numel) const {
  if (numel < 0) numel = rows * cols;
  for (size_t i = 0; i < code.size(); ++i) {
    const ScalarInstr& in = code[i];
    switch (in.op) {
      case ScalarOp::Const: regs[i] = in.imm; break;
      case ScalarOp::Step: regs[i] = t; break;
      case ScalarOp::HParam: regs[i] = hparams[in.a]; break;
      case ScalarOp::Rows: regs[i] = rows; break;
      case ScalarOp::Cols: regs[i] = cols; break;
      case ScalarOp::Numel: regs[i] = numel; break;
      case ScalarOp::Rank: regs[i] = rank; break;
      default: {
        const double a[3] = {regs[in.a], regs[in.b], regs[in.c]};
        regs[i] = eval_scalar(in.op, a);
      }
    }
  }
}

void Description::derive_uniforms(double* uniforms, double* regs) const {
  if (uniform_regs.empty()) return;
  uniform_program.run(uniforms[0], uniforms + 1, 0, 0, regs);
  double* out = uniforms + 1 + hparams.size() + globals.size();
  for (size_t k = 0; k < uniform_regs.size(); ++k) out[k] = regs[uniform_regs[k]];
}

const char* call_name(const CallOp& op) {
  static const char* names[] = {"gemm",
                                "gram",
                                "gram_apply",
                                "eigh",
                                "inv_root",
                                "qr",
                                "diag",
                                "argsort",
                                "permute_rows",
                                "permute_cols",
                                "tri_solve_left",
                                "tri_solve_right",
                                "norm_lower_bound",
                                "ns_steps"};
  return names[op.index()];
}

namespace {

std::string guard_str(const Guard& g) {
  if (g.always()) return "";
  std::string s;
  for (const auto& t : g.all) s += fmt::format("{}{}r{}", s.empty() ? " if " : " && ", t.negated ? "!" : "", t.reg);
  return s;
}

std::string call_attrs(const CallOp& op) {
  return std::visit(
      [](const auto& c) -> std::string {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, Gemm>) return fmt::format("{{ta={}, tb={}, bf16={}}}", c.ta, c.tb, c.bf16);
        else if constexpr (std::is_same_v<T, Gram> || std::is_same_v<T, GramApply>) return fmt::format("{{bf16={}}}", c.bf16);
        else if constexpr (std::is_same_v<T, Eigh> || std::is_same_v<T, Argsort>) return fmt::format("{{descending={}}}", c.descending);
        else if constexpr (std::is_same_v<T, InvRoot>) return fmt::format("{{p={}, damped={}}}", c.p, c.damped);
        else if constexpr (std::is_same_v<T, NsSteps>) return fmt::format("{{steps={}, bf16={}}}", c.coeffs.size(), c.bf16);
        else return "";
      },
      op);
}

std::string operand_str(const Operand& o) {
  return o.buffer >= 0 ? fmt::format("b{}:{}", o.buffer, extent_name(o.extent)) : fmt::format("r{}", o.reg);
}

// A scalar program, an instruction a line: "  r3 = pow r1, r2".
std::string program_str(const Description& d, const ScalarProgram& p) {
  std::string s;
  for (size_t i = 0; i < p.code.size(); ++i) {
    const ScalarInstr& in = p.code[i];
    s += fmt::format("  r{} = {}", i, scalar_op_name(in.op));
    if (in.op == ScalarOp::Const) s += fmt::format(" {:g}", in.imm);
    else if (in.op == ScalarOp::HParam)
      s += fmt::format(" {}", in.a < d.hparams.size()                      ? d.hparams[in.a]
                              : in.a < d.hparams.size() + d.globals.size() ? d.globals[in.a - d.hparams.size()]
                                                                           : "?");
    const uint32_t ops[3] = {in.a, in.b, in.c};
    for (int k = 0; k < scalar_arity(in.op); ++k) s += fmt::format("{} r{}", k ? "," : "", ops[k]);
    s += "\n";
  }
  return s;
}

// The first problem of a scalar program (operands earlier, hyperparameters in range), or "".
std::string program_problem(const Description& d, const ScalarProgram& p) {
  for (size_t i = 0; i < p.code.size(); ++i) {
    const ScalarInstr& in = p.code[i];
    const uint32_t ops[3] = {in.a, in.b, in.c};
    for (int k = 0; k < scalar_arity(in.op); ++k)
      if (ops[k] >= i) return fmt::format("r{} reads r{}, not an earlier register", i, ops[k]);
    if (in.op == ScalarOp::HParam && in.a >= d.hparams.size() + d.globals.size())
      return fmt::format("r{} reads hyperparameter {} of {}", i, in.a, d.hparams.size() + d.globals.size());
  }
  return "";
}

}  // namespace

std::string print_route(const Description& d, size_t ri) {
  const Route& r = d.routes[ri];
  std::string s = fmt::format("route {} `{}`: {}{}{}{}\n", ri, r.label, r.pipeline, r.matrix_only ? " (matrix only)" : "",
                              r.view == View::First ? "" : fmt::format(" view({})", view_name(r.view)), r.master ? " (master copies)" : "");
  s += "  buffers: b0 w:full, b1 g:full";
  for (size_t i = 0; i < r.slots.size(); ++i)
    s += fmt::format(", b{} {}:{}{}{}", kFirstSlotBuffer + i, r.slots[i].name, extent_name(r.slots[i].extent),
                     r.slots[i].dtype == DType::Q8    ? fmt::format(":q8({})", r.slots[i].block)
                     : r.slots[i].is_scales()         ? fmt::format(":per{}", r.slots[i].block)
                     : r.slots[i].dtype == DType::F32 ? ""
                                                      : fmt::format(":{}", dtype_name(r.slots[i].dtype)),
                     r.slots[i].init == Init::Identity ? "=eye" : "");
  for (size_t i = 0; i < r.scratch.size(); ++i)
    s += fmt::format(", b{} scratch:{}", kFirstSlotBuffer + r.slots.size() + i, extent_name(r.scratch[i]));
  s += "\n";
  s += program_str(d, r.scalars);
  const ShardPhases& sp = r.shards;
  auto bufs = [](const std::vector<uint32_t>& v) { return v.empty() ? std::string("nothing") : fmt::format("b{}", fmt::join(v, ", b")); };
  if (sp.has_whole()) {
    std::vector<std::string> owner;
    for (size_t i = 0; i < r.slots.size(); ++i)
      if (sp.owner_slot[i]) owner.push_back(r.slots[i].name);
    s += fmt::format("  sharded by rows: local [0, {}), whole [{}, {}) on the owner, finish [{}, {}); the owner keeps {} whole\n", sp.local_end,
                     sp.local_end, sp.whole_end, sp.whole_end, r.schedule.size(),
                     owner.empty() ? std::string("no state") : fmt::format("{}", fmt::join(owner, ", ")));
  } else if (!r.schedule.empty()) s += "  sharded by rows: every stage local\n";
  for (size_t i = 0; i < r.schedule.size(); ++i) {
    const ScheduleEntry& e = r.schedule[i];
    if (sp.has_whole() && i == sp.local_end) s += fmt::format("  -- local phase ends: gather {} to the owner\n", bufs(sp.gather));
    if (sp.has_whole() && i == sp.whole_end) s += fmt::format("  -- whole phase ends: scatter {}\n", bufs(sp.scatter));
    if (!r.shares.empty() && i == r.phase_split) {
      std::vector<std::string> sh;
      for (const auto& x : r.shares) sh.push_back(fmt::format("{} += b{}{}", d.globals.at(x.global), x.buffer, x.per_matrix ? " per matrix" : ""));
      s += fmt::format("  -- every route's first phase ends: {}\n", fmt::join(sh, ", "));
    }
    if (e.is_call) {
      const LibraryCall& c = r.calls[e.index];
      std::vector<std::string> in;
      for (const auto& o : c.in) in.push_back(operand_str(o));
      s += fmt::format("  {}: b{}:{} = {}{}({}){}\n", i, c.out, extent_name(c.out_extent), call_name(c.op), call_attrs(c.op), fmt::join(in, ", "),
                       guard_str(c.guard));
    } else {
      const KernelLaunch& k = r.kernels[e.index];
      s += fmt::format("  {}: kernel {} over {}", i, d.symbols.at(k.symbol), extent_name(k.domain));
      if (!k.zeroed.empty()) s += fmt::format(" zeroing b{}", fmt::join(k.zeroed, ", b"));
      if (!k.whole_sums.empty()) s += fmt::format(" whole b{}", fmt::join(k.whole_sums, ", b"));
      if (k.chunk) s += fmt::format(" chunks of {}", k.chunk);
      s += guard_str(k.guard) + "\n";
    }
  }
  if (sp.has_whole() && sp.whole_end == r.schedule.size()) s += fmt::format("  -- whole phase ends: scatter {}\n", bufs(sp.scatter));
  return s;
}

std::string print_uniforms(const Description& d) {
  if (d.uniform_regs.empty()) return "";
  std::vector<std::string> at;
  for (size_t k = 0; k < d.uniform_regs.size(); ++k)
    at.push_back(fmt::format("hp[{}] = r{}", d.hparams.size() + d.globals.size() + k, d.uniform_regs[k]));
  return fmt::format("uniforms computed on the host: {}\n", fmt::join(at, ", ")) + program_str(d, d.uniform_program);
}

std::string print_hparams(const Description& d) {
  size_t width = 0;
  for (const auto& h : d.hparams) width = std::max(width, h.size());
  std::string s = fmt::format("optimizer {}: {} hyperparameter{}\n", d.name, d.hparams.size(), d.hparams.size() == 1 ? "" : "s");
  for (size_t i = 0; i < d.hparams.size(); ++i) {
    s += fmt::format("  {:<{}} = {:g}\n", d.hparams[i], width, d.defaults[i]);
    for (const auto& r : d.ranges)
      if (r.hparam == i) s += fmt::format("  {:<{}}   takes {}: {}\n", "", width, r.range.takes(), r.origin);
  }
  return s;
}

std::string print(const Description& d) {
  std::string s = fmt::format("optimizer {}({})\n", d.name, fmt::join(d.hparams, ", "));
  for (const auto& r : d.ranges) s += fmt::format("range {} in {}: {}\n", d.hparams[r.hparam], r.range.str(), r.origin);
  for (size_t t = 0; t < d.tables.size(); ++t) {
    s += fmt::format("table {} ({}):\n", t, d.tables[t].optimizer);
    for (const auto& sel : d.tables[t].selectors) {
      static const char* kinds[] = {"pattern", "matrix", "vector", "other", "where", "role"};
      std::vector<std::string> roles;
      for (ParamRole r : sel.roles) roles.push_back(role_name(r));
      std::string what = sel.kind == SelectorKind::Pattern ? fmt::format("\"{}\"", fmt::join(sel.patterns, "\", \""))
                         : sel.kind == SelectorKind::Where ? sel.condition_text
                         : sel.kind == SelectorKind::Role  ? fmt::format("role {}", fmt::join(roles, ", "))
                                                           : kinds[size_t(sel.kind)];
      s += sel.table >= 0 ? fmt::format("  {} -> table {}\n", what, sel.table) : fmt::format("  {} -> route {}\n", what, sel.route);
    }
  }
  s += print_uniforms(d);
  for (size_t r = 0; r < d.routes.size(); ++r) s += print_route(d, r);
  return s;
}

std::string verify(const Description& d) {
  if (d.defaults.size() != d.hparams.size()) return "defaults and hyperparameters differ in number";
  for (const auto& r : d.ranges)
    if (r.hparam >= d.hparams.size()) return fmt::format("a range of hyperparameter {} of {}", r.hparam, d.hparams.size());
  if (d.tables.empty()) return "no routing table";
  for (size_t t = 0; t < d.tables.size(); ++t)
    for (const auto& sel : d.tables[t].selectors) {
      if ((sel.route >= 0) == (sel.table >= 0)) return fmt::format("a selector of table {} leads to neither one route nor one table", t);
      if (sel.route >= int32_t(d.routes.size()) || sel.table >= int32_t(d.tables.size()) || (sel.table >= 0 && sel.table <= int32_t(t)))
        return fmt::format("a selector of table {} leads out of range (or back)", t);
      if ((sel.kind == SelectorKind::Pattern) == sel.patterns.empty()) return fmt::format("a selector of table {} has the wrong patterns", t);
      if ((sel.kind == SelectorKind::Role) == sel.roles.empty()) return fmt::format("a selector of table {} has the wrong roles", t);
      for (ParamRole r : sel.roles)
        if (r == ParamRole::None || size_t(r) > size_t(ParamRole::Conv)) return fmt::format("a selector of table {} has an unknown role", t);
      const auto& code = sel.condition.code;
      if ((sel.kind == SelectorKind::Where) == code.empty() || code.size() > kMaxConditionLength)
        return fmt::format("a selector of table {} has a missing, stray or too long condition", t);
      for (size_t i = 0; i < code.size(); ++i) {
        const uint32_t ops[3] = {code[i].a, code[i].b, code[i].c};
        for (int k = 0; k < scalar_arity(code[i].op); ++k)
          if (ops[k] >= i) return fmt::format("a condition of table {} reads a later register", t);
        if (code[i].op == ScalarOp::Step) return fmt::format("a condition of table {} reads t", t);
        if (code[i].op == ScalarOp::HParam && code[i].a >= d.hparams.size())
          return fmt::format("a condition of table {} reads a hyperparameter out of range", t);
      }
    }
  if (std::string p = program_problem(d, d.uniform_program); !p.empty()) return "the uniforms' program: " + p;
  for (const ScalarInstr& in : d.uniform_program.code)
    if (in.op == ScalarOp::Rows || in.op == ScalarOp::Cols || in.op == ScalarOp::Numel || in.op == ScalarOp::Rank)
      return "the uniforms' program reads a parameter's size";
  for (uint32_t reg : d.uniform_regs)
    if (reg >= d.uniform_program.size()) return "a uniform is out of its program's registers";
  for (size_t ri = 0; ri < d.routes.size(); ++ri) {
    const Route& r = d.routes[ri];
    auto bad = [&](const std::string& what) { return fmt::format("route {} `{}`: {}", ri, r.label, what); };
    const size_t nregs = r.scalars.code.size(), nbuf = r.table_size();
    if (std::string p = program_problem(d, r.scalars); !p.empty()) return bad(p);
    if (r.phase_split > r.schedule.size()) return bad("the phase split is past the schedule");
    if (r.shards.local_end > r.shards.whole_end || r.shards.whole_end > r.schedule.size() ||
        (!r.shards.owner_slot.empty() && r.shards.owner_slot.size() != r.slots.size()))
      return bad("its sharded phases are out of range");
    for (const auto& sh : r.shares)
      if (sh.global >= d.globals.size() || sh.buffer < kFirstSlotBuffer + r.slots.size() || sh.buffer >= nbuf)
        return bad("a global share is out of range");
    auto guard_ok = [&](const Guard& g) { return std::all_of(g.all.begin(), g.all.end(), [&](const GuardTerm& t) { return t.reg < nregs; }); };
    std::vector<int> seen_k(r.kernels.size()), seen_c(r.calls.size());
    for (const auto& e : r.schedule) {
      if (e.index >= (e.is_call ? r.calls.size() : r.kernels.size())) return bad("a schedule entry is out of range");
      ++(e.is_call ? seen_c : seen_k)[e.index];
    }
    if (std::any_of(seen_k.begin(), seen_k.end(), [](int n) { return n != 1; }) ||
        std::any_of(seen_c.begin(), seen_c.end(), [](int n) { return n != 1; }))
      return bad("the schedule does not run every kernel and call exactly once");
    for (const auto& k : r.kernels) {
      if (k.symbol >= d.symbols.size()) return bad("a kernel's symbol is out of range");
      if (!guard_ok(k.guard)) return bad("a kernel's guard reads a missing register");
      if (k.chunk && (k.domain != Extent::Full || k.partials.any())) return bad("a chunked kernel is not elementwise over the full space");
      for (uint32_t z : k.zeroed)
        if (z < kFirstSlotBuffer + r.slots.size() || z >= nbuf) return bad(fmt::format("a kernel zeroes b{}, not a scratch buffer", z));
      for (uint32_t z : k.whole_sums)
        if (std::find(k.zeroed.begin(), k.zeroed.end(), z) == k.zeroed.end() || r.scratch[z - kFirstSlotBuffer - r.slots.size()] != Extent::Scalar)
          return bad(fmt::format("a kernel's whole sum b{} is not one of its scalar totals", z));
    }
    for (const auto& c : r.calls) {
      if (!guard_ok(c.guard)) return bad("a call's guard reads a missing register");
      if (c.out < kFirstSlotBuffer + r.slots.size() || c.out >= nbuf)
        return bad(fmt::format("{} writes b{}, not a scratch buffer", call_name(c.op), c.out));
      for (const auto& o : c.in) {
        if (o.buffer >= 0 ? size_t(o.buffer) >= nbuf : (o.reg < 0 || size_t(o.reg) >= nregs))
          return bad(fmt::format("an operand of {} is out of range", call_name(c.op)));
        if (o.buffer >= 0 && uint32_t(o.buffer) == c.out) return bad(fmt::format("{} reads the buffer it writes", call_name(c.op)));
      }
    }
  }
  return "";
}

}  // namespace opal::exec
