// Parameters sharded by rows (issue 19, FSDP-style dim-0 shards): the compiler's split of each
// route into local and whole phases, and the phased step of 2 and 3 "processes" (optimizers in
// one process, the host's gathers and scatters done by memcpy) against one optimizer stepping
// the whole parameters: the same bits, parameters and state. Then the hostile cases.
#include <doctest/doctest.h>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "driver/build.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"

#include "error_of.h"
#include "values.h"

using namespace opal;
using opal::testing::randoms;

namespace {

struct Shape {
  std::string name;
  std::vector<int64_t> shape;
};
// a matrix that 2 and 3 split evenly, one they do not (9 rows), a 3-d conv-like weight, a vector
const std::vector<Shape> kParams = {{"a.weight", {12, 8}}, {"b.weight", {9, 6}}, {"c.weight", {6, 2, 3}}, {"c.bias", {7}}};

int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// torch.chunk's split of n rows over `world` processes: ceil(n / world) each, the last fewer,
// some none.
std::pair<int64_t, int64_t> chunk(int64_t n, int world, int rank) {
  const int64_t per = (n + world - 1) / world;
  const int64_t begin = std::min(n, per * rank), end = std::min(n, per * (rank + 1));
  return {begin, end - begin};
}

// One process's optimizer over its rows of every parameter (owner of parameter i: i % world).
std::unique_ptr<Optimizer> shard_optimizer(std::shared_ptr<const Executable> exe, int world, int rank) {
  std::vector<ParamDesc> ps;
  for (size_t i = 0; i < kParams.size(); ++i) {
    const auto [row, rows] = chunk(kParams[i].shape[0], world, rank);
    if (rows == 0) continue;
    ParamDesc p{kParams[i].name, kParams[i].shape};
    p.shape[0] = rows;
    p.whole_shape = kParams[i].shape;
    p.shard_row = row;
    p.shard_owner = int(i) % world == rank;
    ps.push_back(p);
  }
  return std::make_unique<Optimizer>(exe, ps);
}

// The host's part of a phased step: after `after`, the exchanges of every parameter between
// the processes that hold its rows and its owner.
void exchange(std::vector<std::unique_ptr<Optimizer>>& ranks, StepPhase after) {
  const int world = int(ranks.size());
  for (size_t i = 0; i < kParams.size(); ++i) {
    const std::string& name = kParams[i].name;
    Optimizer& owner = *ranks[i % size_t(world)];
    const std::vector<Exchange> whole = owner.exchanges(name, after);
    for (int r = 0; r < world; ++r) {
      if (!ranks[size_t(r)]->has_param(name)) continue;
      const std::vector<Exchange> mine = ranks[size_t(r)]->exchanges(name, after);
      REQUIRE(mine.size() == whole.size());
      const int64_t row = chunk(kParams[i].shape[0], world, r).first;
      for (size_t k = 0; k < mine.size(); ++k) {
        REQUIRE(whole[k].whole != nullptr);
        REQUIRE(mine[k].buffer == whole[k].buffer);
        char* w = static_cast<char*>(whole[k].whole);
        if (!mine[k].split) {  // the same value everywhere
          REQUIRE(mine[k].local_bytes == whole[k].whole_bytes);
          if (after == StepPhase::Whole) std::memcpy(mine[k].local, w, mine[k].local_bytes);
          continue;
        }
        REQUIRE(size_t(row) * mine[k].unit_bytes + mine[k].local_bytes <= whole[k].whole_bytes);
        if (after == StepPhase::Local) std::memcpy(w + size_t(row) * mine[k].unit_bytes, mine[k].local, mine[k].local_bytes);
        else std::memcpy(mine[k].local, w + size_t(row) * mine[k].unit_bytes, mine[k].local_bytes);
      }
    }
  }
}

// One step of every process in phases, with the host's exchanges between them.
void phased_step(std::vector<std::unique_ptr<Optimizer>>& ranks) {
  for (auto& o : ranks) o->step_phase(StepPhase::Local);
  exchange(ranks, StepPhase::Local);
  for (auto& o : ranks) o->step_phase(StepPhase::Whole);
  exchange(ranks, StepPhase::Whole);
  for (auto& o : ranks) o->step_phase(StepPhase::Finish);
}

// `spec` stepped `steps` times on whole parameters, and sharded over `world` processes: the
// same bits in every parameter and every slot (each process's rows of a split slot, the owner's
// whole one).
void check_sharded(const std::string& spec, int world, int steps) {
  CAPTURE(spec);
  CAPTURE(world);
  auto exe = build_executable(SpecRef{spec, "", ""});
  std::vector<ParamDesc> whole;
  for (const auto& p : kParams) whole.push_back({p.name, p.shape});
  Optimizer ref(exe, whole);
  std::vector<std::unique_ptr<Optimizer>> ranks;
  for (int r = 0; r < world; ++r) ranks.push_back(shard_optimizer(exe, world, r));
  // values of parameter i: the whole to the reference, each rank its rows
  auto write = [&](size_t i, const std::vector<float>& v, bool grad) {
    const std::string& name = kParams[i].name;
    grad ? ref.write_grad(name, v) : ref.write_param(name, v);
    const size_t per = size_t(numel(kParams[i].shape) / kParams[i].shape[0]);
    for (int r = 0; r < world; ++r) {
      const auto [row, rows] = chunk(kParams[i].shape[0], world, r);
      if (rows == 0) continue;
      const std::vector<float> mine(v.begin() + ptrdiff_t(size_t(row) * per), v.begin() + ptrdiff_t(size_t(row + rows) * per));
      grad ? ranks[size_t(r)]->write_grad(name, mine) : ranks[size_t(r)]->write_param(name, mine);
    }
  };
  for (size_t i = 0; i < kParams.size(); ++i) write(i, randoms(size_t(numel(kParams[i].shape)), 100 + unsigned(i), 1.f), false);
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < kParams.size(); ++i) write(i, randoms(size_t(numel(kParams[i].shape)), 1000 * unsigned(s) + unsigned(i), 1.f), true);
    ref.step();
    phased_step(ranks);
  }
  for (size_t i = 0; i < kParams.size(); ++i) {
    const std::string& name = kParams[i].name;
    CAPTURE(name);
    const std::vector<float> w = ref.read_param(name);
    const size_t per = size_t(numel(kParams[i].shape) / kParams[i].shape[0]);
    for (int r = 0; r < world; ++r) {
      const auto [row, rows] = chunk(kParams[i].shape[0], world, r);
      if (rows == 0) continue;
      CAPTURE(r);
      const std::vector<float> mine = ranks[size_t(r)]->read_param(name);
      CHECK(std::memcmp(mine.data(), w.data() + size_t(row) * per, mine.size() * 4) == 0);
      CHECK(ranks[size_t(r)]->step_count(name) == steps);
      for (const std::string& slot : ranks[size_t(r)]->slots(name)) {
        CAPTURE(slot);
        const std::vector<float> full = ref.read_state(name, slot), part = ranks[size_t(r)]->read_state(name, slot);
        if (part.size() == full.size()) CHECK(std::memcmp(part.data(), full.data(), 4 * full.size()) == 0);
        else {  // this process's rows of it
          const size_t unit = full.size() / size_t(kParams[i].shape[0]);
          REQUIRE(part.size() == unit * size_t(rows));
          CHECK(std::memcmp(part.data(), full.data() + size_t(row) * unit, 4 * part.size()) == 0);
        }
      }
    }
  }
}

}  // namespace

