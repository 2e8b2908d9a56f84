"""opal.torch.Optimizer's evaluation sequence: for specs that have one (schedule_free_adamw:
x, the average its guarantees are about), opt.eval() puts it in the parameters and opt.train()
puts the training point back (Schedule-Free: x = y + (1 - 1/b1)(z - y), y = x + (1 - b1)(z - x))."""

import torch

# the state slot holding the sequence, and the group hyperparameter of its interpolation
_EVAL_SEQUENCES = {"schedule_free_adamw_core.z": "b1"}


class EvalSequenceMethods:
    def eval(self):
        """Puts the evaluation sequence in the parameters, for specs that have one
        (schedule_free_adamw: x, the average the method's guarantees are about); train() puts
        the training point back. Stepping in eval mode is an error, as in the reference."""
        self._swap(to_eval=True)

    def train(self):
        """Back to the training point after eval() (a no-op in train mode)."""
        self._swap(to_eval=False)

    @torch.no_grad()
    def _swap(self, to_eval):
        if self._training != to_eval:
            return
        pending = []
        for group, engine in zip(self.param_groups, self._engines):
            for n, p in self._owned(group):
                slot = next((s for s in engine.slots(n) if s in _EVAL_SEQUENCES), None)
                if slot is None:
                    raise TypeError(f"optimizer `{self._compiled.name}` has no evaluation sequence for parameter `{n}` (route "
                                    f"{engine.route(n)}): eval() and train() swap the parameters of schedule_free_adamw")
                pending.append((p, self.state[p][slot], float(group[_EVAL_SEQUENCES[slot]])))
        with self._lock:
            for p, z, b1 in pending:
                p.lerp_(z.to(p.device), 1 - 1 / b1 if to_eval else 1 - b1)
            self._share()
            self._training = not to_eval
