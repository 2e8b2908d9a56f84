"""Owner-compute sharding of an opal.torch.Optimizer over a torch.distributed process group
(ZeRO-1 style): every parameter has one owner rank, chosen longest-processing-time-first over
the compiler's static step cost (`opal cost`); a rank keeps state for, and steps, only what it
owns; after a step each owner broadcasts its parameters, one flat buffer per dtype. Every
parameter is updated by the same kernels as in a one-process run, so the result does not
depend on the world size."""

import json

import torch
import torch.distributed as dist

from . import _opal


def _global_rank(group, rank):
    if group is None or group is dist.group.WORLD:
        return rank
    get = getattr(dist, "get_global_rank", None) or dist.distributed_c10d._get_global_rank
    return get(group, rank)


class PeerError(RuntimeError):
    """A collective of the process group failed: a rank died, or the network or the group's
    timeout ended it. The run cannot go on (the ranks' parameters may now differ)."""


def _collective(what, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except RuntimeError as e:
        raise PeerError(f"opal: {what} over the process group failed: another rank is gone, or the group's timeout passed ({e}); "
                        "the run cannot continue: restart it from the last checkpoint") from e


class Sharding:
    def __init__(self, group, reduce_grads):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("process_group= needs torch.distributed initialized (init_process_group) first")
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        self.reduce_grads = bool(reduce_grads)
        self.owner = {}  # parameter name -> its rank in the group
        self._loads = []  # each rank's cost so far: groups added later balance with earlier ones

    def check_same(self, signature):
        """Refuses ranks built differently (spec, storage, hyperparameters, options), naming the
        first difference, on every rank at once (no rank is left waiting in a later collective)."""
        everyone = [None] * self.world
        _collective("comparing the ranks' optimizers", dist.all_gather_object, everyone, signature, group=self.group)
        for r, theirs in enumerate(everyone):
            for key in sorted(set(signature) | set(theirs)):
                if signature.get(key) != theirs.get(key):
                    raise ValueError(f"rank {r} of the process group builds a different optimizer than rank {self.rank}: its {key} is "
                                     f"{theirs.get(key)!r}, here {signature.get(key)!r}; every rank must run the same spec and settings")

    def assign(self, compiled, params, hparams):
        """Owners for a new group's params [(name, shape, role, dtype)]: returns which are this rank's."""
        costs = compiled.costs(params, hparams)
        owners, self._loads = _opal.assign_owners(costs, self.world, self._loads)
        for (name, *_rest), r in zip(params, owners):
            self.owner[name] = r
        return [r == self.rank for r in owners]

    def mine(self, name):
        return self.owner[name] == self.rank

    @torch.no_grad()
    def average_grads(self, params):
        """All-reduces every gradient to the group's mean, in a fixed order (the same on every rank)."""
        for p in params:
            if p.grad is not None:
                _collective("averaging the gradients", dist.all_reduce, p.grad, group=self.group)
                p.grad.div_(self.world)

    @torch.no_grad()
    def share(self, named):
        """Each owner broadcasts its parameters [(name, tensor)]: one flat buffer per owner, dtype
        and device, kept from step to step (a fresh one would cost page faults each step), all
        broadcasts in flight at once."""
        if self.world == 1:
            return
        buckets = {}
        for name, p in named:
            buckets.setdefault((self.owner[name], p.dtype, p.device), []).append(p)
        keys = sorted(buckets, key=lambda k: (k[0], str(k[1]), str(k[2])))
        sizes = tuple((k, sum(p.numel() for p in buckets[k])) for k in keys)
        if getattr(self, "_flat_sizes", None) != sizes:
            self._flat = {k: torch.empty(n, dtype=k[1], device=k[2]) for k, n in sizes}
            self._flat_sizes = sizes
        work = []
        for k in keys:
            flat = self._flat[k]
            if k[0] == self.rank:
                at = 0
                for p in buckets[k]:
                    flat[at:at + p.numel()].copy_(p.detach().reshape(-1))
                    at += p.numel()
            work.append(_collective("sharing the stepped parameters", dist.broadcast, flat, src=_global_rank(self.group, k[0]),
                                    group=self.group, async_op=True))
        for w in work:
            _collective("sharing the stepped parameters", w.wait)
        for k in keys:
            if k[0] != self.rank:
                at = 0
                for p in buckets[k]:
                    p.copy_(self._flat[k][at:at + p.numel()].view_as(p))
                    at += p.numel()

    def consolidate(self, local, to, param_groups):
        """Every rank's local state_dict gathered on rank `to` and merged into one optimizer's:
        the state of all, each group's Opal metadata listing all its parameters in group order
        (its step count: the largest). None on the other ranks."""
        everyone = [None] * self.world if self.rank == to else None
        _collective("gathering the state", dist.gather_object, local, everyone, dst=_global_rank(self.group, to), group=self.group)
        if self.rank != to:
            return None
        state = {}
        for sd in everyone:
            state.update(sd["state"])
        groups = []
        for i, group in enumerate(local["param_groups"]):
            metas = [sd["param_groups"][i]["opal"] for sd in everyone]
            entries = {e["name"]: e for m in metas for e in json.loads(m["opal.params"])}
            meta = dict(metas[0])
            meta["opal.params"] = json.dumps([entries[n] for n in param_groups[i]["param_names"] if n in entries], separators=(",", ":"))
            meta["opal.step"] = str(max(int(m["opal.step"]) for m in metas))
            groups.append({**group, "opal": meta})
        return {"state": state, "param_groups": groups}

    def own_part(self, state_dict):
        """The part of a whole optimizer's state_dict this rank owns (its parameters' state, each
        group's metadata listing them only). Malformed input is passed on for the load's checks."""
        try:
            groups = []
            for g in state_dict["param_groups"]:
                g = dict(g)
                if isinstance(g.get("opal"), dict) and isinstance(g["opal"].get("opal.params"), str):
                    meta = dict(g["opal"])
                    meta["opal.params"] = json.dumps([e for e in json.loads(meta["opal.params"]) if self.owner.get(e.get("name"), self.rank) == self.rank],
                                                     separators=(",", ":"))
                    g["opal"] = meta
                groups.append(g)
            # (a name no rank owns stays: the load refuses it, naming it, as a one-process load does)
            state = {n: s for n, s in state_dict["state"].items() if self.owner.get(n, self.rank) == self.rank}
            return {"state": state, "param_groups": groups}
        except (TypeError, AttributeError, KeyError, ValueError):
            return state_dict
