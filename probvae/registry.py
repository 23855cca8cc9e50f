"""A tiny name → class registry shared by priors, likelihoods and models."""
from __future__ import annotations

import dataclasses

__all__ = ["Registry", "to_config", "check_int"]


def check_int(owner: str, **values):
    """Raise a clear error unless every value is an integer >= 1.

    Examples
    --------
    >>> check_int("mixture", components=2.5)
    Traceback (most recent call last):
    ...
    ValueError: mixture needs components to be an integer >= 1, got 2.5
    """
    for key, v in values.items():
        if isinstance(v, bool) or not float(v) == int(v) or int(v) < 1:
            raise ValueError(f"{owner} needs {key} to be an integer >= 1, got {v!r}")


class Registry:
    """Maps names to classes; resolves a name, a config dict or an instance to an instance.

    Examples
    --------
    >>> reg = Registry("thing")
    >>> @reg.register("a")
    ... @dataclasses.dataclass(frozen=True)
    ... class A:
    ...     k: int = 1
    >>> reg.get("a"), reg.get({"name": "a", "k": 2})
    (A(k=1), A(k=2))
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict = {}

    def register(self, name: str):
        """A class decorator that registers the class under ``name`` (and sets ``cls.name``), so
        that ``get(name)`` builds it; a name already taken is a ValueError."""
        def deco(cls):
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            cls.name = name
            self._classes[name] = cls
            return cls
        return deco

    def names(self) -> tuple:
        """The registered names, in the order they were registered."""
        return tuple(self._classes)

    def get(self, spec, **settings):
        """An instance from a name (with optional settings), a config dict, or an instance."""
        if isinstance(spec, dict):
            spec = dict(spec)
            return self.get(spec.pop("name"), **spec, **settings)
        if isinstance(spec, str):
            if spec not in self._classes:
                raise ValueError(f"unknown {self.kind} {spec!r}; known {self.kind}s: "
                                 f"{', '.join(self._classes)}")
            try:
                return self._classes[spec](**settings)
            except TypeError as err:
                fields = [f.name for f in dataclasses.fields(self._classes[spec])]
                raise TypeError(f"{self.kind} {spec!r} takes settings {fields}: {err}") from None
        if isinstance(spec, type):
            raise TypeError(f"pass a {self.kind} instance, e.g. {spec.__name__}(), not the class")
        if settings:
            raise TypeError(f"settings {sorted(settings)} can only go with a {self.kind} name")
        if type(spec) in self._classes.values() or hasattr(spec, "distribution"):
            return spec
        raise TypeError(f"expected a {self.kind} name ({', '.join(self._classes)}) or instance, "
                        f"got {spec!r}")


def to_config(obj) -> dict:
    """``{"name": ..., **settings}`` for a registered dataclass instance.

    Examples
    --------
    >>> from probvae.priors import StudentT
    >>> to_config(StudentT(df=3.0))
    {'name': 'student_t', 'df': 3.0}
    """
    return {"name": obj.name, **dataclasses.asdict(obj)}
