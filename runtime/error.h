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

// A name that is not there: a parameter, state slot or hyperparameter.
class NotFoundError : public Error {
 public:
  using Error::Error;
};

// A hyperparameter value outside the range its spec declares (`beta = 0.9 in [0, 1)`), or not
// a finite float32: opal.torch raises it as a ValueError, as torch.optim does.
class HyperparameterError : public Error {
 public:
  using Error::Error;
};

// A checkpoint that cannot be loaded (corrupt, or not of this optimizer's parameters).
class CheckpointError : public Error {
 public:
  using Error::Error;
};

// A step that met a NaN or an infinity under NonFinitePolicy::Raise; the step was undone.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};

// A device this build or machine cannot use: no CUDA backend built in, no driver, no such
// device, or a CUDA stream given to an optimizer on the CPU.
class DeviceError : public Error {
 public:
  using Error::Error;
};

// A file that cannot be read or written.
class IoError : public Error {
 public:
  using Error::Error;
};

}  // namespace opal