TEST_SUITE_BEGIN("shard");

TEST_CASE("the compiler splits routes into local and whole phases for parameters sharded by rows") {
  // AdamW is elementwise: every stage local, nothing to move, its state split by rows
  auto adamw = build_executable(SpecRef{"adamw", "", ""});
  for (const auto& r : adamw->desc->routes) {
    CHECK_FALSE(r.shards.has_whole());
    CHECK(r.shards.local_end == r.schedule.size());
    for (char o : r.shards.owner_slot) CHECK(o == 0);
  }
  // Muon's Newton-Schulz needs the whole matrix: the owner keeps the momentum, g is gathered, the
  // orthogonalized update is scattered, and each process applies it (and weight decay) to its
  // rows: two full matrices move, not three (gathering w and g, scattering w)
  auto muon = build_executable(SpecRef{"muon", "", ""});
  const auto& m = muon->desc->routes[0];
  REQUIRE(m.label == "matrix");
  CHECK(m.shards.has_whole());
  CHECK(m.shards.gather == std::vector<uint32_t>{exec::kGradBuffer});
  INFO(exec::print_route(*muon->desc, 0));
  CHECK(m.shards.scatter.size() == 1);
  for (uint32_t b : m.shards.scatter) CHECK(b >= exec::kFirstSlotBuffer + m.slots.size());  // scratch, not w
  CHECK(m.shards.whole_end + 1 == m.schedule.size());
  // Adafactor: factored statistics whole, the last elementwise update local again
  auto adafactor = build_executable(SpecRef{"adafactor", "", ""});
  const auto& f = adafactor->desc->routes[0];
  CHECK(f.shards.has_whole());
  CHECK(f.shards.whole_end < f.schedule.size());
  CHECK_FALSE(f.shards.scatter.empty());
  for (size_t i = 0; i < f.slots.size(); ++i) CHECK(f.shards.owner_slot[i] == 1);
  // every split is printed (`opal ir --after describe`)
  const std::string text = exec::print(*adafactor->desc);
  CHECK(text.find("sharded by rows: local [0, 0), whole [0, 4) on the owner, finish [4, 5)") != std::string::npos);
  CHECK(text.find("-- whole phase ends: scatter") != std::string::npos);
  // everything whole, for a parameter that is not one matrix split by rows
  const exec::ShardPhases all = exec::shard_phases(adamw->desc->routes[0], exec::ShardAxis::Whole);
  CHECK(all.local_end == 0);
  CHECK(all.whole_end == adamw->desc->routes[0].schedule.size());
  CHECK(all.gather == std::vector<uint32_t>{exec::kParamBuffer, exec::kGradBuffer});
  CHECK(all.scatter == std::vector<uint32_t>{exec::kParamBuffer});
  // a vector's elements: AdamW stays local, Adafactor's norms need the whole vector
  CHECK_FALSE(exec::shard_phases(adamw->desc->routes[0], exec::ShardAxis::Elements).has_whole());
  const auto& vec = adafactor->desc->routes[1];
  REQUIRE(vec.label == "other");
  CHECK(exec::shard_phases(vec, exec::ShardAxis::Elements).has_whole());
}

