"""opal.torch.Optimizer: an Opal spec as a torch.optim.Optimizer that steps tensors in place.

    opt = opal.torch.Optimizer(model, spec="muon", lr=0.02)     # or model.named_parameters()
    loss.backward(); opt.step(); opt.zero_grad()

Parameters are routed by role (`embedding, head: ...` routes: given a model, each parameter's
role comes from the module holding it), by name (`"*embed*": ...`) and by shape. Each
parameter group is its own Opal optimizer with its own hyperparameters, so PyTorch's LR
schedulers work through param_groups[i]["lr"]. The kernels read and write the tensors' memory
directly: no copies. state_dict() keys state by parameter name and slot name and works with
torch.save / torch.load. opt.state[p] holds live views of p's slots: assigning a slot copies
into it, and `del opt.state[p]` (or `opt.state[p] = {}`, `opt.state = {}`) starts p's state over,
its next step its first (opal/_state.py).
"""
import os
import threading
import warnings
import weakref

import torch

from . import _opal
from ._eval import EvalSequenceMethods
from ._hints import hint
from ._master import MasterCopies
from ._nonfinite import PeerStepError, abandon_step, skip_whole
from ._roles import Roles
from ._rows import RowShards
from ._sharding import Sharding, ShardedMethods
from ._state import OptimizerState, slot_view

__all__ = ["Optimizer"]

# PyTorch's names for hyperparameters Opal specs call otherwise.
_ALIASES = {"weight_decay": "wd", "momentum": "b1", "initial_accumulator_value": "acc0"}
# torch's pairs of hyperparameters, each split into two of the spec's (when it has them).
_PAIRS = {"betas": ("b1", "b2"), "etas": ("eta_minus", "eta_plus"), "step_sizes": ("step_min", "step_max")}
_GROUP_KEYS = ("params", "param_names", "opal")
# The dtypes Opal steps in place, as the engine spells them (arithmetic is f32 in registers).
_DTYPES = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}
# torch.optim's group options that are not hyperparameters: maximize steps on the negated
# gradient (any spec); foreach and fused choose torch's kernels and mean nothing to Opal (its
# kernels are always fused); capturable and differentiable are not supported.
_TORCH_FLAGS = {"maximize": False, "foreach": None, "fused": None}
_UNSUPPORTED = {
    "capturable": "Opal's step runs host-side scalar programs and cannot be captured as a CUDA graph by torch",
    "differentiable": "Opal's step is not differentiable through autograd",
}
# Group keys shown in torch's spelling and kept in sync with the spec's: logging and scheduler
# code (OneCycleLR's cycle_momentum) reads and writes `betas` and `weight_decay`.
_SHOWN = {"betas": ("b1", "b2"), "weight_decay": ("wd",)}
# Tells autograd that a tensor changed in place (torch >= 2.x; absent in 1.13).
_bump_version = getattr(getattr(torch.autograd, "graph", None), "increment_version", None)


def _device_name(device):
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return "cpu"


def _check_hparam(compiled, name, value, where):
    """A hyperparameter value: a real number, finite, within float32's range (the kernels
    compute in float32) and in the ranges the spec gives it (`beta = 0.9 in [0, 1)`), or a bool
    for a flag (torch's centered=True, nesterov=True: 1 or 0). Raises TypeError or ValueError
    naming it."""
    if not isinstance(value, (int, float)) and not (isinstance(value, torch.Tensor) and value.numel() == 1):
        raise TypeError(f"{where}: hyperparameter `{name}` is {value!r} ({type(value).__name__}), not a number")
    v = float(value)
    try:
        compiled.check_hparam(name, v)
    except _opal.OpalError as e:
        raise ValueError(f"{where}: {e}") from None
    return v


def _shared(named, seen):
    """The first (earlier name, name) of `named` (name, tensor) pairs whose tensor's memory
    starts where an earlier one's does (the same tensor twice), recording into `seen`; or None.
    Overlaps that start elsewhere are the runtime's to find (runtime/step.cpp)."""
    for n, p in named:
        key = (p.device, p.data_ptr())
        if key in seen:
            return seen[key], n
        seen[key] = n
    return None


