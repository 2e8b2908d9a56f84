// The message of the opal::Error that `f` throws, or "" when it throws none.
#pragma once
#include <functional>
#include <string>

#include "runtime/error.h"

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const opal::Error& e) {
    return e.what();
  }
  return "";
}