TEST_CASE("a step sharded by rows over 2 and 3 processes equals the whole step, bit for bit") {
  for (const char* spec : {"adamw", "muon", "soap", "adafactor", "lion"})
    for (int world : {2, 3}) check_sharded(spec, world, 4);
}

// The checked kernels run in every phase, the flags are read after the finish phase: a NaN in one
// process's rows undoes the step there (and on the owner, whose whole phase meets it), and the
// host has the others undo theirs (undo_step), so every process is back where it was. `zero`,
// which redoes one parameter's step, is refused.
TEST_CASE("a step in phases under skip or raise is undone on every process") {
  for (NonFinitePolicy policy : {NonFinitePolicy::Skip, NonFinitePolicy::Raise}) {
    INFO(nonfinite_policy_name(policy));
    auto exe = build_executable(SpecRef{"muon", "", ""});
    std::vector<std::unique_ptr<Optimizer>> ranks;
    for (int r = 0; r < 2; ++r) ranks.push_back(shard_optimizer(exe, 2, r));
    auto grads = [&](unsigned seed) {
      for (int r = 0; r < 2; ++r)
        for (size_t i = 0; i < kParams.size(); ++i)
          if (ranks[size_t(r)]->has_param(kParams[i].name))
            ranks[size_t(r)]->write_grad(kParams[i].name, randoms(ranks[size_t(r)]->read_param(kParams[i].name).size(), seed + unsigned(i), 1.f));
    };
    for (auto& o : ranks) o->set_nonfinite_policy(policy);
    grads(1);
    phased_step(ranks);
    std::vector<std::vector<float>> before;
    for (auto& o : ranks)
      for (size_t i = 0; i < o->num_params(); ++i) {
        before.push_back(o->read_param(o->param_name(i)));
        for (const auto& slot : o->slots(o->param_name(i))) before.push_back(o->read_state(o->param_name(i), slot));
      }
    grads(2);
    std::vector<float> g = ranks[0]->read_param("a.weight");
    g.assign(g.size(), 0.5f);
    g[3] = std::numeric_limits<float>::quiet_NaN();
    ranks[0]->write_grad("a.weight", g);
    for (auto& o : ranks) o->step_phase(StepPhase::Local);
    exchange(ranks, StepPhase::Local);
    for (auto& o : ranks) o->step_phase(StepPhase::Whole);
    exchange(ranks, StepPhase::Whole);
    std::vector<bool> undid;
    for (auto& o : ranks) {
      const std::string err = error_of([&] { o->step_phase(StepPhase::Finish); });
      undid.push_back(!o->nonfinite_events().empty());
      CHECK(err.empty() == (policy == NonFinitePolicy::Skip || o->nonfinite_events().empty()));
    }
    CHECK(undid[0]);  // rank 0 holds the NaN's rows
    for (size_t r = 0; r < 2; ++r)
      if (!undid[r]) ranks[r]->undo_step();  // what the host does once the ranks agree
    std::vector<std::vector<float>> after;
    for (auto& o : ranks) {
      CHECK(o->step_count() == 1);
      for (size_t i = 0; i < o->num_params(); ++i) {
        CHECK(o->step_count(o->param_name(i)) == 1);
        after.push_back(o->read_param(o->param_name(i)));
        for (const auto& slot : o->slots(o->param_name(i))) after.push_back(o->read_state(o->param_name(i), slot));
      }
    }
    CHECK(after == before);
    // and the next step goes on, from local
    grads(3);
    phased_step(ranks);
    CHECK(ranks[0]->step_count() == 2);
  }
  auto exe = build_executable(SpecRef{"adamw", "", ""});
  auto o = shard_optimizer(exe, 2, 0);
  o->step_phase(StepPhase::Local);  // the policy holds for a whole step: not changed mid-step
  CHECK(error_of([&] { o->set_nonfinite_policy(NonFinitePolicy::Skip); }).find("cannot change between the phases of a step") != std::string::npos);
  CHECK(o->nonfinite_policy() == NonFinitePolicy::Off);
  o->step_phase(StepPhase::Whole);
  o->step_phase(StepPhase::Finish);
  o->set_nonfinite_policy(NonFinitePolicy::Zero);
  CHECK(error_of([&] { o->step_phase(StepPhase::Local); }).find("the non-finite policy `zero` redoes one parameter's step") != std::string::npos);
  CHECK(o->step_count() == 1);
  o->set_diagnostics(true);
  o->set_nonfinite_policy(NonFinitePolicy::Skip);
  CHECK(error_of([&] { o->step_phase(StepPhase::Local); }).find("update diagnostics are not available") != std::string::npos);
}

