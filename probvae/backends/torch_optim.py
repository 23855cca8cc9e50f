"""One torch optimizer over all of a Pyro model's parameters, behind Pyro's optimizer interface.

Pyro's ``pyro.optim.Adam`` keeps one torch optimizer per parameter tensor, so each training
step makes one optimizer call per tensor (eight for an MLP VAE), each with its own Python
overhead around a small fused kernel. :class:`JointOptim` keeps a single torch optimizer (any
``torch.optim.Optimizer`` class: :class:`JointAdam` is the fused ``torch.optim.Adam`` that
``fit`` trains with by default) over every parameter it has seen: one call per step, the same
arithmetic. Its saved state has Pyro's format (one single-tensor ``state_dict`` per parameter
name), so checkpoints move between the two both ways.

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

__all__ = ["JointOptim", "JointAdam"]


class JointOptim(pyro.optim.PyroOptim):
    """One torch optimizer of class ``cls`` (settings ``args``) over all parameters at once; a
    ``PyroOptim`` (SVI accepts it; ``get_state``/``set_state`` as Pyro's, by parameter name).

    Examples
    --------
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = JointOptim(torch.optim.SGD, {"lr": 0.5, "momentum": 0.9})
    >>> w.grad = torch.ones(2)
    >>> opt([w]); opt.set_lr(0.1); opt.lr
    0.1
    >>> [round(v, 3) for v in w.detach().tolist()]
    [0.5, 0.5]
    """

    def __init__(self, cls, args: dict):
        super().__init__(cls, dict(args))
        self._joint = None          # the torch optimizer, made at the first step

    @property
    def lr(self):
        """The learning rate the next step takes."""
        return self.pt_optim_args.get("lr")

    def set_lr(self, lr: float) -> None:
        """Take learning rate ``lr`` from the next step on (a schedule sets it every step)."""
        self.pt_optim_args["lr"] = lr
        if self._joint is not None:
            for group in self._joint.param_groups:
                group["lr"] = lr

    def __call__(self, params, *args, **kwargs) -> None:
        new = [p for p in params if p not in self.optim_objs]
        if new:
            self._add(new)
        self._joint.step(*args, **kwargs)      # a parameter without a gradient is skipped

    def _add(self, params):
        if self._joint is None:
            self._joint = self.pt_optim_constructor(params, **self.pt_optim_args)
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
            one = self.pt_optim_constructor([p], **self.pt_optim_args)
            one.load_state_dict(saved)
            if p in one.state:
                self._joint.state[p] = one.state[p]
            # and its group's settings (an optimizer that changes them as it steps, such as
            # Pyro's ClippedAdam decaying its lr, goes on from where it was)
            group = next(g for g in self._joint.param_groups if any(q is p for q in g["params"]))
            group.update({k: v for k, v in one.param_groups[0].items() if k != "params"})

    def get_state(self) -> dict:
        """``{parameter name: the state_dict of a one-tensor optimizer}``, as Pyro's."""
        if self._joint is None:
            return {}
        store, out = pyro.get_param_store(), {}
        for group in self._joint.param_groups:
            settings = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                one = self.pt_optim_constructor([p], **self.pt_optim_args)
                one.param_groups[0].update(settings)   # (a group holds more than __init__ takes)
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


class JointAdam(JointOptim):
    """Adam with torch's fused kernel over all parameters at once (what ``fit`` trains Pyro
    models with by default).

    Examples
    --------
    >>> JointAdam(1e-3).pt_optim_args
    {'lr': 0.001, 'fused': True}
    """

    def __init__(self, lr: float):
        super().__init__(torch.optim.Adam, {"lr": lr, "fused": True})
