// Every parameter value and state slot of an optimizer, and bitwise comparison of two such
// snapshots: what the tests mean by "nothing changed".
#pragma once
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "runtime/optimizer.h"

namespace opal::testing {

// Every parameter value and state slot, by name.
inline std::map<std::string, std::vector<float>> snapshot(const Optimizer& o) {
  std::map<std::string, std::vector<float>> s;
  for (size_t i = 0; i < o.num_params(); ++i) {
    const std::string& p = o.param_name(i);
    auto w = o.param(p);
    s[p] = {w.begin(), w.end()};
    for (const auto& slot : o.slots(p)) {
      auto v = o.state(p, slot);
      s[p + "/" + slot] = {v.begin(), v.end()};
    }
  }
  return s;
}

// Bitwise equality (NaN == NaN), so a snapshot compares equal to itself.
inline bool same(const std::map<std::string, std::vector<float>>& a, const std::map<std::string, std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end() || it->second.size() != v.size()) return false;
    if (std::memcmp(v.data(), it->second.data(), v.size() * sizeof(float)) != 0) return false;
  }
  return true;
}

}  // namespace opal::testing
