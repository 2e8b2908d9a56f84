// A program: the stdlib plus the user's spec files, parsed and name-resolved.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "lang/ast.h"
#include "lang/diagnostics/diagnostic.h"

namespace opal {

struct Program {
  SourceManager sources;
  std::vector<std::unique_ptr<Module>> modules;  // stdlib first, then user modules
  std::map<std::string, const ComponentDecl*> components;
  std::map<std::string, const FnDecl*> fns;
  std::map<std::string, const OptimizerDecl*> optimizers;
  std::map<std::string, const GridDecl*> grids;
  // Declarations of the user's files, in source order (for `opal check` and default choice).
  std::vector<const ComponentDecl*> user_components;
  std::vector<const FnDecl*> user_fns;
  std::vector<const OptimizerDecl*> user_optimizers;
  std::vector<const GridDecl*> user_grids;

  // Names used inside the stdlib resolve in the stdlib alone, so a user definition of the same
  // name shadows the stdlib for the user's own specs but never changes a stdlib optimizer (a
  // user `decay` leaves `adamw` as it is). The lookups below take the location of the use.
  std::map<std::string, const ComponentDecl*> std_components;
  std::map<std::string, const FnDecl*> std_fns;
  std::map<std::string, const OptimizerDecl*> std_optimizers;
  std::set<const SourceFile*> stdlib_files;
  bool in_stdlib(SourceLoc at) const { return at.file && stdlib_files.count(at.file); }
  const ComponentDecl* find_component(const std::string& name, SourceLoc used_at) const;
  const FnDecl* find_fn(const std::string& name, SourceLoc used_at) const;
  const OptimizerDecl* find_optimizer(const std::string& name, SourceLoc used_at) const;
  // The names visible where `used_at` is (for "did you mean" hints).
  std::vector<std::string> fn_names(SourceLoc used_at) const;
  std::vector<std::string> stage_names(SourceLoc used_at) const;

  // An optimizer's family: its stdlib folder (`canonical` for the top level, `paper`, `torch`,
  // ...), or `user`.
  std::string stdlib_dir;
  std::string family(const OptimizerDecl& o) const;

  // The user's view (top level: which optimizer a command runs).
  const OptimizerDecl* find_optimizer(const std::string& name) const;
  std::vector<std::string> optimizer_names() const;
};

// Where the stdlib lives: $OPAL_STDLIB if set, else the source tree's stdlib/.
std::string default_stdlib_dir();

struct LoadRequest {
  std::string stdlib_dir = default_stdlib_dir();
  std::vector<std::string> files;                          // user spec files
  std::vector<std::pair<std::string, std::string>> texts;  // (name, text) given in memory
};

// Parses the stdlib and the user's specs and resolves names across declarations: duplicate
// definitions, unknown stages, argument lists, delegation and fn cycles, routeless optimizers.
// Names inside bodies are checked when the bodies are lowered (compiler/lower).
std::unique_ptr<Program> load_program(const LoadRequest& req, Diagnostics& diags);

// Spec size limit (bytes, all user files together): a clear error beyond it.
inline constexpr size_t kMaxSpecBytes = 1 << 20;
// Longest chain of optimizers delegating to one another, and of fns calling one another (both
// are expanded by recursion in the lowering): LimitExceeded beyond it, never a stack overflow.
inline constexpr size_t kMaxCallDepth = 64;
// Terms (numbers, names, operators) of a route condition `where(...)`: LimitExceeded beyond it.
inline constexpr size_t kMaxConditionNodes = 64;

// Matches positional and named arguments to parameters. Returns, per parameter, the argument
// expression or nullptr when the default applies; reports unknown, duplicate, missing and
// surplus arguments. `ok` is false when anything was reported.
std::vector<const Expr*> bind_arguments(const std::vector<Param>& params, const std::vector<Arg>& args, const std::string& callee, SourceLoc call_loc,
                                        Diagnostics& diags, bool& ok);

}  // namespace opal
