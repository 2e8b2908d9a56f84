// A host trainer that uses Opal through its C ABI only (opal.h, libopal.so): a two-layer MLP
// fits a fixed random teacher network. Forward and backward are plain loops; Opal updates the
// weights in place from the gradients the host writes.
//
//   opal_cpp_host [--spec adamw] [--steps 300] [--lr 1e-2] [--checkpoint FILE] [--save-at N] [--resume]
//
// Prints one JSON line at step 1 and every 10 steps: {"step":…,"loss":…,"ms":…}. With --checkpoint and
// --save-at N it saves the optimizer state and the weights after step N; with --resume it
// starts from that file. The batches depend only on the step, so a resumed run continues
// exactly where the saved one was.
//
// Many processes (torchrun's environment: WORLD_SIZE, RANK, MASTER_PORT): data parallel with
// parameters sharded by rows, as FSDP shards them. Each rank holds an even share of the rows of every
// weight and bias; each step it puts the whole model together, runs its share of the batch,
// adds up the ranks' gradients (in rank order) and keeps its rows of them; the optimizer steps
// in phases (opal_step_phase) with the gathers to each parameter's owner and the scatters back
// between them (opal_get_exchange). The collectives are the example's own, over shared memory
// (shm_group.h); rank 0 prints. --timeout S bounds every wait for the other ranks.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "opal.h"
#include "shm_group.h"

