// The ablation engine: cell compilation and deduplication, the per-cell hyperparameter search,
// the thread pool, the journal and the progress line.
#include "driver/build.h"
#include "ablate/runner.h"

#include "support/disk_cache.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ablate/external.h"
#include "compiler/codegen/c_emitter.h"
#include "runtime/error.h"

namespace opal {

namespace {

using Clock = std::chrono::steady_clock;
using HParams = std::map<std::string, double>;

// Sweep points are rounded to 6 significant digits: the journal key and the value used agree.
double round6(double v) { return std::stod(fmt::format("{:.6g}", v)); }

std::string hp_text(const HParams& hp) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : hp) parts.push_back(fmt::format("{}={:.6g}", k, v));
  return fmt::format("{}", fmt::join(parts, ","));
}

// The hash of what a cell computes: its generated program with its own name taken out, and
// its hyperparameters' names and defaults.
std::string program_hash(const CompiledOptimizer& c) {
  std::string s = emit_optimizer(c, Target::Cpu);
  for (size_t at = s.find(c.name); at != std::string::npos; at = s.find(c.name, at + 4)) s.replace(at, c.name.size(), "cell");
  for (size_t i = 0; i < c.hparams.size(); ++i) s += fmt::format("\n{}={:.17g}", c.hparams[i], c.defaults[i]);
  return content_hash(s).substr(0, 16);
}

SpecRef cell_ref(const GridCellSpec& c) { return SpecRef{c.spec_text, c.name, {}}; }

// A folder of the output, created when missing; IoError when it cannot be (a file in the way,
// no permission).
void make_folder(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!std::filesystem::is_directory(dir)) {
    throw IoError(fmt::format("cannot use `{}` as an output folder: {}", dir,
                              std::filesystem::exists(dir) ? "a file of that name is in the way" : ec ? ec.message() : "it cannot be created"));
  }
}

// One cell's search over its swept hyperparameters (coordinate-wise, in the grid's order).
struct Search {
  int cell = -1;
  std::shared_ptr<const CompiledOptimizer> compiled;
  HParams base;                      // defaults, then each finished sweep's best
  std::vector<const SweepSpec*> sweeps;
  size_t current = 0;                // index into sweeps
  std::vector<double> points;        // of the current sweep
  int ext_lo = 0, ext_hi = 0;
  int pending = 0;                   // runs submitted and not finished
  std::map<double, std::vector<const RunRecord*>> results;  // current sweep: point -> runs
  bool done = false;
  CellResult out;
};

double mean_final(const std::vector<const RunRecord*>& runs) {
  double s = 0;
  for (auto* r : runs) {
    if (r->status != "ok" || !std::isfinite(r->final_loss)) return INFINITY;
    s += r->final_loss;
  }
  return runs.empty() ? INFINITY : s / runs.size();
}

class Engine {
 public:
  Engine(const ExpandedGrid& g, const AblateOptions& o, AblateResult& res) : g_(g), o_(o), res_(res) {}

  void run() {
    make_folder(o_.out_dir);
    make_folder(o_.out_dir + "/cells");
    res_.journal = std::make_unique<Journal>(o_.out_dir + "/journal.jsonl", res_.warnings);
    external_ = o_.workload.rfind("external:", 0) == 0;
    if (external_) {
      ext_ = std::make_unique<ExternalWorkload>(o_.workload.substr(9), o_.workload_options, o_.out_dir);
      res_.workload = "external";
      res_.workload_description = ext_->describe();
      res_.steps = 0;
      workload_sig_ = "external:" + content_hash(o_.workload).substr(0, 12);
    } else {
      wl_ = make_workload(o_.workload, o_.workload_options);
      res_.workload = wl_->name();
      res_.workload_description = wl_->describe();
      res_.steps = wl_->steps();
      workload_sig_ = fmt::format("{}:{}:{}", wl_->name(), wl_->steps(), wl_->eval_every());
    }
    seeds_ = o_.seeds > 0 ? o_.seeds : g_.seeds;
    for (const auto& sw : g_.sweeps) {
      sweeps_.push_back(sw);
      if (o_.per_decade > 0) sweeps_.back().per_decade = o_.per_decade;
    }
    plan_cells();
    int jobs = o_.jobs > 0 ? o_.jobs : std::max(1u, std::thread::hardware_concurrency());
    single_threaded_ = jobs > 1;
    start_ = Clock::now();
    {
      std::lock_guard lock(mu_);
      for (auto& s : searches_) advance(s);
      drain();
    }
    std::vector<std::thread> pool;
    for (int i = 0; i < jobs; ++i) pool.emplace_back([this] { worker(); });
    for (auto& t : pool) t.join();
    if (failure_) std::rethrow_exception(failure_);
    if (o_.progress) std::fputs("\n", stderr);
    finish();
  }