TEST_CASE("sharded parameters: wrong shapes, ranges, order and optimizers are refused, changing nothing") {
  auto exe = build_executable(SpecRef{"adamw", "", ""});
  auto one = [&](ParamDesc p) { return Optimizer(exe, {p}); };
  ParamDesc p{"w", {2, 8}};
  p.whole_shape = {4, 8};
  p.shard_row = 1;
  CHECK_NOTHROW(one(p));
  ParamDesc bad = p;
  bad.whole_shape = {4, 9};
  CHECK(error_of([&] { one(bad); }).find("only dim 0 may differ") != std::string::npos);
  bad = p;
  bad.whole_shape = {4, 8, 1};
  CHECK(error_of([&] { one(bad); }).find("same number of dims") != std::string::npos);
  bad = p;
  bad.shard_row = 3;  // rows [3, 5) of 4
  CHECK(error_of([&] { one(bad); }).find("rows [3, 5) are not a non-empty part of its 4 rows") != std::string::npos);
  bad = p;
  bad.shard_row = -1;
  CHECK(error_of([&] { one(bad); }).find("not a non-empty part") != std::string::npos);
  bad = p;
  bad.master = true;
  bad.dtype = DType::BF16;
  CHECK(error_of([&] { one(bad); }).find("master copy") != std::string::npos);
  // an optimizer with sums over every parameter
  auto clip = build_executable(SpecRef{"adamw_clip", "", ""});
  CHECK(error_of([&] { Optimizer(clip, {p}); }).find("[Unsupported]") != std::string::npos);
  // q8 blocks cut by the rows
  auto q8 = build_executable(SpecRef{"adamw", "", "", "q8(64)"});
  CHECK(error_of([&] { Optimizer(q8, {p}); }).find("cut the 64-element blocks") != std::string::npos);
  ParamDesc aligned{"w", {8, 16}};  // rows [8, 16) of 16 x 16: 128 elements from element 128
  aligned.whole_shape = {16, 16};
  aligned.shard_row = 8;
  CHECK_NOTHROW(Optimizer(q8, {aligned}));

  // the phases in order, and step() refused
  Optimizer o(exe, {p});
  CHECK(o.sharded());
  CHECK(error_of([&] { o.step(); }).find("[Sharded]") != std::string::npos);
  CHECK(error_of([&] { o.step_phase(StepPhase::Whole); }).find("step_phase(whole) is out of order: this step's next phase is local") !=
        std::string::npos);
  CHECK(o.step_count() == 0);
  o.step_phase(StepPhase::Local);
  CHECK(error_of([&] { o.step_phase(StepPhase::Local); }).find("[PhaseOrder]") != std::string::npos);
  CHECK(error_of([&] { o.exchanges("w", StepPhase::Finish); }).find("nothing moves after the finish phase") != std::string::npos);
  o.step_phase(StepPhase::Whole);
  o.step_phase(StepPhase::Finish);
  CHECK(o.step_count() == 1);
  CHECK(o.exchanges("w", StepPhase::Local).empty());  // AdamW: nothing to move
  // an optimizer without sharded parameters has no phases
  Optimizer plain(exe, {{"w", {2, 8}}});
  CHECK(error_of([&] { plain.step_phase(StepPhase::Local); }).find("step() steps this one") != std::string::npos);

  // a slot the owner keeps is not on another process
  auto muon = build_executable(SpecRef{"muon", "", ""});
  ParamDesc notmine{"w", {2, 8}};
  notmine.whole_shape = {4, 8};
  Optimizer other(muon, {notmine});
  CHECK(other.slots("w").empty());
  CHECK(error_of([&] { other.read_state("w", "momentum.m"); }).find("kept whole by the parameter's owner process") != std::string::npos);
  notmine.shard_owner = true;
  Optimizer owner(muon, {notmine});
  CHECK(owner.slots("w") == std::vector<std::string>{"momentum.m"});
  CHECK(owner.state_shape("w", "momentum.m") == std::vector<int64_t>{4, 8});
  CHECK(owner.exchanges("w", StepPhase::Local).size() == 1);  // g
}

TEST_SUITE_END();
