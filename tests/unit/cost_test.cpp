// The static step cost (issue 19: what owners are balanced by): bytes the kernels move at each
// buffer's storage, flops of library calls, both averaged over refresh periods; owners by
// longest processing time first; `opal cost`.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "compiler/exec/cost.h"
#include "driver/build.h"
#include "driver/cost_report.h"
#include "runtime/optimizer.h"
#include "runtime/safetensors.h"

#include "run_cli.h"
#include "scratch.h"

using namespace opal;

namespace {

exec::StepCost cost_of(const SpecRef& ref, std::vector<int64_t> shape, const HParams& hp = {}) {
  auto opt = make_optimizer(compile_spec(ref), {{"w", shape}}, {}, hp);
  return describe_costs(*opt).at(0).cost;
}

}  // namespace

TEST_SUITE("cost") {
TEST_CASE("kernel bytes: each buffer read and each written once, at its storage") {
  const double n = 48 * 32;
  // adamw: read w g m v, write w m v, in one fused kernel
  const exec::StepCost f32 = cost_of({"adamw", "", ""}, {48, 32});
  CHECK(f32.kernel_bytes == 7 * 4 * n);
  CHECK(f32.call_flops == 0);
  CHECK(f32.launches == 1);
  // bf16 moments: 2 bytes each; q8: 1 byte each plus an f32 scale per block of 256
  CHECK(cost_of({"adamw", "", "", "bf16"}, {48, 32}).kernel_bytes == (3 * 4 + 4 * 2) * n);
  CHECK(cost_of({"adamw", "", "", "q8"}, {48, 32}).kernel_bytes == 3 * 4 * n + 4 * n + 4 * 4 * (n / 256));
}

TEST_CASE("library calls: flops grow with the matrix, and a refresh every N steps costs 1/N a step") {
  // Newton-Schulz on a wide matrix: twice the rows, about twice the work (the small side's cube stays)
  const double one = cost_of({"muon", "", ""}, {64, 256}).call_flops, two = cost_of({"muon", "", ""}, {64, 512}).call_flops;
  CHECK(one > 0);
  CHECK(two / one > 1.8);
  CHECK(two / one <= 2.0);
  // SOAP's eigenbases every `every` steps: the eigensolves' share shrinks as the period grows
  const exec::StepCost each = cost_of({"soap", "", ""}, {32, 32}, {{"every", 1}});
  const exec::StepCost tenth = cost_of({"soap", "", ""}, {32, 32}, {{"every", 10}});
  CHECK(tenth.call_flops < each.call_flops);
  CHECK(tenth.launches < each.launches);
  CHECK(tenth.kernel_bytes <= each.kernel_bytes);
}

TEST_CASE("owners: longest processing time first, deterministic, balanced") {
  CHECK(exec::assign_owners({5, 4, 3, 3, 2, 1}, 2) == std::vector<int>{0, 1, 1, 0, 1, 0});  // loads 9 and 9
  CHECK(exec::assign_owners({1, 1, 1}, 1) == std::vector<int>{0, 0, 0});
  CHECK(exec::assign_owners({1, 2, 3}, 5) == std::vector<int>{2, 1, 0});        // each its own rank, largest first
  CHECK(exec::assign_owners({2, 2, 2, 2}, 2) == std::vector<int>{0, 1, 0, 1});  // ties: the earlier, to the lowest rank
  CHECK(exec::assign_owners({}, 3).empty());
  // a GPT-2 block's tensors over 3 ranks: no rank carries more than the largest tensor above the mean
  std::vector<double> costs;
  for (int l = 0; l < 12; ++l)
    for (double c : {2304.0 * 768, 768.0 * 768, 3072.0 * 768, 768.0 * 3072, 768.0, 768.0}) costs.push_back(c);
  const std::vector<int> owners = exec::assign_owners(costs, 3);
  std::vector<double> load(3, 0.0);
  double total = 0;
  for (size_t i = 0; i < costs.size(); ++i) load[size_t(owners[i])] += costs[i], total += costs[i];
  for (double l : load) CHECK(l <= total / 3 + 3072.0 * 768);
}

TEST_CASE("opal cost prints each parameter's cost, and its owner over --world ranks") {
  namespace fs = std::filesystem;
  const fs::path dir = testing::scratch("cost-cli");
  SafetensorsFile f;
  f.tensors["a"] = {{64, 32}, std::vector<float>(64 * 32)};
  f.tensors["b"] = {{32, 32}, std::vector<float>(32 * 32)};
  f.tensors["c"] = {{32}, std::vector<float>(32)};
  const std::string params = (dir / "p.safetensors").string();
  write_safetensors(params, f);
  const auto res = run_cli("cost adamw --params " + params + " --world 2");
  const std::string out = res.second;
  CAPTURE(out);
  CHECK(res.first == 0);
  CHECK(out.find("owner") != std::string::npos);
  CHECK(out.find(fmt::format("{:.3f}", 7 * 4 * 64 * 32 / 1e6)) != std::string::npos);  // a's MB a step
  CHECK(out.find("rank 1:") != std::string::npos);
  CHECK(out.find(fmt::format("{:.3f}", 2 * 4 * 64 * 32 / 1e6)) != std::string::npos);  // a's state: m and v
  CHECK(out.find("MB of state") != std::string::npos);
  CHECK(out.find("3 parameters") != std::string::npos);
  CHECK(run_cli("cost adamw --params " + params + " --world 0").first != 0);
  cli_fails("cost adamw --params " + params + " --hparam nope=1", {"nope"});
  cli_fails("cost adamw --params " + params + " --state 'q8(7)'", {"<state>:1:4"});
  // a BF16 tensor in the file is a bf16 parameter: its bytes a step, and a master copy where the
  // state keeps one (it was taken as f32, without one)
  f.tensors["a"].dtype = "BF16";
  write_safetensors(params, f);
  const std::string bf = run_cli("cost adamw --params " + params).second;
  CAPTURE(bf);
  CHECK(bf.find(fmt::format("{:.3f}", (3 * 2 + 4 * 4) * 64 * 32 / 1e6)) != std::string::npos);  // w, g bf16; m, v f32
  const auto routes = run_cli("routes adamw --state 'f32, master' --params " + params);
  CAPTURE(routes.second);
  CHECK(routes.first == 0);
  CHECK(routes.second.find("a [64, 32] bf16\n") != std::string::npos);
  CHECK(routes.second.find("master [64, 32] (") != std::string::npos);
  CHECK(routes.second.find("b [32, 32]\n") != std::string::npos);  // f32: no copy
}
}
