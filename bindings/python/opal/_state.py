"""opal.torch.Optimizer.state: each parameter's slots as live views of the engine's memory, with
torch.optim's ways of changing state doing what they do there. Assigning a slot copies into it;
`del opt.state[p]`, `opt.state[p] = {}` and `opt.state = {}` start the state over (every slot as
the spec initializes it, the parameter's step count 0: its next step is its first). Before, a
replaced entry stayed in the dict while the engine went on with the old state."""

from collections.abc import Mapping, MutableMapping

import torch


class CudaBlock:
    """A block of an optimizer's CUDA memory, for torch.as_tensor (zero-copy); it keeps the
    optimizer alive while torch holds the block."""

    def __init__(self, owner, address, shape, typestr="<f4"):
        self.owner = owner
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (address, False), "version": 2, "strides": None}


def slot_view(engine, name, slot):
    """A live, zero-copy view of one state slot (host memory, or CUDA memory through
    __cuda_array_interface__)."""
    shape = engine.state_shape(name, slot)
    # `state m: bf16`: 16-bit words, viewed as bfloat16; `state m: q8`: its codes, uint8
    storage = engine.state_dtype(name, slot)
    words = storage == "bf16"
    typestr, dtype = ("<i2", torch.int16) if words else ("|u1", torch.uint8) if storage == "q8" else ("<f4", torch.float32)
    if engine.device.startswith("cuda"):
        ordinal = int(engine.device.split()[0].split(":")[1])
        t = torch.as_tensor(CudaBlock(engine, engine.state_address(name, slot), shape, typestr), device=f"cuda:{ordinal}")
    else:
        t = torch.frombuffer(engine.state_view(name, slot), dtype=dtype).view(shape)
    return t.view(torch.bfloat16) if words else t


class ParamState(MutableMapping):
    """One parameter's slots ({slot: live tensor}). `state[slot] = value` copies value (a tensor,
    or anything torch.as_tensor takes; broadcast to the slot's shape) into the slot, converted to
    its storage; a q8 slot takes its codes (uint8) only. Slots cannot be added or deleted: a
    parameter's state starts over as a whole (`del opt.state[p]`)."""

    def __init__(self, owner, engine, name, views):
        self._owner, self._engine, self._name, self._views = owner, engine, name, dict(views)

    def __getitem__(self, slot):
        return self._views[slot]

    def __iter__(self):
        return iter(self._views)

    def __len__(self):
        return len(self._views)

    @property
    def name(self):
        return self._name

    def __repr__(self):
        return repr(self._views)

    def check(self, slot, value):
        """The tensor `value` becomes in `slot`: raises (changing nothing) if it cannot."""
        if slot not in self._views:
            raise KeyError(f"parameter `{self._name}` has no state slot `{slot}`; its slots are {', '.join(self._views) or 'none'}")
        view = self._views[slot]
        value = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        if view.dtype == torch.uint8 and value.dtype != torch.uint8:
            raise TypeError(f"state `{slot}` of `{self._name}` is stored as q8: it takes its codes (a uint8 tensor); set its values "
                            "through load_state_dict, which quantizes them")
        if value.is_complex():
            raise TypeError(f"state `{slot}` of `{self._name}` takes real numbers, not {value.dtype}")
        try:
            fits = torch.broadcast_shapes(tuple(value.shape), tuple(view.shape)) == tuple(view.shape)
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"state `{slot}` of `{self._name}` has shape {list(view.shape)}; a value of shape {list(value.shape)} "
                             "does not fit it")
        return value

    def checked(self, values):
        """{slot: value} as the tensors they become (check), raising before anything changes."""
        if not isinstance(values, Mapping):
            raise TypeError(f"the state of a parameter is a dict of its slots, not {type(values).__name__}")
        return {slot: self.check(slot, v) for slot, v in values.items()}

    def restart(self, checked):
        """Every slot as the spec initializes it and the step count 0, then `checked` copied in."""
        with self._owner._lock:
            self._engine.reset_param(self._name)
            for slot, v in checked.items():
                self._views[slot].copy_(v)

    def __setitem__(self, slot, value):
        value = self.check(slot, value)
        with self._owner._lock:
            self._views[slot].copy_(value)

    def __delitem__(self, slot):
        raise TypeError(f"state slot `{slot}` of `{self._name}` cannot be deleted alone: `del opt.state[p]` starts the parameter's "
                        "whole state over, `opt.state[p][slot].zero_()` zeroes one slot")


class OptimizerState(MutableMapping):
    """{parameter tensor: ParamState}, as torch.optim's `state`. Reading a tensor that has no
    state gives an empty dict, as torch's defaultdict does."""

    def __init__(self, owner):
        self._owner = owner
        self._held = {}  # tensor -> ParamState (the parameters this process steps)
        self.changes = 0  # counts changes to _held (for caches of it)
        self._other = {}  # anything else a user keeps here

    def attach(self, tensor, engine, name, views):
        self._held[tensor] = ParamState(self._owner, engine, name, views)
        self.changes += 1

    def held(self):
        """(tensor, its ParamState) of each parameter this process steps."""
        return list(self._held.items())

    def __getitem__(self, tensor):
        if tensor in self._held:
            return self._held[tensor]
        return self._other.setdefault(tensor, {})

    def __iter__(self):
        yield from self._held
        yield from self._other

    def __len__(self):
        return len(self._held) + len(self._other)

    def __contains__(self, tensor):
        return tensor in self._held or tensor in self._other

    def __repr__(self):
        return repr({**self._held, **self._other})

    def __setitem__(self, tensor, value):
        if tensor not in self._held:
            self._other[tensor] = value
        elif value is not self._held[tensor]:
            self._held[tensor].restart(self._held[tensor].checked(value))

    def __delitem__(self, tensor):
        if tensor in self._held:
            self._held[tensor].restart({})  # (its slots stay in the dict, started over: they are live views)
        else:
            del self._other[tensor]

    def rekey(self, name, tensor, restart=False):
        """The state of parameter `name`, now held by `tensor` (a group's tensor replaced by
        another): under the new key, and with `restart` started over (torch.optim keys its state
        by tensor, so a new one steps from fresh state)."""
        for old, s in list(self._held.items()):
            if s._name == name:
                if restart:
                    s.restart({})
                del self._held[old]
                self._held[tensor] = s
                self.changes += 1
                return

    def restart_all(self, state=None):
        """`opt.state = {...}`: every held parameter starts over, taking its entry of `state`;
        every entry is checked before any parameter changes."""
        state = dict(state or {})
        checked = {t: s.checked(state.get(t, {})) for t, s in self._held.items()}
        for t, s in self._held.items():
            s.restart(checked[t])
        self._other = {t: v for t, v in state.items() if t not in self._held}
