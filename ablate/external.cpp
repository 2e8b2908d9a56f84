// External trainers through `sh -c`, stdout read line by line.
#include "ablate/external.h"

#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/error.h"
#include "runtime/safetensors.h"

namespace opal {

namespace {
std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

ExternalWorkload::ExternalWorkload(std::string command, const WorkloadOptions& opts, std::string out_dir)
    : command_(std::move(command)), out_dir_(std::move(out_dir)), opts_(opts) {
  if (command_.empty()) throw Error("external: needs a command, e.g. `external:python3 examples/torch/train_gpt.py --steps 200`");
  std::filesystem::create_directories(out_dir_ + "/logs");
}

std::string ExternalWorkload::describe() const { return fmt::format("external trainer `{}`", command_); }

void ExternalWorkload::write_cell(const GridCellSpec& c) const {
  write_file_atomically(fmt::format("{}/cells/{}.opal", out_dir_, c.name), c.spec_text);
}

RunRecord ExternalWorkload::run(const GridCellSpec& c, RunRecord r) const {
  std::string cmd = fmt::format("{} --spec {} --seed {}", command_, quote(fmt::format("{}/cells/{}.opal", out_dir_, c.name)), r.seed);
  for (const auto& [k, v] : r.hparams) cmd += fmt::format(" --hp {}={:.17g}", k, v);
  if (opts_.steps > 0) cmd += fmt::format(" --steps {}", opts_.steps);
  std::string log = fmt::format("{}/logs/{}-seed{}.err", out_dir_, c.name, r.seed);
  cmd += " 2>" + quote(log);
  auto begin = std::chrono::steady_clock::now();
  std::FILE* f = popen(cmd.c_str(), "r");
  if (!f) throw Error(fmt::format("cannot run `{}`", cmd));
  char buf[1 << 16];
  double train = NAN;
  std::vector<bool> validated;
  while (std::fgets(buf, sizeof buf, f)) {
    auto j = nlohmann::json::parse(buf, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;  // trainers may print other lines
    if (j.value("diverged", false)) {
      r.status = "diverged";
      r.error = "the trainer reported divergence";
    }
    if (!j.contains("step")) continue;
    int step = j["step"].is_number() ? j["step"].get<int>() : 0;
    if (j.contains("loss") && j["loss"].is_number()) train = j["loss"].get<double>();
    if (j.contains("loss") && j["loss"].is_null()) train = NAN;
    bool has_val = j.contains("val_loss");
    double val = has_val && j["val_loss"].is_number() ? j["val_loss"].get<double>() : has_val ? NAN : train;
    double acc = j.contains("accuracy") && j["accuracy"].is_number() ? j["accuracy"].get<double>() : -1;
    r.curve.push_back({step, train, val, acc});
    validated.push_back(has_val);
  }
  // Trainers that validate now and then: the curve is their validation points.
  if (std::find(validated.begin(), validated.end(), true) != validated.end()) {
    std::vector<CurvePoint> kept;
    for (size_t i = 0; i < r.curve.size(); ++i)
      if (validated[i]) kept.push_back(r.curve[i]);
    r.curve = kept;
  }
  int rc = pclose(f);
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  if (rc != 0 && r.status == "ok") {
    r.status = "failed";
    r.error = fmt::format("exit status {}; see {}", WIFEXITED(rc) ? WEXITSTATUS(rc) : rc, log);
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