 private:
  void plan_cells() {
    std::map<std::string, int> first;
    res_.cells.resize(g_.cells.size());
    for (size_t i = 0; i < g_.cells.size(); ++i) {
      CellResult& cr = res_.cells[i];
      cr.cell = int(i);
      const auto& c = g_.cells[i];
      if (c.absent) continue;
      if (external_) ext_->write_cell(c);
      auto compiled = compile_spec(cell_ref(c));
      cr.hash = program_hash(*compiled);
      if (auto it = first.find(cr.hash); it != first.end()) {
        cr.same_as = it->second;
        continue;
      }
      first[cr.hash] = int(i);
      Search s;
      s.cell = int(i);
      s.compiled = compiled;
      for (size_t k = 0; k < compiled->hparams.size(); ++k) s.base[compiled->hparams[k]] = compiled->defaults[k];
      // A schedule's horizon: a cell with a `total` hyperparameter gets the run's length.
      if (s.base.count("total") && res_.steps > 0) s.base["total"] = res_.steps;
      for (const auto& sw : sweeps_)
        if (s.base.count(sw.hparam)) {
          s.sweeps.push_back(&sw);
          s.out.swept.push_back(sw.hparam);
        }
      searches_.push_back(std::move(s));
    }
    for (auto& s : searches_) search_of_[s.cell] = &s;
  }

  // Submits the next runs of a search, or finishes it. Called with mu_ held.
  void advance(Search& s) {
    while (s.pending == 0 && !s.done) {
      if (s.current < s.sweeps.size()) {
        const SweepSpec& sw = *s.sweeps[s.current];
        if (s.points.empty()) {
          for (double p : sw.points(s.base[sw.hparam])) s.points.push_back(round6(p));
          for (double p : s.points) submit(s, sw.hparam, p);
          continue;
        }
        // all points of the sweep are in: the best, or one more point past the edge it sits on
        std::vector<double> means;
        for (double p : s.points) means.push_back(mean_final(s.results[p]));
        size_t best = size_t(std::min_element(means.begin(), means.end()) - means.begin());
        if (s.current == 0) {
          s.out.sweep_curve.clear();
          for (size_t k = 0; k < s.points.size(); ++k) s.out.sweep_curve.push_back({s.points[k], means[k]});
        }
        bool finite = std::isfinite(means[best]);
        bool at_lo = finite && best == 0 && s.points.size() > 1, at_hi = finite && best + 1 == s.points.size() && s.points.size() > 1;
        double step = sw.log_step();
        if (step > 0 && at_lo && s.ext_lo < o_.max_extensions) {
          ++s.ext_lo;
          double p = round6(s.points.front() * std::exp(-step));
          s.points.insert(s.points.begin(), p);
          submit(s, sw.hparam, p);
          continue;
        }
        if (step > 0 && at_hi && s.ext_hi < o_.max_extensions) {
          ++s.ext_hi;
          double p = round6(s.points.back() * std::exp(step));
          s.points.push_back(p);
          submit(s, sw.hparam, p);
          continue;
        }
        if ((at_lo || at_hi) && step > 0) s.out.edge.push_back(sw.hparam);
        if (finite) s.base[sw.hparam] = s.points[best];
        s.current++;
        s.points.clear();
        s.results.clear();
        s.ext_lo = s.ext_hi = 0;
        continue;
      }
      // no sweep left: the chosen configuration, one run per seed (most ran during the sweep)
      if (!final_submitted_[s.cell]) {
        final_submitted_[s.cell] = true;
        for (int seed = 1; seed <= seeds_; ++seed) {
          if (const RunRecord* r = res_.journal->find(key_of(s, s.base, uint64_t(seed)))) s.out.runs.push_back(r);
          else submit_run(s, s.base, uint64_t(seed), NAN);
        }
        continue;
      }
      s.done = true;
      s.out.best = s.base;
      s.out.cell = s.cell;
    }
  }

