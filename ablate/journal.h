// The ablation journal: one JSON line per finished run, appended and flushed to disk as each run
// ends, so a killed `opal ablate` resumes without redoing them. A torn last line (a kill during
// the write) is skipped with a warning and its run is done again.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace opal {

struct CurvePoint {
  int step = 0;
  double train_loss = 0;  // mean training loss since the previous point
  double val_loss = 0;
  double accuracy = -1;  // -1: the workload has none
};

struct RunRecord {
  std::string key;   // cell hash, hyperparameters, seed, workload: what makes two runs the same
  std::string cell;  // the cell's optimizer name (informative)
  std::map<std::string, double> hparams;
  uint64_t seed = 0;
  std::string status = "ok";  // ok | diverged | failed
  std::string error;          // why it diverged or failed
  double final_loss = 0;      // validation loss at the last step (NaN unless ok)
  double final_accuracy = -1;
  std::vector<CurvePoint> curve;
  double wall_s = 0;
  int64_t state_bytes = 0;
};

std::string to_json_line(const RunRecord& r);
// Parses one line; false (with `why`) for a line that is not a whole record.
bool parse_json_line(const std::string& line, RunRecord& out, std::string& why);

class Journal {
 public:
  // Opens (creating) `path` and reads the records already there. `warnings` gets one line per
  // skipped (torn or corrupt) line.
  Journal(std::string path, std::vector<std::string>& warnings);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  const std::map<std::string, RunRecord>& records() const { return records_; }
  const RunRecord* find(const std::string& key) const;
  // Appends and fsyncs one record. Not thread-safe: the caller serializes.
  void append(const RunRecord& r);

 private:
  std::string path_;
  int fd_ = -1;
  std::map<std::string, RunRecord> records_;
};

}  // namespace opal
