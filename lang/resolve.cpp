// Loading and name resolution of a program (stdlib + user specs).
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>

#include <fmt/format.h>

#include "lang/parser.h"
#include "lang/program.h"

#ifndef OPAL_SOURCE_STDLIB
#define OPAL_SOURCE_STDLIB "stdlib"
#endif

namespace opal {

namespace fs = std::filesystem;

std::string default_stdlib_dir() {
  if (const char* e = std::getenv("OPAL_STDLIB"); e && *e) return e;
  return OPAL_SOURCE_STDLIB;
}

const OptimizerDecl* Program::find_optimizer(const std::string& name) const {
  auto it = optimizers.find(name);
  return it == optimizers.end() ? nullptr : it->second;
}

std::vector<std::string> Program::optimizer_names() const {
  std::vector<std::string> v;
  for (const auto& [n, _] : optimizers) v.push_back(n);
  return v;
}

std::vector<const Expr*> bind_arguments(const std::vector<Param>& params, const std::vector<Arg>& args,
                                        const std::string& callee, SourceLoc call_loc, Diagnostics& diags, bool& ok) {
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
        d_.report(DiagKind::Redefinition, loc, fmt::format("`{}` is already defined in another spec file", name));
        return;
      }
      // a user definition shadows a stdlib one of any kind
      p_.components.erase(name);
      p_.fns.erase(name);
      p_.optimizers.erase(name);
      p_.grids.erase(name);
      if (user) user_names_.insert(name);
      insert();
    };
    for (const auto& c : m.components) add(c.name, c.loc, [&] { p_.components[c.name] = &c; if (user) p_.user_components.push_back(&c); });
    for (const auto& f : m.fns) add(f.name, f.loc, [&] { p_.fns[f.name] = &f; if (user) p_.user_fns.push_back(&f); });
    for (const auto& o : m.optimizers) add(o.name, o.loc, [&] { p_.optimizers[o.name] = &o; if (user) p_.user_optimizers.push_back(&o); });
    for (const auto& g : m.grids) add(g.name, g.loc, [&] { p_.grids[g.name] = &g; if (user) p_.user_grids.push_back(&g); });
  }

  void check_optimizer(const OptimizerDecl& o) {
    if (o.routes.empty())
      d_.report(DiagKind::NoRoutes, o.loc, fmt::format("optimizer `{}` has no routes", o.name),
                "add one, e.g. `other: momentum(0.9) -> scale(lr)`");
    for (const auto& r : o.routes) {
      for (const auto& st : r.pipeline) {
        bool ok;
        if (st.role == Stage::Role::Unrotate) continue;  // balanced against `rotate` by the lowering
        if (auto c = p_.components.find(st.name); c != p_.components.end()) {
          bool basis = std::any_of(c->second->body.begin(), c->second->body.end(), [](const Stmt& s) { return s.kind == Stmt::Kind::Inverse; });
          if (st.role == Stage::Role::Rotate && !basis)
            d_.report(DiagKind::UnbalancedBasis, st.loc, fmt::format("`{}` is not a basis: it has no `inverse {{ ... }}` block", st.name),
                      "`rotate(...)` takes a basis component such as `eigenbasis(b2, every)`");
          if (st.role == Stage::Role::Plain && basis)
            d_.report(DiagKind::UnbalancedBasis, st.loc, fmt::format("`{}` is a basis: enter it with `rotate({}(...))`", st.name, st.name),
                      "a basis changes u and g until the matching `unrotate`");
          bind_arguments(c->second->params, st.args, st.name, st.loc, d_, ok);
        } else if (auto inner = p_.optimizers.find(st.name); inner != p_.optimizers.end()) {
          if (r.pipeline.size() != 1)
            d_.report(DiagKind::DelegationInPipeline, st.loc,
                      fmt::format("optimizer `{}` cannot be one stage of a pipeline", st.name),
                      fmt::format("give it a route of its own: `{}: {}(...)`", r.label(), st.name));
          bind_arguments(inner->second->params, st.args, st.name, st.loc, d_, ok);
        } else {
          std::vector<std::string> cands;
          for (const auto& [n, _] : p_.components) cands.push_back(n);
          for (const auto& [n, _] : p_.optimizers) cands.push_back(n);
          std::string m = closest_match(st.name, cands);
          d_.report(DiagKind::UnknownComponent, st.loc, fmt::format("unknown component `{}`", st.name),
                    m.empty() ? "components live in stdlib/components/ or in your spec file" : fmt::format("did you mean `{}`?", m));
        }
      }
    }
  }

  // Delegation cycles (a: other: b(...); b: other: a(...)).
  void check_delegation_cycles() {
    std::map<const OptimizerDecl*, int> state;  // 1 = on stack, 2 = done
    std::function<void(const OptimizerDecl*, std::vector<const OptimizerDecl*>&)> visit =
        [&](const OptimizerDecl* o, std::vector<const OptimizerDecl*>& stack) {
          state[o] = 1;
          stack.push_back(o);
          for (const auto& r : o->routes) {
            if (r.pipeline.size() != 1) continue;
            auto it = p_.optimizers.find(r.pipeline[0].name);
            if (it == p_.optimizers.end()) continue;
            if (state[it->second] == 1) {
              std::string path;
              bool on = false;
              for (auto* s : stack) {
                if (s == it->second) on = true;
                if (on) path += s->name + " -> ";
              }
              d_.report(DiagKind::Cycle, r.pipeline[0].loc, fmt::format("optimizers delegate in a cycle: {}{}", path, it->second->name),
                        "one of them must route the parameters through components");
            } else if (state[it->second] == 0) {
              visit(it->second, stack);
            }
          }
          stack.pop_back();
          state[o] = 2;
        };
    for (const auto& [_, o] : p_.optimizers)
      if (state[o] == 0) {
        std::vector<const OptimizerDecl*> stack;
        visit(o, stack);
      }
  }

  // fn call cycles (fn a(x) = b(x); fn b(x) = a(x)): inlining would never end.
  void check_fn_cycles() {
    std::map<const FnDecl*, int> state;
    std::function<void(const FnDecl*, const Expr&, std::vector<const FnDecl*>&)> walk;
    std::function<void(const FnDecl*, std::vector<const FnDecl*>&)> visit = [&](const FnDecl* f, std::vector<const FnDecl*>& stack) {
      state[f] = 1;
      stack.push_back(f);
      walk(f, *f->body, stack);
      stack.pop_back();
      state[f] = 2;
    };
    walk = [&](const FnDecl* f, const Expr& e, std::vector<const FnDecl*>& stack) {
      if (e.kind == Expr::Kind::Call) {
        auto it = p_.fns.find(e.name);
        if (it != p_.fns.end()) {
          if (state[it->second] == 1) {
            std::string path;
            bool on = false;
            for (auto* s : stack) {
              if (s == it->second) on = true;
              if (on) path += s->name + " -> ";
            }
            d_.report(DiagKind::Cycle, e.loc, fmt::format("fns call each other in a cycle: {}{}", path, e.name),
                      "fns are inlined, so they cannot recurse");
          } else if (state[it->second] == 0) {
            visit(it->second, stack);
          }
        }
      }
      for (const auto& a : e.args) walk(f, *a.value, stack);
    };
    for (const auto& [_, f] : p_.fns)
      if (state[f] == 0) {
        std::vector<const FnDecl*> stack;
        visit(f, stack);
      }
  }

 private:
  Program& p_;
  Diagnostics& d_;
  std::set<std::string> user_names_;
};

std::vector<std::string> stdlib_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const char* sub : {"components", "", "paper"}) {
    fs::path p = fs::path(dir) / sub;
    std::error_code ec;
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
  Resolver r(*p, diags);
  std::vector<std::string> std_files = stdlib_files(req.stdlib_dir);
  if (std_files.empty())
    diags.report(DiagKind::UnknownOptimizer, {}, fmt::format("no stdlib found in `{}`", req.stdlib_dir),
                 "set OPAL_STDLIB to the stdlib/ folder of the Opal sources");
  for (const auto& f : std_files) {
    std::string err;
    const SourceFile* sf = p->sources.load(f, err);
    if (!sf) continue;
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
