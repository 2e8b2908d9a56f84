// Golden tests: one spec file per diagnostic kind (tests/golden/errors/<Kind>.opal) and per
// IR/codegen stage (tests/golden/ir/*.opal). Expected output lives in the file itself, after a
// `# CHECK:STDERR` or `# CHECK:OUT` line, each line prefixed with `# `. OPAL_UPDATE_GOLDENS=1
// rewrites the blocks from the current output.
//
// Directives (comment lines): `# PARAMS: w=[4,3] b=[7]` builds an optimizer with those
// parameters (runtime routing errors); `# OPTIMIZER: NAME` picks an optimizer by name;
// `# ARGS: ir --after PASS` / `# ARGS: emit --target cpu` (ir goldens).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "driver/build.h"
#include "compiler/codegen/c_emitter.h"
#include "compiler/pipeline.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"

namespace fs = std::filesystem;
using namespace opal;

namespace {

struct Golden {
  std::string path, name, spec, marker, expected;
  std::map<std::string, std::string> directives;
};

Golden read_golden(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  Golden g{p.string(), p.filename().string(), ss.str(), "", "", {}};
  for (const char* m : {"# CHECK:STDERR", "# CHECK:OUT"}) {
    auto pos = g.spec.find(std::string("\n") + m);
    if (pos != std::string::npos) {
      std::istringstream block(g.spec.substr(pos + 1));
      std::string line;
      std::getline(block, line);
      g.marker = m;
      while (std::getline(block, line)) g.expected += (line.size() >= 2 ? line.substr(2) : "") + "\n";
      g.spec = g.spec.substr(0, pos + 1);
    }
  }
  std::istringstream lines(g.spec);
  for (std::string line; std::getline(lines, line);)
    for (const char* d : {"PARAMS", "OPTIMIZER", "ARGS"})
      if (line.rfind(std::string("# ") + d + ": ", 0) == 0) g.directives[d] = line.substr(std::strlen(d) + 4);
  return g;
}

std::vector<ParamDesc> parse_params(const std::string& s) {
  std::vector<ParamDesc> out;
  std::regex re(R"((\S+)=\[([0-9,]*)\])");
  for (std::sregex_iterator it(s.begin(), s.end(), re), end; it != end; ++it) {
    ParamDesc p{(*it)[1], {}, nullptr, nullptr};
    std::stringstream dims((*it)[2]);
    for (std::string d; std::getline(dims, d, ',');) p.shape.push_back(std::stoll(d));
    out.push_back(p);
  }
  return out;
}

// Runs a golden's spec the way `opal check` (or `ir`/`emit`) would; returns what it printed.
std::string run_golden(const Golden& g) {
  Diagnostics d;
  LoadRequest req;
  req.texts.push_back({g.name, g.spec});
  std::shared_ptr<Program> p(load_program(req, d));
  if (g.directives.count("OPTIMIZER")) {
    SpecRef ref{g.spec, g.directives.at("OPTIMIZER"), ""};
    pick_optimizer(*p, ref, d);
    return d.render();
  }
  if (g.directives.count("PARAMS")) {
    try {
      Optimizer opt(build_executable(SpecRef{g.spec, "", ""}), parse_params(g.directives.at("PARAMS")));
      return "constructed\n";
    } catch (const Error& e) {
      return std::string("error: ") + e.what() + "\n";
    }
  }
  if (g.directives.count("ARGS")) {
    std::string args = g.directives.at("ARGS");
    const OptimizerDecl* o = d.has_errors() ? nullptr : pick_optimizer(*p, SpecRef{g.spec, "", ""}, d);
    if (!o) return d.render();
    std::string out;
    if (args.rfind("ir --after ", 0) == 0) {
      std::vector<PassDump> dumps;
      compile_optimizer(p, *o, d, {args.substr(11)}, &dumps);
      for (const auto& dump : dumps)
        out += fmt::format("// after {} (route {}){}\n{}", dump.pass, dump.route, dump.changed ? "" : " (unchanged)", dump.text);
    } else if (args.rfind("emit --target ", 0) == 0) {
      auto c = compile_optimizer(p, *o, d);
      if (c) {
        const bool checked = args.find(" --check-finite") != std::string::npos;
        out = emit_optimizer(*c, args.rfind("emit --target cuda", 0) == 0 ? Target::Cuda : Target::Cpu, checked);
      }
    }
    return out + d.render();
  }
  if (!d.has_errors()) check_program(p, d);
  return d.render();
}

void check_dir(const std::string& sub, const char* default_marker) {
  bool update = std::getenv("OPAL_UPDATE_GOLDENS") && std::string(std::getenv("OPAL_UPDATE_GOLDENS")) == "1";
  fs::path dir = fs::path(OPAL_TESTS_DIR) / "golden" / sub;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".opal") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(!files.empty());
  for (const auto& f : files) {
    Golden g = read_golden(f);
    std::string got = run_golden(g);
    if (update) {
      std::ofstream out(f);
      out << g.spec << (g.marker.empty() ? default_marker : g.marker) << "\n";
      std::istringstream lines(got);
      for (std::string line; std::getline(lines, line);) out << (line.empty() ? "#" : "# " + line) << "\n";
      continue;
    }
    INFO("golden " << f.string() << " (OPAL_UPDATE_GOLDENS=1 rewrites it)");
    CHECK(!g.marker.empty());
    CHECK(got == g.expected);
  }
}

}  // namespace

TEST_SUITE("golden") {
TEST_CASE("every diagnostic kind has a golden error test") {
  std::set<std::string> kinds = {
#define OPAL_DIAG(name, sev, summary) #name,
#include "lang/diagnostics/diag_kind.def"
#undef OPAL_DIAG
  };
  for (const auto& k : kinds) {
    INFO("diagnostic kind " << k);
    CHECK(fs::exists(fs::path(OPAL_TESTS_DIR) / "golden" / "errors" / (k + ".opal")));
  }
}

TEST_CASE("error goldens") { check_dir("errors", "# CHECK:STDERR"); }
TEST_CASE("ir and codegen goldens") { check_dir("ir", "# CHECK:OUT"); }
}
