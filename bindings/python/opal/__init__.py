"""Opal: optimizers written as pipelines of components, compiled to fused kernels.

    import opal
    opal.check("my_optimizers.opal")              # raises opal.SpecError with diagnostics
    c = opal.compile("soap")                      # name, path, or spec text
    c.hparams                                     # {'lr': 0.003, 'b1': 0.95, ...}

    from opal.torch import Optimizer              # a torch.optim.Optimizer
    opt = Optimizer(model.named_parameters(), spec="soap", lr=3e-3)
"""
from ._opal import CheckpointError, Compiled, DeviceError, HyperparameterError, NonFiniteError, NotFoundError, OpalError, SpecError, __version__
from ._nonfinite import PeerStepError
from ._opal import check as _check
from ._opal import stdlib_dir

__all__ = ["check", "compile", "stdlib_dir", "Compiled", "OpalError", "SpecError", "CheckpointError", "NotFoundError", "NonFiniteError", "DeviceError", "HyperparameterError", "PeerStepError", "__version__"]


def check(spec):
    """Checks every declaration of a spec (a stdlib name, a path to a .opal file, or spec text).

    Raises SpecError whose message is the rendered diagnostics (file:line:col, caret, hint);
    returns the warnings as text ('' when there are none)."""
    return _check(str(spec))


def compile(spec, optimizer=None, state=None):
    """Compiles a spec (or loads it from the kernel cache) and returns an opal.Compiled; `state`
    stores the routes that say none, as a route's `state(...)` ("q8", "bf16, stochastic")."""
    return Compiled(str(spec), optimizer or "", state or "")
