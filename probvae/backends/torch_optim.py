"""One torch Adam over all of a Pyro model's parameters, behind Pyro's optimizer interface.

Pyro's ``pyro.optim.Adam`` keeps one torch optimizer per parameter tensor, so each training
step makes one optimizer call per tensor (eight for an MLP VAE), each with its own Python
overhead around a small fused kernel. :class:`JointAdam` keeps a single ``torch.optim.Adam``
(fused kernel) over every parameter it has seen: one call per step, the same arithmetic. Its
saved state has Pyro's format (one single-tensor Adam ``state_dict`` per parameter name), so
checkpoints move between the two both ways.

Examples
--------
>>> import torch
>>> w = torch.nn.Parameter(torch.ones(3))
>>> opt = JointAdam(0.1)
>>> w.grad = torch.ones(3)
>>> opt([w])
>>> [round(v, 3) for v in w.detach().tolist()]
[0.9, 0.9, 0.9]
"""
from __future__ import annotations

import pyro
import torch

__all__ = ["JointAdam"]


class JointAdam(pyro.optim.PyroOptim):
    """Adam with torch's fused kernel over all parameters at once; a ``PyroOptim`` (SVI
    accepts it; ``get_state``/``set_state`` as Pyro's, by parameter name).

    Examples
    --------
    >>> JointAdam(1e-3).pt_optim_args
    {'lr': 0.001, 'fused': True}
    """

    def __init__(self, lr: float):
        super().__init__(torch.optim.Adam, {"lr": lr, "fused": True})
        self._joint = None          # the torch optimizer, made at the first step

    def __call__(self, params, *args, **kwargs) -> None:
        new = [p for p in params if p not in self.optim_objs]
        if new:
            self._add(new)
        self._joint.step(*args, **kwargs)      # a parameter without a gradient is skipped

    def _add(self, params):
        if self._joint is None:
            self._joint = torch.optim.Adam(params, **self.pt_optim_args)
        else:
            self._joint.add_param_group({"params": params})
        for p in params:
            self.optim_objs[p] = self._joint       # Pyro's bookkeeping: p has an optimizer
            self._take_waiting(p)

    def _take_waiting(self, p):
        """Load ``p``'s saved state, if any is waiting, through torch's own loading (which
        casts the step count and moves the moments to ``p``'s device)."""
        saved = self._state_waiting_to_be_consumed.pop(pyro.get_param_store().param_name(p),
                                                       None)
        if saved is not None:
            one = torch.optim.Adam([p], **self.pt_optim_args)
            one.load_state_dict(saved)
            self._joint.state[p] = one.state[p]

    def get_state(self) -> dict:
        """``{parameter name: the state_dict of a one-tensor Adam}``, as Pyro's optimizers."""
        if self._joint is None:
            return {}
        store, out = pyro.get_param_store(), {}
        for group in self._joint.param_groups:
            settings = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                one = torch.optim.Adam([p], **settings)
                if p in self._joint.state:
                    one.state[p] = self._joint.state[p]
                out[store.param_name(p)] = one.state_dict()
        return out

    def set_state(self, state_dict: dict) -> None:
        """Load Pyro-format state (see :meth:`get_state`): each parameter's part is taken up
        when that parameter next steps (as in Pyro's optimizers)."""
        self._state_waiting_to_be_consumed.update(state_dict)
        for p in self.optim_objs:                   # parameters already stepping: now
            self._take_waiting(p)
