"""opal.torch.Optimizer.state: each parameter's slots as live views of the engine's memory, with
torch.optim's ways of changing state doing what they do there. Assigning a slot copies into it;
`del opt.state[p]`, `opt.state[p] = {}` and `opt.state = {}` start the state over (every slot as
the spec initializes it, the parameter's step count 0: its next step is its first). Before, a
replaced entry stayed in the dict while the engine went on with the old state."""

from collections.abc import MutableMapping

import torch


class ParamState(MutableMapping):
    """One parameter's slots ({slot: live tensor}). `state[slot] = value` copies value (a tensor,
    or anything torch.as_tensor takes; broadcast to the slot's shape) into the slot, converted to
    its storage; a q8 slot takes its codes (uint8) only. Slots cannot be added or deleted: a
    parameter's state starts over as a whole (`del opt.state[p]`)."""

    def __init__(self, owner, name, views):
        self._owner, self._name, self._views = owner, name, dict(views)

    def __getitem__(self, slot):
        return self._views[slot]

    def __iter__(self):
        return iter(self._views)

    def __len__(self):
        return len(self._views)

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
        self._where = {}  # tensor -> (its engine, its name)
        self._other = {}  # anything else a user keeps here

    def attach(self, tensor, engine, name, views):
        self._held[tensor] = ParamState(self._owner, name, views)
        self._where[tensor] = (engine, name)

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

    def restart(self, tensor, values=None):
        """Starts a held parameter's state over, then copies `values` ({slot: value}) in; checks
        every value first, so a bad one changes nothing."""
        slots = self._held[tensor]
        values = dict(values or {})
        checked = {slot: slots.check(slot, v) for slot, v in values.items()}
        engine, name = self._where[tensor]
        with self._owner._lock:
            engine.reset_param(name)
            for slot, v in checked.items():
                slots._views[slot].copy_(v)

    def __setitem__(self, tensor, value):
        if tensor in self._held:
            if value is self._held[tensor]:
                return
            if not isinstance(value, (dict, MutableMapping)):
                raise TypeError(f"the state of a parameter is a dict of its slots, not {type(value).__name__}")
            self.restart(tensor, value)
        else:
            self._other[tensor] = value

    def __delitem__(self, tensor):
        if tensor in self._held:
            self.restart(tensor)  # (its slots stay in the dict, started over: they are live views)
        else:
            del self._other[tensor]

    def restart_all(self, state=None):
        """`opt.state = {...}`: every held parameter starts over, taking its entry of `state`."""
        state = dict(state or {})
        for tensor in self._held:
            if tensor in state and not isinstance(state[tensor], (dict, MutableMapping)):
                raise TypeError(f"the state of a parameter is a dict of its slots, not {type(state[tensor]).__name__}")
            for slot, v in dict(state.get(tensor, {})).items():
                self._held[tensor].check(slot, v)
        for tensor in self._held:
            self.restart(tensor, state.get(tensor))
        self._other = {t: v for t, v in state.items() if t not in self._held}
