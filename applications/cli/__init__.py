"""The ``probvae`` command: train, evaluate, sample from and diagnose runs from the shell.

Examples
--------
    probvae train --prior vamp --likelihood continuous_bernoulli --objective elbo \\
        --backend numpyro --dataset digits --epochs 50 --out runs/demo
    probvae train --resume runs/demo --epochs 80
    probvae evaluate runs/demo
    probvae sample runs/demo --n 64 --png runs/demo/samples.png
    probvae diagnose runs/demo --out runs/demo/diagnostics

A user's mistake is an error message and a non-zero exit, never a traceback:

>>> main(["evaluate", "no/such/run"])
2
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from probvae import likelihoods, objectives, priors
from probvae.backends.base import OPTIMIZER_NAMES
from probvae.models.base import MODELS

from probvae.inference import distributed
from probvae.inference.distributed import DistributedError

from .common import DEFAULTS, EXIT_INTERRUPTED, EXIT_PROCESSES, parse_hidden
from .inspect_run import cmd_diagnose, cmd_evaluate, cmd_sample
from .train import cmd_train

__all__ = ["main", "console", "build_parser", "DEFAULTS"]


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, but not a missing one (None), not a flag's (False) and not
    twice."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or "(default" in text:
            return text
        return super()._get_help_string(action)


def parse_devices(text):
    """``--devices``: a count >= 1, or ``all``.

    Examples
    --------
    >>> parse_devices("4"), parse_devices("all")
    (4, 'all')
    """
    if text == "all":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number of devices >= 1 or 'all', got "
                                         f"{text!r}")
    return n


def build_parser():
    """The argument parser of the ``probvae`` command."""
    p = argparse.ArgumentParser(prog="probvae", description="VAEs as Pyro/NumPyro programs")
    sub = p.add_subparsers(dest="command", required=True)
    d = DEFAULTS
    t = sub.add_parser("train", help="train a model and save it to --out",
                       formatter_class=_Defaults)
    t.add_argument("--model", default=d["model"], help=", ".join(name.lower() for name in MODELS))
    t.add_argument("--prior", default=d["prior"], help=", ".join(priors.names()))
    t.add_argument("--likelihood", default=d["likelihood"], help=", ".join(likelihoods.names()))
    t.add_argument("--objective", default=None,
                   help=f"{', '.join(objectives.names())} (default: enum for --model ssvae, "
                   "elbo otherwise)")
    t.add_argument("--backend", default=d["backend"], choices=["numpyro", "pyro"],
                   help="NumPyro (JAX) or Pyro (torch)")
    t.add_argument("--dataset", default=d["dataset"], help="digits, mnist or fashion_mnist")
    t.add_argument("--data-dir", dest="data_dir", help=argparse.SUPPRESS)  # the old name
    t.add_argument("--path", dest="data_dir", default=None, metavar="DIR",
                   help="folder with the IDX files (mnist, fashion_mnist), as pv.data.load's path=")
    t.add_argument("--epochs", type=int, default=d["epochs"], help="passes over the training "
                   "data (default: pv.fit's, from the data's size and the model)")
    t.add_argument("--batch-size", type=int, default=d["batch_size"],
                   help="rows per step (default: pv.fit's, the model's own or 128)")
    t.add_argument("--lr", type=float, default=d["lr"], help="the learning rate (default: "
                   "pv.fit's, 1e-3)")
    t.add_argument("--optimizer", choices=OPTIMIZER_NAMES, default=None,
                   help="adam (default), adamw, sgd, rmsprop or adagrad: the same on both "
                   "backends (docs/optimizers.md)")
    t.add_argument("--clip-norm", type=float, default=None,
                   help="clip the gradient's global norm to this value")
    t.add_argument("--latent-dim", type=int, default=d["latent_dim"], help="size of z")
    t.add_argument("--hidden", type=parse_hidden, default=parse_hidden(d["hidden"]),
                   help="widths of an MLP encoder (the decoder reverses them)")
    t.add_argument("--encoder", choices=["mlp", "conv"], default="mlp",
                   help="conv: stride-2 convolutions over the images (needs an image data set)")
    t.add_argument("--decoder", choices=["mlp", "conv"], default="mlp")
    t.add_argument("--binarize", choices=["threshold", "dynamic"], default="threshold",
                   help="for --likelihood bernoulli: pixels at 0.5, or a fresh Bernoulli draw "
                   "of every pixel at each step (the test split is drawn once, seed 0)")
    t.add_argument("--num-particles", type=int, default=None,
                   help="samples of z per row (iwae's k)")
    t.add_argument("--alpha", type=float, default=None, help="renyi's alpha")
    t.add_argument("--beta", type=float, default=None, help="beta objective's KL weight")
    t.add_argument("--warmup", type=int, default=None, help="beta objective's warm-up epochs")
    t.add_argument("--patience", type=int, default=None, help="early stopping on validation loss")
    t.add_argument("--seed", type=int, default=d["seed"], help="weights, shuffling, sampling")
    t.add_argument("--eval-samples", type=int, default=d["eval_samples"],
                   help="importance samples per test row for the test log-likelihood")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--devices", type=parse_devices, default=None, metavar="N|all",
                   help="NumPyro: split each batch across this many JAX devices, or all of "
                   "them (of every process; Pyro: launch with torchrun --nproc_per_node=N -m "
                   "probvae train ...)")
    t.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="NumPyro on several processes (jax.distributed): process 0's address "
                   "(default: $JAX_COORDINATOR_ADDRESS, or read from srun/mpirun)")
    t.add_argument("--num-processes", type=int, default=None,
                   help="with --coordinator: how many processes (default: $JAX_NUM_PROCESSES)")
    t.add_argument("--process-id", type=int, default=None,
                   help="with --coordinator: this process's index, 0 .. N-1 (default: "
                   "$JAX_PROCESS_ID)")
    t.add_argument("--device", choices=["cpu", "gpu"], default=None,
                   help="where training runs (default: a GPU when jax/torch sees one)")
    t.add_argument("--checkpoint-every", type=int, default=1,
                   help="epochs between checkpoints in --out")
    t.add_argument("--out", default=None, help="run folder to write (new or empty; an "
                   "earlier run there is replaced only with --overwrite)")
    t.add_argument("--resume", default=None, metavar="RUN",
                   help="continue the run in folder RUN from its last checkpoint (its recorded "
                   "settings are used; --epochs, --lr, --clip-norm, --patience may change)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace an earlier probvae run in --out (other files there stay)")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="test scores of a saved run",
                       formatter_class=_Defaults)
    e.add_argument("run", help="a run folder written by probvae train")
    e.add_argument("--num-samples", type=int, default=d["eval_samples"],
                   help="importance samples per test row")
    e.add_argument("--seed", type=int, default=0, help="the draws of z")
    e.add_argument("--json", default=None, help="also write the scores to this JSON file")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    e.set_defaults(func=cmd_evaluate)
    s = sub.add_parser("sample", help="generate from a saved run",
                       formatter_class=_Defaults)
    s.add_argument("run", help="a run folder written by probvae train")
    s.add_argument("--n", type=int, default=64, help="how many samples")
    s.add_argument("--seed", type=int, default=0, help="the draws of z (and x with --draw)")
    s.add_argument("--png", default=None, help="write an image grid")
    s.add_argument("--npy", default=None, help="write the samples as a .npy array")
    s.add_argument("--draw", action="store_true", help="draw x ~ p(x|z), not its mean")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --png/--npy")
    s.set_defaults(func=cmd_sample)
    g = sub.add_parser("diagnose", help="ArviZ diagnostics of a saved run's latent posterior",
                       formatter_class=_Defaults)
    g.add_argument("run", help="a run folder written by probvae train")
    g.add_argument("--out", required=True, help="folder for the table and the plots (new or "
                   "empty; an earlier diagnosis there is replaced only with --overwrite)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an earlier diagnosis in --out (other files there stay)")
    g.add_argument("--n", type=int, default=100, help="test examples to diagnose")
    g.add_argument("--num-samples", type=int, default=1000,
                   help="importance samples per example")
    g.add_argument("--seed", type=int, default=0, help="the draws of z")
    g.set_defaults(func=cmd_diagnose)
    return p


class _Stopped(BaseException):
    """SIGTERM or SIGHUP outside a training loop (which stops after its step instead)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _stopped(signum, frame):
    raise _Stopped(signum)


