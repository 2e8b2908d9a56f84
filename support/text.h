// Text helpers shared by every layer.
#pragma once
#include <string>
#include <vector>

namespace opal {

// "did you mean" support: the closest candidate within a small edit distance, or "".
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace opal
