"""Master copies that follow their parameters. A 16-bit parameter with an f32 master copy
(master_weights=True, or a spec's `state(..., master)`) is stepped as the copy, which is then
written, rounded, into the parameter. A write to the parameter from outside the optimizer
(model.load_state_dict, an init function, copy_, any in-place op torch counts in the tensor's
version, or new memory through `p.data = ...`) used to be overwritten by the next step: building
the optimizer and then loading pretrained weights trained from the initial weights instead. Now,
before each step, a parameter written since the optimizer last saw it has its copy brought in line
element by element: where the parameter is no longer the copy as the optimizer rounds it (to
nearest; or, rounding bf16 stochastically, either of the two values around it), the copy takes the
parameter's value; elsewhere it keeps its extra bits, so that loading the optimizer's state before
the model's (whose weights are the copy's roundings) resumes as exactly as the other order. Writes
torch does not count (into `p.data`'s memory, by collectives, by another library's kernels) are
seen only at the first step after building the optimizer or loading its state, when every copy is
compared with its parameter."""

import torch

MASTER = "master"


def rounds_from(param, master, stochastic=False):
    """Per element: True where `param` (bf16 or float16) is the copy `master` (f32) as the
    optimizer writes it: rounded to nearest even (an infinity past the largest value), or with
    `stochastic` (bf16 only: float16 writes round to nearest) either that or the dtype's next
    value from it towards the copy (its neighbour in the 16-bit word, of the same sign)."""
    param = param.detach()
    nearest = master.to(param.dtype)
    same = (param == nearest) | (torch.isnan(param) & torch.isnan(master))
    if not stochastic or param.dtype != torch.bfloat16:
        return same
    word = nearest.view(torch.int16).to(torch.int32)
    sign, size = word & 0x8000, word & 0x7FFF
    further = (nearest.float().abs() < master.abs()).to(torch.int32) * 2 - 1  # the copy lies further from zero: +1
    other = (sign | (size + further).clamp(0, 0x7FFF)).to(torch.int16).view(param.dtype)
    return same | ((param == other) & (nearest.float() != master))  # (an exact copy has one rounding)


def _mark(tensor):
    """What changes when torch writes a tensor: its version, or its memory (`p.data = ...`)."""
    return tensor._version, tensor.data_ptr()


class MasterCopies:
    """The versions of the parameters with master copies, as of the last time the optimizer
    and each copy were in line with them."""

    def __init__(self, stochastic):
        self._stochastic = stochastic  # how bf16 parameters are written: rounds_from
        self._seen = {}  # parameter name -> the tensor's (_version, data_ptr()) then
        self._checked = set()  # the names whose copies were compared with them since building or loading
        self._held = (-1, [])  # (state.changes, [(tensor, ParamState)] of those with copies)

    def _copies(self, state):
        if self._held[0] != state.changes:  # (a step's cost: most optimizers keep no copies)
            self._held = (state.changes, [(tensor, slots) for tensor, slots in state.held()
                                          if MASTER in slots and slots[MASTER].shape == tensor.shape])
        return self._held[1]

    def watch(self, state, loaded=False):
        """The parameters are as the optimizer left them: after building, a step, a load (whose
        copies are compared with the parameters at the next step, as after building)."""
        if loaded:
            self._checked.clear()
        for tensor, slots in self._copies(state):
            self._seen[slots.name] = _mark(tensor)

    def follow(self, state):
        """Before a step: the copy of each parameter written since takes the parameter's new
        values (rounds_from); at the first step after building or loading, every copy is compared
        (writes torch does not count happen then: DDP's broadcast of rank 0's weights, a
        checkpoint library writing through `.data`)."""
        for tensor, slots in self._copies(state):
            mark = _mark(tensor)
            if self._seen.get(slots.name, mark) != mark or slots.name not in self._checked:
                copy = slots[MASTER]
                with torch.no_grad():
                    copy.copy_(torch.where(rounds_from(tensor, copy, self._stochastic), copy, tensor.detach().float()))
                self._seen[slots.name] = mark
                self._checked.add(slots.name)
