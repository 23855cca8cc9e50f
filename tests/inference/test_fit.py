"""fit: reproducibility, validation and early stopping, parameter isolation, errors, progress."""
import dataclasses
import math

import numpy as np
import pytest
import pyro
import torch

import probvae as pv
from probvae.inference.tracker import Tracker


def _invert(split):
    """Inverted digits: a validation set that gets worse as the model learns the digits."""
    return pv.data.from_arrays(1.0 - split.x)


# ------------------------------------------------------------------ reproducibility
def test_same_seed_same_numbers_other_seed_other_numbers(backend, small, make_vae, quick_fit):
    vae = make_vae(backend)
    a = quick_fit(vae, small.train, seed=3)
    b = quick_fit(vae, small.train, seed=3)
    c = quick_fit(vae, small.train, seed=4)
    assert a.history["train_loss"] == b.history["train_loss"]
    assert a.history["train_loss"] != c.history["train_loss"]
    sa, sb, sc = (pv.sample(r, n=4, seed=1) for r in (a, b, c))
    np.testing.assert_array_equal(sa, sb)
    assert not np.allclose(sa, sc)
    # sampling is seeded too
    np.testing.assert_array_equal(pv.sample(a, n=4, seed=7), pv.sample(a, n=4, seed=7))
    assert not np.allclose(pv.sample(a, n=4, seed=7), pv.sample(a, n=4, seed=8))
    assert a.options["seed"] == 3 and c.options["seed"] == 4


def test_fit_does_not_consume_global_rng():
    """Explicit seeds: fitting leaves torch's and NumPy's global generators where they were."""
    data = pv.data.load("digits", seed=0)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="pyro")
    torch.manual_seed(123)
    np.random.seed(123)
    expected_t, expected_n = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    pv.fit(vae, data.train.x[:64], epochs=1, batch_size=32, progress=False, seed=9)
    np.testing.assert_array_equal(torch.rand(3), expected_t)
    np.testing.assert_array_equal(np.random.rand(3), expected_n)


# ------------------------------------------------------------------ validation, early stopping
def test_tracker_best_epoch_and_patience():
    t = Tracker(epochs=10, patience=2, has_valid=True, progress=False, desc="")
    outcomes = [t.record(e, 1.0, v, 1.0) for e, v in enumerate([5.0, 4.0, 4.5, 3.0, 3.5, 3.2])]
    assert outcomes == [(True, False), (True, False), (False, False), (True, False),
                        (False, False), (False, True)]
    assert t.best_epoch == 3 and t.best == 3.0
    assert t.history["valid_loss"] == [5.0, 4.0, 4.5, 3.0, 3.5, 3.2]
    t.close()
    no_patience = Tracker(epochs=5, patience=None, has_valid=True, progress=False, desc="")
    assert [no_patience.record(e, 1.0, v, 1.0)[1] for e, v in enumerate([1.0, 2.0, 3.0, 4.0])] \
        == [False] * 4
    assert no_patience.best_epoch == 0


def test_tracker_stops_on_a_non_finite_loss():
    """A non-finite loss stops training without an exception (the work so far is kept)."""
    t = Tracker(epochs=3, patience=None, has_valid=False, progress=False, desc="")
    assert t.record(0, 1.0, None, 1.0) == (False, False)
    assert t.record(1, math.nan, None, 1.0) == (False, True)
    assert t.diverged_at == 1


def test_patience_stops_early_and_keeps_the_best_epoch(backend, small, make_vae, quick_fit):
    res = quick_fit(make_vae(backend), small.train, validation=_invert(small.valid), patience=1,
                    epochs=10, lr=1e-2, seed=0)
    h = res.history
    n = len(h["train_loss"])
    assert n < 10, "validation loss on inverted digits should stop improving"
    assert len(h["valid_loss"]) == n and np.all(np.isfinite(h["valid_loss"]))
    best = res.best_epoch                          # counted from 1, as the messages count
    assert h["valid_loss"][best - 1] == min(h["valid_loss"])
    assert res.history_frame()["valid_loss"].idxmin() == best
    assert n == best + 1                           # patience=1: one bad epoch, then stop


def test_validation_keeps_the_best_parameters(backend, small, make_vae, quick_fit):
    """Parameters of the best epoch are returned: refitting for exactly best_epoch epochs
    (counted from 1; same seed, same validation set) gives the same parameters."""
    kw = dict(validation=_invert(small.valid), lr=1e-2, seed=0)
    long = quick_fit(make_vae(backend), small.train, epochs=4, **kw)
    best = long.best_epoch
    assert best is not None and best < 4, "need a best epoch before the last one"
    short = quick_fit(make_vae(backend), small.train, epochs=best, **kw)
    assert short.history["train_loss"] == long.history["train_loss"][:best]
    np.testing.assert_array_equal(pv.sample(long, n=4, seed=0), pv.sample(short, n=4, seed=0))
    np.testing.assert_array_equal(pv.encode(long, small.test), pv.encode(short, small.test))


