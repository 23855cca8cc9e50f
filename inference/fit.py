"""``fit``: one function for both backends, dispatching to a per-backend loop.

``fit`` checks the arguments and the data, decides every setting once (a frozen
:class:`~.config.TrainConfig`), builds the model and its backend's ``Loop`` (the module the
backend names, ``bk.loop_module``), and hands them with the run folder (:class:`.training.Run`)
to :func:`.training.train` (the epochs, history, early stopping, divergence, Ctrl-C and the
run folder's checkpoints).
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import inspect
import os
import sys
import time
from pathlib import Path

import numpy as np

from probvae.data import Split, as_split
from probvae.data.streaming import Stream
from probvae.backends.base import check_device
from probvae.models import CustomModel, Model
from probvae import batch as batching
from probvae.outputs import check_run_dir, is_run, read_json, writing

from . import distributed, objectives, optimizers, train_state, training
from .config import (HOLDOUT_BELOW, MAX_EPOCHS, MIN_EPOCHS, TARGET_STEPS, TrainConfig,
                     default_epochs, default_patience, holdout_rows, split_options)
from .inputs import (check_batch_keys, check_binarize, check_count, check_missing,
                     check_positive, check_seed, hold_out, labelled_batch, model_batch,
                     StreamedBatch)
from .result import FitResult
from .scoring import class_probabilities
from .tracker import StopRequest
from .training import resolve_dirs

__all__ = ["fit"]


def _as_model(model, backend, contract=None):
    if isinstance(model, tuple):
        if len(model) != 2:
            raise TypeError("a custom model is a (model, guide) pair of functions")
        if backend is None:
            raise ValueError("pass backend='pyro' or backend='numpyro' with a (model, guide) pair")
        return CustomModel(model[0], model[1], backend, contract=contract)
    if contract is not None:
        raise ValueError("contract= describes a user's (model, guide) pair; a probvae model "
                         "declares its own (model.contract)")
    if not isinstance(model, (Model, CustomModel)):
        raise TypeError(f"fit takes a probvae model or a (model, guide) pair, got {type(model)}")
    if backend is not None and backend != model.backend:
        raise ValueError(f"the model was made for backend {model.backend!r} but fit got "
                         f"backend={backend!r}; make the model with backend={backend!r}")
    return model


def _continued(res, given: dict, objective_options: dict, resume, contract):
    """``(model, settings, objective_options, state, resume_dir)`` to continue result ``res``:
    each setting left out (None) is the one ``res`` trained with; the training state it
    carries, in memory or (a loaded result's) in its folder's checkpoint."""
    if resume not in (None, False):
        raise ValueError("pv.fit(res, ...) continues the result res; resume= continues a run "
                         "folder: pass one of them")
    if contract is not None:
        raise ValueError("contract= describes a new (model, guide) pair; the result has its "
                         "own (res.model.contract)")
    state = res.training_state
    if state is None:
        why = ("it diverged, and its training state was not kept: fit again, with a lower lr "
               "or clip_norm" if res.diverged else
               "it was loaded from a folder saved without one (by an earlier probvae, or "
               "pv.save(..., training_state=False)): start a new fit")
        raise ValueError(f"cannot continue this result: it carries no training state "
                         f"(optimizer and random state); {why}")
    recorded, options = split_options(res.options)
    settings = {k: (recorded.get(k) if v is None else v) for k, v in given.items()}
    settings["objective"] = given["objective"] or res.objective
    settings["optimizer"], settings["lr"] = optimizers.from_records(   # a user's: given again
        recorded.get("optimizer"), recorded.get("lr"), given["optimizer"], given["lr"])
    return (res.model, settings, objective_options or options,
            None if state.run is not None else state, state.run)


def _accuracy_metric(model, validation, valid_batch):
    """Validation accuracy per epoch for models with a classifier and labelled validation."""
    if not model.is_classifier:
        return None
    y = (validation.get("y") if isinstance(validation, dict)
         else as_split(validation, allow_missing=True).y)
    if y is None:
        return None
    x = valid_batch["x"]

    def metric(params):
        probs = class_probabilities(model, params, x)
        return {"valid_accuracy": float((probs.argmax(1) == y).mean())}
    return metric


def _check_keywords(objective, options):
    """Unknown keywords of fit: a misspelled fit argument gets a "did you mean"."""
    try:
        allowed_obj = objectives.get(objective).options()
    except ValueError:
        return
    unknown = [k for k in options if k not in allowed_obj]
    if not unknown:
        return
    fit_args = [p for p in inspect.signature(fit).parameters if p not in ("model", "data")]
    for key in unknown:
        close = difflib.get_close_matches(key, fit_args + list(allowed_obj), n=1, cutoff=0.75)
        if close:
            raise TypeError(f"fit() got an unexpected keyword argument {key!r}; did you mean "
                            f"{close[0]!r}?")


def fit(model, data, *, objective=None, epochs=None, batch_size=None, lr=None,
        optimizer=None, seed=None, validation="auto", patience=None, progress=True,
        backend=None, labels=None, missing=None, binarize=None, clip_norm=None,
        checkpoint=None, checkpoint_every=1, resume=None, overwrite=False, run_info=None,
        devices=None, device=None, contract=None, condition=None, **objective_options):
    """Train a model (or a user's ``(model, guide)`` pair) by stochastic variational inference.

    Parameters
    ----------
    model : Model, (callable, callable) or FitResult
        A probvae model (its ``backend`` decides the loop) or a pair of Pyro/NumPyro functions
        ``model(x)``, ``guide(x)`` with ``backend=`` given. A :class:`FitResult` (of a fit,
        or of :func:`probvae.load`) is continued where it stopped, with its parameters,
        optimizer and random state: ``epochs`` is the new total, and ``pv.fit(res, data,
        epochs=N)`` ends as one fit of ``N`` epochs would (bit for bit on NumPyro, within
        float rounding on Pyro). The data (and ``validation``, ``labels``) must be the same;
        settings left out are the result's own (a user's optimizer or schedule, which the
        result records by name only, must be given again); ``lr``, ``clip_norm`` and
        ``patience`` may change.
    data : Split, array (N, D) or Stream
        Training data; checked against the likelihood's support before training starts. A
        :func:`probvae.data.stream` over a ``.npy``/IDX file trains on data larger than
        memory, one chunk of rows at a time (chunks in random order, rows shuffled within
        each).
    objective : str, optional
        A registered objective name (see :mod:`probvae.inference.objectives`). Default:
        ``"enum"`` for a model with discrete latents to sum out (:class:`SSVAE`),
        ``"elbo"`` otherwise.
    epochs : int, optional
        Passes over the data. Default: chosen from the data's size
        (:func:`~probvae.inference.config.default_epochs`): about 4,000 optimizer steps, at
        least 50 and at most 1,000 epochs (MNIST's 60,000 rows in batches of 128: 50 epochs;
        digits' 1,257 training rows, less the tenth held out: 500; a 300-row table: 1,000,
        stopping early on its held-out rows), or the model's own ``fit_defaults``
        (:class:`SSVAE`: 100). The number chosen is recorded in ``res.options["epochs"]``.
    batch_size : int
        Mini-batch size (the last partial batch of each shuffled epoch is dropped). Default:
        128, or the model's ``fit_defaults`` (:class:`SSVAE`: 32).
    lr : float or callable
        The learning rate: a number (default 1e-3), or a schedule, a function of the
        optimizer's step count (0 for the first step) such as an optax schedule
        (``optax.exponential_decay(1e-3, 1000, 0.5)``; on NumPyro it runs inside the compiled
        step, so write it with ``jax.numpy``). Leave it out when ``optimizer`` holds its own.
    optimizer : str, (str, dict) or the backend's optimizer, optional
        What steps the parameters (default Adam). A name that works on both backends
        (``"adam"``, ``"adamw"``, ``"sgd"``, ``"rmsprop"``, ``"adagrad"``), alone or with
        the library's keyword options, ``("sgd", {"momentum": 0.9})``; or the library's own:
        an optax ``GradientTransformation`` on NumPyro (``optax.adamw(1e-3)``, its learning
        rate inside it), a ``torch.optim`` class on Pyro (``torch.optim.AdamW`` or
        ``(torch.optim.SGD, {"momentum": 0.9})``, with ``lr=``). Its state and step count are
        checkpointed, so a resumed fit continues a schedule where it was; ``res.options``
        records a name, or a user's object by description (give it again to continue). See
        ``docs/optimizers.md``.
    seed : int
        Seeds networks, parameter initialisation, shuffling and sampling: the same seed on the
        same backend gives the same numbers. An integer in 0..2**32-1; default 0.
    validation : Split, array, (data, condition), "auto", None or False
        Validation data: its loss is recorded each epoch, and the best epoch's parameters are
        kept. For a conditional model, a pair ``(data, condition)`` (a DataFrame of a table
        model conditioned on its columns carries its condition; rows held out by ``"auto"``
        keep theirs). ``"auto"`` (default): for data in memory under 20,000 rows, fit holds out a
        tenth of the rows itself (at least 30, and only from 150 rows; stratified by the
        labels ``data.y`` when there are any; drawn by ``seed``), trains on the rest and stops
        early on them (:func:`~probvae.inference.config.holdout_rows`); it says so when
        ``progress`` is on and records the count in ``res.options["holdout"]``. Larger data,
        a stream and a semi-supervised fit (``labels=``: its few labelled rows are too
        precious to hold out, and the unlabelled bound does not measure its classifier) get
        none. ``None`` or ``False``: no validation, train on every row. A continued or
        resumed fit holds out what its first fit did.
    patience : int, optional
        Stop when the validation loss has not improved for this many epochs. Default: when
        fit chose the epochs or held out the validation rows, a fifth of the epochs (at least
        20: :func:`~probvae.inference.config.default_patience`); otherwise none.
    progress : bool
        Show a tqdm progress bar.
    backend : str, optional
        Required for a ``(model, guide)`` pair; must match a model's own backend otherwise.
    labels : bool mask (N,) or int index, optional
        For models that learn from labels (:class:`~probvae.models.SSVAE`): which training
        examples have their label ``data.y`` observed. Each step then takes one unlabelled batch
        (labels summed out) and one labelled batch. With labelled validation data the history
        also gets ``valid_accuracy``.
    missing : None or "mask"
        ``"mask"``: NaN cells of the data are missing values, left out of the likelihood (the
        bound covers the observed cells only; the encoder sees the likelihood's ``fill``
        value there). ``None`` (default): NaN is an error. Scoring functions later use the
        same setting.
    binarize : None or "dynamic"
        ``"dynamic"``: the data are grey values in [0, 1] and every training step draws fresh
        binary pixels from them (Bernoulli with probability x), the standard for MNIST
        likelihood tables; needs a likelihood of binary data (``bernoulli``). The validation
        data are binarized once (from ``seed``); evaluate on a test set binarized once, e.g.
        ``data.test.binarize(stochastic=True, seed=0)``.
    clip_norm : float, optional
        Clip the gradient's global norm to this value before each step (both backends).
    checkpoint : str or Path, optional
        A run folder (new, empty, or an earlier run with ``overwrite=True``) that receives,
        atomically, every ``checkpoint_every`` epochs and when training stops: parameters,
        optimizer and random state, epoch, history and the best parameters so far (JSON and
        NumPy arrays). ``pv.load`` reads it at any time, also after a kill.
    checkpoint_every : int
        Epochs between checkpoints.
    resume : str, Path or True, optional
        Continue the run saved in this folder (``True``: in ``checkpoint``, if it holds one,
        else start it, also over a run there that stopped before its first checkpoint) where
        its last checkpoint left it. Model, data and settings must be the
        same; ``epochs``, ``lr``, ``clip_norm`` and ``patience`` may change. A resumed run
        ends with the same parameters and history as one never stopped.
    overwrite : bool
        Allow ``checkpoint`` to replace an earlier run (only the files probvae wrote there).
    run_info : dict, optional
        JSON-able records for the run folder's ``config.json``: ``"data"`` (which data set)
        and ``"cli"`` (the command's settings), as ``probvae train`` writes them.
    devices : int, "all" or list, optional
        NumPyro: split every batch across this many JAX devices (data parallelism with
        ``jax.sharding``: parameters replicated, gradients summed by XLA; the same numbers
        as one device, within float rounding). ``batch_size`` must divide evenly. Pyro
        trains on several devices as several processes instead: ``torchrun`` (see
        :mod:`probvae.inference.distributed`). Default: one device.
    contract : Contract, optional
        For a ``(model, guide)`` pair: its latent and observed sites and data plate
        (:class:`~probvae.models.Contract`), instead of reading them from one trace of the
        pair on the first rows of ``data`` (what happens by default).
    device : None, "cpu" or "gpu"
        Where training runs. ``None`` (default): a GPU when the library sees one (the CUDA
        build of jax or torch), else the CPU; ``"gpu"`` without one is an error naming the
        install command. On Pyro the fitted model is moved back to the CPU afterwards, and
        on both backends its parameters save as NumPy arrays, so a model trained on a GPU
        loads, scores and samples on a machine without one.
    condition : array (N, K) or DataFrame, optional
        For a conditional model (``VAE(condition_dim=K)``, Sohn et al. 2015): each training
        example's condition, one row of K floats (class labels one-hot coded:
        ``pv.data.one_hot(y, K)``). A model made by ``VAE.for_table(table, condition=[...])``
        takes it from the DataFrame it is fitted on. See ``docs/conditions.md``.
    **objective_options
        Passed to the objective (``num_particles``, ``alpha``, ``beta``, ``warmup``).

    Returns
    -------
    FitResult
        ``status`` says how training ended (``"completed"``, ``"stopped_early"``,
        ``"interrupted"`` by Ctrl-C, ``"diverged"`` on a non-finite loss: the parameters are
        then the best ones before it) and ``message`` what to do next.

    Examples
    --------
    >>> import probvae as pv
    >>> data = pv.data.load("digits", seed=0)
    >>> vae = pv.models.VAE(input_dim=64, latent_dim=4, hidden=(64,), backend="numpyro")
    >>> res = pv.fit(vae, data.train, objective="iwae", num_particles=4, epochs=2,
    ...              validation=data.valid, progress=False)
    >>> sorted(res.history), res.status
    (['kl_weight', 'seconds', 'train_loss', 'valid_loss'], 'completed')

    Another optimizer, and a learning rate that decays with the step (an optax schedule):

    >>> import optax
    >>> res = pv.fit(vae, data.train, epochs=1, optimizer=("sgd", {"momentum": 0.9}),
    ...              lr=optax.exponential_decay(1e-3, 100, 0.5), clip_norm=10.0,
    ...              progress=False)
    >>> res.options["optimizer"]
    {'name': 'sgd', 'options': {'momentum': 0.9}}

    Left to its defaults, fit chooses the length and holds out validation rows of small data:

    >>> res = pv.fit(vae, data.train[:200], epochs=3, progress=False)   # epochs= to be quick
    >>> res.options["holdout"], res.options["patience"], len(res.history["valid_loss"])
    (30, 20, 3)
    """
    state = loaded = None         # a result's training state: in memory, or in its folder
    recorded_holdout = None       # rows a continued or resumed fit held out (None: a new fit)
    if isinstance(model, FitResult):
        given = {"objective": objective, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                 "optimizer": optimizer, "seed": seed, "patience": patience,
                 "missing": missing, "binarize": binarize, "clip_norm": clip_norm,
                 "holdout": None}
        model, given, objective_options, state, loaded = _continued(
            model, given, objective_options, resume, contract)
        (objective, epochs, batch_size, lr, optimizer, seed, patience, missing, binarize,
         clip_norm) = (given[k] for k in ("objective", "epochs", "batch_size", "lr",
                                          "optimizer", "seed", "patience", "missing",
                                          "binarize", "clip_norm"))
        recorded_holdout = given["holdout"] or 0      # it holds out what the first fit did
    seed = TrainConfig.seed if seed is None else seed
    model = _as_model(model, backend, contract)
    optimizer, lr = optimizers.resolve(optimizer, lr, model.bk)   # lr: 1e-3 unless given
    if objective is None:
        objective = "enum" if model.needs_enumeration else "elbo"
    own = model.fit_defaults
    epochs = own.get("epochs") if epochs is None else epochs   # None: chosen from the data
    batch_size = own.get("batch_size", TrainConfig.batch_size) if batch_size is None else batch_size
    _check_keywords(objective, objective_options)
    if epochs is not None:
        epochs = check_count(epochs, "epochs")
    batch_size = check_count(batch_size, "batch_size")
    seed = check_seed(seed)
    checkpoint_every = check_count(checkpoint_every, "checkpoint_every")
    if clip_norm is not None:
        clip_norm = check_positive(clip_norm, "clip_norm")
    auto_validation = isinstance(validation, str)
    if auto_validation and validation != "auto":
        raise ValueError(f"validation takes data (a Split or an array), 'auto' (the default: "
                         f"hold out rows of small data) or None/False (none), got {validation!r}")
    if validation is False or auto_validation:
        validation = None
    valid_condition = None
    if isinstance(validation, tuple):
        if len(validation) != 2:
            raise ValueError("validation takes data, or a pair (data, condition) for a "
                             f"conditional model; got a tuple of {len(validation)}")
        validation, valid_condition = validation
    elif (validation is not None and model.condition_dim is not None
          and not isinstance(validation, dict) and type(validation).__name__ != "DataFrame"):
        raise ValueError(f"{model.describe()} is conditional: give the validation data with "
                         "their condition, validation=(x_valid, condition_valid)")
    if patience is not None:
        patience = check_count(patience, "patience")
        if validation is None and not auto_validation:
            raise ValueError("patience (early stopping) needs validation data: pass validation=")
    missing = check_missing(missing)
    binarize = check_binarize(binarize)
    device = check_device(device, model.bk)
    if run_info is not None and (not isinstance(run_info, dict) or set(run_info) - {"data", "cli"}):
        raise ValueError("run_info takes a dict with the keys 'data' and/or 'cli'")
    run_dir, resume_dir = resolve_dirs(checkpoint, resume)
    if loaded is not None:        # a loaded result: its folder is read (written only as
        if not train_state.exists(loaded):          # checkpoint=, like any other folder)
            raise FileNotFoundError(f"cannot continue this result: its folder {loaded} holds "
                                    f"no training checkpoint now ({train_state.POINTER} is "
                                    "missing)")
        resume_dir = Path(loaded)
    if recorded_holdout is None and resume_dir is not None:
        recorded_holdout = _recorded_holdout(resume_dir)
    if resume is True and resume_dir is None and _nothing_learned(run_dir):
        overwrite = True        # it stopped before its first checkpoint: start it again
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not model.bk.multi_process:
        raise ValueError("several processes started by torchrun train Pyro models; NumPyro's "
                         "processes are joined by jax.distributed: call "
                         "pv.inference.distributed.initialize() first (docs/devices.md)")
    if not distributed.is_main():        # process 0 alone writes; every process may resume
        run_dir, progress = None, False
    _check_run_dir(run_dir, resume_dir, overwrite)       # before any work: nothing lost
    with contextlib.ExitStack() as hold:   # one writer per run folder, from here to the end
        if run_dir is not None:
            hold.enter_context(writing(run_dir))
            _check_run_dir(run_dir, resume_dir, overwrite)   # again: it is ours alone now
        stop = hold.enter_context(StopRequest())   # Ctrl-C, SIGTERM, SIGHUP: stop cleanly
        obj = objectives.get(objective)
        elbo, schedule = objectives.build(obj, model.bk,
                                          max_plate_nesting=model.max_plate_nesting,
                                          **objective_options)
        if obj.reparameterized and model.needs_enumeration:
            raise ValueError(f"objective {obj.name!r} needs reparameterized latents, and "
                             f"{type(model).__name__} sums its discrete latents out by "
                             "enumeration: use objective='enum'")
        model.check_objective(obj)
        if model.needs_enumeration and not obj.enumerates:
            raise ValueError(f"{type(model).__name__} sums its discrete latents out by "
                             f"enumeration: use objective='enum' (got {obj.name!r})")
        if obj.analytic_kl and not model.guide_follows_model:
            raise ValueError(f"objective {obj.name!r} takes each latent's KL in closed form, "
                             "which is the bound's only when the guide samples the latents in "
                             f"the model's order, and {type(model).__name__}'s guide does not "
                             f"(it samples {list(model.contract.latent_names)} in that order, "
                             "the model the other way): use objective='elbo' (the same bound "
                             "with Monte Carlo KL terms), 'iwae' or 'dreg'")
        if isinstance(data, Stream):
            if labels is not None or condition is not None:
                raise ValueError(f"{'labels' if condition is None else 'condition'}= needs the "
                                 "data in memory; a stream from disk carries x only")
            train = StreamedBatch(model, data, missing, binarize)
            check_batch_keys(model, train.chunk(0))
        else:
            train = model_batch(model, data, "training data", missing, binarize, condition)
            check_batch_keys(model, train)
        held = 0                 # rows held out for validation (small data, none given)
        if auto_validation and not isinstance(train, StreamedBatch) and labels is None:
            n = batching.size(train)
            held = holdout_rows(n) if recorded_holdout is None else recorded_holdout
            held = held if held < n else 0   # (other data than the run's: resuming says so)
            if held:
                train, validation = hold_out(train, held, seed, y=_labels_of(data, train))
        if patience is not None and validation is None:
            raise ValueError("patience (early stopping) needs validation data: pass "
                             "validation= (fit holds out rows itself only for data under "
                             f"{HOLDOUT_BELOW:,} rows in memory, without labels=)")
        chosen = epochs is None             # the training length, from the data's size
        if chosen:
            epochs = default_epochs(len(train) if isinstance(train, StreamedBatch)
                                    else batching.size(train), batch_size)
        if patience is None and validation is not None and (chosen or held):
            patience = default_patience(epochs)
        if progress and (held or chosen) and recorded_holdout is None:
            print(_choices(epochs if chosen else None, held,
                           held + batching.size(train) if held else None, patience),
                  file=sys.stderr)
        if isinstance(model, CustomModel):     # its latent and observed sites, from one trace
            model = model.with_contract(train.chunk(0) if isinstance(train, StreamedBatch)
                                        else train, seed)
        valid = (validation if held else
                 model_batch(model, validation, "validation data", missing, binarize,
                             valid_condition)
                 if validation is not None else None)
        if valid is not None and binarize == "dynamic":      # one fixed draw, comparable epochs
            rng = np.random.default_rng([seed, 1])
            valid["x"] = (rng.random(valid["x"].shape) < valid["x"]).astype(np.float32)
        labelled = (labelled_batch(model, data, labels, missing, binarize)
                    if labels is not None else None)
        fingerprints = {"data": (train.fingerprint if isinstance(train, StreamedBatch)
                                 else train_state.fingerprint(train, labelled)),
                        "validation": train_state.fingerprint(valid)}
        run = training.Run(folder=run_dir, resume=resume_dir, state=state, overwrite=overwrite,
                           every=checkpoint_every, info=run_info)
        loop_cls = importlib.import_module(model.bk.loop_module).Loop
        started = time.perf_counter()   # the first epoch's seconds include building, compiling
        with model.bk.lock:             # building networks touches the library's global RNG too
            built = model.build(seed)
            pair = isinstance(model, CustomModel)
            config = TrainConfig(
                objective=obj.name, objective_options=objective_options,
                objective_definition=objectives.definition(obj), epochs=epochs,
                batch_size=batch_size, lr=lr, optimizer=optimizer, seed=seed,
                patience=patience, clip_norm=clip_norm, missing=missing, binarize=binarize,
                num_labelled=None if labelled is None else int(len(labelled["y"])),
                holdout=held or None,
                model=model.record() if pair else model.config(), pair=pair, **fingerprints,
                progress=progress, device=device, devices=devices,
                metric=(_accuracy_metric(built, validation, valid)
                        if validation is not None and not held else None))
            with model.bk.placement(device):     # data, parameters and steps on that device
                loop = loop_cls(built, train, valid, elbo, schedule,
                                batch_size=config.batch_size, lr=config.lr,
                                optimizer=config.optimizer, seed=config.seed,
                                labelled=labelled, clip_norm=config.clip_norm,
                                cache_key=(None if model.user_networks else   # (code)
                                           config.cache_key),
                                binarize=config.binarize == "dynamic",
                                devices=config.devices, device=config.device, objective=obj,
                                resuming=run.resuming, epochs=config.epochs)
                count = distributed.processes()[1]    # what trains it: global counts
                config = dataclasses.replace(config, processes=count,
                                             device_count=getattr(loop, "device_count", count))
                with loop:
                    return training.train(built, loop, config, run, stop=stop, started=started)


def _labels_of(data, batch):
    """The labels of ``data`` (a Split's ``y``, a batch's), to stratify a held-out part by."""
    y = batch.get("y")
    if y is None and isinstance(data, Split):
        y = data.y
    return None if y is None or len(y) != batching.size(batch) else y


def _recorded_holdout(folder) -> int:
    """The rows the run in ``folder`` held out for validation itself (its ``config.json``'s
    ``options``; 0 for a run that held out none, or was written before fit held any out)."""
    if not is_run(folder):
        return 0
    options = read_json(Path(folder) / "config.json").get("options")
    held = options.get("holdout") if isinstance(options, dict) else None
    return held if isinstance(held, int) and not isinstance(held, bool) and held > 0 else 0


def _choices(epochs, held, rows, patience) -> str:
    """The line a fit prints when it chose its length (``epochs``; None: given) or held out
    validation rows (``held`` of ``rows``)."""
    what = [] if epochs is None else [
        f"{epochs} epochs (about {TARGET_STEPS:,} steps, within {MIN_EPOCHS}..{MAX_EPOCHS} "
        "epochs; epochs= sets them)"]
    if held:
        what.append(f"validation: held out {held} of {rows} rows ({held / rows:.0%}; "
                    "validation=False trains on all)")
    if patience is not None:
        what.append(f"stops after {patience} epochs without improvement, keeping the best")
    return "fit: " + "; ".join(what)


def _check_run_dir(run_dir, resume_dir, overwrite):
    """The checks of the run folder a fit will write, all made before training starts."""
    if run_dir is None:
        return
    if resume_dir is None:
        if is_run(run_dir) and train_state.exists(run_dir) and not overwrite:
            raise ValueError(f"{run_dir} holds an earlier run with a checkpoint: pass "
                             f"resume={str(run_dir)!r} to continue it, or overwrite=True to "
                             "start again")
        check_run_dir(run_dir, overwrite=overwrite, writes=training.RUN_FILES)
    train_state.check_folder(run_dir)     # states of yours; a folder that cannot be written


def _nothing_learned(run_dir) -> bool:
    """Whether ``run_dir`` is a run folder that holds only the ``config.json`` its run wrote at
    the start: the run stopped (crashed, killed) before its first checkpoint."""
    return is_run(run_dir) and [p.name for p in run_dir.iterdir()] == ["config.json"]
