"""Parameters sharded by rows across a torch.distributed process group (FSDP's dim-0 shards) in
an opal.torch.Optimizer: every rank holds some rows of each such parameter and of its gradient.
The compiler splits each route into a local phase (elementwise stages, stepped by every rank on
its own rows), a whole phase (Newton-Schulz, bases, factored statistics: run by the parameter's
owner on the whole matrix) and a finish phase (local again); between them this module gathers
the whole phase's inputs to the owner and scatters its results back, with the group's
collectives. A route with no whole phase (AdamW) moves nothing: its state stays split by rows."""

import ctypes
import json

import torch
import torch.distributed as dist

from ._sharding import _collective, _global_rank
from ._state import CudaBlock


def _bytes_at(address, nbytes, device):
    """A uint8 tensor over `nbytes` of the optimizer's memory at `address` (zero-copy)."""
    if nbytes == 0:
        return torch.empty(0, dtype=torch.uint8, device=device)
    if device.type == "cuda":
        return torch.as_tensor(CudaBlock(None, address, (nbytes,), "|u1"), device=device)
    return torch.frombuffer((ctypes.c_uint8 * nbytes).from_address(address), dtype=torch.uint8)


class RowShards:
    def __init__(self, sharding, shards):
        """sharding: the optimizer's Sharding (its process group); shards: {parameter tensor or
        name: (whole shape, first index of dim 0 held here)}."""
        self.sharding = sharding
        self._given = {}
        for key, value in dict(shards).items():
            try:
                whole, row = value
                whole, row = [int(d) for d in whole], int(row)
            except (TypeError, ValueError):
                raise TypeError(f"shards[{key if isinstance(key, str) else 'a tensor'}] must be (whole shape, first row), not {value!r}") from None
            self._given[key if isinstance(key, str) else id(key)] = (whole, row)
        self.layout = {}  # name -> [(row, rows) of each rank]
        self._whole = {}  # name -> its whole shape
        self._buffers = {}
        self.moved = 0  # bytes this rank has sent and received in exchanges (benchmarks read it)

    def shard_of(self, name, p):
        """(whole shape, row) for a parameter sharded by rows, or None."""
        return self._given.get(name) or self._given.get(id(p))

    def add(self, named):
        """A new group's sharded parameters [(name, tensor, whole, row)]: every rank's rows, checked
        to tile each parameter's dim 0 exactly (on every rank at once)."""
        mine = {n: (row, int(p.shape[0]) if p.dim() else 0, whole) for n, p, whole, row in named}
        self._whole.update({n: list(whole) for n, _p, whole, _row in named})
        everyone = [None] * self.sharding.world
        _collective("comparing the ranks' shards", dist.all_gather_object, everyone, mine, group=self.sharding.group)
        for name, (_row, _rows, whole) in mine.items():
            parts = []
            for r, theirs in enumerate(everyone):
                if name not in theirs:
                    raise ValueError(f"parameter `{name}` is sharded by rows on rank {self.sharding.rank} but not on rank {r}: every rank must "
                                     "hold some rows of each sharded parameter (give a parameter with fewer rows than ranks unsharded)")
                if theirs[name][2] != whole:
                    raise ValueError(f"parameter `{name}` has whole shape {whole} on rank {self.sharding.rank} but {theirs[name][2]} on rank {r}")
                parts.append(theirs[name][:2])
            at = 0
            for r, (row, rows) in sorted(enumerate(parts), key=lambda x: x[1][0]):
                if row != at or rows < 1:
                    raise ValueError(f"the ranks' rows of `{name}` do not tile its {whole[0]} rows: rank {r} holds [{row}, {row + rows}) "
                                     f"where [{at}, ...) comes next")
                at += rows
            if at != whole[0]:
                raise ValueError(f"the ranks' rows of `{name}` end at {at}, not at its {whole[0]} rows")
            self.layout[name] = parts
            self.sharding.rows.add(name)
        for name in mine:
            if name not in everyone[0]:
                raise ValueError(f"parameter `{name}` is sharded by rows here but not on rank 0")

    def _padded(self, key, nbytes, device):
        b = self._buffers.get(key)
        if b is None or b.numel() != nbytes or b.device != device:
            b = self._buffers[key] = torch.zeros(nbytes, dtype=torch.uint8, device=device)
        return b

    def annotate(self, meta):
        """A group's checkpoint metadata with each sharded parameter's entry saying the rows this
        rank holds and the whole shape (merge puts the ranks' parts together by them)."""
        entries = json.loads(meta["opal.params"])
        for e in entries:
            if e["name"] in self.layout:
                e["rows"] = list(self.layout[e["name"]][self.sharding.rank])
                e["whole"] = self._whole[e["name"]]
        return {**meta, "opal.params": json.dumps(entries, separators=(",", ":"))}

    def own_rows(self, state_dict, engines):
        """A whole optimizer's state_dict (own_part's) with each sharded parameter's state cut to
        this rank's rows: each slot it holds split by rows, its part of the slot's elements (they
        are contiguous in every storage, a q8 slot's scales too: rows start on block edges); a slot
        its owner keeps, whole. Malformed input is passed on for the load's checks."""
        try:
            state = dict(state_dict["state"])
            groups = []
            for g, engine in zip(state_dict["param_groups"], engines):
                g = dict(g)
                meta = dict(g["opal"])
                entries = json.loads(meta["opal.params"])
                for e in entries:
                    name = e["name"]
                    if name not in self.layout or not engine.has_param(name):
                        continue
                    row, rows = self.layout[name][self.sharding.rank]
                    whole = self._whole[name]
                    if list(e["shape"]) != whole:
                        continue  # (the load names the mismatch)
                    per = 1
                    for d in whole[1:]:
                        per *= d
                    e["shape"] = [rows] + whole[1:]
                    if "q8" in e:
                        e["q8"] = {slot: [bm[0], rows * per] for slot, bm in e["q8"].items()}
                    mine = {}
                    for slot, t in state.get(name, {}).items():
                        if slot not in engine.slots(name):
                            continue  # the owner's, held there
                        want = engine.state_shape(name, slot)
                        if list(t.shape) == want:
                            mine[slot] = t
                            continue
                        n, count = t.numel(), 1
                        for d in want:
                            count *= d
                        start = n * row // whole[0]
                        mine[slot] = t.reshape(-1)[start:start + count].view(want)
                    state[name] = mine
                meta["opal.params"] = json.dumps(entries, separators=(",", ":"))
                g["opal"] = meta
                groups.append(g)
            return {"state": state, "param_groups": groups}
        except (TypeError, AttributeError, KeyError, ValueError, RuntimeError):
            return state_dict

    def step(self, engine, group, data, grads, stream):
        """One step of a group's engine with sharded parameters: local, whole, finish."""
        names = [n for n in group["param_names"] if n in self.layout]
        device = group["params"][0].device
        engine.step_phase("local", data, grads[0], stream, grads[1])
        self.exchange(engine, names, "local", device)
        engine.step_phase("whole", stream=stream)
        self.exchange(engine, names, "whole", device)
        engine.step_phase("finish", stream=stream)

    @torch.no_grad()
    def exchange(self, engine, names, after, device):
        """After phase `after` ("local", "whole"): each sharded parameter's gathers to its owner,
        or its scatters and broadcasts from it, in the same order on every rank."""
        s = self.sharding
        for name in names:
            owner = s.owner[name]
            src = _global_rank(s.group, owner)
            parts = self.layout[name]
            most = max(rows for _row, rows in parts)
            for k, (_buf, split, local, local_bytes, whole, whole_bytes, unit) in enumerate(engine.exchanges(name, after)):
                mine = _bytes_at(local, local_bytes, device)
                full = _bytes_at(whole, whole_bytes, device) if s.rank == owner else None
                self.moved += local_bytes
                if not split:  # the same value on every rank: the owner's
                    if after == "whole":
                        if s.rank == owner:
                            mine.copy_(full)
                        _collective("sending the whole phase's results", dist.broadcast, mine, src=src, group=s.group)
                    continue
                piece = self._padded((name, k, "piece"), most * unit, device)
                if after == "local":
                    piece[:local_bytes].copy_(mine)
                    pieces = [self._padded((name, k, r), most * unit, device) for r in range(s.world)] if s.rank == owner else None
                    _collective("gathering rows to their owner", dist.gather, piece, pieces, dst=src, group=s.group)
                    if s.rank == owner:
                        for (row, rows), got in zip(parts, pieces):
                            full[row * unit:(row + rows) * unit].copy_(got[:rows * unit])
                else:
                    pieces = None
                    if s.rank == owner:
                        pieces = [self._padded((name, k, r), most * unit, device) for r in range(s.world)]
                        for (row, rows), out in zip(parts, pieces):
                            out[:rows * unit].copy_(full[row * unit:(row + rows) * unit])
                    _collective("scattering rows from their owner", dist.scatter, piece, pieces, src=src, group=s.group)
                    mine.copy_(piece[:local_bytes])
