"""A step under the nonfinite policies "raise" and "skip" is skipped as a whole, as one engine
skips it: when the engine of one parameter group, or of one process of a process group, met a
NaN or an Inf and undid its step, every other engine undoes its own (Optimizer::undo_step), so
the outcome depends neither on how parameters are grouped nor on the world size. Under a
process group every policy agrees on each step, so that an error on one process (not a NaN)
reaches the others before they share their parameters, instead of leaving them waiting in the
broadcast (or, when the failed process retries, taking its retry's broadcast for this step's)."""

from . import _opal

# What a rank met in a step, agreed as the largest over the ranks of a process group.
NONFINITE, FAILED = 1, 2


class PeerStepError(RuntimeError):
    """Another process of the group failed in this step with an error (not a NaN or an Inf), and
    this one undid its step too. `undone`: the engines that undid theirs."""

    def __init__(self, undone, message):
        super().__init__(message)
        self.undone = undone


def skip_whole(policy, stepped, raised, shard):
    """After a step's engines ran (`stepped`: those that stepped, in order; `raised`: the
    NonFiniteError that stopped the rest, if one did): True when the whole step was skipped.
    Under a process group (`shard`) every rank takes part in one all-reduce per step, whatever
    it saw and whatever the policy, so that no rank is left waiting. Raises `raised` again, on a
    rank that saw nothing a NonFiniteError saying another process did, or PeerStepError where
    another process failed with an error."""
    agrees = policy in ("raise", "skip")
    if not agrees and shard is None:
        return False
    kept = [e for e in stepped if not any(ev["action"] == "step skipped" for ev in e.nonfinite_events)] if agrees else stepped
    level = NONFINITE if agrees and (raised is not None or len(kept) < len(stepped)) else 0
    if shard is not None:
        level = shard.most(level)
    if not level:
        return False
    if level == FAILED and policy == "off":  # no copies to undo the step with
        raise PeerStepError([], "another process of the group failed in this step (an error, not a NaN or Inf); this process keeps its "
                            "step (nonfinite=\"off\" keeps no copies to undo it), so the processes' parameters now differ: resume "
                            "every process from a checkpoint\n  = help: under nonfinite=\"raise\" or \"skip\" every process undoes "
                            "such a step, and can retry it; that process's error says what failed")
    for engine in kept:
        engine.undo_step()
    if raised is not None:
        raise raised
    if level == FAILED:
        raise PeerStepError(kept, "another process of the group failed in this step (an error, not a NaN or Inf); this process's step was "
                            "undone too, so every process can retry it\n  = help: that process's error says what failed")
    if policy == "raise":
        raise _opal.NonFiniteError("another process of the group met a NaN or Inf; this process's step was undone too [NonFinite]\n"
                                   "  = help: that process's NonFiniteError names the parameter and the stage")
    return True


def abandon_step(policy, stepped, groups, error, shard=None):
    """After an error that is not about the step's values (a device's, a peer's, memory) stopped
    a step partway, at parameter group len(stepped) of `groups`: the engines that had stepped
    undo their steps where the policy keeps the copies (any but "off"), so that the step raises
    having stepped nothing; under "off" the error says which groups keep their step. Adds that
    to the error's notes. Under a process group (`shard`) the other processes learn of it in the
    step's agreement, and undo their steps too (they keep them under "off"). Returns the engines
    that undid their steps."""
    if shard is not None:
        try:
            shard.most(FAILED)
            _note(error, "opal: the other processes of the group kept their steps (nonfinite=\"off\"), and raise opal.PeerStepError"
                  if policy == "off" else "opal: the other processes of the group undid their steps too (opal.PeerStepError there)")
        except Exception as e:
            _note(error, f"opal: telling the other processes of the group failed too: {e}")
    if not stepped:
        return []
    done = "parameter group 0" if len(stepped) == 1 else f"parameter groups 0 to {len(stepped) - 1}"
    if policy == "off":
        _note(error, f"opal: {done} of {groups} had stepped before this error in group {len(stepped)}, and keep that step: nonfinite=\"off\" keeps "
              "no copies to undo it\n  = help: under nonfinite=\"raise\" or \"skip\" a step that raises is undone whole")
        return []
    undone, failed = [], []
    for i, engine in enumerate(stepped):
        try:
            engine.undo_step()
            undone.append(engine)
        except Exception as e:  # (reported with the error that stopped the step)
            failed.append(f"group {i}: {e}")
    if failed:
        _note(error, f"opal: undoing the step of {done} failed too: " + "; ".join(failed))
    else:
        _note(error, f"opal: {done} had stepped before this error in group {len(stepped)}, and undid it: the step changed nothing")
    return undone


def _note(error, text):
    add = getattr(error, "add_note", None)  # (Python 3.11)
    if add is not None:
        add(text)
