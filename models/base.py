"""What every model class shares: backend binding, building networks once, configs."""
from __future__ import annotations

import copy

from probvae import backends

__all__ = ["Model", "CustomModel"]

MODELS: dict = {}


def register_model(cls):
    """Class decorator: make a model class loadable by name from a checkpoint config."""
    MODELS[cls.__name__] = cls
    return cls


class Model:
    """Base for built-in models.

    A subclass defines ``_build_nets(seed) -> dict``, ``model(x, ...)``, ``guide(x, ...)`` and
    ``config()``. ``build(seed)`` returns a copy with its backend networks made, which is what
    ``fit`` trains; the unbuilt object is just a description and can be fitted many times.
    """

    #: sites whose plate is the data plate; diagnostics and evaluation rely on these names
    data_plate = "data"
    max_plate_nesting = 1
    takes_kl_weight = True
    #: observed sites that are training terms, not part of p(x, ...): left out of scores
    training_sites = ()

    def __init__(self, backend: str = "numpyro"):
        self.bk = backends.get(backend)
        self.backend = self.bk.name
        self.nets = None

    def build(self, seed: int = 0):
        """A copy of this model with networks built from ``seed``.

        Examples
        --------
        >>> from probvae.models import VAE
        >>> VAE(input_dim=4, latent_dim=2, hidden=(8,)).build(seed=0).nets is not None
        True
        """
        built = copy.copy(self)
        built.nets = self._build_nets(seed)
        built.seed = seed
        return built

    def _require_built(self):
        if self.nets is None:
            raise RuntimeError(f"{type(self).__name__} has no networks yet: call .build(seed) "
                               "or train it with probvae.fit")

    @classmethod
    def from_config(cls, config: dict):
        cfg = dict(config)
        name = cfg.pop("class")
        if name not in MODELS:
            raise ValueError(f"unknown model class {name!r}; known: {sorted(MODELS)}")
        return MODELS[name](**cfg)


class CustomModel:
    """A user's own ``(model, guide)`` pair of plain Pyro or NumPyro functions.

    ``fit`` wraps a tuple in this so both kinds of model train through the same loop. The
    functions take the data batch as their first argument; to use ``probvae.sample`` the
    model should also accept ``x=None, n=...``.

    Examples
    --------
    >>> def model(x): ...
    >>> def guide(x): ...
    >>> CustomModel(model, guide, backend="pyro").backend
    'pyro'
    """

    data_plate = "data"
    max_plate_nesting = 1
    takes_kl_weight = False
    likelihood = None
    training_sites = ()

    def __init__(self, model, guide, backend: str, max_plate_nesting: int = 1):
        if not (callable(model) and callable(guide)):
            raise TypeError("a custom model is a pair of callables (model, guide)")
        self.model, self.guide = model, guide
        self.bk = backends.get(backend)
        self.backend = self.bk.name
        self.max_plate_nesting = max_plate_nesting
        self.nets = {}

    def build(self, seed: int = 0):
        return self

    def config(self):
        raise ValueError("a custom (model, guide) pair is Python code and cannot be saved as a "
                         "config; save res.params yourself or wrap it in a Model subclass")
