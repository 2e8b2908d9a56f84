"""A step under the nonfinite policies "raise" and "skip" is skipped as a whole, as one engine
skips it: when the engine of one parameter group, or of one process of a process group, met a
NaN or an Inf and undid its step, every other engine undoes its own (Optimizer::undo_step), so
the outcome depends neither on how parameters are grouped nor on the world size."""

from . import _opal


def skip_whole(policy, stepped, raised, shard):
    """After a step's engines ran (`stepped`: those that stepped, in order; `raised`: the
    NonFiniteError that stopped the rest, if one did): True when the whole step was skipped.
    Under a process group (`shard`) every rank takes part in one all-reduce per step, whatever
    it saw, so that no rank is left waiting. Raises `raised` again, or on a rank that saw nothing
    a NonFiniteError saying another process did."""
    if policy not in ("raise", "skip"):
        return False
    kept = [e for e in stepped if not any(ev["action"] == "step skipped" for ev in e.nonfinite_events)]
    skip = raised is not None or len(kept) < len(stepped)
    if shard is not None:
        skip = shard.any_rank(skip)
    if not skip:
        return False
    for engine in kept:
        engine.undo_step()
    if raised is not None:
        raise raised
    if policy == "raise":
        raise _opal.NonFiniteError("another process of the group met a NaN or Inf; this process's step was undone too [NonFinite]\n"
                                   "  = help: that process's NonFiniteError names the parameter and the stage")
    return True
