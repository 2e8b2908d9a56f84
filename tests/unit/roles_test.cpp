// Parameter roles: selector lists with roles in the language, their place in routing (after
// name patterns, before conditions and shape classes, through delegation), the stdlib's
// matrix optimizers sending embeddings and heads to AdamW, and the ways a host gives roles
// (ParamDesc, `--role` on the CLI; the C ABI and opal.torch have tests of their own).
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "compiler/exec/describe.h"
#include "driver/build.h"
#include "driver/routes.h"
#include "lang/ast.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"
#include "runtime/safetensors.h"

#include "error_of.h"
#include "run_cli.h"
#include "scratch.h"

using namespace opal;

namespace {

std::string compile_error(const std::string& spec) {
  try {
    build_executable(SpecRef{spec, "", ""});
  } catch (const CompileError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("roles") {
TEST_CASE("the language's role names are the runtime's") {
  std::vector<std::string> lang, exec_roles;
  for (const char* r : kRouteRoles) lang.push_back(r);
  for (ParamRole r : exec::kParamRoles) exec_roles.push_back(exec::role_name(r));
  CHECK(lang == exec_roles);
  ParamRole r;
  CHECK(exec::role_by_name("head", r));
  CHECK(r == ParamRole::Head);
  CHECK_FALSE(exec::role_by_name("", r));
  CHECK(exec::unknown_role("embeding").find("did you mean `embedding`?") != std::string::npos);
}

TEST_CASE("a role route comes after name patterns and before conditions and shape classes") {
  const char* spec =
      "optimizer o(lr = 0.1) {\n"
      "  \"*pinned*\": scale(lr)\n"
      "  embedding, head: scale(2 * lr)\n"
      "  where(rows >= 2): scale(3 * lr)\n"
      "  norm, bias, vector: scale(4 * lr)\n"
      "  matrix, other: scale(5 * lr)\n"
      "}\n";
  std::vector<ParamDesc> ps = {{"wte", {10, 4}}, {"lm_head", {10, 4}}, {"pinned_head", {10, 4}}, {"h.w", {4, 4}}, {"ln.w", {4}},
                               {"fc.b", {4}},    {"loose", {4}},       {"conv", {1, 3, 2, 2}},   {"scalar", {}}};
  ps[0].role = ParamRole::Embedding;
  ps[1].role = ParamRole::Head;
  ps[2].role = ParamRole::Head;  // its name wins
  ps[4].role = ParamRole::Norm;
  ps[5].role = ParamRole::Bias;
  ps[7].role = ParamRole::Conv;  // no route names conv: the shape decides (rows 1 < 2: matrix)
  Optimizer opt(build_executable(SpecRef{spec, "", ""}), ps);
  CHECK(opt.route_of("wte") == "embedding,head");
  CHECK(opt.route_of("lm_head") == "embedding,head");
  CHECK(opt.route_of("pinned_head") == "\"*pinned*\"");
  CHECK(opt.route_of("h.w") == "where(rows >= 2)");
  CHECK(opt.route_of("ln.w") == "norm,bias,vector");
  CHECK(opt.route_of("fc.b") == "norm,bias,vector");
  CHECK(opt.route_of("loose") == "norm,bias,vector");  // by its shape
  CHECK(opt.route_of("conv") == "matrix,other");
  CHECK(opt.param_role("wte") == ParamRole::Embedding);
  CHECK(opt.param_role("h.w") == ParamRole::None);
  // one compiled route per route as written, however many terms select it
  CHECK(opt.description().routes.size() == 5);
  const std::string printed = exec::print(opt.description());
  CHECK(printed.find("role embedding, head -> route 1") != std::string::npos);
  CHECK(printed.find("vector -> route 3") != std::string::npos);
  CHECK(exec::verify(opt.description()).empty());
  exec::Description broken = opt.description();
  for (auto& sel : broken.tables[0].selectors)
    if (sel.kind == exec::SelectorKind::Role) sel.roles.clear();
  CHECK(exec::verify(broken).find("wrong roles") != std::string::npos);
}

TEST_CASE("the stdlib's matrix optimizers send embeddings and heads to AdamW, hidden matrices to their basis") {
  for (std::string name : {"muon", "muon_moonlight", "normuon", "adamuon", "soap", "shampoo"}) {
    CAPTURE(name);
    // soap's full-basis route is its condition on max_precond_dim
    const std::string matrix = name == "soap" ? "where(rank >= 2 && rows <= max_precond_dim && cols <= max_precond_dim)" : "matrix";
    std::vector<ParamDesc> ps = {{"tok_embeddings.weight", {64, 16}},
                                 {"output.weight", {64, 16}},
                                 {"layers.0.attention.wq.weight", {16, 16}},
                                 {"layers.0.attention_norm.weight", {16}},
                                 {"conv.weight", {8, 3, 2, 2}}};
    ps[0].role = ParamRole::Embedding;
    ps[1].role = ParamRole::Head;
    ps[3].role = ParamRole::Norm;
    ps[4].role = ParamRole::Conv;
    Optimizer opt(build_executable(SpecRef{name, "", ""}), ps);
    const std::string to_adamw = "embedding,head,other>";
    CHECK(opt.route_of("tok_embeddings.weight").rfind(to_adamw, 0) == 0);
    CHECK(opt.route_of("output.weight").rfind(to_adamw, 0) == 0);
    CHECK(opt.route_of("layers.0.attention_norm.weight").rfind(to_adamw, 0) == 0);
    CHECK(opt.route_of("layers.0.attention.wq.weight") == matrix);
    CHECK(opt.route_of("conv.weight") == matrix);  // flattened to (out, in * kh * kw)
    // without roles (a host that gives none) the shapes decide, as before roles existed
    std::vector<ParamDesc> plain = {{"tok_embeddings.weight", {64, 16}}};
    CHECK(Optimizer(build_executable(SpecRef{name, "", ""}), plain).route_of("tok_embeddings.weight") == matrix);
  }
}

TEST_CASE("selector lists: where stands alone, unknown classes name the roles, a shadowed term warns") {
  std::string e = compile_error("optimizer o(lr = 0.1) { head, where(rows > 2): scale(lr) other: scale(lr) }");
  CHECK(e.find("`where(COND)` stands alone") != std::string::npos);
  e = compile_error("optimizer o(lr = 0.1) { embed: scale(lr) other: scale(lr) }");
  CHECK(e.find("unknown parameter class `embed`") != std::string::npos);
  CHECK(e.find("a role (`embedding`, `head`, `norm`, `bias`, `conv`)") != std::string::npos);
  e = compile_error("optimizer o(lr = 0.1) { where(rows > 2), head: scale(lr) other: scale(lr) }");
  CHECK(e.find("[ExpectedToken]") != std::string::npos);
  // a warning, not an error: the optimizer builds, and the first route takes the head
  std::vector<ParamDesc> ps = {{"h", {4, 4}}};
  ps[0].role = ParamRole::Head;
  Optimizer opt(build_executable(SpecRef{"optimizer o(lr = 0.1) { head: scale(lr) head, other: scale(2 * lr) }", "", ""}), ps);
  CHECK(opt.route_of("h") == "head");
}

TEST_CASE("assign_roles: PATTERN=ROLE, later ones win; a bad assignment changes nothing") {
  std::vector<ParamDesc> ps = {{"wte.weight", {10, 4}}, {"lm_head.weight", {10, 4}}, {"h.0.ln.weight", {4}}};
  assign_roles(ps, {"*.weight=head", "wte.*=embedding", "*ln*=norm"});
  CHECK(ps[0].role == ParamRole::Embedding);
  CHECK(ps[1].role == ParamRole::Head);
  CHECK(ps[2].role == ParamRole::Norm);
  assign_roles(ps, {"h.0.ln.weight=none", "lm_head.weight="});
  CHECK(ps[2].role == ParamRole::None);
  CHECK(ps[1].role == ParamRole::None);
  const auto before = ps;
  CHECK(error_of([&] { assign_roles(ps, {"wte.weight=head", "wte.weight=embeding"}); }).find("did you mean `embedding`?") != std::string::npos);
  CHECK(error_of([&] { assign_roles(ps, {"wte.weight=head", "nothing*=head"}); }).find("no parameter is named like `nothing*`") != std::string::npos);
  CHECK(error_of([&] { assign_roles(ps, {"=head"}); }).find("not PATTERN=ROLE") != std::string::npos);
  CHECK(error_of([&] { assign_roles(ps, {"wte.weight"}); }).find("not PATTERN=ROLE") != std::string::npos);
  for (size_t i = 0; i < ps.size(); ++i) CHECK(ps[i].role == before[i].role);
}

TEST_CASE("opal routes --role shows each parameter's role and the route it took") {
  namespace fs = std::filesystem;
  const fs::path dir = testing::scratch("roles-cli");
  SafetensorsFile f;
  f.tensors["wte.weight"] = {{10, 4}, std::vector<float>(40)};
  f.tensors["h.0.mlp.weight"] = {{4, 4}, std::vector<float>(16)};
  f.tensors["lm_head.weight"] = {{10, 4}, std::vector<float>(40)};
  const std::string params = (dir / "p.safetensors").string();
  write_safetensors(params, f);
  // (no structured binding: clang 14 cannot capture one in CAPTURE)
  const auto res = run_cli("routes muon --params " + params + " --role 'wte.*=embedding' --role lm_head.weight=head");
  const int rc = res.first;
  const std::string out = res.second;
  CAPTURE(out);
  CHECK(rc == 0);
  CHECK(out.find("wte.weight [10, 4] (embedding)\n  route:    embedding,head,other>") != std::string::npos);
  CHECK(out.find("lm_head.weight [10, 4] (head)\n  route:    embedding,head,other>") != std::string::npos);
  CHECK(out.find("h.0.mlp.weight [4, 4]\n  route:    matrix") != std::string::npos);
  cli_fails("routes muon --params " + params + " --role 'wte.*=embeding'", {"did you mean `embedding`?"});
  cli_fails("routes muon --params " + params + " --role 'wpe.*=embedding'", {"no parameter is named like `wpe.*`"});
  fs::remove_all(dir);
}
}
