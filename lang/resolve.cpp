// Loading and name resolution of a program (stdlib + user specs).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <vector>
#include <functional>
#include <set>

#include <fmt/format.h>

#include "lang/const_eval.h"
#include "lang/parser.h"
#include "lang/program.h"

#include <dlfcn.h>

#ifndef OPAL_SOURCE_STDLIB
#define OPAL_SOURCE_STDLIB "stdlib"
#endif

namespace opal {

namespace fs = std::filesystem;

std::string default_stdlib_dir() {
  if (const char* e = std::getenv("OPAL_STDLIB"); e && *e) return e;
  // an installed Opal: the stdlib beside the object this code was linked into (the Python
  // package's opal/stdlib), or its prefix's share/opal/stdlib (from bin/, lib/ or lib/<arch>/)
  // (linked into the program itself, dladdr may not name it: then /proc/self/exe does; never
  // the program otherwise, or a Python process would look beside /usr/bin/python3)
  std::vector<fs::path> objects;
  std::error_code ec;
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&default_stdlib_dir), &info) && info.dli_fname && *info.dli_fname) objects.push_back(info.dli_fname);
  else if (fs::path exe = fs::read_symlink("/proc/self/exe", ec); !ec) objects.push_back(exe);
  for (const fs::path& object : objects) {
    const fs::path dir = fs::weakly_canonical(fs::absolute(object, ec), ec).parent_path();
    if (ec) continue;
    for (const fs::path& d : {dir / "stdlib", dir.parent_path() / "share/opal/stdlib", dir.parent_path().parent_path() / "share/opal/stdlib"})
      if (fs::is_directory(d / "components", ec)) return d.string();
  }
  return OPAL_SOURCE_STDLIB;  // the source tree's, for builds run where they were built
}

const OptimizerDecl* Program::find_optimizer(const std::string& name) const {
  auto it = optimizers.find(name);
  return it == optimizers.end() ? nullptr : it->second;
}

namespace {
template <class Decl>
const Decl* lookup(const std::map<std::string, const Decl*>& user, const std::map<std::string, const Decl*>& std, const std::string& name,
                   bool from_stdlib) {
  const auto& m = from_stdlib ? std : user;
  auto it = m.find(name);
  return it == m.end() ? nullptr : it->second;
}
template <class Decl>
std::vector<std::string> keys(const std::map<std::string, const Decl*>& m) {
  std::vector<std::string> v;
  for (const auto& [n, _] : m) v.push_back(n);
  return v;
}
}  // namespace

const ComponentDecl* Program::find_component(const std::string& name, SourceLoc used_at) const {
  return lookup(components, std_components, name, in_stdlib(used_at));
}
const FnDecl* Program::find_fn(const std::string& name, SourceLoc used_at) const { return lookup(fns, std_fns, name, in_stdlib(used_at)); }
const OptimizerDecl* Program::find_optimizer(const std::string& name, SourceLoc used_at) const {
  return lookup(optimizers, std_optimizers, name, in_stdlib(used_at));
}
std::vector<std::string> Program::fn_names(SourceLoc used_at) const { return keys(in_stdlib(used_at) ? std_fns : fns); }
std::vector<std::string> Program::stage_names(SourceLoc used_at) const {
  auto v = keys(in_stdlib(used_at) ? std_components : components);
  for (auto& n : keys(in_stdlib(used_at) ? std_optimizers : optimizers)) v.push_back(n);
  return v;
}

std::string Program::family(const OptimizerDecl& o) const {
  if (!in_stdlib(o.loc)) return "user";
  const fs::path dir = fs::path(o.loc.file->path()).parent_path();
  std::error_code ec;
  return fs::equivalent(dir, stdlib_dir, ec) ? "canonical" : dir.filename().string();
}

std::vector<std::string> Program::optimizer_names() const {
  std::vector<std::string> v;
  for (const auto& [n, _] : optimizers) v.push_back(n);
  return v;
}

