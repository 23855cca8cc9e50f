"""Training length that fits the data (issue 36, point 1): left to its defaults, fit chooses
the epochs from the data's size and, for small data, holds out validation rows of its own to
stop early on, keeping the best epoch; a continued or resumed fit holds out the same rows."""
import numpy as np
import pandas as pd
import pytest

import probvae as pv
from probvae import batch as batching
from probvae.inference import config
from probvae.inference.inputs import hold_out
from user_pairs import hierarchy


def test_the_epoch_rule_keeps_large_data_at_50_epochs_and_gives_small_data_hundreds():
    assert config.default_epochs(60_000, 128) == 50            # MNIST: 469 steps an epoch
    assert config.default_epochs(1_131, 128) == 500            # digits less its held-out tenth
    assert config.default_epochs(270, 128) == 1000             # a 300-row table: the ceiling
    assert config.default_epochs(40, 128) == 1000              # one (short) batch an epoch
    assert config.default_epochs(1_131, 32) == 115             # smaller batches, more steps
    rows = [50, 300, 1_000, 5_000, 20_000, 60_000, 10 ** 6]
    epochs = [config.default_epochs(n, 128) for n in rows]
    assert epochs == sorted(epochs, reverse=True)
    assert all(config.MIN_EPOCHS <= e <= config.MAX_EPOCHS for e in epochs)
    # steps: about TARGET_STEPS wherever neither bound applies
    steps = [config.default_epochs(n, 128) * (n // 128) for n in (2_000, 5_000)]
    assert all(abs(s - config.TARGET_STEPS) < 128 for s in steps)


def test_the_holdout_rule_is_a_tenth_of_small_data_and_none_of_large():
    assert [config.holdout_rows(n) for n in (64, 149, 150, 300, 1_257, 19_999, 20_000)] == [
        0, 0, 30, 30, 126, 2_000, 0]
    assert config.default_patience(1000) == 200 and config.default_patience(50) == 20


def test_held_out_rows_are_drawn_by_seed_and_stratified_by_labels():
    y = np.array([0] * 270 + [1] * 30)
    batch = batching.make(x=np.arange(300.0)[:, None], y=y)
    train, valid = hold_out(batch, 30, seed=3, y=y)
    assert (valid["y"] == 1).sum() == 3 and batching.size(train) == 270
    assert sorted(np.concatenate([train["x"], valid["x"]])[:, 0]) == list(range(300))
    again, other = hold_out(batch, 30, seed=3, y=y)[1], hold_out(batch, 30, seed=4, y=y)[1]
    assert np.array_equal(again["x"], valid["x"]) and not np.array_equal(other["x"], valid["x"])


@pytest.fixture(scope="module")
def table():
    """300 rows of noise in five columns, 30% of the cells missing: nothing to learn, so the
    held-out rows' loss stops improving within a few dozen epochs."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(300, 5)), columns=list("abcde"))
    return pv.data.from_frame(df.mask(rng.random(df.shape) < 0.3), split=False, verbose=False)


def test_a_300_row_table_with_defaults_trains_long_and_stops_early_on_its_own_rows(table,
                                                                                     capsys):
    vae = pv.models.VAE.for_table(table, latent_dim=2, hidden=(32,))
    res = pv.fit(vae, table.train, missing="mask")
    said = capsys.readouterr().err
    assert "1000 epochs" in said and "held out 30 of 300 rows (10%" in said
    assert res.options["epochs"] == 1000 and res.options["holdout"] == 30
    assert res.options["patience"] == 200
    assert res.status == "stopped_early"
    valid = res.history["valid_loss"]
    assert 100 < len(valid) < 1000                      # hundreds of epochs, not the ceiling
    best = int(np.argmin(valid))                        # kept; then 200 epochs no better
    assert len(valid) == best + 1 + 200 and res.best_epoch == best + 1     # (counted from 1)


def test_continuing_and_resuming_hold_out_the_same_rows(table, tmp_path):
    vae = pv.models.VAE.for_table(table, latent_dim=2, hidden=(8,))
    fit = lambda model, epochs, **kw: pv.fit(model, table.train, missing="mask",  # noqa: E731
                                             epochs=epochs, progress=False, **kw)
    full = fit(vae, 4)
    half = fit(vae, 2, checkpoint=tmp_path / "run")
    assert half.options["holdout"] == 30 and half.options["patience"] == 20
    for res in (fit(half, 4), fit(vae, 4, resume=tmp_path / "run")):
        assert res.options == full.options
        assert res.training_state.meta["fit"] == full.training_state.meta["fit"]
        assert res.history["valid_loss"] == full.history["valid_loss"]       # bit for bit
        a, b = res.param_values(), full.param_values()
        assert all(np.array_equal(a[k], b[k]) for k in b)
    # a run that held out none (validation=None: as every run before) resumes with none
    fit(vae, 2, validation=None, checkpoint=tmp_path / "all")
    res = fit(vae, 3, resume=tmp_path / "all")
    assert "holdout" not in res.options and res.history["valid_loss"] == []


def test_off_switches_and_what_gets_no_held_out_rows(table, digits, tmp_path):
    vae = pv.models.VAE.for_table(table, latent_dim=2, hidden=(8,))
    for off in (False, None):
        res = pv.fit(vae, table.train, missing="mask", validation=off, epochs=1, progress=False)
        assert "holdout" not in res.options and res.options["patience"] is None
    with pytest.raises(ValueError, match="validation takes data"):
        pv.fit(vae, table.train, missing="mask", validation="yes", progress=False)
    with pytest.raises(ValueError, match="patience .* needs validation data"):
        pv.fit(pv.models.VAE(input_dim=2, latent_dim=1, hidden=(4,)),
               np.zeros((20_000, 2), np.float32), patience=5, progress=False)
    # semi-supervised: no rows held out (its labelled rows are too few to spare)
    part = digits.train[:200]
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(8,))
    res = pv.fit(ss, part, labels=part.label_subset(n_per_class=2), epochs=1, progress=False)
    assert "holdout" not in res.options and res.history["valid_loss"] == []
    # a stream from disk: none either
    np.save(tmp_path / "x.npy", digits.train.x[:200])
    res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,)),
                 pv.data.stream(tmp_path / "x.npy", chunk_rows=200), epochs=1, progress=False)
    assert "holdout" not in res.options and res.history["valid_loss"] == []


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_held_out_rows_with_dynamic_binarization_labels_and_a_users_pair(backend, digits):
    part = digits.train[:200]                      # a Split with labels: stratified
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), likelihood="bernoulli",
                        backend=backend)
    res = pv.fit(vae, part, binarize="dynamic", epochs=2, progress=False)
    assert res.options["holdout"] == 30 and len(res.history["valid_loss"]) == 2
    assert np.isfinite(res.history["valid_loss"]).all()
    res = pv.fit(hierarchy(backend), part.x, backend=backend, epochs=1, batch_size=32,
                 progress=False)
    assert res.options["holdout"] == 30 and np.isfinite(res.history["valid_loss"]).all()
