"""Owner-compute sharding of an opal.torch.Optimizer over a torch.distributed process group
(ZeRO-1 style): every parameter has one owner rank, chosen longest-processing-time-first over
the compiler's static step cost (`opal cost`); a rank keeps state for, and steps, only what it
owns; after a step each owner broadcasts its parameters, one flat buffer per dtype. Every
parameter is updated by the same kernels as in a one-process run, so the result does not
depend on the world size."""

import json
import os
import shutil

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


def _whole_entry(entries):
    """The parameter-table entries of one parameter sharded by rows, one per rank ("rows": [first,
    count], "whole": its shape), as the whole parameter's: the owner's (it lists every slot), at
    the whole shape, each q8 slot tiling the whole."""
    e = dict(max(entries, key=lambda e: len(e.get("slots", []))))
    whole = e.pop("whole")
    e.pop("rows")
    e["shape"] = whole
    e["step"] = max(x.get("step", 0) for x in entries)
    if "q8" in e:
        n = 1
        for d in whole:
            n *= d
        e["q8"] = {slot: [bm[0], n] for slot, bm in e["q8"].items()}
    return e


def merge(parts):
    """Local state_dicts (each rank's, or each file of a checkpoint folder) as one optimizer's:
    the state of all, each group's Opal metadata listing all its parameters in group order (its
    step count: the largest). A parameter sharded by rows is put together: each slot every part
    holds is its parts' rows in order, one only its owner holds is the owner's."""
    rows = {}  # name -> [(first row, part)]
    for k, sd in enumerate(parts):
        for g in sd["param_groups"]:
            for e in json.loads(g["opal"]["opal.params"]):
                if "rows" in e:
                    rows.setdefault(e["name"], []).append((e["rows"][0], k))
    state = {}
    for sd in parts:
        state.update({n: s for n, s in sd["state"].items() if n not in rows})
    for name, holders in rows.items():
        slots = {}
        for _row, k in sorted(holders):
            for slot, t in parts[k]["state"].get(name, {}).items():
                slots.setdefault(slot, []).append(t)
        state[name] = {slot: ts[0] if len(ts) == 1 else torch.cat(ts) for slot, ts in slots.items()}
    groups = []
    for i, group in enumerate(parts[0]["param_groups"]):
        metas = [sd["param_groups"][i]["opal"] for sd in parts]
        entries = {}
        for m in metas:
            for e in json.loads(m["opal.params"]):
                entries.setdefault(e["name"], []).append(e)
        entries = {n: _whole_entry(es) if "rows" in es[0] else es[-1] for n, es in entries.items()}
        meta = dict(metas[0])
        meta["opal.params"] = json.dumps([entries[n] for n in group["param_names"] if n in entries], separators=(",", ":"))
        meta["opal.step"] = str(max(int(m["opal.step"]) for m in metas))
        groups.append({**group, "opal": meta})
    return {"state": state, "param_groups": groups}