# ------------------------------------------------------------------ Pyro parameter isolation
def test_pyro_models_do_not_leak_into_each_other_or_the_global_store(small):
    store = pyro.get_param_store()
    store.clear()
    sentinel = pyro.param("user_sentinel", torch.tensor([1.0, 2.0]))
    keys_before = set(store.keys())
    a = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(16,), backend="pyro"),
               small.train, epochs=2, batch_size=32, progress=False, seed=0)
    sample_a = pv.sample(a, n=4, seed=0)
    scores_a = pv.evaluate(a, small.test, num_samples=5, seed=0)
    # a different architecture with the same parameter names ("encoder$$$net.0.weight", ...)
    b = pv.fit(pv.models.VAE(input_dim=64, latent_dim=3, hidden=(8, 8), prior="mixture",
                             likelihood="gaussian", backend="pyro"),
               small.train, epochs=2, batch_size=32, progress=False, seed=1)
    np.testing.assert_array_equal(pv.sample(a, n=4, seed=0), sample_a)
    assert pv.evaluate(a, small.test, num_samples=5, seed=0)["elbo"] == scores_a["elbo"]
    assert pv.sample(b, n=4).shape == (4, 64) and pv.encode(b, small.test).shape == (16, 3)
    assert np.isfinite(pv.evaluate(b, small.test, num_samples=5)["elbo"])
    assert set(store.keys()) == keys_before
    assert torch.equal(pyro.param("user_sentinel").detach(), torch.tensor([1.0, 2.0]))
    assert "user_sentinel" not in a.params and "user_sentinel" not in a.param_state["params"]
    assert "prior_loc" in b.params and "prior_loc" not in a.params
    store.clear()
    del sentinel