  void submit(Search& s, const std::string& h, double point) {
    HParams hp = s.base;
    hp[h] = point;
    for (int seed = 1; seed <= seeds_; ++seed) submit_run(s, hp, uint64_t(seed), point);
  }

  std::string key_of(const Search& s, const HParams& hp, uint64_t seed) const {
    return fmt::format("{}|{}|seed={}|{}", res_.cells[s.cell].hash, hp_text(hp), seed, workload_sig_);
  }

  void submit_run(Search& s, const HParams& hp, uint64_t seed, double point) {
    std::string key = key_of(s, hp, seed);
    ++s.pending;
    ++planned_;
    if (const RunRecord* r = res_.journal->find(key)) {
      ++res_.runs_from_journal;
      record(s, r, point);
      return;
    }
    queue_.push_back({s.cell, hp, seed, key, point});
    cv_.notify_one();
  }

  // Files a finished run with its search. Called with mu_ held.
  void record(Search& s, const RunRecord* r, double point) {
    --s.pending;
    ++finished_;
    ++s.out.runs_total;
    if (r->status != "ok") ++s.out.diverged;
    if (std::isnan(point)) s.out.runs.push_back(r);  // a run of the final configuration
    else s.results[point].push_back(r);
    pending_final_.push_back(&s);
  }

  struct Task {
    int cell;
    HParams hp;
    uint64_t seed;
    std::string key;
    double point;
  };

