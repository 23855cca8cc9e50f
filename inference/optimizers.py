"""What trains the parameters: ``fit``'s ``optimizer=`` and ``lr=``, checked once.

``optimizer=`` takes a name that works on both backends (:data:`OPTIMIZER_NAMES`: ``"adam"``,
the default, ``"adamw"``, ``"sgd"``, ``"rmsprop"``, ``"adagrad"``), a name with its library's
keyword options (``("sgd", {"momentum": 0.9})``), or the library's own optimizer: an optax
``GradientTransformation`` on NumPyro (``optax.adamw(1e-3)``: its learning rate is inside it),
a ``torch.optim`` class on Pyro (``torch.optim.AdamW`` or ``(torch.optim.SGD, {"momentum":
0.9})``, with ``lr=``). ``lr=`` takes a number or a schedule: a function of the optimizer's
step count (0 for the first step), such as an optax schedule. Each backend builds its
library's optimizer (``bk.optimizer``); what a backend does not take is refused with what to
pass instead.

The optimizer's state and its step count are part of every checkpoint, so a schedule goes on
where it was. A run's records (``res.options``, ``config.json``) are JSON: a named optimizer
is recorded by its name and options, a user's object or schedule by a description
(``{"custom": "torch.optim.AdamW"}``), and continuing such a run needs the object again.

Examples
--------
>>> from probvae import backends
>>> opt, lr = resolve(("sgd", {"momentum": 0.9}), 0.01, backends.get("numpyro"))
>>> opt.record, lr
({'name': 'sgd', 'options': {'momentum': 0.9}}, 0.01)
>>> resolve(None, None, backends.get("pyro"))
(Optimizer(name='adam', options={}, custom=None, description=None, holds_lr=False), 0.001)
"""
from __future__ import annotations

import difflib
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Optional

from probvae.backends.base import OPTIMIZER_NAMES

__all__ = ["Optimizer", "resolve", "lr_record", "from_records", "OPTIMIZER_NAMES", "DEFAULT_LR",
           "check_resumable", "is_custom"]

#: the learning rate of a named optimizer when ``lr`` is not given
DEFAULT_LR = 1e-3


class _ByIdentity:
    """A user's object (optimizer, schedule) in a cache key: equal only to itself, and kept
    alive by the key (an ``id`` alone could be reused by another object)."""

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return isinstance(other, _ByIdentity) and other.obj is self.obj


@dataclass(frozen=True)
class Optimizer:
    """The optimizer of one fit, as :func:`resolve` decided it.

    Parameters
    ----------
    name : str, optional
        A name of :data:`OPTIMIZER_NAMES`; None for a user's object (``custom``).
    options : dict
        The library's keyword options of a named optimizer or a torch class (plain JSON
        values: they are recorded).
    custom : object, optional
        A user's optimizer: an optax ``GradientTransformation`` (NumPyro), a torch optimizer
        class or a ``pyro.optim`` optimizer (Pyro).
    description : str, optional
        What ``custom`` is, in words (``"torch.optim.AdamW"``): what the records hold.
    holds_lr : bool
        ``custom`` carries its own learning rate (optax transformations, ``pyro.optim``).

    Examples
    --------
    >>> Optimizer().record is None, Optimizer("sgd").record
    (True, 'sgd')
    """

    name: Optional[str] = "adam"
    options: dict = field(default_factory=dict)
    custom: Any = field(default=None, compare=False)
    description: Optional[str] = None
    holds_lr: bool = False

    @property
    def default(self) -> bool:
        """Adam with its defaults: what fit trained with before it took ``optimizer=``."""
        return self.name == "adam" and not self.options

    @property
    def record(self):
        """How ``res.options`` and ``config.json`` record it (JSON): None for the default
        Adam, a name, ``{"name", "options"}``, or ``{"custom": description[, "options"]}``."""
        if self.custom is not None:
            return {"custom": self.description, **({"options": self.options}
                                                   if self.options else {})}
        if self.default:
            return None
        return self.name if not self.options else {"name": self.name, "options": self.options}

    def build(self, bk, lr):
        """The backend's optimizer (``bk.optimizer``) at learning rate ``lr``."""
        return bk.optimizer(self.custom if self.custom is not None else self.name, lr,
                            self.options or None)

    def cache_token(self, lr):
        """What the compiled programs of a fit with this optimizer at ``lr`` are keyed by: its
        record and ``lr``, a user's object or schedule by identity (never another's)."""
        return (json.dumps(self.record, sort_keys=True),
                None if self.custom is None else _ByIdentity(self.custom),
                _ByIdentity(lr) if callable(lr) else lr)

    def portable(self, lr) -> bool:
        """Whether programs traced with it can be kept on disk for other runs: a named
        optimizer at a number (a user's object or schedule is code, known by identity only)."""
        return self.custom is None and not callable(lr)


