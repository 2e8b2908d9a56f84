// The ablation engine: the thread pool that runs the searches' runs (cells.cpp: compilation and
// deduplication; search.cpp: each cell's search; run_builtin.cpp: one run; progress.cpp: the
// progress line), appending each finished run to the journal.
#include "ablate/runner.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "ablate/cells.h"
#include "ablate/external.h"
#include "ablate/progress.h"
#include "ablate/run_builtin.h"
#include "ablate/search.h"
#include "runtime/error.h"
#include "support/disk_cache.h"

namespace opal {

namespace {

using Clock = std::chrono::steady_clock;

// A folder of the output, created when missing; IoError when it cannot be (a file in the way,
// no permission).
void make_folder(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!std::filesystem::is_directory(dir)) {
    throw IoError(fmt::format("cannot use `{}` as an output folder: {}", dir,
                              std::filesystem::exists(dir) ? "a file of that name is in the way"
                              : ec                         ? ec.message()
                                                           : "it cannot be created"));
  }
}

class Engine final : public SearchHost {
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
    plan_cells(g_, sweeps_, res_.steps, ext_.get(), res_.cells, searches_);
    for (auto& s : searches_) search_of_[s.cell] = &s;
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
  // Called with mu_ held.
  void advance(Search& s) { opal::advance(s, seeds_, o_.max_extensions, *this); }

  const RunRecord* journaled(const Search& s, const HParams& hp, uint64_t seed) override { return res_.journal->find(key_of(s, hp, seed)); }

  std::string key_of(const Search& s, const HParams& hp, uint64_t seed) const {
    return fmt::format("{}|{}|seed={}|{}", res_.cells[s.cell].hash, hp_text(hp), seed, workload_sig_);
  }

  void submit_run(Search& s, const HParams& hp, uint64_t seed, double point) override {
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
    opal::record(s, r, point);
    ++finished_;
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
    return run_builtin(*wl_, executable(t.cell), std::move(r));
  }

  void progress() {
    if (o_.progress) print_progress(finished_, planned_, res_.runs_executed, res_.runs_from_journal, start_);
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
      for (const auto& n : cr.notes) res_.warnings.push_back(fmt::format("{}: {}", g_.cells[s.cell].label, n));
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

AblateResult run_ablation(const ExpandedGrid& grid, const AblateOptions& opts) {
  AblateResult res;
  res.grid = grid;
  Engine e(res.grid, opts, res);
  e.run();
  return res;
}

}  // namespace opal
