"""Probability distributions missing from the supported backends."""

from .continuous_bernoulli import ContinuousBernoulli

__all__ = ["ContinuousBernoulli"]
