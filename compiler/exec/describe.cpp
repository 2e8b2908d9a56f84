// Compiled optimizer -> executable description: routing tables from the AST's routes, and per
// route the buffers, the schedule with typed library calls, and the host scalar program that
// evaluates every guard and library-call scalar.
#include "compiler/ir/attrs.h"
#include "compiler/exec/describe.h"

#include <functional>
#include <optional>

#include <fmt/format.h>

#include "compiler/exec/scalar_ops.h"
#include "compiler/passes/expand_macros.h"
#include "lang/const_eval.h"
#include "support/check.h"
#include "support/disk_cache.h"

namespace opal {

namespace {

using exec::ScalarOp;
using ir::Op;

exec::Extent extent_of(ir::Shape s) { return exec::Extent(uint8_t(s)); }  // the same order

exec::Extent extent_of(Domain d) {
  switch (d) {
    case Domain::Full: return exec::Extent::Full;
    case Domain::Rows: return exec::Extent::Rows;
    case Domain::Cols: return exec::Extent::Cols;
    case Domain::Left: return exec::Extent::Left;
    case Domain::Right: return exec::Extent::Right;
    case Domain::Small: return exec::Extent::Small;
    case Domain::One: return exec::Extent::Scalar;
  }
  return exec::Extent::Full;
}

exec::CallOp call_op(const ir::Node& n) {
  const ir::MatMulAttrs mm = ir::matmul_attrs(n);
  switch (n.op) {
    case Op::MatMul: return exec::Gemm{mm.ta, mm.tb, mm.bf16};
    case Op::Gram: return exec::Gram{mm.bf16};
    case Op::GramApply: return exec::GramApply{mm.bf16};
    case Op::Eigh: return exec::Eigh{ir::order_attrs(n).descending};
    case Op::InvRoot: return exec::InvRoot{ir::inv_root_attrs(n).p, ir::inv_root_attrs(n).damped};
    case Op::Qr: return exec::Qr{};
    case Op::Diag: return exec::Diag{};
    case Op::Argsort: return exec::Argsort{ir::order_attrs(n).descending};
    case Op::PermuteRows: return exec::PermuteRows{};
    case Op::PermuteCols: return exec::PermuteCols{};
    case Op::TriSolveLeft: return exec::TriSolveLeft{};
    case Op::TriSolveRight: return exec::TriSolveRight{};
    case Op::NormLowerBound: return exec::NormLowerBound{};
    case Op::NsSteps: {
      const ir::NewtonSchulzAttrs a = ir::newton_schulz_attrs(n);
      return exec::NsSteps{passes::ns_coefficients(a.coeffs, a.steps), a.bf16};
    }
    default: OPAL_CHECK(false, "op %s is not a library call", ir::op_name(n.op));
  }
  return exec::Qr{};
}

exec::View exec_view(Route::View v) {
  switch (v) {
    case Route::View::Last: return exec::View::Last;
    case Route::View::Batch: return exec::View::Batch;
    case Route::View::Largest: return exec::View::Largest;
    default: return exec::View::First;
  }
}

// Whether a scalar can differ between the matrices of a view with many: it reads a total of a
// row or column statistic or of a square, a scalar state, or a library call's result. Totals of
// full-size values span the whole tensor (KernelLaunch::whole_sums), so they do not.
bool per_matrix(const ir::Graph& g, ir::ValueId v, std::vector<signed char>& memo) {
  signed char& m = memo[v.v];
  if (m >= 0) return m != 0;
  const ir::Node& n = g.at(v);
  bool r = false;
  if (n.op == Op::Sum) r = g.at(n.operands[0]).shape != ir::Shape::Full;  // a full total is added up over the matrices
  else if (n.op == Op::StateRead) r = n.shape == ir::Shape::Scalar;
  else if (ir::category(n.op) == ir::Category::Library) r = true;
  else
    for (int o = 0; o < n.n_operands && !r; ++o) r = per_matrix(g, n.operands[o], memo);
  m = r ? 1 : 0;
  return r;
}

exec::Route describe_route(const CompiledRoute& cr, const StateStorage& state, uint32_t first_symbol) {
  const Plan& plan = cr.plan;
  const ir::Graph& g = plan.graph;
  exec::Route r;
  r.label = cr.label;
  const RouteStep& last = cr.path.back();
  r.pipeline = pipeline_text(last.optimizer->routes[last.route].pipeline);
  if (cr.path.size() > 1) r.pipeline = last.optimizer->name + ": " + r.pipeline;
  r.master = route_state(cr.path, state).master;  // as for the storage
  for (const auto& s : g.slots) {
    const exec::DType dt = s.bf16 ? exec::DType::BF16 : s.q8 && s.scales_of < 0 ? exec::DType::Q8 : exec::DType::F32;
    r.slots.push_back({s.name, extent_of(s.shape), s.identity ? exec::Init::Identity : exec::Init::Zeros, dt, uint32_t(s.q8)});
  }
  for (ir::Shape s : plan.buffers) r.scratch.push_back(extent_of(s));
  ScalarCompiler sc(g, r.scalars);
  std::vector<signed char> memo(g.nodes.size(), -1);
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    const Kernel& K = plan.kernels[k];
    exec::KernelLaunch L{first_symbol + uint32_t(k), extent_of(K.domain), sc.guard(K.guard), {}, {}, {}, {}, {}, uint32_t(chunk_size(plan, K))};
    const KernelBuffers touched = kernel_buffers(plan, K);
    L.reads.assign(touched.reads.begin(), touched.reads.end());
    L.writes.assign(touched.writes.begin(), touched.writes.end());
    for (ir::ValueId red : K.reductions) {
      const Op op = g.at(red).op;
      (op == Op::Sum ? L.partials.sums : op == Op::RowSum ? L.partials.rows : L.partials.cols)++;
      L.zeroed.push_back(uint32_t(plan.temp_index(red)));
      if (g.at(red).op == Op::Sum && g.at(g.at(red).operands[0]).shape == ir::Shape::Full) L.whole_sums.push_back(uint32_t(plan.temp_index(red)));
    }
    r.kernels.push_back(std::move(L));
  }
  for (const Call& C : plan.calls) {
    const ir::Node& n = g.at(C.value);
    exec::LibraryCall L{call_op(n), {}, uint32_t(plan.temp_index(C.value)), extent_of(n.shape), sc.guard(C.guard)};
    for (int o = 0; o < n.n_operands; ++o) {
      const ir::ValueId v = n.operands[o];
      exec::Operand op{extent_of(g.at(v).shape)};
      if (g.at(v).shape == ir::Shape::Scalar) op.reg = int32_t(sc.reg(v));
      else op.buffer = int32_t(plan.table_index(v));
      L.in.push_back(op);
    }
    r.calls.push_back(std::move(L));
  }
  for (size_t pos = 0; pos < plan.schedule.size(); ++pos) {
    const Launch& L = plan.schedule[pos];
    r.schedule.push_back({L.is_call, uint32_t(L.index)});
    if (L.is_call) continue;
    for (ir::ValueId e : plan.kernels[L.index].effects)
      if (g.at(e).op == Op::GlobalPut) {
        r.shares.push_back({uint32_t(g.at(e).iattr), uint32_t(plan.temp_index(e)), per_matrix(g, g.at(e).operands[0], memo)});
        r.phase_split = uint32_t(pos + 1);
      }
  }
  for (const auto& p : g.probes) r.probes.push_back(p.stage);
  r.matrix_only = g.matrix_only;
  r.matrix_reason = g.matrix_reason;
  for (const RouteStep& s : cr.path)  // the innermost explicit view along the delegations
    if (s.optimizer->routes[s.route].view != Route::View::Default) r.view = exec_view(s.optimizer->routes[s.route].view);
  r.shards = exec::shard_phases(r);
  return r;
}

// How a route condition reads a hyperparameter of the optimizer whose routing table it is in:
// the register holding it, or nullopt for a name that is not one.
using HParamScope = std::function<std::optional<uint32_t>(const std::string&, exec::ScalarProgram&)>;

// A route condition (checked by the resolver: sizes, hyperparameters, numbers and const_eval's
// operators) as a host scalar program over rank, rows, cols, numel and the hyperparameters;
// its last register is the verdict.
uint32_t compile_condition(const Expr& e, exec::ScalarProgram& p, const HParamScope& scope) {
  auto push = [&](exec::ScalarInstr in) {
    p.code.push_back(in);
    return uint32_t(p.code.size() - 1);
  };
  auto op_of = [&](const std::string& spelling, int arity) {
    Op op;
    OPAL_CHECK(ir::op_by_spelling(spelling == "^" ? "pow" : spelling, arity, op), "no op `%s` in a route condition", spelling.c_str());
    return *host_scalar_op(op);
  };
  switch (e.kind) {
    case Expr::Kind::Number: return push({exec::ScalarOp::Const, 0, 0, 0, e.number});
    case Expr::Kind::Name: {
      if (e.name == "rows") return push({exec::ScalarOp::Rows});
      if (e.name == "cols") return push({exec::ScalarOp::Cols});
      if (e.name == "numel") return push({exec::ScalarOp::Numel});
      if (e.name == "rank") return push({exec::ScalarOp::Rank});
      if (auto r = scope(e.name, p)) return *r;
      auto c = eval_constant(e);  // true, false, pi
      OPAL_CHECK(c.has_value(), "name `%s` in a route condition", e.name.c_str());
      return push({exec::ScalarOp::Const, 0, 0, 0, *c});
    }
    case Expr::Kind::Unary: {
      uint32_t a = compile_condition(*e.args[0].value, p, scope);
      return push({op_of(e.name, 1), a});
    }
    case Expr::Kind::Binary:
    case Expr::Kind::Call: {
      uint32_t r[3] = {0, 0, 0};
      for (size_t k = 0; k < e.args.size() && k < 3; ++k) r[k] = compile_condition(*e.args[k].value, p, scope);
      return push({op_of(e.name, int(e.args.size())), r[0], r[1], r[2]});
    }
  }
  return 0;
}

// The top-level optimizer's hyperparameters: uniforms.
HParamScope top_scope(const CompiledOptimizer& co) {
  return [&co](const std::string& n, exec::ScalarProgram& p) -> std::optional<uint32_t> {
    for (size_t i = 0; i < co.hparams.size(); ++i)
      if (co.hparams[i] == n) {
        p.code.push_back({exec::ScalarOp::HParam, uint32_t(i)});
        return uint32_t(p.code.size() - 1);
      }
    return std::nullopt;
  };
}

// A delegated optimizer's hyperparameters: the arguments of the delegating stage (by name or
// position), read in the delegating optimizer's scope, or their numeric defaults.
HParamScope delegated_scope(const OptimizerDecl& inner, const Stage& call, HParamScope outer) {
  return [&inner, &call, outer](const std::string& n, exec::ScalarProgram& p) -> std::optional<uint32_t> {
    for (size_t k = 0; k < inner.params.size(); ++k) {
      if (inner.params[k].name != n) continue;
      const Expr* bound = bound_argument(inner, call, k);
      if (!bound) bound = inner.params[k].default_value.get();
      OPAL_CHECK(bound, "hyperparameter `%s` of `%s` has neither an argument nor a default", n.c_str(), inner.name.c_str());
      return compile_condition(*bound, p, outer);
    }
    return std::nullopt;
  };
}

// The selectors of one route: one per kind of term it names (its patterns together, its roles
// together), all leading where the route leads.
std::vector<exec::Selector> route_selectors(const Route& route, const HParamScope& scope) {
  std::vector<exec::Selector> out;
  auto of_kind = [&](exec::SelectorKind k) -> exec::Selector& {
    for (auto& s : out)
      if (s.kind == k) return s;
    out.push_back({});
    out.back().kind = k;
    return out.back();
  };
  for (const Route::Term& t : route.terms) switch (t.kind) {
      case Route::Kind::Pattern: of_kind(exec::SelectorKind::Pattern).patterns.push_back(t.text); break;
      case Route::Kind::Role: {
        exec::ParamRole r;
        OPAL_CHECK(exec::role_by_name(t.text, r), "unknown role `%s`", t.text.c_str());
        of_kind(exec::SelectorKind::Role).roles.push_back(r);
        break;
      }
      case Route::Kind::Matrix: of_kind(exec::SelectorKind::Matrix); break;
      case Route::Kind::Vector: of_kind(exec::SelectorKind::Vector); break;
      case Route::Kind::Other: of_kind(exec::SelectorKind::Other); break;
      case Route::Kind::Where: {
        exec::Selector& sel = of_kind(exec::SelectorKind::Where);
        compile_condition(*route.condition, sel.condition, scope);
        sel.condition_text = route.label();
        sel.view = exec_view(route.view);
        break;
      }
    }
  return out;
}

// The routing table of optimizer `o` reached by `path`; delegations get tables of their own
// (one per path: the same inner optimizer compiles to different routes under different paths).
int32_t build_table(const CompiledOptimizer& co, const OptimizerDecl& o, std::vector<RouteStep>& path, exec::Description& d,
                    const HParamScope& scope) {
  OPAL_CHECK(path.size() < 64, "routing deeper than 64 delegations in `%s`", co.name.c_str());
  const int32_t index = int32_t(d.tables.size());
  d.tables.push_back({o.name, {}});
  for (size_t i = 0; i < o.routes.size(); ++i) {
    const Route& route = o.routes[i];
    int32_t to_route = -1, to_table = -1;
    path.push_back({&o, i});
    const Stage* only = route.pipeline.size() == 1 ? &route.pipeline[0] : nullptr;
    const OptimizerDecl* inner = only ? co.program->find_optimizer(only->name, only->loc) : nullptr;
    if (inner && !co.program->find_component(only->name, only->loc)) {
      to_table = build_table(co, *inner, path, d, delegated_scope(*inner, *only, scope));
    } else {
      for (size_t r = 0; r < co.routes.size(); ++r) {
        const auto& cp = co.routes[r].path;
        if (cp.size() == path.size() && std::equal(cp.begin(), cp.end(), path.begin(), [](const RouteStep& a, const RouteStep& b) {
              return a.optimizer == b.optimizer && a.route == b.route;
            }))
          to_route = int32_t(r);
      }
    }
    path.pop_back();
    if (to_route < 0 && to_table < 0) continue;
    for (exec::Selector& sel : route_selectors(route, scope)) {
      sel.route = to_route;
      sel.table = to_table;
      d.tables[index].selectors.push_back(std::move(sel));
    }
  }
  return index;
}

}  // namespace

