// External trainers through `sh -c` in a process group of their own, stdout read line by line
// under a time limit.
#include "ablate/external.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/safetensors.h"

extern char** environ;

namespace opal {

namespace {
constexpr size_t kMaxLineBytes = 1 << 20;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

ExternalWorkload::ExternalWorkload(std::string command, const WorkloadOptions& opts, std::string out_dir)
    : command_(std::move(command)), out_dir_(std::move(out_dir)), opts_(opts) {
  if (command_.empty()) throw Error("external: needs a command, e.g. `external:python3 examples/torch/train_gpt.py --steps 200`");
  if (!(opts_.timeout_s > 0)) throw Error(fmt::format("--run-timeout must be a positive number of seconds, not {}", opts_.timeout_s));
  std::error_code ec;
  std::filesystem::create_directories(out_dir_ + "/logs", ec);
  if (!std::filesystem::is_directory(out_dir_ + "/logs"))
    throw IoError(fmt::format("cannot use `{}/logs` as an output folder: {}", out_dir_, ec ? ec.message() : "a file of that name is in the way"));
}

std::string ExternalWorkload::describe() const { return fmt::format("external trainer `{}`", command_); }

void ExternalWorkload::write_cell(const GridCellSpec& c) const {
  write_file_atomically(fmt::format("{}/cells/{}.opal", out_dir_, c.name), c.spec_text);
}

namespace {

// One JSON line of a trainer, checked: a line that names a step must have a whole-number step,
// a loss or val_loss (a number, or null for a non-finite one), and fields of the right types.
// Returns "" or what is wrong with it.
std::string take_line(const nlohmann::json& j, RunRecord& r, std::vector<bool>& validated, double& train) {
  auto number_or_null = [&](const char* k) { return !j.contains(k) || j[k].is_number() || j[k].is_null(); };
  if (j.contains("diverged")) {
    if (!j["diverged"].is_boolean()) return fmt::format("`diverged` is {}, not true or false", j["diverged"].dump());
    if (j["diverged"].get<bool>()) {
      r.status = "diverged";
      r.error = "the trainer reported divergence";
    }
  }
  if (!j.contains("step")) return "";
  const auto& st = j["step"];
  int step = 0;
  if (st.is_number_unsigned() && st.get<uint64_t>() <= uint64_t(std::numeric_limits<int>::max())) step = int(st.get<uint64_t>());
  else if (st.is_number_integer() && st.get<int64_t>() >= 0 && st.get<int64_t>() <= std::numeric_limits<int>::max()) step = int(st.get<int64_t>());
  else if (st.is_number_float() && std::floor(st.get<double>()) == st.get<double>() && st.get<double>() >= 0 &&
           st.get<double>() <= std::numeric_limits<int>::max())
    step = int(st.get<double>());
  else return fmt::format("`step` is {}, not a whole number from 0 to {}", st.dump(), std::numeric_limits<int>::max());
  for (const char* k : {"loss", "val_loss", "accuracy"})
    if (!number_or_null(k)) return fmt::format("`{}` is {}, not a number", k, j[k].dump());
  if (!j.contains("loss") && !j.contains("val_loss")) return "it has a `step` but no `loss` or `val_loss`";
  if (j.contains("loss")) train = j["loss"].is_number() ? j["loss"].get<double>() : NAN;
  bool has_val = j.contains("val_loss");
  double val = has_val && j["val_loss"].is_number() ? j["val_loss"].get<double>() : has_val ? NAN : train;
  double acc = j.contains("accuracy") && j["accuracy"].is_number() ? j["accuracy"].get<double>() : -1;
  r.curve.push_back({step, train, val, acc});
  validated.push_back(has_val);
  return "";
}

}  // namespace

RunRecord ExternalWorkload::run(const GridCellSpec& c, RunRecord r) const {
  std::string cmd = fmt::format("{} --spec {} --seed {}", command_, quote(fmt::format("{}/cells/{}.opal", out_dir_, c.name)), r.seed);
  for (const auto& [k, v] : r.hparams) cmd += fmt::format(" --hp {}={:.17g}", k, v);
  if (opts_.steps > 0) cmd += fmt::format(" --steps {}", opts_.steps);
  std::string log = fmt::format("{}/logs/{}-seed{}.err", out_dir_, c.name, r.seed);
  cmd += " 2>" + quote(log);
  auto begin = std::chrono::steady_clock::now();
  // sh -c COMMAND in a process group of its own, so that a timeout stops all it started
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw IoError(fmt::format("cannot run `{}`: {}", cmd, std::strerror(errno)));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw IoError(fmt::format("cannot run `{}`: {}", cmd, std::strerror(rc)));
  }
  const auto deadline = begin + std::chrono::duration<double>(opts_.timeout_s);
  double train = NAN;
  std::vector<bool> validated;
  std::string pending, malformed;
  int line_no = 0;
  bool timed_out = false;
  auto take = [&](const std::string& line) {
    ++line_no;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return;  // trainers may print other lines
    std::string why = take_line(j, r, validated, train);
    if (!why.empty() && malformed.empty()) malformed = fmt::format("output line {}: {}", line_no, why);
  };
  char buf[1 << 16];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    int pr = ::poll(&pfd, 1, int(std::min<long long>(left, 1000)));
    if (pr < 0 && errno != EINTR) break;
    if (pr <= 0) continue;
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, size_t(n));
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      take(pending.substr(0, nl));
      pending.erase(0, nl + 1);
    }
    if (pending.size() > kMaxLineBytes) pending.clear();  // not a line of ours
  }
  if (!timed_out && !pending.empty()) take(pending);
  if (timed_out) ::kill(-pid, SIGKILL);
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  // Trainers that validate now and then: the curve is their validation points.
  if (std::find(validated.begin(), validated.end(), true) != validated.end()) {
    std::vector<CurvePoint> kept;
    for (size_t i = 0; i < r.curve.size(); ++i)
      if (validated[i]) kept.push_back(r.curve[i]);
    r.curve = kept;
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  if (timed_out) {
    r.status = "failed";
    r.error = fmt::format("did not finish within {:g} s and was stopped (--run-timeout); see {}", opts_.timeout_s, log);
  } else if (!malformed.empty()) {
    r.status = "failed";
    r.error = fmt::format("{}; see {}", malformed, log);
  } else if (status != 0 && r.status == "ok") {
    r.status = "failed";
    r.error = WIFEXITED(status) ? fmt::format("exit status {}; see {}", WEXITSTATUS(status), log)
                                : fmt::format("killed by signal {}; see {}", WIFSIGNALED(status) ? WTERMSIG(status) : 0, log);
  }
  if (r.status == "ok" && r.curve.empty()) {
    r.status = "failed";
    r.error = fmt::format("printed no JSON lines with a step; see {}", log);
  }
  if (r.status == "ok" && !std::isfinite(r.curve.back().val_loss)) {
    r.status = "diverged";
    r.error = "non-finite loss";
  }
  r.final_loss = r.status == "ok" ? r.curve.back().val_loss : NAN;
  r.final_accuracy = r.status == "ok" ? r.curve.back().accuracy : -1;
  return r;
}

}  // namespace opal
