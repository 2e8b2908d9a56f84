"""Parameter roles for opal.torch: what a spec's `embedding, head: ...` routes select. A role comes
from the module holding the parameter (given a model), and roles={name or pattern: role}
overrides it, the last matching pattern winning."""
import fnmatch

import torch

from . import _opal
from ._hints import hint


def _is_norm(module, param):
    """A normalization layer's weight or bias: torch's norm layers, and any module whose class
    name says Norm (LlamaRMSNorm, nanoGPT's LayerNorm, T5LayerNorm) for its vectors."""
    norms = (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm, torch.nn.GroupNorm, getattr(torch.nn, "RMSNorm", ()))
    return isinstance(module, norms) or ("Norm" in type(module).__name__ and param.dim() <= 1)


def _module_roles(model):
    """{id(parameter): role} from the modules that hold the parameters of `model`:
    - embedding: the weight of an nn.Embedding or nn.EmbeddingBag (a head tied to it, the same
      tensor, is this one parameter and counts as the embedding);
    - head: the weight of an nn.Linear with as many outputs as the largest embedding has rows
      (an untied vocabulary projection: lm_head, output);
    - norm: the weight and bias of a normalization layer (see _is_norm);
    - bias: any other module's `bias`;
    - conv: the weight of an nn.ConvNd (routes see it as (out, in * kh * kw));
    anything else has no role. roles={...} names a head this cannot see (a classifier)."""
    embeddings = [m for m in model.modules() if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))]
    embedded = {id(m.weight) for m in embeddings}
    vocab = max((m.num_embeddings for m in embeddings), default=None)
    roles = {}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in embedded:
                role = "embedding"
            elif _is_norm(module, p):
                role = "norm"
            elif name == "bias":
                role = "bias"
            elif isinstance(module, torch.nn.Linear) and name == "weight" and p.shape[0] == vocab:
                role = "head"
            elif isinstance(module, torch.nn.modules.conv._ConvNd) and name == "weight":
                role = "conv"
            else:
                continue
            roles.setdefault(id(p), role)
    return roles


def _check_roles(roles):
    """roles={pattern: role} checked: [(pattern, role or "")], in order."""
    if roles is None:
        return []
    if not isinstance(roles, dict):
        raise TypeError(f"roles must be a dict {{parameter name or pattern: role}}, not {type(roles).__name__}")
    known = _opal.role_names()
    out = []
    for pattern, role in roles.items():
        if not isinstance(pattern, str):
            raise TypeError(f"roles: key {pattern!r} is not a parameter name or pattern")
        if role is not None and role not in known:
            raise ValueError(f"roles: `{role}` (for `{pattern}`) is not a role{hint(str(role), known)}")
        out.append((pattern, role or ""))
    return out


class Roles:
    """The roles of one optimizer's parameters: model (or None) and roles= as given to it."""

    def __init__(self, model, roles):
        self._by_module = _module_roles(model) if model is not None else {}
        self.patterns = _check_roles(roles)

    def of(self, name, p):
        role = self._by_module.get(id(p), "")
        for pattern, r in self.patterns:
            if fnmatch.fnmatchcase(name, pattern):
                role = r
        return role

    def check_used(self, names):
        """Every pattern of roles= names some parameter."""
        for pattern, _ in self.patterns:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise ValueError(f"roles: no parameter is named like `{pattern}`{hint(pattern, names)}")