std::string pipeline_text(const std::vector<Stage>& stages) {
  std::vector<std::string> out;
  for (const auto& s : stages) {
    std::string args;
    for (const auto& a : s.args) {
      const SourceLoc& l = a.value->loc;
      std::string text = l.valid() ? std::string(l.text()) : dump_expr(*a.value);
      args += (args.empty() ? "" : ", ") + (a.name.empty() ? "" : a.name + " = ") + text;
    }
    std::string call = s.args.empty() ? s.name : fmt::format("{}({})", s.name, args);
    out.push_back(s.role == Stage::Role::Rotate ? "rotate(" + call + ")" : call);
  }
  return fmt::format("{}", fmt::join(out, " -> "));
}

exec::Description describe(const CompiledOptimizer& co) {
  exec::Description d;
  d.name = co.name;
  d.hparams = co.hparams;
  d.defaults = co.defaults;
  d.ranges = co.ranges;
  d.globals = co.globals;
  d.uniform_program = co.uniforms.program;
  d.uniform_regs = co.uniforms.regs;
  for (size_t r = 0; r < co.routes.size(); ++r) {
    d.routes.push_back(describe_route(co.routes[r], co.state, uint32_t(d.symbols.size())));
    for (size_t k = 0; k < co.routes[r].plan.kernels.size(); ++k) d.symbols.push_back(kernel_symbol(r, k));
  }
  std::vector<RouteStep> path;
  if (co.decl) build_table(co, *co.decl, path, d, top_scope(co));
  if (co.decl && co.decl->loc.file) d.spec_text = std::string(co.decl->loc.file->text());
  // the checkpoint fingerprint: what the spec computes (its lowered graphs, without source
  // locations) and the state's initial values; the same on every device, and unchanged by a
  // comment added to the spec file or by a new release's passes and code generators. (The
  // state's storage is not in it, nor are the scales slots that q8 storage adds: loading
  // converts between storages and says so, and a checkpoint of the same spec at another storage
  // is checked as strictly as one at the same.)
  std::string meaning = fmt::format("{}\n{}\n{}", co.name, fmt::join(co.hparams, ","), co.lowered);
  for (const auto& t : d.tables) {  // which parameters go where
    meaning += fmt::format("table {}\n", t.optimizer);
    for (const auto& s : t.selectors) {
      std::string roles;
      for (exec::ParamRole role : s.roles) roles += fmt::format("{},", exec::role_name(role));
      meaning += fmt::format("  {} [{}] [{}] {} {} -> {} {}\n", int(s.kind), fmt::join(s.patterns, ","), roles, s.condition_text, int(s.view),
                             s.route, s.table);
    }
  }
  for (const auto& r : d.routes) {  // how each route sees a tensor, and its state
    meaning += fmt::format("route {} {} view {} master {}\n", r.label, r.pipeline, int(r.view), r.master);
    for (const auto& s : r.slots)
      if (!s.is_scales()) meaning += fmt::format("  {} {} {}\n", s.name, exec::extent_name(s.extent), int(s.init));
  }
  d.fingerprint = content_hash(meaning);
  std::string err = exec::verify(d);
  OPAL_CHECK(err.empty(), "invalid executable description of `%s`: %s\n%s", co.name.c_str(), err.c_str(), exec::print(d).c_str());
  return d;
}

}  // namespace opal