namespace {

constexpr int kIn = 16, kHidden = 64, kOut = 4, kBatch = 64;

// An even split of n over `world` (numpy's array_split: the first n % world one more):
// [begin, begin + count) for `rank`.
std::pair<int, int> chunk(int n, int world, int rank) {
  const int base = n / world, extra = n % world;
  return {rank * base + std::min(rank, extra), base + (rank < extra ? 1 : 0)};
}

void check(opal_status s, const char* what) {
  if (s != OPAL_OK) {
    std::fprintf(stderr, "opal_cpp_host: %s failed (%s):\n%s\n", what, opal_status_name(s), opal_last_error());
    std::exit(2);
  }
}

struct Layer {
  int in, out;
  std::vector<float> w, b, gw, gb;
  Layer(int in_, int out_, std::mt19937& rng) : in(in_), out(out_), w(size_t(in_) * out_), b(out_), gw(w.size()), gb(out_) {
    std::normal_distribution<float> n(0.f, 1.f / std::sqrt(float(in_)));
    for (auto& x : w) x = n(rng);
  }
  // y[k][o] = sum_i W[o][i] x[k][i] + b[o]   (W stored (out, in), as PyTorch does), n samples
  void forward(const std::vector<float>& x, std::vector<float>& y, int n = kBatch) const {
    y.assign(size_t(n) * out, 0.f);
    for (int k = 0; k < n; ++k)
      for (int o = 0; o < out; ++o) {
        float s = b[o];
        for (int i = 0; i < in; ++i) s += w[size_t(o) * in + i] * x[size_t(k) * in + i];
        y[size_t(k) * out + o] = s;
      }
  }
  // Gradients of W and b from dy; returns dx.
  void backward(const std::vector<float>& x, const std::vector<float>& dy, std::vector<float>& dx, int n = kBatch) {
    std::fill(gw.begin(), gw.end(), 0.f);
    std::fill(gb.begin(), gb.end(), 0.f);
    dx.assign(size_t(n) * in, 0.f);
    for (int k = 0; k < n; ++k)
      for (int o = 0; o < out; ++o) {
        float d = dy[size_t(k) * out + o];
        gb[o] += d;
        for (int i = 0; i < in; ++i) {
          gw[size_t(o) * in + i] += d * x[size_t(k) * in + i];
          dx[size_t(k) * in + i] += d * w[size_t(o) * in + i];
        }
      }
  }
  void add_to(opal_optimizer* opt, const std::string& name) {
    int64_t ws[2] = {out, in}, bs[1] = {out};
    check(opal_add_param(opt, (name + ".weight").c_str(), 2, ws, OPAL_F32, OPAL_CPU, w.data(), gw.data()), "opal_add_param");
    check(opal_add_param(opt, (name + ".bias").c_str(), 1, bs, OPAL_F32, OPAL_CPU, b.data(), gb.data()), "opal_add_param");
  }
};

// The step's batch (it depends on the step only) and the teacher's outputs for it.
void make_batch(int step, const Layer& teacher1, const Layer& teacher2, std::vector<float>& x, std::vector<float>& t2) {
  std::mt19937 rng(1000 + step);
  std::normal_distribution<float> n(0.f, 1.f);
  x.resize(size_t(kBatch) * kIn);
  for (auto& v : x) v = n(rng);
  std::vector<float> t1;
  teacher1.forward(x, t1);
  for (auto& v : t1) v = std::tanh(v);
  teacher2.forward(t1, t2);
}

// Samples [first, first + n) of the batch through the student: its part of the loss (the whole
// batch's mean), and the gradients of l1 and l2 for it.
double train_part(Layer& l1, Layer& l2, const std::vector<float>& x, const std::vector<float>& t2, int first, int n) {
  const std::vector<float> xs(x.begin() + ptrdiff_t(first) * kIn, x.begin() + ptrdiff_t(first + n) * kIn);
  std::vector<float> h, a, y, da, dh, dx, dy;
  l1.forward(xs, h, n);
  a = h;
  for (auto& v : a) v = std::tanh(v);
  l2.forward(a, y, n);
  double loss = 0;
  dy.resize(y.size());
  for (size_t i = 0; i < y.size(); ++i) {
    float d = y[i] - t2[size_t(first) * kOut + i];
    loss += 0.5 * d * d / kBatch;
    dy[i] = d / kBatch;
  }
  l2.backward(a, dy, da, n);
  dh.resize(da.size());
  for (size_t i = 0; i < da.size(); ++i) dh[i] = da[i] * (1 - a[i] * a[i]);
  l1.backward(xs, dh, dx, n);
  return loss;
}

// One parameter of the many-process mode: the whole tensor (every rank's copy of the model),
// this rank's rows of it and of its gradient, and every rank's rows.
struct Shard {
  std::string name;
  std::vector<int64_t> shape;
  float *whole, *grad;                    // the Layer's w or b, gw or gb
  int unit = 1;                           // elements per row
  std::vector<std::pair<int, int>> rows;  // each rank's
  std::vector<float> w, g;                // this rank's rows
};

int run_sharded(const std::string& spec, int steps, double lr, double timeout, int rank, int world, const std::string& port) {
  std::mt19937 init(1);
  Layer teacher1(kIn, kHidden, init), teacher2(kHidden, kOut, init);
  Layer l1(kIn, kHidden, init), l2(kHidden, kOut, init);
  std::vector<Shard> shards;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, std::vector<float>& w, std::vector<float>& g) {
    Shard s{name, shape, w.data(), g.data(), 1, {}, {}, {}};
    s.unit = shape.size() > 1 ? int(shape[1]) : 1;
    for (int r = 0; r < world; ++r) s.rows.push_back(chunk(int(shape[0]), world, r));
    shards.push_back(std::move(s));
  };
  add("fc1.weight", {kHidden, kIn}, l1.w, l1.gw);
  add("fc1.bias", {kHidden}, l1.b, l1.gb);
  add("fc2.weight", {kOut, kHidden}, l2.w, l2.gw);
  add("fc2.bias", {kOut}, l2.b, l2.gb);
  size_t most = 0;  // the group's slot: the largest message, every gradient at once
  for (auto& s : shards) most += size_t(s.shape[0]) * size_t(s.unit) * sizeof(float);
  ShmGroup group(rank, world, port, most, timeout);