std::vector<const Expr*> bind_arguments(const std::vector<Param>& params, const std::vector<Arg>& args, const std::string& callee, SourceLoc call_loc,
                                        Diagnostics& diags, bool& ok) {
  ok = true;
  std::vector<const Expr*> bound(params.size(), nullptr);
  std::vector<std::string> names;
  for (const auto& p : params) names.push_back(p.name);
  size_t positional = 0;
  for (const auto& a : args) {
    if (a.name.empty()) {
      if (positional >= params.size()) {
        diags.report(DiagKind::WrongArity, a.value->loc,
                     fmt::format("`{}` takes at most {} argument{}", callee, params.size(), params.size() == 1 ? "" : "s"),
                     params.empty() ? "remove the arguments" : fmt::format("its parameters are: {}", fmt::join(names, ", ")));
        ok = false;
        continue;
      }
      bound[positional++] = a.value.get();
      continue;
    }
    auto it = std::find(names.begin(), names.end(), a.name);
    if (it == names.end()) {
      std::string m = closest_match(a.name, names);
      diags.report(DiagKind::UnknownArgument, a.name_loc, fmt::format("`{}` has no parameter `{}`", callee, a.name),
                   m.empty() ? fmt::format("its parameters are: {}", fmt::join(names, ", ")) : fmt::format("did you mean `{}`?", m));
      ok = false;
      continue;
    }
    size_t i = it - names.begin();
    if (bound[i]) {
      diags.report(DiagKind::DuplicateArgument, a.name_loc, fmt::format("argument `{}` of `{}` is given twice", a.name, callee));
      ok = false;
      continue;
    }
    bound[i] = a.value.get();
  }
  for (size_t i = 0; i < params.size(); ++i)
    if (!bound[i] && !params[i].default_value) {
      diags.report(DiagKind::WrongArity, call_loc, fmt::format("`{}` needs a value for `{}`", callee, params[i].name),
                   fmt::format("pass it as `{}(..., {} = ...)`", callee, params[i].name));
      ok = false;
    }
  return bound;
}

namespace {

class Resolver {
 public:
  Resolver(Program& p, Diagnostics& d) : p_(p), d_(d) {}

  void declare(const Module& m, bool user) {
    std::set<std::string> here;
    auto add = [&](const std::string& name, SourceLoc loc, auto&& insert) {
      if (here.count(name)) {
        d_.report(DiagKind::Redefinition, loc, fmt::format("`{}` is defined twice", name), "rename one of them");
        return;
      }
      here.insert(name);
      bool exists = p_.components.count(name) || p_.fns.count(name) || p_.optimizers.count(name) || p_.grids.count(name);
      if (exists && !user) {
        d_.report(DiagKind::Redefinition, loc, fmt::format("`{}` is defined twice in the stdlib", name));
        return;
      }
      if (exists && user_names_.count(name)) {
        SourceLoc first = user_names_.at(name);
        d_.report(DiagKind::Redefinition, loc, fmt::format("`{}` is already defined at {}", name, first.short_str()),
                  "spec files loaded together share one scope: rename one of them (`opal check` checks each file on its own)");
        return;
      }
      // a user definition shadows a stdlib one of any kind
      p_.components.erase(name);
      p_.fns.erase(name);
      p_.optimizers.erase(name);
      p_.grids.erase(name);
      if (user) user_names_[name] = loc;
      insert();
    };
    for (const auto& c : m.components) check_params(c.params, "component", c.name);
    for (const auto& o : m.optimizers) check_params(o.params, "optimizer", o.name);
    for (const auto& g : m.grids) check_params(g.params, "grid", g.name);
    for (const auto& f : m.fns) check_unique(f.params, "fn", f.name);
    for (const auto& c : m.components) check_ranges(c.params, "component", c.name);
    for (const auto& o : m.optimizers) check_ranges(o.params, "optimizer", o.name);
    for (const auto& g : m.grids) no_ranges(g.params, "a grid's parameter sets a default: the ranges are the optimizer's");
    for (const auto& f : m.fns) no_ranges(f.params, "a fn is expanded where it is called: give the range to the parameter that takes its value");
    for (const auto& g : m.grids)
      for (const auto& axis : g.axes)
        for (const auto& alt : axis.alts) no_ranges(alt.params, "an alternative's parameter sets a default: the ranges are the optimizer's");
    for (const auto& g : m.grids)
      for (const auto& cell : g.cells) no_ranges(cell.params, "a cell's parameter sets a default: the ranges are the optimizer's");
    for (const auto& c : m.components)
      add(c.name, c.loc, [&] {
        p_.components[c.name] = &c;
        if (user) p_.user_components.push_back(&c);
        else p_.std_components[c.name] = &c;
      });
    for (const auto& f : m.fns)
      add(f.name, f.loc, [&] {
        p_.fns[f.name] = &f;
        if (user) p_.user_fns.push_back(&f);
        else p_.std_fns[f.name] = &f;
      });
    for (const auto& o : m.optimizers)
      add(o.name, o.loc, [&] {
        p_.optimizers[o.name] = &o;
        if (user) p_.user_optimizers.push_back(&o);
        else p_.std_optimizers[o.name] = &o;
      });
    for (const auto& g : m.grids)
      add(g.name, g.loc, [&] {
        p_.grids[g.name] = &g;
        if (user) p_.user_grids.push_back(&g);
      });
  }

