// Views of tensors of rank > 2 (docs/language.md, "Views"): rows x rest, the leading dims by the
// last, one matrix per index of the leading dims (view(batch)) or per index of the other dims
// (view(largest)), with their state shapes, checkpoints, totals and global shares.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "driver/build.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"

#include "error_of.h"

using namespace opal;

TEST_SUITE("runtime") {
TEST_CASE("a route's view of a tensor of rank > 2: dim 0 by the rest, or view(last): the leading dims by the last") {
  const char* spec =
      "optimizer o(lr = 0.1) {\n"
      "  where(rank == 3) view(last): adapt_factored -> scale(lr)\n"
      "  \"first*\" view(first): adapt_factored -> scale(lr)\n"
      "  matrix: adapt_factored -> scale(lr)\n"
      "  other: scale(lr)\n"
      "}\n";
  std::vector<ParamDesc> ps = {{"batched", {2, 3, 4}}, {"first", {2, 3, 4}}, {"conv", {5, 2, 3, 3}}};
  Optimizer opt(build_executable(SpecRef{spec, "", ""}), ps);
  CHECK(opt.state_shape("batched", "adapt_factored.r") == std::vector<int64_t>{6});  // (2*3) x 4
  CHECK(opt.state_shape("batched", "adapt_factored.c") == std::vector<int64_t>{4});
  CHECK(opt.state_shape("first", "adapt_factored.r") == std::vector<int64_t>{2});  // 2 x (3*4)
  CHECK(opt.state_shape("first", "adapt_factored.c") == std::vector<int64_t>{12});
  CHECK(opt.state_shape("conv", "adapt_factored.c") == std::vector<int64_t>{18});  // out x in*kh*kw
  // the factored step on view(last) equals the same step on the tensor reshaped to 6 x 4
  std::vector<float> w1(24), g(24), w2;
  for (int i = 0; i < 24; ++i) w1[i] = 0.1f * float(i % 7) - 0.3f, g[i] = 0.05f * float((i * 5) % 11) - 0.2f;
  w2 = w1;
  const char* flat = "optimizer o(lr = 0.1) { matrix: adapt_factored -> scale(lr) other: scale(lr) }";
  Optimizer a(build_executable(SpecRef{spec, "", ""}), {{"batched", {2, 3, 4}, w1.data(), g.data()}});
  Optimizer b(build_executable(SpecRef{flat, "", ""}), {{"m", {6, 4}, w2.data(), g.data()}});
  for (int t = 0; t < 3; ++t) {
    a.step();
    b.step();
  }
  CHECK(w1 == w2);
  CHECK_THROWS(build_executable(SpecRef{"optimizer o(lr = 1) { matrix view(middle): scale(lr) other: scale(lr) }", "", ""}));
}

TEST_CASE("view(batch) and view(largest): one matrix per index of the other dims") {
  auto fill = [](std::vector<float>& w, std::vector<float>& g) {
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.1f * float(i % 7) - 0.3f, g[i] = 0.05f * float((i * 5) % 11) - 0.2f + 0.01f * float(i / 20);
  };
  const char* batched = "optimizer o(lr = 0.1) { matrix view(batch): adapt_factored -> scale(lr) other: scale(lr) }";
  const char* flat = "optimizer o(lr = 0.1) { matrix: adapt_factored -> scale(lr) other: scale(lr) }";
  SUBCASE("each matrix of a batch steps as a parameter of its own") {
    std::vector<float> w(60), g(60);
    fill(w, g);
    std::vector<float> w2 = w;
    Optimizer a(build_executable(SpecRef{batched, "", ""}), {{"b", {3, 4, 5}, w.data(), g.data()}});
    std::vector<ParamDesc> parts;
    for (int b = 0; b < 3; ++b) parts.push_back({fmt::format("m{}", b), {4, 5}, w2.data() + 20 * b, g.data() + 20 * b});
    Optimizer c(build_executable(SpecRef{flat, "", ""}), parts);
    for (int t = 0; t < 3; ++t) {
      a.step();
      c.step();
    }
    CHECK(w == w2);
    CHECK(a.state_shape("b", "adapt_factored.r") == std::vector<int64_t>{3, 4});
    CHECK(a.state_shape("b", "adapt_factored.c") == std::vector<int64_t>{3, 5});
    auto r = a.read_state("b", "adapt_factored.r");
    CHECK(std::vector<float>(r.begin() + 4, r.begin() + 8) == c.read_state("m1", "adapt_factored.r"));
    // a checkpoint keeps the [3, 4] and [3, 5] slots; under another view their shapes differ and
    // the slots start over (reported), never misread
    const std::string path = (std::filesystem::temp_directory_path() / "opal_view_batch.safetensors").string();
    a.save(path);
    std::vector<float> w3 = w, g3 = g;
    Optimizer fresh(build_executable(SpecRef{batched, "", ""}), {{"b", {3, 4, 5}, w3.data(), g3.data()}});
    fresh.load(path);
    CHECK(fresh.read_state("b", "adapt_factored.c") == a.read_state("b", "adapt_factored.c"));
    const char* last = "optimizer o(lr = 0.1) { matrix view(last): adapt_factored -> scale(lr) other: scale(lr) }";
    Optimizer other(build_executable(SpecRef{last, "", ""}), {{"b", {3, 4, 5}, w3.data(), g3.data()}});
    const auto before = other.read_state("b", "adapt_factored.r");
    LoadReport rep = other.load(path);
    CHECK(rep.spec_changed);
    CHECK(rep.restored.empty());
    CHECK(rep.initialized.size() == 2);
    CHECK(other.read_state("b", "adapt_factored.r") == before);
    std::filesystem::remove(path);
  }
  SUBCASE("totals of full-size values span the tensor; scalar state is per matrix") {
    const char* spec =
        "component unit() { u = u / rms(u) }\n"
        "component count() { state k = scalar(0)  k = k + 1 }\n"
        "optimizer o(lr = 0.1) { matrix view(batch): unit -> count -> scale(lr) other: scale(lr) }";
    std::vector<float> w(24), g(24);
    fill(w, g);
    std::vector<float> w0 = w;
    Optimizer a(build_executable(SpecRef{spec, "", ""}), {{"b", {2, 3, 4}, w.data(), g.data()}});
    a.step();
    double ss = 0;
    for (float x : g) ss += double(x) * x;
    const double rms = std::sqrt(ss / 24);
    for (size_t i = 0; i < 24; ++i) CHECK(w[i] == doctest::Approx(w0[i] - 0.1 * g[i] / rms).epsilon(1e-6));
    CHECK(a.state_shape("b", "count.k") == std::vector<int64_t>{2});
    CHECK(a.read_state("b", "count.k") == std::vector<float>{1, 1});
  }
  SUBCASE("a global norm counts a batched tensor once") {
    const char* clip = "optimizer o(lr = 0.1) { matrix view(batch): clip_global_norm(0.5) -> scale(lr) other: clip_global_norm(0.5) -> scale(lr) }";
    const char* clip_flat = "optimizer o(lr = 0.1) { other: clip_global_norm(0.5) -> scale(lr) }";
    std::vector<float> w(24), g(24), v(6, 0.f), gv(6, 0.3f);
    fill(w, g);
    std::vector<float> w2 = w, v2 = v;
    Optimizer a(build_executable(SpecRef{clip, "", ""}), {{"b", {2, 3, 4}, w.data(), g.data()}, {"v", {6}, v.data(), gv.data()}});
    Optimizer c(build_executable(SpecRef{clip_flat, "", ""}), {{"b", {2, 3, 4}, w2.data(), g.data()}, {"v", {6}, v2.data(), gv.data()}});
    a.step();
    c.step();
    for (size_t i = 0; i < 24; ++i) CHECK(w[i] == doctest::Approx(w2[i]).epsilon(1e-6));
    CHECK(v[0] == doctest::Approx(v2[0]).epsilon(1e-6));
  }
  SUBCASE("view(largest): the two largest axes, stepped in a permuted copy") {
    // (6, 2, 5): axes 0 and 2 are the largest, one 6 x 5 matrix per index of axis 1; the same
    // step as view(batch) on the tensor permuted to (2, 6, 5)
    const char* largest = "optimizer o(lr = 0.1) { where(rows >= 5) view(largest): momentum -> adapt_factored -> scale(lr) other: scale(lr) }";
    const char* batch2 = "optimizer o(lr = 0.1) { matrix view(batch): momentum -> adapt_factored -> scale(lr) other: scale(lr) }";
    std::vector<float> w(60), g(60), pw(60), pg(60);
    fill(w, g);
    auto at = [](int i, int j, int k) { return size_t((i * 2 + j) * 5 + k); };   // (6, 2, 5)
    auto pat = [](int i, int j, int k) { return size_t((j * 6 + i) * 5 + k); };  // (2, 6, 5)
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 2; ++j)
        for (int k = 0; k < 5; ++k) pw[pat(i, j, k)] = w[at(i, j, k)], pg[pat(i, j, k)] = g[at(i, j, k)];
    Optimizer a(build_executable(SpecRef{largest, "", ""}), {{"c", {6, 2, 5}, w.data(), g.data()}});
    Optimizer b(build_executable(SpecRef{batch2, "", ""}), {{"p", {2, 6, 5}, pw.data(), pg.data()}});
    CHECK(a.route_of("c") == "where(rows >= 5)");  // the condition sees the route's view: rows 6
    for (int t = 0; t < 3; ++t) {
      a.step();
      b.step();
    }
    bool same = true;
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 2; ++j)
        for (int k = 0; k < 5; ++k) same = same && w[at(i, j, k)] == pw[pat(i, j, k)];
    CHECK(same);
    CHECK(a.state_shape("c", "adapt_factored.r") == std::vector<int64_t>{2, 6});
    CHECK(a.state_shape("c", "momentum.m") == std::vector<int64_t>{2, 6, 5});  // full state in the view's axis order
    CHECK(a.read_state("c", "momentum.m") == b.read_state("p", "momentum.m"));
    // a vector, a matrix and a tensor whose largest axes are the last two need no copy
    CHECK(exec::tensor_view({4, 9, 7}, exec::View::Largest).perm.empty());
    CHECK(exec::tensor_view({9, 4, 7}, exec::View::Largest).perm == std::vector<int>{1, 0, 2});
    CHECK(exec::tensor_view({7, 7, 7}, exec::View::Largest).perm.empty());  // ties go to the later axes
  }
  SUBCASE("squares per matrix are bounded") {
    // 128 left factors of 16384^2: 2^35 floats
    const char* sh = "optimizer o(lr = 0.1) { matrix view(batch): shampoo_precond -> scale(lr) other: scale(lr) }";
    auto exe = build_executable(SpecRef{sh, "", ""});
    CHECK(error_of([&] { Optimizer::check_param(*exe->desc, {"x", {128, 16384, 2}}); }).find("LimitExceeded") != std::string::npos);
    Optimizer::check_param(*exe->desc, {"x", {2, 64, 2}});
  }
}
}
