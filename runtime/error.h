// Errors the runtime reports to its caller: bad specs (with rendered diagnostics), bad
// parameters, bad files. Every one leaves the optimizer as it was.
#pragma once
#include <stdexcept>
#include <string>

namespace opal {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A spec that does not compile; what() is the rendered diagnostics.
class CompileError : public Error {
 public:
  using Error::Error;
};

}  // namespace opal