  // A parameter list names each parameter once: a second `beta` would leave which value a use
  // reads (and which one an argument sets) to the order of lookups.
  void check_unique(const std::vector<Param>& params, const char* what, const std::string& owner) {
    for (size_t i = 0; i < params.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (params[j].name == params[i].name) {
          d_.report(DiagKind::Redefinition, params[i].loc,
                    fmt::format("parameter `{}` of {} `{}` is declared twice (first at {})", params[i].name, what, owner, params[j].loc.short_str()),
                    "give each parameter its own name");
          break;
        }
  }

  // A range (`beta = 0.9 in [0, 1)`) has constant ends, holds some value, and holds the default
  // when that is a constant (a default computed from earlier parameters is checked where the
  // lowering knows its value).
  void check_ranges(const std::vector<Param>& params, const char* what, const std::string& owner) {
    for (const Param& prm : params) {
      if (!prm.range) continue;
      bool constant = true;
      for (const Expr* end : {prm.range->lo.get(), prm.range->hi.get()})
        if (!eval_range_end(*end)) {
          d_.report(DiagKind::NotConstant, end->loc, fmt::format("the ends of the range of `{}` must be numbers", prm.name),
                    "write them as numbers or `inf`: `in [0, inf)`");
          constant = false;
        }
      if (!constant) continue;
      const Interval r = *param_interval(prm);
      if (std::isnan(r.lo) || std::isnan(r.hi) || r.empty()) {
        d_.report(DiagKind::ArgumentOutOfRange, prm.range->loc, fmt::format("the range {} of `{}` holds no value", r.str(), prm.name),
                  "write the lower end first: `in [0, 1)`");
        continue;
      }
      if (!prm.default_value) continue;
      if (auto v = eval_constant(*prm.default_value); v && !r.contains(*v))
        d_.report(DiagKind::ArgumentOutOfRange, prm.default_value->loc,
                  fmt::format("the default of `{}` of {} `{}` is {:g}, outside its range {}", prm.name, what, owner, *v, r.str()),
                  "a default must be a value the parameter takes");
    }
  }
  void no_ranges(const std::vector<Param>& params, const char* why) {
    for (const Param& prm : params)
      if (prm.range) d_.report(DiagKind::MisplacedRange, prm.range->loc, fmt::format("`{}` cannot have a range here", prm.name), why);
  }

  // `u`, `g` and `w` are the inputs of every stage: a parameter of that name could never be
  // read (the stream would hide it), so declaring one is an error, not a silent no-op.
  void check_params(const std::vector<Param>& params, const char* what, const std::string& owner) {
    check_unique(params, what, owner);
    for (const Param& prm : params)
      if (prm.name == "u" || prm.name == "g" || prm.name == "w")
        d_.report(DiagKind::ReservedName, prm.loc,
                  fmt::format("parameter `{}` of {} `{}` would be hidden by the {}", prm.name, what, owner,
                              prm.name == "u"   ? "update stream `u`"
                              : prm.name == "g" ? "gradient `g`"
                                                : "parameter tensor `w`"),
                  "`u`, `g` and `w` are in scope in every stage: give the parameter another name");
  }

  // A route condition is decided once per parameter when the optimizer is built: it may read
  // rank, rows, cols and numel, the optimizer's hyperparameters (their values at that time:
  // `where(rows <= max_precond_dim)`, `where(centered)`), numbers and the operators const_eval
  // knows; not t nor tensors.
  void check_condition(const OptimizerDecl& o, const Expr& c) {
    const ConstantNames sizes = [&](const std::string& n) -> std::optional<double> {
      if (n == "rank" || n == "rows" || n == "cols" || n == "numel") return 1.0;
      for (const auto& prm : o.params)
        if (prm.name == n) return 1.0;
      return std::nullopt;
    };
    if (!eval_constant(c, sizes)) {
      d_.report(DiagKind::NotConstant, c.loc,
                "a route's condition must be an expression of the parameter's rank, rows, cols and numel and the optimizer's "
                "hyperparameters",
                "routing is decided once per parameter when the optimizer is built: compare sizes with numbers or hyperparameters, "
                "e.g. `where(rank == 2 && rows <= max_dim):`");
      return;
    }
    // one host instruction per expression node (compiler/exec: kMaxConditionLength)
    std::function<size_t(const Expr&)> nodes = [&](const Expr& e) {
      size_t n = 1;
      for (const auto& a : e.args) n += nodes(*a.value);
      return n;
    };
    if (nodes(c) > kMaxConditionNodes)
      d_.report(DiagKind::LimitExceeded, c.loc, fmt::format("a route's condition has more than {} terms", kMaxConditionNodes),
                "split the route, or compare fewer sizes");
  }

  // A class, role or pattern that an earlier route of the optimizer already names can never
  // take a parameter here (the first route in spec order wins among terms of a kind).
  void check_shadowed_terms(const OptimizerDecl& o) {
    std::set<std::pair<int, std::string>> seen;
    for (const auto& r : o.routes)
      for (const auto& t : r.terms) {
        if (t.kind == Route::Kind::Where) continue;
        if (!seen.insert({int(t.kind), t.text}).second)
          d_.report(DiagKind::ShadowedRoute, r.loc,
                    fmt::format("`{}` is named by an earlier route of `{}`, which takes those parameters first", t.label(), o.name),
                    "name each class, role and pattern in one route");
      }
  }

  void check_optimizer(const OptimizerDecl& o) {
    if (o.routes.empty())
      d_.report(DiagKind::NoRoutes, o.loc, fmt::format("optimizer `{}` has no routes", o.name), "add one, e.g. `other: momentum(0.9) -> scale(lr)`");
    check_shadowed_terms(o);
    for (const auto& r : o.routes) {
      if (r.has(Route::Kind::Where)) check_condition(o, *r.condition);
      for (const auto& st : r.pipeline) {
        bool ok;
        if (st.role == Stage::Role::Unrotate) continue;  // balanced against `rotate` by the lowering
        if (const ComponentDecl* c = p_.find_component(st.name, st.loc)) {
          bool basis = std::any_of(c->body.begin(), c->body.end(), [](const Stmt& s) { return s.kind == Stmt::Kind::Inverse; });
          if (st.role == Stage::Role::Rotate && !basis)
            d_.report(DiagKind::UnbalancedBasis, st.loc, fmt::format("`{}` is not a basis: it has no `inverse {{ ... }}` block", st.name),
                      "`rotate(...)` takes a basis component such as `eigenbasis(b2, every)`");
          if (st.role == Stage::Role::Plain && basis)
            d_.report(DiagKind::UnbalancedBasis, st.loc, fmt::format("`{}` is a basis: enter it with `rotate({}(...))`", st.name, st.name),
                      "a basis changes u and g until the matching `unrotate`");
          bind_arguments(c->params, st.args, st.name, st.loc, d_, ok);
        } else if (const OptimizerDecl* inner = p_.find_optimizer(st.name, st.loc)) {
          if (r.pipeline.size() != 1)
            d_.report(DiagKind::DelegationInPipeline, st.loc, fmt::format("optimizer `{}` cannot be one stage of a pipeline", st.name),
                      fmt::format("give it a route of its own: `{}: {}(...)`", r.label(), st.name));
          bind_arguments(inner->params, st.args, st.name, st.loc, d_, ok);
        } else {
          std::string m = closest_match(st.name, p_.stage_names(st.loc));
          d_.report(DiagKind::UnknownComponent, st.loc, fmt::format("unknown component `{}`", st.name),
                    m.empty() ? "components live in stdlib/components/ or in your spec file" : fmt::format("did you mean `{}`?", m));
        }
      }
    }
  }

  // Delegation cycles (a: other: b(...); b: other: a(...)) and chains of delegation longer
  // than kMaxCallDepth (the lowering follows them by recursion).
  void check_delegation_cycles() {
    CallGraph cg;
    std::map<const OptimizerDecl*, int> index;
    for (const auto* m : {&p_.std_optimizers, &p_.optimizers})  // the user's and the stdlib's (even shadowed)
      for (const auto& [name, o] : *m) {
        if (index.count(o)) continue;
        index[o] = int(cg.names.size());
        cg.names.push_back(name);
        cg.locs.push_back(o->loc);
      }
    cg.edges.resize(cg.names.size());
    for (const auto& [o, i] : index)
      for (const auto& r : o->routes) {
        if (r.pipeline.size() != 1) continue;
        if (const OptimizerDecl* callee = p_.find_optimizer(r.pipeline[0].name, r.pipeline[0].loc))
          cg.edges[i].push_back({index.at(callee), r.pipeline[0].loc});
      }
    check_call_graph(cg, "optimizers delegate in a cycle", "one of them must route the parameters through components",
                     "optimizer `{}` starts a chain of delegations deeper than the limit of {}",
                     "route parameters through components instead of a chain of optimizers");
  }

  // fn call cycles (fn a(x) = b(x); fn b(x) = a(x)): inlining would never end; and chains of
  // calls longer than kMaxCallDepth (inlining recurses once per call).
  void check_fn_cycles() {
    CallGraph cg;
    std::map<const FnDecl*, int> index;
    for (const auto* m : {&p_.std_fns, &p_.fns})
      for (const auto& [name, f] : *m) {
        if (index.count(f)) continue;
        index[f] = int(cg.names.size());
        cg.names.push_back(name);
        cg.locs.push_back(f->loc);
      }
    cg.edges.resize(cg.names.size());
    // expressions nest at most kMaxNesting deep (the parser's limit), so this recursion is bounded
    std::function<void(int, const Expr&)> calls = [&](int i, const Expr& e) {
      if (e.kind == Expr::Kind::Call)
        if (const FnDecl* callee = p_.find_fn(e.name, e.loc)) cg.edges[i].push_back({index.at(callee), e.loc});
      for (const auto& a : e.args) calls(i, *a.value);
    };
    for (const auto& [f, i] : index) calls(i, *f->body);
    check_call_graph(cg, "fns call each other in a cycle", "fns are inlined, so they cannot recurse",
                     "fn `{}` starts a chain of calls deeper than the limit of {}", "fns are inlined: flatten the chain");
  }

  // Declarations calling (or delegating to) one another.
  struct CallGraph {
    std::vector<std::string> names;
    std::vector<SourceLoc> locs;
    std::vector<std::vector<std::pair<int, SourceLoc>>> edges;  // callee, where it is called
  };

  // Reports every cycle (at the call that closes it, with the path) and the declarations where
  // a chain first grows past kMaxCallDepth. Iterative: hostile input cannot overflow the stack.
  void check_call_graph(const CallGraph& cg, const char* cycle_msg, const char* cycle_help, const char* deep_fmt, const char* deep_help) {
    const size_t n = cg.names.size();
    std::vector<int> state(n, 0);      // 1 = on the stack, 2 = done
    std::vector<size_t> height(n, 1);  // the longest chain starting here (cycles cut)
    struct Frame {
      int node;
      size_t next = 0;
    };
    for (size_t root = 0; root < n; ++root) {
      if (state[root]) continue;
      std::vector<Frame> stack{{int(root)}};
      state[root] = 1;
      while (!stack.empty()) {
        Frame& f = stack.back();
        if (f.next < cg.edges[f.node].size()) {
          auto [c, loc] = cg.edges[f.node][f.next++];
          if (state[c] == 1) {
            std::string path;
            bool on = false;
            for (const Frame& s : stack) {
              if (s.node == c) on = true;
              if (on) path += cg.names[s.node] + " -> ";
            }
            d_.report(DiagKind::Cycle, loc, fmt::format("{}: {}{}", cycle_msg, path, cg.names[c]), cycle_help);
          } else if (state[c] == 2) {
            height[f.node] = std::max(height[f.node], 1 + height[c]);
          } else {
            state[c] = 1;
            stack.push_back({c});
          }
          continue;
        }
        int done = f.node;
        state[done] = 2;
        stack.pop_back();
        if (!stack.empty()) height[stack.back().node] = std::max(height[stack.back().node], 1 + height[done]);
      }
    }
    for (size_t i = 0; i < n; ++i)
      if (height[i] == kMaxCallDepth + 1)
        d_.report(DiagKind::LimitExceeded, cg.locs[i], fmt::format(fmt::runtime(deep_fmt), cg.names[i], kMaxCallDepth), deep_help);
  }

 private:
  Program& p_;
  Diagnostics& d_;
  std::map<std::string, SourceLoc> user_names_;
};

// The stdlib's files: components/ first, then the canonical optimizers at the top level, then
// each family folder (paper/, torch/, ...) in name order.
std::vector<std::string> stdlib_files(const std::string& dir) {
  std::vector<std::string> subs = {"components", ""};
  std::error_code ec;
  std::vector<std::string> families;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && e.path().filename() != "components") families.push_back(e.path().filename().string());
  std::sort(families.begin(), families.end());
  subs.insert(subs.end(), families.begin(), families.end());
  std::vector<std::string> out;
  for (const std::string& sub : subs) {
    fs::path p = fs::path(dir) / sub;
    if (!fs::is_directory(p, ec)) continue;
    std::vector<std::string> here;
    for (const auto& e : fs::directory_iterator(p, ec))
      if (e.is_regular_file() && e.path().extension() == ".opal") here.push_back(e.path().string());
    std::sort(here.begin(), here.end());
    out.insert(out.end(), here.begin(), here.end());
  }
  return out;
}

}  // namespace