class Optimizer(ShardedMethods, EvalSequenceMethods, torch.optim.Optimizer):
    """A torch.optim.Optimizer running an Opal spec.

    params: a model (an nn.Module: its named parameters, each with the role of the module holding
        it), model.named_parameters(), a list of (name, tensor), a list of tensors (named by
        position), or a list of parameter-group dicts whose "params" are any of those.
    model: the model the parameters come from, when params is not the model itself (parameter
        groups): gives them their roles, and names to tensors passed without names.
    roles: {name or fnmatch pattern: role} over the inferred ones ("embedding", "head",
        "norm", "bias", "conv", or None for none), e.g. roles={"fc.weight": "head"} for a
        classifier's output layer. Specs route by role (the stdlib muon, soap, shampoo send
        embeddings and heads to AdamW); `opt.routes()` shows each parameter's role and route.
    spec: a stdlib optimizer name ("adamw", "soap", "muon"), a path to a .opal file, or spec text.
    optimizer: which optimizer of a file defining several.
    nonfinite: what a step does with a NaN or Inf in a gradient or an update: "off" (no check,
        the default), "raise" (opal.NonFiniteError naming the parameter and the stage; the
        whole step is undone), "skip" (the whole step is undone and counted in skipped_steps),
        "zero" (the offending gradient is zeroed and that parameter steps with it). The whole
        step: every parameter group's, and under process_group= every rank's (one all-reduce of
        a flag a step), so the outcome depends on neither the grouping nor the world size.
    **hparams: the spec's hyperparameters (torch spellings betas=(b1, b2) and weight_decay=
        are accepted where the spec has b1/b2/wd, and param_groups show them, kept in sync with
        b1, b2, wd: a scheduler may write either), and torch.optim's options: maximize=True
        (any spec steps on the negated gradient), foreach= and fused= (hints for torch's own
        kernels: Opal's are always fused, so they change nothing); capturable=True and
        differentiable=True are refused.

    Parameters may be float32, bfloat16 or float16 (a bf16 model is stepped in place, zero-copy),
    and so may their gradients, in any combination; optimizer state is float32 unless the spec
    or `state` says otherwise.
    process_group: a torch.distributed process group (gloo on CPUs, NCCL on GPUs) to shard over
        (ZeRO-1 style): each parameter gets one owner rank, longest-processing-time-first over
        the compiler's static step cost (`opal cost`); a rank keeps state for and steps only the
        parameters it owns (opt.state holds those), then each owner broadcasts its parameters.
        Every rank must build the same optimizer (refused otherwise, naming the difference), and
        the result equals a one-process run. The gradients must already be equal on every rank
        (DDP reduces them), or reduce_grads=True averages them over the group first.
        consolidate_state_dict(to=r) then state_dict() on rank r give the whole state (as torch's
        ZeroRedundancyOptimizer); load_state_dict() takes such a state on every rank, from any
        world size, each rank keeping what it owns.
    shards: under a process group, parameters sharded by rows (FSDP's dim-0 shards): {tensor or
        name: (whole shape, first index of dim 0 held here)}; each rank holds some rows of each
        and of its gradient. Elementwise stages step every rank's rows where they are; stages
        that need the whole matrix run on the parameter's owner after a gather, and their result
        is scattered back (opal ir shows each route's phases). The result equals a one-process
        run; their state checkpoints as the whole parameter's (any world size resumes it).
        nonfinite="zero" is refused with them (raise and skip work).
    state: how the optimizer state is stored where the spec's routes do not say, as a route's
        `state(...)` says it: "bf16", "bf16, stochastic", "q8" (blockwise 8-bit, bitsandbytes'
        dynamic code; "q8(128)" for blocks of 128), "f32, master". q8 state shows in
        opt.state[p] as uint8 codes plus a float32 "<slot>.absmax" per block.
    rounding: how bf16 parameter writes round: "nearest" (to nearest even, the default) or
        "stochastic" (up with probability equal to the fraction cut off, so that updates and
        weight decay below bf16's resolution survive in expectation); reproducible: its bits
        are keyed by `seed`, the step, the parameter's name and the element.
    master_weights: keep an f32 master copy of every bf16 or float16 parameter (state slot
        "master"): the optimizer steps the copy and writes it, rounded, into the parameter, so
        updates below the parameter's resolution accumulate. A parameter changed outside the
        optimizer (pretrained weights loaded after building it, an in-place op, `p.data = ...`)
        gives its copy the new values before the next step, at each element that no longer holds
        the copy as rounded (opal/_master.py); writes torch does not count (into `p.data`'s
        memory, DDP's broadcast) are seen at the first step after building or loading only.

    eval() / train(): for a spec with an evaluation sequence (schedule_free_adamw), put it in the
    parameters for evaluation and the training point back, as the reference optimizer does.
    """

    def __init__(self, params, spec="adamw", optimizer=None, nonfinite="off", model=None, roles=None, rounding="nearest", seed=0,
                 master_weights=False, state=None, process_group=None, reduce_grads=False, shards=None, **hparams):
        self._nonfinite = str(nonfinite)
        self._skipped_by_errors = 0  # undone after an error (_not_skipped): not skipped steps
        if self._nonfinite not in ("off", "raise", "skip", "zero"):
            raise ValueError(f"nonfinite must be off, raise, skip or zero, not `{nonfinite}`")
        if rounding not in ("nearest", "stochastic"):
            raise ValueError(f"rounding must be nearest or stochastic, not `{rounding}`")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2^64), not {seed!r}")
        self._rounding = (rounding, seed)
        self._master = bool(master_weights)
        if not isinstance(spec, (str, os.PathLike)):
            raise TypeError(f"spec must be a string (a stdlib optimizer's name, a .opal file or spec text), not {type(spec).__name__}")
        spec = os.fspath(spec)
        if optimizer is not None and not isinstance(optimizer, str):
            raise TypeError(f"optimizer must be a string (the name of one optimizer of the spec), not {type(optimizer).__name__}")
        if state is not None and not isinstance(state, str):
            raise TypeError(f"state must be a string such as \"q8\" or \"bf16, stochastic\", not {type(state).__name__}")
        self._compiled = _opal.Compiled(str(spec), optimizer or "", state or "")
        self._spec = str(spec)
        self._shard = None
        self._consolidated = None  # under a process group: the whole state, gathered by consolidate_state_dict
        if process_group is not None:
            self._shard = Sharding(process_group, reduce_grads)
        elif reduce_grads:
            raise ValueError("reduce_grads=True averages gradients over a process group: give process_group= too")
        self._rows = None
        if shards:
            if self._shard is None:
                raise ValueError("shards= says which rows each rank holds: give process_group= too")
            if reduce_grads:
                raise ValueError("reduce_grads=True averages whole gradients; with shards= each rank holds its own rows of them "
                                 "(FSDP reduce-scatters them)")
            if self._nonfinite == "zero":
                raise ValueError('nonfinite="zero" redoes one parameter\'s step, which a step in phases cannot: with shards= use "raise" or "skip"')
            self._rows = RowShards(self._shard, shards)
        self._lock = threading.RLock()  # one step (or load) at a time: the engines are not reentrant
        self._masters = MasterCopies(rounding == "stochastic")  # the parameters' versions, for master copies that follow them
        self._engines = []
        self._shapes = []  # per group: each parameter's shape, device and dtype when it was added
        self._tensors = []  # per group: (weak references to) the tensors its state belongs to
        self._unnamed = 0
        self._empty = set()  # names of parameters with no elements: kept in their groups, never stepped, no state (as torch)
        self._synced = []  # per group: the torch-spelled keys as last made consistent
        self._training = True
        self._diagnostics = False
        if isinstance(params, torch.nn.Module):
            if model is not None and model is not params:
                raise ValueError("params is a model and model= another one: give one model")
            model, params = params, list(params.named_parameters())
        if model is not None and not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
        self._roles = Roles(model, roles)
        self._model_names = {id(p): n for n, p in model.named_parameters()} if model is not None else {}
        defaults = dict(self._compiled.hparams)
        defaults.update(self._normalize(hparams, "Optimizer()"))
        defaults.update({k: hparams.get(k, v) for k, v in _TORCH_FLAGS.items() if k not in self._compiled.hparams})
        for alias, keys in _SHOWN.items():  # schedulers look for them in defaults (OneCycleLR's cycle_momentum)
            if all(k in defaults for k in keys):
                defaults[alias] = tuple(float(defaults[k]) for k in keys) if alias == "betas" else float(defaults[keys[0]])
        if self._shard is not None:
            self._shard.check_same({"compiled program (its hash)": self._compiled.fingerprint, "nonfinite": self._nonfinite,
                                    "rounding": self._rounding, "master_weights": self._master, "reduce_grads": self._shard.reduce_grads,
                                    **{f"hyperparameter `{k}`": float(v) for k, v in defaults.items() if k in self._compiled.hparams}})
        super().__init__(self._split_names(params), defaults)
        self._roles.check_used([n for g in self.param_groups for n in g["param_names"]])
        self._warn_roleless()

    def __setattr__(self, name, value):
        # `state` is the live OptimizerState (opal/_state.py): torch's __init__ sets a plain dict,
        # which it replaces; a user's `opt.state = {}` (or a dict of some parameters' slots)
        # starts every parameter's state over
        if name == "state" and not isinstance(value, OptimizerState):
            if "state" in self.__dict__:
                with self._lock:
                    self.__dict__["state"].restart_all(value)
                return
            value = OptimizerState(self)
        super().__setattr__(name, value)

    # -- construction -------------------------------------------------------------------
    def _normalize(self, hp, where):
        names = self._compiled.hparams
        out = {}
        for k, v in hp.items():
            if k in _UNSUPPORTED:
                if v:
                    raise ValueError(f"{where}: {k}=True is not supported: {_UNSUPPORTED[k]}")
                continue
            if k in _TORCH_FLAGS and k not in names:
                continue
            if k in _PAIRS and _PAIRS[k][0] in names:
                a, b = _PAIRS[k]
                if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) != 2:
                    raise TypeError(f"{where}: `{k}` is {v!r}, not a pair ({a}, {b})")
                out[a], out[b] = v[0], v[1]  # (each checked below as a hyperparameter)
                continue
            k2 = _ALIASES.get(k, k) if k not in names else k
            if k2 not in names:
                raise TypeError(f"{where}: optimizer `{self._compiled.name}` has no hyperparameter `{k}`{hint(k, names)}")
            out[k2] = v
        for k, v in out.items():
            _check_hparam(self._compiled, k, v, where)
        return out

    def _split_names(self, params):
        if isinstance(params, torch.Tensor):
            raise TypeError("params must be an iterable of tensors, (name, tensor) pairs or dicts, not a tensor")
        params = list(params)
        if not params:
            raise ValueError("the optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        return [self._named_group(dict(g)) for g in groups]

    def _named_group(self, group):
        ps = group["params"]
        ps = [ps] if isinstance(ps, torch.Tensor) else list(ps)
        if "param_names" in group:
            names = list(group["param_names"])
            tensors = ps
        elif ps and isinstance(ps[0], tuple):
            names = [n for n, _ in ps]
            tensors = [p for _, p in ps]
        else:
            names = []
            for p in ps:
                if id(p) in self._model_names:
                    names.append(self._model_names[id(p)])
                    continue
                names.append(str(self._unnamed))
                self._unnamed += 1
            tensors = ps
            patterns = self._compiled.name_patterns
            if ps and patterns and not all(id(p) in self._model_names for p in ps):
                warnings.warn(f"opal: {len(ps)} parameters were given without names (model.parameters()), so the name routes of "
                              f"`{self._compiled.name}` ({', '.join(dict.fromkeys(patterns))}) cannot match them; pass "
                              "model.named_parameters() to route embeddings, heads and norms by name", stacklevel=4)
        if len(names) != len(tensors):
            raise ValueError(f"a parameter group has {len(tensors)} tensors and {len(names)} names")
        group["params"], group["param_names"] = tensors, names
        return group

    def _warn_roleless(self):
        """A spec that routes by role, given matrices without a model or roles= (named_parameters()
        alone): its embeddings and heads would take the shape routes; say so."""
        by_role = list(dict.fromkeys(self._compiled.route_roles))
        if not by_role or self._compiled.name_patterns or self._model_names or self._roles.patterns:
            return  # (a spec with name patterns too, as the paper family has, finds them by name)
        if not any(p.dim() >= 2 for g in self.param_groups for p in g["params"]):
            return
        warnings.warn(f"opal: `{self._compiled.name}` routes {', '.join(by_role)} parameters by role, but no parameter has a role, so "
                      "embeddings and heads take the shape routes (matrix: ...); pass the model (opal.torch.Optimizer(model, ...), or "
                      "model=model with parameter groups) or roles={name: role}", stacklevel=3)

    def add_param_group(self, param_group):
        group = param_group if "param_names" in param_group else self._named_group(dict(param_group))
        extra = self._normalize({k: v for k, v in group.items() if k not in _GROUP_KEYS}, "add_param_group")
        flags = {k: group[k] for k in _TORCH_FLAGS if k in group and k not in self._compiled.hparams}
        group = {**{k: v for k, v in group.items() if k in _GROUP_KEYS}, **extra, **flags}
        taken = {n for g in self.param_groups for n in g["param_names"]}
        for n in group["param_names"]:
            if n in taken:
                raise ValueError(f"parameter `{n}` appears in two parameter groups")
        for n, p in zip(group["param_names"], group["params"]):
            self._check_tensor(n, p)
        seen = {}
        for g in self.param_groups + [group]:
            pair = _shared(zip(g["param_names"], g["params"]), seen)
            if pair:
                raise ValueError(f"parameters `{pair[0]}` and `{pair[1]}` are the same tensor: each would be stepped twice; give every tensor once")
        super().add_param_group(group)
        group = self.param_groups[-1]
        devices = {p.device for p in group["params"]}
        if len(devices) > 1:
            raise ValueError(f"a parameter group has tensors on {sorted(map(str, devices))}: one group steps one device")
        device = devices.pop() if devices else torch.device("cpu")
        # the group's hyperparameters at construction: route conditions may read them (soap's max_precond_dim)
        hps = {k: float(group[k]) for k in self._compiled.hparams}
        # a parameter with no elements (a rank-0 adapter, an empty embedding) has nothing to step: torch's
        # optimizers pass over it, and so does every rank here (it takes no owner, route or state)
        self._empty.update(n for n, p in zip(group["param_names"], group["params"]) if p.numel() == 0)
        rows = {n: self._rows.shard_of(n, p) for n, p in zip(group["param_names"], group["params"])} if self._rows else {}
        rows = {n: r for n, r in rows.items() if r is not None and n not in self._empty}
        described = [(n, list(rows[n][0] if n in rows else p.shape), self._roles.of(n, p), _DTYPES[p.dtype])
                     for n, p in zip(group["param_names"], group["params"]) if n not in self._empty]  # (a sharded parameter's costs are its whole's)
        if self._shard is not None:
            self._shard.assign(self._compiled, described, hps)
        if rows:
            self._rows.add([(n, p, *rows[n]) for n, p in zip(group["param_names"], group["params"]) if n in rows])
        stepped = [p for n, p in zip(group["param_names"], group["params"]) if n not in self._empty]
        engine = _opal.Optimizer(self._compiled, [(n, list(p.shape), p.data_ptr(), role, dtype) for (n, _shape, role, dtype), p
                                                  in zip(described, stepped) if self._mine(n)], _device_name(device),
                                 hps, self._master, {n: (w, r, self._shard.owner[n] == self._shard.rank) for n, (w, r) in rows.items()})
        engine.nonfinite = self._nonfinite
        engine.diagnostics = self._diagnostics
        engine.set_rounding(*self._rounding)
        self._engines.append(engine)
        self._shapes.append([(tuple(p.shape), p.device, p.dtype) for p in group["params"]])
        self._tensors.append([weakref.ref(p) for p in group["params"]])
        self._synced.append({})
        self._sync_shown(len(self.param_groups) - 1, "add_param_group")
        for n, p in self._owned(group):
            self.state.attach(p, engine, n, {s: slot_view(engine, n, s) for s in engine.slots(n)})
        self._masters.watch(self.state)

    @staticmethod
    def _check_tensor(name, p):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"parameter `{name}` is a {type(p).__name__}, not a tensor")
        if p.dtype not in _DTYPES:
            raise TypeError(f"parameter `{name}` is {p.dtype}; Opal steps torch.float32, bfloat16 and float16 parameters")
        if p.device.type not in ("cpu", "cuda"):
            raise TypeError(f"parameter `{name}` is on {p.device}; Opal steps CPU and CUDA tensors")
        if not p.is_contiguous():
            hint = ("; it is in channels_last memory format: build the optimizer over model.to(memory_format=torch.contiguous_format)"
                    if p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) else "")
            raise ValueError(f"parameter `{name}` is not contiguous; Opal updates parameters in place and needs contiguous memory{hint}")

    def _sync_shown(self, index, where):
        """Keeps `betas` and `weight_decay` and the spec's b1, b2, wd equal: whichever side changed
        since the last sync wins (a scheduler writes one of them)."""
        group, synced = self.param_groups[index], self._synced[index]
        names = self._compiled.hparams
        for alias, keys in _SHOWN.items():
            if not all(k in names for k in keys):
                continue
            spec_side = tuple(float(group[k]) for k in keys)
            if alias in group and alias in synced and group[alias] != synced[alias]:
                value = group[alias]
                if alias == "betas" and (not isinstance(value, (tuple, list)) or len(value) != 2):
                    raise TypeError(f"{where}: `betas` is {value!r}, not a pair (b1, b2)")
                parts = tuple(value) if alias == "betas" else (value,)
                for k, v in zip(keys, parts):
                    group[k] = _check_hparam(self._compiled, k, v, where)
            else:
                group[alias] = spec_side if alias == "betas" else spec_side[0]
            synced[alias] = group[alias]

    # -- stepping -----------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient. Everything is checked first (each
        parameter's shape, dtype, device and layout against what the optimizer was built with,
        each gradient, each hyperparameter), so a step that raises has stepped nothing. An error
        past those checks (a device's, a peer's, memory) in a later parameter group undoes the
        earlier groups' steps under a nonfinite policy other than "off" (which keeps no copies:
        there the error's note names the groups that stepped); under a process group with
        "raise" or "skip", the other processes undo theirs and raise opal.PeerStepError, so every
        process can retry the step. Steps of one optimizer from several threads run one at a time."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with self._lock:
            if not self._training:
                raise RuntimeError("the optimizer is in eval mode (its parameters hold the evaluation sequence): call opt.train() "
                                   "before step(), and opt.eval() after it for evaluation")
            for i in range(len(self.param_groups)):
                self._sync_shown(i, f"step (parameter group {i})")
            if self._shard is not None and self._shard.reduce_grads:
                self._shard.average_grads([p for g in self.param_groups for p in g["params"]])
            try:
                plans = self._plan_step()
            except BaseException as e:  # refused before anything stepped: under a process group the others learn of it
                abandon_step(self._nonfinite, [], len(self.param_groups), e, self._shard)
                raise
            stepped, raised = [], None
            try:
                for group, engine, (_hps, data, (grads, grad_dtypes), stream, _keep, _replaced) in zip(self.param_groups, self._engines, plans):
                    if engine.sharded:  # parameters sharded by rows: in phases, with the exchanges between them
                        self._rows.step(engine, group, data, (grads, grad_dtypes), stream)
                    else:
                        engine.step(data, grads, stream, grad_dtypes)
                    stepped.append(engine)
            except _opal.NonFiniteError as e:
                raised = e  # (its engine undid its own step)
            except BaseException as e:  # not the step's values: a device, a peer, memory
                self._not_skipped(abandon_step(self._nonfinite, stepped, len(self.param_groups), e, self._shard))
                raise
            try:
                if skip_whole(self._nonfinite, stepped, raised, self._shard):
                    return loss
            except PeerStepError as e:  # undone for another process's error
                self._not_skipped(e.undone)
                raise
            self._share()
            self._consolidated = None  # a gathered state is of the step before
            if _bump_version is not None:
                for group in self.param_groups:
                    for p in group["params"]:
                        _bump_version(p)
            self._masters.watch(self.state)
        return loss

    def _plan_step(self):
        """Checks every group's step and sets its hyperparameters: the plans _plan_group gives."""
        seen = {}
        plans = [self._plan_group(i, group, engine, seen) for i, (group, engine) in enumerate(zip(self.param_groups, self._engines))]
        for engine, (hps, *_rest) in zip(self._engines, plans):  # all first: one that decides routes may refuse
            for k, v in hps.items():
                if v != engine.hparam(k):
                    engine.set_hparam(k, v)
        for i, (*_rest, replaced) in enumerate(plans):  # a tensor put in a group in place of another starts fresh, as in torch
            for k, n, p in replaced:
                if self._mine(n):
                    self.state.rekey(n, p, restart=True)
                self._tensors[i][k] = weakref.ref(p)
        self._masters.follow(self.state)  # a parameter written since the last step: its master copy takes the new values
        return plans

    def _not_skipped(self, undone):
        """Engines' undos after an error, not a NaN: under "skip" each engine counted a skipped
        step (skipped_steps reads engine 0's count), which this step was not."""
        if self._nonfinite == "skip" and any(u is self._engines[0] for u in undone):
            self._skipped_by_errors += 1

    def _plan_group(self, index, group, engine, seen):
        """The checked addresses of one group's step: (hparams, data, grads, stream, kept
        tensors, tensors that replaced the group's earlier ones). Raises before anything is
        stepped."""
        where = f"step (parameter group {index})"
        built = len(self._shapes[index])
        if len(group["params"]) != built or len(group["param_names"]) != built:
            raise ValueError(f"parameter group {index} holds {len(group['params'])} tensors now, but the optimizer was built for {built} "
                             f"({', '.join(group['param_names'][:built])}): add new parameters with add_param_group, and build a new "
                             "optimizer to drop some")
        hps = {k: _check_hparam(self._compiled, k, group[k], where) for k in engine.hparam_names}
        data, grads, grad_dtypes, keep = [], [], [], []
        for n, p, (shape, device, dtype) in zip(group["param_names"], group["params"], self._shapes[index]):
            self._check_tensor(n, p)
            if p.dtype != dtype:
                raise ValueError(f"parameter `{n}` is {p.dtype} now, but the optimizer was built for {dtype}; build a new optimizer for it")
            if tuple(p.shape) != shape:
                raise ValueError(f"parameter `{n}` has shape {list(p.shape)} now, but the optimizer was built for {list(shape)}; "
                                 "its state has that shape: build a new optimizer (or load_state_dict into one) for the new shape")
            if p.device != device:
                raise ValueError(f"parameter `{n}` is on {p.device} now, but the optimizer was built for {device}; build a new optimizer there")
            if not self._mine(n):  # another rank steps it (and sends it here, at its shape: checked above)
                continue
            g = p.grad
            if g is None:
                grads.append(0)
                grad_dtypes.append(_DTYPES[p.dtype])
            else:
                if g.is_sparse:
                    raise TypeError(f"parameter `{n}` has a sparse gradient; Opal needs dense gradients")
                if g.shape != p.shape:
                    raise ValueError(f"parameter `{n}` has shape {list(p.shape)} but its gradient {list(g.shape)}")
                if not g.dtype.is_floating_point:
                    raise TypeError(f"the gradient of `{n}` is {g.dtype}, not a floating-point tensor")
                if g.dtype not in _DTYPES or g.device != p.device or not g.is_contiguous():
                    # float32, bfloat16 and float16 gradients are read as they are, in any combination
                    g = g.to(device=p.device, dtype=g.dtype if g.dtype in _DTYPES else torch.float32).contiguous()
                    keep.append(g)
                grad_dtypes.append(_DTYPES[g.dtype])
                if group.get("maximize", False):
                    g = torch.neg(g)  # as torch does: the step descends on -g, p.grad is left as it is
                    keep.append(g)
                grads.append(g.data_ptr())
            data.append(p.data_ptr())
        pair = _shared(zip(group["param_names"], group["params"]), seen)
        if pair:
            raise ValueError(f"parameters `{pair[0]}` and `{pair[1]}` share their memory now: each would be stepped twice")
        stream = 0
        if group["params"] and group["params"][0].device.type == "cuda":
            stream = torch.cuda.current_stream(group["params"][0].device).cuda_stream
        replaced = [(k, n, p) for k, (n, p, ref) in enumerate(zip(group["param_names"], group["params"], self._tensors[index])) if ref() is not p]
        return hps, data, (grads, grad_dtypes), stream, keep, replaced

    # -- introspection ------------------------------------------------------------------
    @property
    def skipped_steps(self):
        """Steps undone under nonfinite="skip" (every group skips a step together)."""
        return self._engines[0].skipped_steps - self._skipped_by_errors if self._engines else 0

    @property
    def diagnostics(self):
        """Whether each step records update statistics (update_stats). Off by default: it copies
        every parameter before and after the step and takes each matrix update's singular values."""
        return self._diagnostics

    @diagnostics.setter
    def diagnostics(self, on):
        if on and self._rows is not None:
            raise ValueError("update statistics need whole parameters: with shards= each rank holds some rows")
        self._diagnostics = bool(on)
        for engine in self._engines:
            engine.diagnostics = self._diagnostics

    @property
    def update_stats(self):
        """The last step's update statistics, a dict per parameter this process stepped: param,
        step, update_rms and, for matrices, sv_max, sv_mean and sv_ratio (the update's largest
        singular value over their mean: the seed paper's Figure 1)."""
        return [s for engine in self._engines for s in engine.update_stats]

    @property
    def nonfinite_events(self):
        """The parameters whose last step met a NaN or Inf: dicts with step, param, route,
        stage (the first value checked to go non-finite), action and message."""
        return [e for engine in self._engines for e in engine.nonfinite_events]

    @property
    def compiled(self):
        return self._compiled

    def routes(self):
        """The table `opal routes` prints: each parameter's route, view, pipeline, learning-rate
        scales and state (with its bytes), group after group; known before step 1."""
        return "".join(self._compiled.format_routes(engine) for engine in self._engines)

    def route(self, name):
        """The route a parameter took, e.g. "matrix" or "other>vector"."""
        return self._engine_of(name).route(name)

    def step_count(self, name=None):
        """The steps taken: of one parameter (the steps it had a gradient for, as torch counts
        per parameter; its bias corrections use it), or, without a name, of the optimizer (the
        steps that updated at least one parameter, of the first group)."""
        if name is not None:
            return self._engine_of(name).param_step_count(name)
        return self._engines[0].step_count if self._engines else 0

    # -- copies -------------------------------------------------------------------------
    def __reduce_ex__(self, protocol):
        raise TypeError("an opal.torch.Optimizer cannot be pickled or copied: its state lives in compiled engines bound to the "
                        "model's tensors; save `opt.state_dict()` (torch.save works) and load it into a new Optimizer with load_state_dict()")

    def __copy__(self):
        self.__reduce_ex__(2)

    def __deepcopy__(self, memo):
        self.__reduce_ex__(2)

    def _engine_of(self, name):
        for g, e in zip(self.param_groups, self._engines):
            if name in g["param_names"]:
                if name in self._empty:
                    raise KeyError(f"parameter `{name}` has no elements: it is never stepped and has no state")
                if not self._mine(name):
                    raise KeyError(f"parameter `{name}` is owned by rank {self._shard.owner[name]} of the process group: "
                                   "its state and step count live there")
                return e
        names = [n for g in self.param_groups for n in g["param_names"]]
        raise KeyError(f"no parameter `{name}`{hint(name, names)}")

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self):
        """{"state": {param name: {slot: tensor}}, "param_groups": [...]}: state keyed by names,
        never by position; each group carries its step, hyperparameters, spec text and hash.
        Under a process group: on the rank consolidate_state_dict() gathered to, the whole state."""
        if self._shard is not None:
            if self._consolidated is None:
                raise RuntimeError("under a process group, call consolidate_state_dict(to=RANK) on every rank first; state_dict() "
                                   "then returns the whole state on that rank")
            return self._consolidated
        return self._local_state_dict()

    def _local_state_dict(self):
        """The state this process holds (under a process group: its own parameters')."""
        state, groups, index = {}, [], 0
        for group, engine in zip(self.param_groups, self._engines):
            meta, tensors = engine.export_state()
            if self._rows is not None:  # parameters sharded by rows: which rows (merge puts them together)
                meta = self._rows.annotate(meta)
            for key, (shape, raw, dtype) in tensors.items():
                name, slot = key[len("state/"):].rsplit("/", 1)
                as_stored = {"F32": torch.float32, "U8": torch.uint8}.get(dtype, torch.int16)
                t = torch.frombuffer(bytearray(raw), dtype=as_stored).view(shape)
                state.setdefault(name, {})[slot] = t if as_stored != torch.int16 else t.view(torch.bfloat16 if dtype == "BF16" else torch.float16)
            g = {k: v for k, v in group.items() if k not in ("params", "opal")}
            g["params"] = list(range(index, index + len(group["params"])))
            g["opal"] = meta
            index += len(group["params"])
            groups.append(g)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restores a state_dict. Everything is checked before anything changes: a wrong shape,
        dtype or parameter name raises opal.CheckpointError and leaves the optimizer as it was.
        After a spec change, slots whose name and shape match are kept and the rest start as the
        spec says; state saved at another storage (f32, bf16, q8 or another q8 block size) is
        converted to this optimizer's. `self.last_load_reports` says what happened, and either
        case issues a warning."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise _opal.CheckpointError("cannot load state_dict: it needs 'state' and 'param_groups' (is it an Opal state_dict?)")
        if self._shard is not None:  # a whole optimizer's state: each rank takes what it owns (and its rows)
            state_dict = self._shard.own_part(state_dict)
            if self._rows is not None:
                state_dict = self._rows.own_rows(state_dict, self._engines)
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise _opal.CheckpointError(f"cannot load state_dict: it has {len(saved)} parameter groups, this optimizer {len(self.param_groups)}")
        state = state_dict["state"]
        if not isinstance(state, dict):
            raise _opal.CheckpointError("cannot load state_dict: its 'state' is not a dict")
        pending, alive = [], []
        for i, (sg, engine) in enumerate(zip(saved, self._engines)):
            if not isinstance(sg, dict) or "opal" not in sg or "param_names" not in sg or not isinstance(sg["opal"], dict):
                raise _opal.CheckpointError(f"cannot load state_dict: parameter group {i} has no Opal metadata (was it saved by opal.torch.Optimizer?)")
            for k in engine.hparam_names:
                if k in sg:
                    try:
                        _check_hparam(self._compiled, k, sg[k], f"parameter group {i}")
                    except (TypeError, ValueError) as e:
                        raise _opal.CheckpointError(f"cannot load state_dict: {e}") from None
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in sg["opal"].items()):
                raise _opal.CheckpointError(f"cannot load state_dict: parameter group {i}'s Opal metadata is not a dict of strings")
            tensors = {}
            for name in sg["param_names"]:
                for slot, t in state.get(name, {}).items():
                    if not isinstance(t, torch.Tensor):
                        raise _opal.CheckpointError(f"cannot load state_dict: state `{name}/{slot}` is not a tensor")
                    t = t.detach().cpu().contiguous()
                    alive.append(t)
                    tensors[f"state/{name}/{slot}"] = (list(t.shape), str(t.dtype), t.data_ptr(), t.numel())
            pending.append(engine.prepare_load(dict(sg["opal"]), tensors, f"state_dict group {i}"))
        with self._lock:
            reports = [engine.apply_load(p) for engine, p in zip(self._engines, pending)]
            for i, group in enumerate(self.param_groups):  # the state loaded is the group's tensors' now
                for k, (n, p) in enumerate(zip(group["param_names"], group["params"])):
                    if self._tensors[i][k]() is not p:
                        if self._mine(n):
                            self.state.rekey(n, p)
                        self._tensors[i][k] = weakref.ref(p)
            self._masters.watch(self.state, loaded=True)  # the copies loaded: compared with the parameters at the next step
        for group, sg in zip(self.param_groups, saved):
            for k, v in sg.items():
                if k not in _GROUP_KEYS:
                    group[k] = v
        self.last_load_reports = reports
        for r in reports:  # a changed spec, or state converted to this optimizer's storage
            if r["spec_changed"] or r["converted"]:
                warnings.warn(f"opal: {r['summary']}")