def is_custom(record) -> bool:
    """Whether a recorded optimizer or ``lr`` is a user's object (``{"custom": ...}``), which a
    record describes but cannot rebuild.

    >>> is_custom({"custom": "torch.optim.AdamW"}), is_custom("sgd"), is_custom(0.01)
    (True, False, False)
    """
    return isinstance(record, dict) and "custom" in record


def lr_record(lr):
    """How the records hold ``lr``: the number, None (the optimizer holds it), or for a
    schedule ``{"custom": its qualified name}``.

    >>> import optax
    >>> lr_record(0.01), lr_record(optax.exponential_decay(1e-3, 100, 0.5))
    (0.01, {'custom': 'optax...exponential_decay.<locals>.schedule'})
    """
    if callable(lr):
        return {"custom": _describe(lr)}
    return lr


def _describe(fn) -> str:
    """A function's name as ``module.qualname`` (the same in every process: no address)."""
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(target, '__module__', None) or '?'}.{target.__qualname__}"


def from_records(optimizer, lr, given_optimizer, given_lr, what="this result"):
    """``(optimizer, lr)`` to continue a fit whose records hold ``optimizer`` and ``lr``
    (:attr:`Optimizer.record`, :func:`lr_record`): those given now win; a recorded name comes
    back as it was; a recorded user's object or schedule must be given again (a record holds
    its description only), else a ValueError says so.

    >>> from_records({"name": "sgd", "options": {"momentum": 0.9}}, 0.01, None, None)
    (('sgd', {'momentum': 0.9}), 0.01)
    >>> from_records({"custom": "torch.optim.AdamW"}, 0.01, None, None)
    Traceback (most recent call last):
    ...
    ValueError: this result trained with a user's optimizer (torch.optim.AdamW), which its records describe but cannot hold: pass it again, optimizer=...
    """
    if given_optimizer is None:
        if is_custom(optimizer):
            raise ValueError(f"{what} trained with a user's optimizer ({optimizer['custom']}), "
                             "which its records describe but cannot hold: pass it again, "
                             "optimizer=...")
        if isinstance(optimizer, dict):
            given_optimizer = (optimizer.get("name"), optimizer.get("options") or {})
        else:
            given_optimizer = optimizer
    if given_lr is None and is_custom(lr):
        raise ValueError(f"{what} trained with the learning-rate schedule {lr['custom']}, "
                         "which its records describe but cannot hold: pass it again, lr=...")
    return given_optimizer, (lr if given_lr is None else given_lr)


def resolve(optimizer, lr, bk) -> tuple:
    """``(Optimizer, lr)`` from ``fit``'s ``optimizer=`` and ``lr=`` for a model on backend
    ``bk``, checked (an error names the problem and the fix) and built once to check the
    library takes the settings.

    Parameters
    ----------
    optimizer : None, str, (str or object, dict) or object
        None: Adam. A name of :data:`OPTIMIZER_NAMES`; a name or torch class with its
        library's keyword options; or the backend's own optimizer object (an optax
        ``GradientTransformation`` on NumPyro, a torch optimizer class or ``pyro.optim``
        optimizer on Pyro).
    lr : None, float or callable
        The learning rate: a number > 0 (default 1e-3), or a schedule ``lr(step)`` of the
        step count (from 0), such as an optax schedule; None where the optimizer holds it.
    bk : Backend

    Returns
    -------
    (Optimizer, lr)

    Examples
    --------
    >>> import optax
    >>> from probvae import backends
    >>> opt, lr = resolve(optax.adamw(1e-3), None, backends.get("numpyro"))
    >>> opt.record, lr
    ({'custom': 'optax.GradientTransformation'}, None)
    >>> resolve(optax.adamw(1e-3), 0.01, backends.get("numpyro"))
    Traceback (most recent call last):
    ...
    ValueError: optimizer=optax.GradientTransformation holds its own learning rate, and lr=0.01 was given too: leave lr out, or pass a name with lr= (optimizer='adamw', lr=0.01)
    >>> resolve("adamm", None, backends.get("pyro"))
    Traceback (most recent call last):
    ...
    ValueError: unknown optimizer 'adamm' (did you mean 'adam'?); names: 'adam', 'adamw', 'sgd', 'rmsprop', 'adagrad', or pass the library's own optimizer
    """
    options = {}
    if type(optimizer) is tuple:       # (an optax transformation is a named tuple)
        if len(optimizer) != 2 or not isinstance(optimizer[1], dict):
            raise TypeError("optimizer=(optimizer, options) takes a name or class and a dict of "
                            f"its keyword options, e.g. ('sgd', {{'momentum': 0.9}}), got "
                            f"{optimizer!r}"[:300])
        optimizer, options = optimizer
        options = _checked_options(options)
    if optimizer is None:
        optimizer = "adam"
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZER_NAMES:
            close = difflib.get_close_matches(optimizer, OPTIMIZER_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown optimizer {optimizer!r}{hint}; names: "
                             f"{', '.join(map(repr, OPTIMIZER_NAMES))}, or pass the library's "
                             "own optimizer")
        spec = Optimizer(optimizer, options)
    else:
        description, holds_lr = bk.optimizer_of(optimizer)
        if holds_lr and options:
            raise ValueError(f"optimizer={description} holds its settings; give them when you "
                             "make it, not as options")
        spec = Optimizer(None, options, optimizer, description, holds_lr)
    if spec.holds_lr:
        if lr is not None:
            raise ValueError(f"optimizer={spec.description} holds its own learning rate, and "
                             f"lr={_shown(lr)} was given too: leave lr out, or pass a name with "
                             f"lr= (optimizer='adamw', lr={_shown(lr)})")
    else:
        lr = _checked_lr(DEFAULT_LR if lr is None else lr)
    spec.build(bk, lr)              # the library takes these settings (or says why not)
    return spec, lr


