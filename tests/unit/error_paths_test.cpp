// Every user-facing runtime error kind, triggered on a trained optimizer: the exception type,
// its message, and that parameters, state, the step count and hyperparameters are unchanged.
// (Spec errors: one golden test per diagnostic kind in tests/golden/errors/.)
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "driver/build.h"
#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"

#include "snapshot.h"

using namespace opal;
using namespace opal::testing;

namespace {

template <class E>
std::string thrown(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("WRONG TYPE: ") + e.what();
  }
  return "NOTHING THROWN";
}

}  // namespace

TEST_SUITE("runtime") {
TEST_CASE("every runtime error kind names the problem and changes nothing") {
  Optimizer opt(build_executable(SpecRef{"adamw", "", ""}), {{"w", {4, 3}}, {"b", {3}}});
  for (int s = 0; s < 2; ++s) {
    for (const char* n : {"w", "b"})
      for (float& g : opt.grad(n)) g = 0.5f - float(s);
    opt.step();
  }
  const auto before = snapshot(opt);
  const double lr = opt.hparam("lr");
  auto unchanged = [&] {
    CHECK(same(before, snapshot(opt)));
    CHECK(opt.step_count() == 2);
    CHECK(opt.hparam("lr") == lr);
  };
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / "opal-error-paths";
  fs::create_directories(dir);

  SUBCASE("CompileError: a bad spec, with the rendered diagnostics") {
    CHECK(thrown<CompileError>([] {
            Optimizer bad(build_executable(SpecRef{"optimizer o(lr = 1) {\n  other: sclae(lr)\n}\n", "", ""}), {{"w", {2}}});
          }).find("unknown component `sclae`") != std::string::npos);
  }
  SUBCASE("NotFoundError: parameters, slots and hyperparameters, with suggestions") {
    CHECK(thrown<NotFoundError>([&] { opt.param("ww"); }).find("no parameter `ww`; did you mean `w`?") != std::string::npos);
    CHECK(thrown<NotFoundError>([&] { opt.state("w", "adapt.vv"); }).find("no state slot `adapt.vv`") != std::string::npos);
    CHECK(thrown<NotFoundError>([&] { opt.set_hparam("lrr", 1.0); }).find("did you mean `lr`?") != std::string::npos);
    CHECK(thrown<NotFoundError>([&] { opt.reset_state("w", "nope"); }).find("no state slot `nope`") != std::string::npos);
  }
  SUBCASE("Error: bad arguments") {
    CHECK(thrown<Error>([&] { opt.bind("w", nullptr, nullptr); }).find("the data pointer is null") != std::string::npos);
    CHECK(thrown<Error>([&] { opt.set_step_count(-1); }).find("cannot be negative") != std::string::npos);
    CHECK(thrown<Error>([&] { opt.set_nonfinite_policy(parse_nonfinite_policy("ignore")); }).find("unknown non-finite policy") != std::string::npos);
    CHECK(opt.nonfinite_policy() == NonFinitePolicy::Off);
  }
  SUBCASE("IoError: a checkpoint that is not there") {
    CHECK(thrown<IoError>([&] { opt.load((dir / "missing.safetensors").string()); }).find("cannot read") != std::string::npos);
  }
  SUBCASE("CheckpointError: a corrupt checkpoint, and another optimizer's") {
    std::string bytes = serialize_checkpoint(opt);
    bytes[bytes.size() - 3] ^= 0x40;
    std::ofstream((dir / "corrupt.safetensors").string(), std::ios::binary) << bytes;
    CHECK(thrown<CheckpointError>([&] { opt.load((dir / "corrupt.safetensors").string()); }).find("does not match its checksum") !=
          std::string::npos);
    Optimizer other(build_executable(SpecRef{"adamw", "", ""}), {{"v", {4, 3}}});
    other.save((dir / "other.safetensors").string());
    CHECK(thrown<CheckpointError>([&] { opt.load((dir / "other.safetensors").string()); }).find("cannot load checkpoint") != std::string::npos);
  }
  SUBCASE("NonFiniteError: a NaN gradient under raise") {
    opt.set_nonfinite_policy(NonFinitePolicy::Raise);
    opt.grad("b")[1] = NAN;
    CHECK(thrown<NonFiniteError>([&] { opt.step(); }).find("parameter `b`") != std::string::npos);
  }
  unchanged();
  fs::remove_all(dir);
}
}
