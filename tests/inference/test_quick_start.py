"""NumPyro's programs compile quickly (XLA without LLVM's optimisations) or optimised, by a plan
made from the run's settings alone: all quick for short runs of small models, the quick ones for
epoch 0 while the optimised ones compile for later epochs, or optimised from the start for large
models. A seed and settings give the same numbers however the programs were obtained."""
import numpy as np
import pytest

import probvae as pv
from probvae.inference import compiling, numpyro_loop, objectives


def _loop(data, epochs=10_000, resuming=False, valid=None):
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="numpyro")
    elbo, schedule = objectives.build("elbo", vae.bk, max_plate_nesting=1)
    return numpyro_loop.Loop(vae.build(0), {"x": data.train.x[:256]},
                             None if valid is None else {"x": valid}, elbo, schedule,
                             batch_size=32, lr=1e-3, seed=0, epochs=epochs, resuming=resuming)


@pytest.fixture(scope="module")
def digits():
    return pv.data.load("digits", seed=0)


def test_the_plan_follows_the_expected_cost():
    demo = (39, 32, 522_868)           # steps an epoch, batch, state size of the make-demo VAE
    assert compiling.plan(4, *demo) == "quick"
    assert compiling.plan(100, *demo) == "tiered"
    assert compiling.plan(None, *demo) == "tiered"
    assert compiling.plan(100, 19, 64, 13_264) == "quick"      # an estimator's small VAE
    assert compiling.plan(1, 234, 256, 2_071_000) == "full"    # MNIST 784-400-50
    assert compiling.plan(4, *demo, convolutional=True) == "full"


def test_a_model_with_convolutions_compiles_optimised_even_for_one_epoch(digits):
    """XLA's quick CPU convolutions are many times slower (bench/conv_plan.py): a conv VAE's
    programs compile optimised from the start, however short the run."""
    vae = pv.models.VAE(input_dim=64, latent_dim=2, image_shape=(1, 8, 8), backend="numpyro",
                        encoder=pv.networks.Conv(channels=(4,), hidden=(8,)),
                        decoder=pv.networks.Conv(channels=(4,), hidden=(8,)))
    elbo, schedule = objectives.build("elbo", vae.bk, max_plate_nesting=1)
    loop = numpyro_loop.Loop(vae.build(0), {"x": digits.train.x[:64]}, None, elbo, schedule,
                             batch_size=32, lr=1e-3, seed=0, epochs=1)
    assert loop.plan == "full" and not loop._programs_of.quick
    assert _loop(digits, epochs=1).plan == "quick"          # the same run without convolutions


def test_a_tiered_plan_runs_quick_programs_in_epoch_0_and_optimised_ones_later(digits):
    loop = _loop(digits, valid=digits.valid.x[:64])
    assert loop.plan == "tiered"
    programs = loop._programs_of
    assert set(programs.quick) == {"epoch", "eval"} == set(programs.full)
    loop.epoch(0)
    quick_valid = loop.validate()
    assert loop._program("epoch", 0) is programs.get("epoch", quick=True)
    assert loop._program("epoch", 1) is programs.get("epoch")
    assert programs.get("epoch", quick=True) is not programs.get("epoch")
    loop.epoch(1)
    assert np.isfinite(loop.validate()) and np.isfinite(quick_valid)
    # the quick program computes what the optimised one does (to float32 rounding)
    state = loop.svi_state
    kw = {}
    quick = programs.get("eval", quick=True)(state, {"x": digits.valid.x[:64]}, kw)
    full = programs.get("eval")(state, {"x": digits.valid.x[:64]}, kw)
    np.testing.assert_allclose(float(quick), float(full), rtol=1e-5)


def test_a_short_run_compiles_only_quick_programs_even_when_resumed(digits):
    for resuming in (False, True):
        short = _loop(digits, epochs=3, resuming=resuming)
        assert short.plan == "quick"
        assert set(short._programs_of.quick) == {"epoch"} and not short._programs_of.full
        assert short._program("epoch", 2) is short._programs_of.get("epoch", quick=True)
        assert np.isfinite(short.epoch(2)[0])
        assert not short._programs_of.full


def test_a_tiered_run_of_one_epoch_compiles_no_optimised_program_and_resumed_no_quick_one(
        digits, monkeypatch):
    monkeypatch.setattr(compiling, "OPTIMISED_COST_S", 0.0)       # tiered even when short
    one = _loop(digits, epochs=1)
    assert one.plan == "tiered"
    assert set(one._programs_of.quick) == {"epoch"} and not one._programs_of.full
    assert np.isfinite(one.epoch(0)[0])
    resumed = _loop(digits, resuming=True)
    assert not resumed._programs_of.quick and set(resumed._programs_of.full) == {"epoch"}
    assert np.isfinite(resumed.epoch(2)[0])


def test_a_large_model_compiles_optimised_programs_from_the_start(digits, monkeypatch):
    monkeypatch.setattr(compiling, "QUICK_SAVES_S", 0.0)   # one quick epoch costs too much
    big = _loop(digits)
    assert big.plan == "full"
    assert not big._programs_of.quick and set(big._programs_of.full) == {"epoch"}
    assert big._program("epoch", 0) is big._programs_of.get("epoch")
    assert np.isfinite(big.epoch(0)[0])


@pytest.mark.parametrize("cost", [compiling.OPTIMISED_COST_S, 0.0], ids=["quick", "tiered"])
def test_the_same_seed_gives_the_same_numbers_in_a_fresh_loop_and_a_refit(digits, cost,
                                                                        monkeypatch):
    """A refit takes the compiled programs from memory; it must train exactly as the first."""
    monkeypatch.setattr(compiling, "OPTIMISED_COST_S", cost)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="numpyro")
    runs = [pv.fit(vae, digits.train, validation=digits.valid, epochs=3, batch_size=64,
                   seed=3, progress=False) for _ in range(2)]
    numpyro_loop._COMPILED.clear()                  # as in a new process
    runs.append(pv.fit(vae, digits.train, validation=digits.valid, epochs=3, batch_size=64,
                       seed=3, progress=False))
    for r in runs[1:]:
        assert r.history["train_loss"] == runs[0].history["train_loss"]
        assert r.history["valid_loss"] == runs[0].history["valid_loss"]



@pytest.mark.parametrize("plan_cost", [10.0, 0.0, -1.0])    # quick, tiered, full
def test_a_validation_set_longer_than_one_chunk_is_scored_whole(digits, monkeypatch, plan_cost):
    """The programs are compiled for the first validation chunk's shape: a shorter last chunk
    (MNIST's 6,000 rows are 4,096 + 1,904) must still be scored. (Each chunk draws its own z,
    so the figure matches one chunk's to the noise of one draw, not exactly; a last chunk left
    out would leave 64% of it.)"""
    monkeypatch.setattr(compiling, "OPTIMISED_COST_S", max(plan_cost, 0.0))
    monkeypatch.setattr(compiling, "QUICK_SAVES_S", 1.0 if plan_cost >= 0 else 0.0)

    def valid_losses():
        vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend="numpyro")
        res = pv.fit(vae, digits.train.x[:256], validation=digits.valid.x[:100], epochs=2,
                     batch_size=32, seed=0)
        return res.history["valid_loss"]

    whole = valid_losses()
    monkeypatch.setattr(numpyro_loop, "VALID_CHUNK", 64)
    chunked = valid_losses()
    assert np.all(np.isfinite(chunked))
    np.testing.assert_allclose(chunked, whole, rtol=0.2)