def _shown(lr) -> str:
    return getattr(lr, "__name__", None) or repr(lr) if callable(lr) else repr(lr)


def _checked_options(options) -> dict:
    """An optimizer's options: keyword names with plain values (they are recorded as JSON),
    and no ``lr`` among them."""
    for key in options:
        if not isinstance(key, str):
            raise TypeError(f"an optimizer's options are keyword arguments by name, got the "
                            f"key {key!r}")
    if "lr" in options or "learning_rate" in options:
        raise ValueError("give the learning rate as fit's lr= (a number or a schedule), not "
                         "among the optimizer's options")
    try:
        plain = json.loads(json.dumps(options, allow_nan=False))
    except (TypeError, ValueError):
        raise TypeError(f"an optimizer's options are numbers, strings, booleans or lists of "
                        f"them (they are recorded with the run), got {options!r}"[:300]) from None
    return {k: (tuple(v) if isinstance(options[k], tuple) else v) for k, v in plain.items()}


def _checked_lr(lr):
    """``lr`` checked: a finite number > 0, or a schedule whose value at step 0 is a finite
    number >= 0."""
    if callable(lr):
        try:
            first = float(lr(0))
        except Exception as err:
            raise TypeError(f"lr={_shown(lr)} is a schedule, called with the step count (an "
                            f"integer from 0), and lr(0) failed ({type(err).__name__}: "
                            f"{str(err)[:160]}); it must return the learning rate of that step"
                            ) from None
        if not math.isfinite(first) or first < 0:
            raise ValueError(f"lr={_shown(lr)}: lr(0) is {first}, not a learning rate (a finite "
                             "number >= 0)")
        return lr
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) \
            or not lr > 0:
        hint = f" (a str); write lr={lr}" if isinstance(lr, str) else ""
        raise ValueError(f"lr must be a number > 0, got {lr!r}{hint} (or a schedule: a "
                         "function of the step count, such as an optax schedule)")
    return float(lr)


def check_resumable(saved: dict, now: dict, head: str):
    """A resumed fit (``saved``: the checkpoint's ``"fit"``; ``now``: this fit's) trains with
    the same optimizer, and its ``lr`` is of the same kind (a number, a schedule, or held by
    the optimizer): the optimizer's state has that shape. A user's object or schedule, which
    the checkpoint describes only, must be given again; ``head`` starts the error.

    >>> check_resumable({"optimizer": {"custom": "torch.optim.AdamW"}, "lr": 0.01},
    ...                 {"optimizer": None, "lr": 0.001}, "cannot resume from runs/a")
    Traceback (most recent call last):
    ...
    ValueError: cannot resume from runs/a: it trained with a user's optimizer (torch.optim.AdamW), which its records describe but cannot hold: pass it again, optimizer=...
    """
    was, now_opt = saved.get("optimizer"), now.get("optimizer")
    if was != now_opt:
        if is_custom(was) and not is_custom(now_opt):
            raise ValueError(f"{head}: it trained with a user's optimizer ({was['custom']}), "
                             "which its records describe but cannot hold: pass it again, "
                             "optimizer=...")
        raise ValueError(f"{head}: it trained with optimizer {_named(was)}, and this fit "
                         f"asks for {_named(now_opt)}; the optimizer's state is of its own "
                         "kind: resume with the same optimizer")
    kinds = [_lr_kind(v) for v in (saved.get("lr"), now.get("lr"))]
    if "lr" in saved and kinds[0] != kinds[1]:
        if kinds[0] == "a schedule":
            raise ValueError(f"{head}: it trained with the learning-rate schedule "
                             f"{saved['lr']['custom']}, which its records describe but cannot "
                             f"hold, and lr is {kinds[1]} now: pass the schedule again, lr=... "
                             "(a resumed fit keeps the kind of its lr)")
        raise ValueError(f"{head}: its lr was {kinds[0]} and is {kinds[1]} now; a resumed "
                         "fit keeps the kind of its lr (a number may change to another "
                         "number, a schedule to another schedule)")


def _named(record) -> str:
    if record is None:
        return "'adam'"
    if is_custom(record):
        return record["custom"]
    return repr(record)


def _lr_kind(value) -> str:
    if value is None:
        return "held by the optimizer"
    return "a schedule" if is_custom(value) else "a number"
