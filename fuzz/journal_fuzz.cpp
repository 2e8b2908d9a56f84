// libFuzzer target: bytes as an ablation journal (one JSON record per line), the file a killed
// `opal ablate` leaves behind. Every line must parse into a record or be refused with a reason;
// a record that parses must serialize and parse back to the same key.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "ablate/journal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string line;
  while (std::getline(in, line)) {
    opal::RunRecord r;
    std::string why;
    if (!opal::parse_json_line(line, r, why)) continue;
    opal::RunRecord back;
    if (!opal::parse_json_line(opal::to_json_line(r), back, why) || back.key != r.key) std::abort();
  }
  return 0;
}