# ------------------------------------------------------------------ result object
def test_fit_result_is_frozen_and_complete(small, make_vae, quick_fit):
    res = quick_fit(make_vae("pyro"), small.train, epochs=2, lr=2e-3, batch_size=16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.param_state = {}
    assert sorted(res.history) == ["kl_weight", "seconds", "train_loss", "valid_loss"]
    assert all(s >= 0 for s in res.history["seconds"])
    assert res.options == {"epochs": 2, "batch_size": 16, "lr": 2e-3, "seed": 0, "patience": None,
                           "missing": None, "processes": 1, "devices": 1}
    assert "backend='pyro'" in repr(res) and "epochs=2" in repr(res)


def test_plain_arrays_are_accepted(small, make_vae, quick_fit):
    res = quick_fit(make_vae("pyro"), small.train.x, epochs=1)
    assert pv.encode(res, small.test.x).shape == (16, 3)


# ------------------------------------------------------------------ errors
def test_errors(small, make_vae, digits):
    vae = make_vae("pyro")
    fit = lambda model, data=small.train, **kw: pv.fit(model, data, progress=False, **kw)  # noqa
    with pytest.raises(ValueError, match="10 features but the model's input_dim is 64"):
        fit(vae, small.train.x[:, :10], epochs=1)
    with pytest.raises(ValueError, match="validation data has 10 features"):
        fit(vae, validation=small.valid.x[:, :10], epochs=1)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        fit(vae, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        fit(vae, epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="lr must be a number > 0"):
        fit(vae, epochs=1, lr=0.0)
    with pytest.raises(ValueError, match="patience .* needs validation"):
        fit(vae, epochs=1, patience=2)
    with pytest.raises(ValueError, match="backend="):
        fit((lambda x: None, lambda x: None), epochs=1)
    with pytest.raises(TypeError, match="pair"):
        fit((lambda x: None,), epochs=1, backend="pyro")
    with pytest.raises(ValueError, match="made for backend 'pyro'.*backend='numpyro'"):
        fit(vae, epochs=1, backend="numpyro")
    with pytest.raises(TypeError, match="probvae model"):
        fit(object(), epochs=1)
    with pytest.raises(TypeError, match="Dataset"):
        fit(vae, digits, epochs=1)
    # matching backend given explicitly is fine
    assert fit(vae, epochs=1, backend="pyro").backend == "pyro"


# ------------------------------------------------------------------ progress output
def test_progress_off_prints_nothing(backend, small, make_vae, quick_fit, capfd):
    capfd.readouterr()
    quick_fit(make_vae(backend), small.train, epochs=1, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_on_shows_a_bar(small, make_vae, capfd):
    capfd.readouterr()
    pv.fit(make_vae("pyro"), small.train, epochs=2, batch_size=32, progress=True)
    _, err = capfd.readouterr()
    assert "2/2" in err and "VAE[pyro]" in err


class _RecordsChecks(pv.likelihoods.Bernoulli):
    """A user's likelihood that records whether torch checks distribution arguments."""
    seen = []

    def distribution(self, bk, params, mask=None, prefix="likelihood"):
        _RecordsChecks.seen.append(torch.distributions.Distribution._validate_args)
        return super().distribution(bk, params, mask=mask, prefix=prefix)


def test_pyro_checks_arguments_in_the_first_epoch_only(small):
    """Pyro's argument checks run for the first epoch (a model's mistakes show there, with
    names) and are off after it (13% of a step), and the user's setting is back after fit."""
    _RecordsChecks.seen.clear()
    binary = pv.data.from_arrays((small.train.x > 0.5).astype(np.float32))
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="pyro",
                        likelihood=_RecordsChecks())
    res = pv.fit(vae, binary, epochs=3, batch_size=16, progress=False, seed=0)
    steps = len(binary.x) // 16
    seen = _RecordsChecks.seen[-3 * steps:]                  # the training steps
    assert seen[:steps] == [True] * steps and seen[steps:] == [False] * (2 * steps)
    assert torch.distributions.Distribution._validate_args and pyro.infer.is_validation_enabled()
    assert all(math.isfinite(v) for v in res.history["train_loss"])
    with pyro.validation_enabled(False):                     # a user's own setting is kept
        _RecordsChecks.seen.clear()
        pv.fit(vae, binary, epochs=2, batch_size=16, progress=False, seed=0)
        assert not any(_RecordsChecks.seen)


class _NaNFromStep(pv.likelihoods.Bernoulli):
    """A user's likelihood whose decoder outputs turn NaN from training step ``start`` on
    (counting the forward passes with gradients, init's included); it records whether torch
    checked arguments at the first NaN."""

    def __init__(self, start, error=None):
        super().__init__()
        self.start, self.error, self.calls, self.checked = start, error, 0, None

    def distribution(self, bk, params, mask=None, prefix="likelihood"):
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls > self.start:
                if self.error is not None:
                    raise self.error
                if self.checked is None:
                    self.checked = torch.distributions.Distribution._validate_args
                params = tuple(p * float("nan") for p in params)
        return super().distribution(bk, params, mask=mask, prefix=prefix)


@pytest.mark.parametrize("start,epoch,checked", [(2, 1, True), (7, 2, False)])
@pytest.mark.parametrize("with_validation", [False, True])
def test_pyro_divergence_with_and_without_argument_checks(small, start, epoch, checked,
                                                          with_validation):
    """A NaN in the first epoch raises in torch's argument checks, a NaN later (checks off)
    gives a NaN loss: either way fit stops as diverged at that epoch, with or without
    validation data, and keeps finite parameters."""
    binary = pv.data.from_arrays((small.train.x > 0.5).astype(np.float32))  # 4 steps an epoch
    valid = pv.data.from_arrays((small.valid.x > 0.5).astype(np.float32))
    lik = _NaNFromStep(start)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="pyro", likelihood=lik)
    with pytest.warns(RuntimeWarning, match=f"diverged at epoch {epoch} "):
        res = pv.fit(vae, binary, validation=valid if with_validation else None, epochs=4,
                     batch_size=16, progress=False, seed=0)
    assert lik.checked is checked
    assert res.status == "diverged" and len(res.history["train_loss"]) == epoch
    assert all(np.isfinite(v).all() for v in res.bk.params_to_numpy(res.param_state).values())
    kept = "the initial parameters." if epoch == 1 else "epoch 1."
    assert res.message.split(" Lower lr")[0].endswith(kept)


def test_pyro_checks_flags_come_back_after_an_error_and_torchs_own(small):
    """torch's own flag, set apart from Pyro's, is as it was after fit; so are both after an
    error inside an epoch run with the checks off."""
    binary = pv.data.from_arrays((small.train.x > 0.5).astype(np.float32))

    def vae(lik):
        return pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="pyro",
                             likelihood=lik)
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        pv.fit(vae(pv.likelihoods.Bernoulli()), binary, epochs=2, batch_size=16,
               progress=False)
        assert torch.distributions.Distribution._validate_args is False
        assert pyro.infer.is_validation_enabled()
    finally:
        torch.distributions.Distribution.set_default_validate_args(True)
    with pytest.raises(KeyError, match="a user's bug"):
        pv.fit(vae(_NaNFromStep(7, error=KeyError("a user's bug"))), binary, epochs=3,
               batch_size=16, progress=False)
    assert torch.distributions.Distribution._validate_args is True
    assert pyro.infer.is_validation_enabled() and pyro.poutine.is_validation_enabled()


class _RecordsGrads(pv.likelihoods.Bernoulli):
    """A user's likelihood that records, at each step's forward pass, whether any parameter
    still holds a gradient tensor from the step before."""
    held = []

    def distribution(self, bk, params, mask=None, prefix="likelihood"):
        store = pyro.get_param_store()
        _RecordsGrads.held.append(any(store.get_param(k).unconstrained().grad is not None
                                      for k in store.keys()))
        return super().distribution(bk, params, mask=mask, prefix=prefix)


def test_pyro_steps_keep_no_gradients_between_them(small):
    """After each update the gradients are dropped (the next backward writes fresh ones, as
    torch's ``zero_grad(set_to_none=True)``), not kept as zero tensors to add into."""
    _RecordsGrads.held.clear()
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="pyro",
                        likelihood=_RecordsGrads())
    binary = pv.data.from_arrays((small.train.x > 0.5).astype(np.float32))
    res = pv.fit(vae, binary, epochs=2, batch_size=16, progress=False, seed=0)
    assert len(_RecordsGrads.held) >= 8 and not any(_RecordsGrads.held)
    assert res.status == "completed"