def main(argv=None):
    """Entry point of the ``probvae`` command; returns its exit status.

    0: done; 2: a mistake in the command or its files (a message, never a traceback);
    3: training diverged (the parameters before it are saved); 4: the processes of a
    several-process run could not join, or one of them was lost (the run keeps its last
    checkpoint: continue it with ``--resume``); 130, 143, 129: stopped by
    Ctrl-C, SIGTERM or SIGHUP (during training: after the current step, with a checkpoint).

    Examples
    --------
    >>> main(["sample", "no/such/run"])
    2
    """
    args = build_parser().parse_args(argv)
    handled = (signal.SIGTERM, signal.SIGHUP)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _stopped) for sig in handled}
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print(f"probvae {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Stopped as stop:
        print(f"probvae {args.command}: stopped by {signal.Signals(stop.signum).name}; every "
              "file written is complete (a run keeps its last checkpoint: continue it with "
              "probvae train --resume DIR)", file=sys.stderr)
        return 128 + stop.signum
    except (ValueError, OSError, TypeError, MemoryError) as err:
        print(f"probvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except DistributedError as err:         # a lost process, or processes that cannot join
        print(f"probvae {args.command}: error: {err}", file=sys.stderr)
        return EXIT_PROCESSES
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    return int(status or 0)


def console():
    """Console-script wrapper: exit with :func:`main`'s status (after a lost process of a
    ``jax.distributed`` run, at once: JAX's shutdown would wait for it and abort)."""
    status = main()
    if status == EXIT_PROCESSES and distributed.processes()[1] > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