  void worker() {
    // One run per thread: neither Eigen's products nor the kernels' loops fan out further
    // (the OpenMP thread count is per calling thread; the environment is read too early).
    if (single_threaded_) omp_set_num_threads(1);
    while (true) {
      Task t;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty() || all_done() || failure_; });
        if (failure_ || (queue_.empty() && all_done())) {
          cv_.notify_all();
          return;
        }
        t = std::move(queue_.front());
        queue_.pop_front();
        ++running_;
      }
      RunRecord r;
      try {
        r = execute(t);
      } catch (...) {
        std::lock_guard lock(mu_);
        if (!failure_) failure_ = std::current_exception();
        --running_;
        cv_.notify_all();
        return;
      }
      std::lock_guard lock(mu_);
      --running_;
      try {
        res_.journal->append(r);  // a full disk: the journal keeps its whole lines, and the ablation stops
      } catch (...) {
        if (!failure_) failure_ = std::current_exception();
        cv_.notify_all();
        return;
      }
      ++res_.runs_executed;
      Search& s = *search_of_[t.cell];
      record(s, res_.journal->find(r.key), t.point);
      drain();
      progress();
      cv_.notify_all();
    }
  }

  void drain() {
    while (!pending_final_.empty()) {
      Search* s = pending_final_.back();
      pending_final_.pop_back();
      advance(*s);
    }
  }

  bool all_done() const {
    if (running_ > 0) return false;
    for (const auto& s : searches_)
      if (!s.done) return false;
    return true;
  }

  std::shared_ptr<const Executable> executable(int cell) {
    std::shared_future<std::shared_ptr<const Executable>> f;
    bool build = false;
    std::promise<std::shared_ptr<const Executable>> p;
    {
      std::lock_guard lock(exe_mu_);
      auto it = exes_.find(cell);
      if (it == exes_.end()) {
        f = p.get_future().share();
        exes_[cell] = f;
        build = true;
      } else {
        f = it->second;
      }
    }
    if (build) {
      try {
        p.set_value(build_executable(search_of_.at(cell)->compiled));
      } catch (...) {
        p.set_exception(std::current_exception());
      }
    }
    return f.get();
  }

  RunRecord execute(const Task& t) {
    RunRecord r;
    r.key = t.key;
    r.cell = g_.cells[t.cell].name;
    r.hparams = t.hp;
    r.seed = t.seed;
    if (external_) return ext_->run(g_.cells[t.cell], r);
    auto exe = executable(t.cell);
    auto begin = Clock::now();
    auto run = wl_->start(t.seed);
    Optimizer opt(exe, run->params());
    for (const auto& [k, v] : t.hp) opt.set_hparam(k, v);
    for (size_t i = 0; i < opt.num_params(); ++i)
      for (const auto& slot : opt.slots(opt.param_name(i))) r.state_bytes += int64_t(opt.state(opt.param_name(i), slot).size() * sizeof(float));
    double train_sum = 0;
    int train_n = 0;
    const int steps = wl_->steps(), every = wl_->eval_every();
    for (int step = 1; step <= steps; ++step) {
      double loss = run->train_step(step);
      if (!std::isfinite(loss)) {
        r.status = "diverged";
        r.error = fmt::format("training loss {} at step {}", loss, step);
        break;
      }
      train_sum += loss;
      ++train_n;
      opt.step();
      if (step % every == 0 || step == steps) {
        double acc = -1;
        double val = run->validate(wl_->has_accuracy() ? &acc : nullptr);
        r.curve.push_back({step, train_sum / train_n, val, acc});
        train_sum = 0;
        train_n = 0;
        if (!std::isfinite(val)) {
          r.status = "diverged";
          r.error = fmt::format("validation loss {} at step {}", val, step);
          break;
        }
      }
    }
    r.wall_s = std::chrono::duration<double>(Clock::now() - begin).count();
    if (r.status == "ok") {
      r.final_loss = r.curve.back().val_loss;
      r.final_accuracy = r.curve.back().accuracy;
    } else {
      r.final_loss = NAN;
    }
    return r;
  }

  void progress() {
    if (!o_.progress) return;
    int done = finished_, total = std::max(planned_, finished_);
    double el = std::chrono::duration<double>(Clock::now() - start_).count();
    int executed = res_.runs_executed;
    int left = total - done;
    std::string eta = executed > 0 ? fmt::format("{:.0f}s", el / executed * left) : "?";
    int width = 30, fill = total ? width * done / total : 0;
    std::fprintf(stderr, "\r[%s%s] %d/%d runs (%d from the journal), %.0fs elapsed, ETA %s (more runs may be added past sweep edges)   ",
                 std::string(size_t(fill), '#').c_str(), std::string(size_t(width - fill), '.').c_str(), done, total, res_.runs_from_journal, el,
                 eta.c_str());
    std::fflush(stderr);
  }

  void finish() {
    for (auto& s : searches_) {
      auto& cr = res_.cells[s.cell];
      auto hash = cr.hash;
      cr = s.out;
      cr.hash = hash;
      cr.cell = s.cell;
      std::sort(cr.runs.begin(), cr.runs.end(), [](auto* a, auto* b) { return a->seed < b->seed; });
      for (const auto& h : cr.edge)
        res_.warnings.push_back(fmt::format("{}: the best {} is on the edge of its sweep after {} extensions; widen the sweep",
                                            g_.cells[s.cell].label, h, o_.max_extensions));
    }
  }

  const ExpandedGrid& g_;
  const AblateOptions& o_;
  AblateResult& res_;
  bool external_ = false;
  bool single_threaded_ = false;
  std::unique_ptr<Workload> wl_;
  std::unique_ptr<ExternalWorkload> ext_;
  std::string workload_sig_;
  int seeds_ = 1;
  std::vector<SweepSpec> sweeps_;
  std::deque<Search> searches_;
  std::map<int, Search*> search_of_;
  std::map<int, bool> final_submitted_;
  std::vector<Search*> pending_final_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  int running_ = 0, planned_ = 0, finished_ = 0;
  std::exception_ptr failure_;
  std::mutex exe_mu_;
  std::map<int, std::shared_future<std::shared_ptr<const Executable>>> exes_;
  Clock::time_point start_;
};

}  // namespace

std::vector<std::string> cell_hashes(const ExpandedGrid& g) {
  std::vector<std::string> out;
  for (const auto& c : g.cells) out.push_back(c.absent ? "" : program_hash(*compile_spec(cell_ref(c))));
  return out;
}

AblateResult run_ablation(const ExpandedGrid& grid, const AblateOptions& opts) {
  AblateResult res;
  res.grid = grid;
  Engine e(res.grid, opts, res);
  e.run();
  return res;
}

}  // namespace opal
