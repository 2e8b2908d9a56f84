// Journal lines are nlohmann JSON; non-finite numbers are written as null.
#include "ablate/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/disk_cache.h"
#include "runtime/error.h"

namespace opal {

namespace {
using nlohmann::json;
json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
double num_of(const json& j) { return j.is_number() ? j.get<double>() : NAN; }

// An integer field, range-checked: nlohmann's get<int> of 1e75 (or of -1 as unsigned) would be
// an out-of-range conversion, undefined behaviour.
template <class T>
T int_of(const json& j, const char* what) {
  if (j.is_number_unsigned()) {
    uint64_t v = j.get<uint64_t>();
    if (v <= uint64_t(std::numeric_limits<T>::max())) return T(v);
  } else if (j.is_number_integer()) {
    int64_t v = j.get<int64_t>();
    if (std::is_signed_v<T> && v >= int64_t(std::numeric_limits<T>::min()) && v <= int64_t(std::numeric_limits<T>::max())) return T(v);
  }
  throw std::runtime_error(std::string(what) + " is not an integer in range");
}
}  // namespace

std::string to_json_line(const RunRecord& r) {
  json j;
  j["key"] = r.key;
  j["cell"] = r.cell;
  json hp = json::object();
  for (const auto& [k, v] : r.hparams) hp[k] = num(v);
  j["hparams"] = hp;
  j["seed"] = r.seed;
  j["status"] = r.status;
  if (!r.error.empty()) j["error"] = r.error;
  j["final_loss"] = num(r.final_loss);
  if (r.final_accuracy >= 0) j["final_accuracy"] = r.final_accuracy;
  json c = json::array();
  for (const auto& p : r.curve) {
    json q = {p.step, num(p.train_loss), num(p.val_loss)};
    if (p.accuracy >= 0) q.push_back(p.accuracy);
    c.push_back(q);
  }
  j["curve"] = c;
  j["wall_s"] = r.wall_s;
  j["state_bytes"] = r.state_bytes;
  return j.dump() + "\n";
}

bool parse_json_line(const std::string& line, RunRecord& r, std::string& why) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    why = "not a JSON object (a torn write?)";
    return false;
  }
  try {
    r.key = j.at("key").get<std::string>();
    r.cell = j.at("cell").get<std::string>();
    r.hparams.clear();
    for (const auto& [k, v] : j.at("hparams").items()) r.hparams[k] = num_of(v);
    r.seed = int_of<uint64_t>(j.at("seed"), "seed");
    r.status = j.at("status").get<std::string>();
    if (r.status != "ok" && r.status != "diverged" && r.status != "failed") throw std::runtime_error("unknown status `" + r.status + "`");
    r.error = j.value("error", "");
    r.final_loss = num_of(j.at("final_loss"));
    r.final_accuracy = j.contains("final_accuracy") ? num_of(j["final_accuracy"]) : -1;
    r.curve.clear();
    for (const auto& q : j.at("curve")) {
      if (!q.is_array() || q.size() < 3 || q.size() > 4) throw std::runtime_error("a curve point is not [step, train, val(, acc)]");
      r.curve.push_back({int_of<int>(q[0], "a curve point's step"), num_of(q[1]), num_of(q[2]), q.size() == 4 ? num_of(q[3]) : -1});
    }
    r.wall_s = num_of(j.at("wall_s"));
    r.state_bytes = int_of<int64_t>(j.at("state_bytes"), "state_bytes");
  } catch (const std::exception& e) {
    why = e.what();
    return false;
  }
  if (r.key.empty()) {
    why = "empty key";
    return false;
  }
  return true;
}

Journal::Journal(std::string path, std::vector<std::string>& warnings) : path_(std::move(path)) {
  {
    std::ifstream in(path_);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.empty()) continue;
      RunRecord r;
      std::string why;
      if (!parse_json_line(line, r, why)) {
        warnings.push_back(fmt::format("{}:{}: skipped ({}); that run is done again", path_, n, why));
        continue;
      }
      records_[r.key] = std::move(r);
    }
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError(fmt::format("cannot open the journal `{}` for appending", path_));
  // A torn last line has no newline: start the next record on a line of its own.
  off_t end = ::lseek(fd_, 0, SEEK_END);
  if (end > 0) {
    int rd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    char c = '\n';
    if (rd >= 0) {
      if (::pread(rd, &c, 1, end - 1) != 1) c = '\n';
      ::close(rd);
    }
    if (c != '\n' && ::write(fd_, "\n", 1) != 1) throw IoError(fmt::format("cannot write the journal `{}`", path_));
  }
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

const RunRecord* Journal::find(const std::string& key) const {
  auto it = records_.find(key);
  return it == records_.end() ? nullptr : &it->second;
}

void Journal::append(const RunRecord& r) {
  std::string line = to_json_line(r);
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  // A failed write (a full disk) takes back what it wrote: the journal keeps whole lines only.
  auto fail = [&](int err) {
    if (before >= 0 && ::ftruncate(fd_, before) == 0) ::fsync(fd_);
    throw IoError(fmt::format("cannot append to the journal `{}`: {}{}; the runs journaled so far are kept: start `opal ablate` again to resume",
                              path_, std::strerror(err), err == ENOSPC || err == EDQUOT ? " (the disk is full)" : ""));
  };
  if (int err = write_fully(fd_, line)) fail(err);
  if (::fsync(fd_) != 0) fail(errno);
  records_[r.key] = r;
}

}  // namespace opal