  opal_optimizer* opt = nullptr;
  check(opal_create(spec.c_str(), nullptr, &opt), "opal_create");
  for (size_t i = 0; i < shards.size(); ++i) {
    Shard& s = shards[i];
    const auto [row, n] = s.rows[size_t(rank)];
    s.w.assign(s.whole + size_t(row) * size_t(s.unit), s.whole + size_t(row + n) * size_t(s.unit));
    s.g.assign(s.w.size(), 0.f);
    std::vector<int64_t> local = s.shape;
    local[0] = n;
    check(opal_add_param(opt, s.name.c_str(), int(local.size()), local.data(), OPAL_F32, OPAL_CPU, s.w.data(), s.g.data()), "opal_add_param");
    check(opal_set_param_shard(opt, s.name.c_str(), s.shape.data(), row, int(i) % world == rank), "opal_set_param_shard");
  }
  check(opal_set_hparam(opt, "lr", lr), "opal_set_hparam");
  // each rank's rows of every parameter, into the whole model on every rank
  auto assemble = [&] {
    for (Shard& s : shards) {
      const size_t per = size_t(s.rows[0].second) * size_t(s.unit) * sizeof(float);  // the largest part (rank 0's)
      std::vector<char> mine(per), all(per * size_t(world));
      std::memcpy(mine.data(), s.w.data(), s.w.size() * sizeof(float));
      group.all_gather(mine.data(), per, all.data(), "putting the model together");
      for (int r = 0; r < world; ++r)
        std::memcpy(s.whole + size_t(s.rows[size_t(r)].first) * size_t(s.unit), all.data() + size_t(r) * per,
                    size_t(s.rows[size_t(r)].second) * size_t(s.unit) * sizeof(float));
    }
  };
  // what opal_get_exchange says to move after `after`, for every parameter
  auto exchange = [&](opal_phase after) {
    for (size_t i = 0; i < shards.size(); ++i) {
      Shard& s = shards[i];
      const int owner = int(i) % world;
      size_t n = 0;
      check(opal_num_exchanges(opt, s.name.c_str(), after, &n), "opal_num_exchanges");
      for (size_t k = 0; k < n; ++k) {
        opal_exchange x{};
        check(opal_get_exchange(opt, s.name.c_str(), after, k, &x), "opal_get_exchange");
        const size_t at = size_t(s.rows[size_t(rank)].first) * x.unit_bytes;
        if (after == OPAL_PHASE_LOCAL) {
          std::vector<size_t> offsets, sizes;
          for (const auto& [row, rows] : s.rows) offsets.push_back(size_t(row) * x.unit_bytes), sizes.push_back(size_t(rows) * x.unit_bytes);
          group.gather(x.local, x.local_bytes, owner, x.whole, offsets, sizes, "gathering rows to their owner");
        } else if (x.split) {
          group.scatter(x.whole, x.whole_bytes, owner, x.local, at, x.local_bytes, "scattering rows from their owner");
        } else {
          group.scatter(x.whole, x.whole_bytes, owner, x.local, 0, x.local_bytes, "sending the whole phase's results");
        }
      }
    }
  };
  std::vector<float> x, t2;
  const auto [first, count] = chunk(kBatch, world, rank);
  auto start = std::chrono::steady_clock::now();
  for (int step = 1; step <= steps; ++step) {
    assemble();
    make_batch(step, teacher1, teacher2, x, t2);
    double part = train_part(l1, l2, x, t2, first, count);
    // the ranks' gradients added up in rank order (the same sum on every rank); each keeps its rows
    std::vector<float> flat, all(most / sizeof(float) * size_t(world));
    for (const Shard& s : shards) flat.insert(flat.end(), s.grad, s.grad + size_t(s.shape[0]) * size_t(s.unit));
    group.all_gather(flat.data(), most, all.data(), "adding up the gradients");
    std::vector<double> losses(static_cast<size_t>(world));
    group.all_gather(&part, sizeof part, losses.data(), "adding up the loss");
    size_t off = 0;
    for (Shard& s : shards) {
      const size_t row = size_t(s.rows[size_t(rank)].first) * size_t(s.unit);
      for (size_t e = 0; e < s.g.size(); ++e) {
        float sum = 0.f;
        for (int r = 0; r < world; ++r) sum += all[size_t(r) * (most / sizeof(float)) + off + row + e];
        s.g[e] = sum;
      }
      off += size_t(s.shape[0]) * size_t(s.unit);
    }
    check(opal_step_phase(opt, OPAL_PHASE_LOCAL, nullptr), "opal_step_phase(local)");
    exchange(OPAL_PHASE_LOCAL);
    check(opal_step_phase(opt, OPAL_PHASE_WHOLE, nullptr), "opal_step_phase(whole)");
    exchange(OPAL_PHASE_WHOLE);
    check(opal_step_phase(opt, OPAL_PHASE_FINISH, nullptr), "opal_step_phase(finish)");
    double loss = 0;
    for (double l : losses) loss += l;
    if (rank == 0 && (step == 1 || step % 10 == 0 || step == steps)) {
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      std::printf("{\"step\":%d,\"loss\":%.9g,\"ms\":%.3f}\n", step, loss, ms);
      std::fflush(stdout);
    }
    if (std::getenv("OPAL_CPP_HOST_DIE_AT") && rank == world - 1 && step == std::atoi(std::getenv("OPAL_CPP_HOST_DIE_AT"))) std::_Exit(9);
  }
  group.barrier("finishing");
  opal_destroy(opt);
  return 0;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  std::string spec = "adamw", checkpoint;
  int steps = 300, save_at = -1;
  double lr = 1e-2, timeout = 60;
  bool resume = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "opal_cpp_host: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--spec") spec = value();
    else if (a == "--steps") steps = std::atoi(value().c_str());
    else if (a == "--lr") lr = std::atof(value().c_str());
    else if (a == "--checkpoint") checkpoint = value();
    else if (a == "--save-at") save_at = std::atoi(value().c_str());
    else if (a == "--resume") resume = true;
    else if (a == "--timeout") timeout = std::atof(value().c_str());
    else {
      std::fprintf(stderr, "usage: opal_cpp_host [--spec S] [--steps N] [--lr X] [--checkpoint FILE] [--save-at N] [--resume] [--timeout S]\n");
      return 2;
    }
  }
  const int world = env_int("WORLD_SIZE", 1), rank = env_int("RANK", 0);
  if (world > 1) {
    if (world > kOut || rank < 0 || rank >= world) {
      std::fprintf(stderr, "opal_cpp_host: WORLD_SIZE must be 1 to %d (every rank holds rows of every parameter) and RANK 0 to WORLD_SIZE-1\n", kOut);
      return 2;
    }
    if (!checkpoint.empty()) {
      std::fprintf(stderr, "opal_cpp_host: --checkpoint is for one process (each rank would hold its own rows of the state)\n");
      return 2;
    }
    const char* port = std::getenv("MASTER_PORT");
    return run_sharded(spec, steps, lr, timeout, rank, world, port && *port ? port : "29500");
  }

  std::mt19937 init(1);
  Layer teacher1(kIn, kHidden, init), teacher2(kHidden, kOut, init);
  Layer l1(kIn, kHidden, init), l2(kHidden, kOut, init);

  opal_optimizer* opt = nullptr;
  check(opal_create(spec.c_str(), nullptr, &opt), "opal_create");
  l1.add_to(opt, "fc1");
  l2.add_to(opt, "fc2");
  check(opal_set_hparam(opt, "lr", lr), "opal_set_hparam");
  int first = 1;
  if (resume) {
    const char* report = nullptr;
    check(opal_load(opt, checkpoint.c_str(), &report), "opal_load");
    int64_t t = 0;
    check(opal_step_count(opt, &t), "opal_step_count");
    first = int(t) + 1;
    std::fprintf(stderr, "opal_cpp_host: %s\n", report);
  }

  std::vector<float> x, t2;
  auto start = std::chrono::steady_clock::now();
  for (int step = first; step <= steps; ++step) {
    make_batch(step, teacher1, teacher2, x, t2);
    const double loss = train_part(l1, l2, x, t2, 0, kBatch);
    check(opal_step(opt, nullptr), "opal_step");
    if (step == 1 || step % 10 == 0 || step == steps) {
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      std::printf("{\"step\":%d,\"loss\":%.9g,\"ms\":%.3f}\n", step, loss, ms);
    }
    if (step == save_at && !checkpoint.empty()) check(opal_save(opt, checkpoint.c_str(), OPAL_SAVE_PARAMS), "opal_save");
  }
  opal_destroy(opt);
  return 0;
}
