"""What the ``probvae`` commands share: defaults, data loading, score checks and printing.

Examples
--------
>>> parse_hidden("256,128")
(256, 128)
"""
from __future__ import annotations

import argparse
import inspect
import sys

import numpy as np

from probvae import data as pvdata
from probvae import likelihoods
from probvae.inference import evaluate
from probvae.models import VAE

__all__ = ["DEFAULTS", "EXIT_INTERRUPTED", "EXIT_DIVERGED", "EXIT_PROCESSES", "parse_hidden", "load_data",
           "needs_binary", "finite", "print_scores"]



def _python_defaults() -> dict:
    """The command's defaults, read from the Python API they stand for, so that the two say
    the same: the model's settings are ``VAE()``'s, the training ones ``pv.fit``'s (None: fit
    decides, from the model and the data) and ``--eval-samples`` is ``pv.evaluate``'s."""
    vae = inspect.signature(VAE).parameters
    return dict(model="vae", dataset="digits", objective=None, seed=0,
                prior=vae["prior"].default, likelihood=vae["likelihood"].default,
                backend=vae["backend"].default, latent_dim=vae["latent_dim"].default,
                hidden=",".join(str(h) for h in vae["hidden"].default),
                epochs=None, batch_size=None, lr=None,
                eval_samples=inspect.signature(evaluate).parameters["num_samples"].default)


#: defaults of `probvae train` (and so of `make demo`): the Python API's (tests/test_cli.py
#: holds them against it); bench/backends.py measures them
DEFAULTS = _python_defaults()
#: exit status of a run stopped by Ctrl-C (the shell's convention for SIGINT)
EXIT_INTERRUPTED = 130
#: exit status of a run that diverged (its best parameters so far are saved)
EXIT_DIVERGED = 3
#: exit status when the processes of a several-process run could not join or one was lost
EXIT_PROCESSES = 4


def parse_hidden(text):
    """``--hidden 256,256`` as a tuple of widths."""
    try:
        sizes = tuple(int(h) for h in str(text).split(",") if h.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated widths like 256,256, "
                                         f"got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--hidden needs positive widths, got {text!r}")
    return sizes


def load_data(dataset, data_dir, seed, binarize):
    """A registered data set. ``binarize``: False (as it is), True / ``"threshold"`` (pixels
    at 0.5), or ``"dynamic"`` (training and validation stay grey for ``fit`` to draw from;
    the test split is binarized once, stochastically, with seed 0)."""
    ds = pvdata.load(dataset, path=data_dir, seed=seed)
    if binarize == "dynamic":
        return type(ds)(ds.train, ds.valid, ds.test.binarize(stochastic=True, seed=0), ds.name,
                        ds.image_shape, ds.num_classes)
    if binarize:
        ds = type(ds)(ds.train.binarize(), ds.valid.binarize(), ds.test.binarize(), ds.name,
                      ds.image_shape, ds.num_classes)
    return ds


def needs_binary(likelihood_name):
    """True when the likelihood is for {0, 1} data (Bernoulli)."""
    return likelihoods.get(likelihood_name).support == "{0, 1}"


def finite(scores, run):
    """The scores, unless they are NaN or infinite: then an error, not a printed result."""
    bad = [k for k in ("elbo", "log_likelihood") if not np.isfinite(scores[k])]
    if bad:
        raise ValueError(f"the test scores of {run} are not finite ({bad[0]} = "
                         f"{scores[bad[0]]}): the model's parameters give NaN or infinite "
                         "densities on the test data; retrain (lower lr, or clip_norm)")
    return scores


def print_scores(scores, out=sys.stdout):
    """The test scores of a run, one per line."""
    kl = np.asarray(scores["kl_per_dim"], dtype=float)
    print(f"test ELBO            {scores['elbo']:10.3f} nats/example", file=out)
    print(f"test log-likelihood  {scores['log_likelihood']:10.3f} nats/example "
          f"(IWAE bound, {scores['num_samples']} samples)", file=out)
    print(f"reconstruction       {scores['reconstruction']:10.3f}   KL {scores['kl']:.3f}", file=out)
    print("KL per latent dim    " + " ".join(f"{v:.2f}" for v in kl), file=out)
    if "active_units" in scores:
        print(f"active units         {scores['active_units']} of {len(kl)}", file=out)