std::unique_ptr<Program> load_program(const LoadRequest& req, Diagnostics& diags) {
  auto p = std::make_unique<Program>();
  p->stdlib_dir = req.stdlib_dir;
  Resolver r(*p, diags);
  std::vector<std::string> std_files = stdlib_files(req.stdlib_dir);
  if (std_files.empty())
    diags.report(DiagKind::UnknownOptimizer, {}, fmt::format("no stdlib found in `{}`", req.stdlib_dir),
                 "set OPAL_STDLIB to the stdlib/ folder of the Opal sources");
  for (const auto& f : std_files) {
    std::string err;
    const SourceFile* sf = p->sources.load(f, err);
    if (!sf) continue;
    p->stdlib_files.insert(sf);
    p->modules.push_back(std::make_unique<Module>(parse(*sf, diags)));
    r.declare(*p->modules.back(), false);
  }
  size_t user_bytes = 0;
  auto add_user = [&](const SourceFile& sf) {
    user_bytes += sf.text().size();
    if (user_bytes > kMaxSpecBytes) {
      diags.report(DiagKind::LimitExceeded, {}, fmt::format("spec `{}` makes the input larger than the limit of {} bytes", sf.path(), kMaxSpecBytes));
      return;
    }
    p->modules.push_back(std::make_unique<Module>(parse(sf, diags)));
    r.declare(*p->modules.back(), true);
  };
  for (const auto& f : req.files) {
    std::string err;
    const SourceFile* sf = p->sources.load(f, err);
    if (!sf) {
      diags.report(DiagKind::UnknownOptimizer, {}, err);
      continue;
    }
    add_user(*sf);
  }
  for (const auto& [name, text] : req.texts) add_user(p->sources.add(name, text));
  for (const auto& [_, o] : p->optimizers) r.check_optimizer(*o);
  r.check_delegation_cycles();
  r.check_fn_cycles();
  return p;
}

}  // namespace opal