def _durable(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def save_folder(local, folder, rank, owners, barrier):
    """A checkpoint folder: each rank's local state_dict in rank-R.pt, then index.json (the
    world size and the parameters each file holds: `owners`, a list of each rank's parameter
    names), written by rank 0 once every file is. It is
    built beside the folder and moved into place whole: a save that fails on any rank leaves the
    previous checkpoint as it was. `barrier` runs a collective (raising when a rank is gone)."""
    folder = os.path.abspath(folder)
    building = folder + ".partial"
    if rank == 0:
        shutil.rmtree(building, ignore_errors=True)
        os.makedirs(building)
    barrier("preparing the checkpoint folder")
    mine = os.path.join(building, f"rank-{rank}.pt")
    torch.save(local, mine + ".tmp")
    _durable(mine + ".tmp")
    os.replace(mine + ".tmp", mine)
    barrier("writing the checkpoint files")
    if rank == 0:
        files = {f"rank-{r}.pt": sorted(names) for r, names in enumerate(owners)}
        with open(os.path.join(building, "index.json"), "w") as f:
            json.dump({"format": 1, "world": len(owners), "files": files}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(folder):  # the old one aside, the new one in, the old one gone
            shutil.rmtree(folder + ".old", ignore_errors=True)
            os.replace(folder, folder + ".old")
        os.replace(building, folder)
        shutil.rmtree(folder + ".old", ignore_errors=True)
    barrier("publishing the checkpoint")


def load_folder(folder, wanted):
    """The state_dict a checkpoint folder holds for the parameters `wanted` (a predicate on
    names; every file's metadata, merged). A folder caught between the two moves of a save is
    read from its previous version (FOLDER.old)."""
    folder = os.path.abspath(folder)
    if not os.path.exists(os.path.join(folder, "index.json")) and os.path.exists(os.path.join(folder + ".old", "index.json")):
        folder += ".old"
    try:
        with open(os.path.join(folder, "index.json")) as f:
            index = json.load(f)
        files = index["files"]
        parts = [torch.load(os.path.join(folder, name)) for name, names in sorted(files.items()) if any(wanted(n) for n in names)]
        if not parts:  # none of its parameters is wanted here: the metadata still is
            parts = [torch.load(os.path.join(folder, sorted(files)[0]))]
    except Exception as e:  # (a truncated or foreign file fails in pickle, zipfile or torch: all are "not a checkpoint")
        raise _opal.CheckpointError(f"cannot load checkpoint folder {folder}: {e} (is it a complete save_checkpoint folder?)") from None
    whole = merge(parts)
    whole["state"] = {n: s for n, s in whole["state"].items() if wanted(n)}
    return whole


# 16-bit floating dtypes: moved as their bits, summed in f32
_SIXTEEN = (torch.bfloat16, torch.float16)


def _pack(tensors, flat):
    at = 0
    for t in tensors:
        flat[at:at + t.numel()].copy_(t.reshape(-1))
        at += t.numel()


def _unpack(flat, tensors):
    at = 0
    for t in tensors:
        t.copy_(flat[at:at + t.numel()].view_as(t))
        at += t.numel()


def _wait_all(what, work):
    """Waits for every async collective, even after one fails (a request left pending when its
    peer is gone can abort the process from gloo's thread), then raises the first failure."""
    failed = None
    for w in work:
        try:
            w.wait()
        except RuntimeError as e:
            failed = failed or e
    if failed is not None:
        _collective(what, _raise, failed)


def _raise(e):
    raise e


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
        self.rows = set()  # parameters sharded by rows: every rank holds some of their state
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
    def most(self, level):
        """The largest of every rank's `level` (a small int): one number all-reduced, on every rank."""
        nccl = dist.get_backend(self.group) == "nccl"
        t = torch.tensor([float(level)], device=torch.device("cuda", torch.cuda.current_device()) if nccl else "cpu")
        _collective("agreeing whether a rank met a NaN, an Inf or an error", dist.all_reduce, t, op=dist.ReduceOp.MAX, group=self.group)
        return int(t.item())

    def average_grads(self, params):
        """All-reduces every gradient to the group's mean: one flat buffer per dtype and device
        (kept from step to step), all in flight at once, in the same order on every rank (which
        must agree on which parameters have gradients)."""
        buckets = {}
        for p in params:
            if p.grad is not None:  # 16-bit gradients are summed in f32 (gloo has no bf16 sum), rounded once
                buckets.setdefault((None, torch.float32 if p.grad.dtype in _SIXTEEN else p.grad.dtype, p.grad.device), []).append(p.grad)
        flats = self._flats("_grad_flat", buckets)
        work = []
        for k, flat in flats.items():
            _pack(buckets[k], flat)
            work.append(_collective("averaging the gradients", dist.all_reduce, flat, group=self.group, async_op=True))
        _wait_all("averaging the gradients", work)
        for k, flat in flats.items():
            _unpack(flat.div_(self.world), buckets[k])

    def _flats(self, attr, buckets):
        """One flat buffer per bucket key (owner or None, dtype, device), in a fixed order, kept in
        self.<attr> from step to step (a fresh one would cost page faults each step)."""
        keys = sorted(buckets, key=lambda k: (-1 if k[0] is None else k[0], str(k[1]), str(k[2])))
        sizes = tuple((k, sum(t.numel() for t in buckets[k])) for k in keys)
        kept = getattr(self, attr, None)
        if kept is None or kept[0] != sizes:
            kept = (sizes, {k: torch.empty(n, dtype=k[1], device=k[2]) for k, n in sizes})
            setattr(self, attr, kept)
        return kept[1]

    @torch.no_grad()
    def share(self, named):
        """Each owner broadcasts its parameters [(name, tensor)]: one flat buffer per owner, dtype
        and device, kept from step to step (a fresh one would cost page faults each step), all
        broadcasts in flight at once."""
        if self.world == 1:
            return
        buckets = {}
        for name, p in named:
            buckets.setdefault((self.owner[name], p.dtype, p.device), []).append(p.detach())
        flats = self._flats("_param_flat", buckets)
        work = []
        for k, flat in flats.items():
            if k[0] == self.rank:
                _pack(buckets[k], flat)
            wire = flat.view(torch.uint8) if flat.dtype in _SIXTEEN else flat  # a copy of the bytes (gloo has no bf16 nor int16)
            work.append(_collective("sharing the stepped parameters", dist.broadcast, wire, src=_global_rank(self.group, k[0]),
                                    group=self.group, async_op=True))
        _wait_all("sharing the stepped parameters", work)
        for k, flat in flats.items():
            if k[0] != self.rank:
                _unpack(flat, buckets[k])

    def consolidate(self, local, to):
        """Every rank's local state_dict gathered on rank `to` and merged into one optimizer's
        (merge). None on the other ranks."""
        everyone = [None] * self.world if self.rank == to else None
        _collective("gathering the state", dist.gather_object, local, everyone, dst=_global_rank(self.group, to), group=self.group)
        return merge(everyone) if self.rank == to else None

    def own_part(self, state_dict):
        """The part of a whole optimizer's state_dict this rank owns (its parameters' state, each
        group's metadata listing them only). Malformed input is passed on for the load's checks."""
        try:
            groups = []
            for g in state_dict["param_groups"]:
                g = dict(g)
                if isinstance(g.get("opal"), dict) and isinstance(g["opal"].get("opal.params"), str):
                    meta = dict(g["opal"])
                    meta["opal.params"] = json.dumps([e for e in json.loads(meta["opal.params"])
                                                      if self.owner.get(e.get("name"), self.rank) == self.rank or e.get("name") in self.rows],
                                                     separators=(",", ":"))
                    g["opal"] = meta
                groups.append(g)
            # (a name no rank owns stays: the load refuses it, naming it, as a one-process load does)
            state = {n: s for n, s in state_dict["state"].items() if self.owner.get(n, self.rank) == self.rank or n in self.rows}
            return {"state": state, "param_groups": groups}
        except (TypeError, AttributeError, KeyError, ValueError):
            return state_dict

    def barrier(self, what):
        _collective(what, dist.barrier, group=self.group)


class ShardedMethods:
    """opal.torch.Optimizer's methods for a process group (self._shard: a Sharding, or None) and
    its checkpoint folders."""

    def _mine(self, name):
        # (every rank steps its rows of a parameter sharded by rows; no rank steps a parameter with no elements)
        if name in self._empty:
            return False
        return self._shard is None or self._shard.mine(name) or (self._rows is not None and name in self._rows.layout)


    def _owned(self, group):
        """The group's (name, tensor) pairs this process steps: all, or under a process group its own."""
        return [(n, p) for n, p in zip(group["param_names"], group["params"]) if self._mine(n)]

    def _share(self):
        """Under a process group: each owner's parameters to every rank."""
        if self._shard is not None:
            rows = self._rows.layout if self._rows is not None else {}
            self._shard.share([(n, p) for g in self.param_groups for n, p in zip(g["param_names"], g["params"])
                               if n not in rows and n not in self._empty])

    def consolidate_state_dict(self, to=0):
        """Under a process group (as torch's ZeroRedundancyOptimizer): gathers every rank's
        state on rank `to`, whose state_dict() then returns the whole optimizer's, the same as a
        one-process optimizer's (it loads into any world size, sharded or not). Every rank calls it."""
        if self._shard is None:
            return
        with self._lock:
            self._consolidated = self._shard.consolidate(self._local_state_dict(), to)

    def save_checkpoint(self, folder):
        """Saves the state to a checkpoint folder: under a process group each rank writes the
        state it owns to its own file (every rank calls it), plus an index; the folder appears
        whole or not at all, so a save that fails on any rank leaves the previous one usable.
        load_checkpoint reads it on any world size. (The model's parameters are the trainer's
        to save.)"""
        with self._lock:
            local = self._local_state_dict()
        names = [n for g in self.param_groups for n in g["param_names"]]
        if self._shard is None:
            save_folder(local, folder, 0, [names], lambda what: None)
        else:
            owners = [[n for n in names if self._shard.owner[n] == r or n in self._shard.rows] for r in range(self._shard.world)]
            save_folder(local, folder, self._shard.rank, owners, self._shard.barrier)

    def load_checkpoint(self, folder):
        """Loads a save_checkpoint folder written by any number of ranks: each rank reads the
        files holding the parameters it owns (load_state_dict's checks and reports)."""
        self.load_state_dict(load_folder(folder, self._mine))
