"""Self-tuning imputation (issue 36, point 3): ``VAEImputer()`` and ``pv.impute(x)`` hide a
tenth of the observed cells, choose the latent size and the importance samples by their
imputations of those cells, and refit on every cell. The figures are in bench/defaults.py."""
import numpy as np
import pandas as pd
import pytest

import probvae as pv
from probvae.applications import imputation


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(80, 1))
    df = pd.DataFrame({"a": (z[:, 0] + 0.1 * rng.normal(size=80)),
                       "b": (2 * z[:, 0] + 0.1 * rng.normal(size=80)),
                       "c": rng.normal(size=80),
                       "kind": pd.Categorical(np.where(z[:, 0] > 0, "hi", "lo"))})
    gappy = df.copy()
    for name in df.columns:
        gappy.loc[rng.random(80) < 0.2, name] = np.nan
    return df, gappy


def test_hidden_cells_are_observed_ones_and_leave_every_row_a_cell(table):
    _, gappy = table
    hidden, cells = imputation._hide_cells(gappy, 0.5, seed=0)
    assert cells and all(not pd.isna(gappy.iat[i, j]) and pd.isna(hidden.iat[i, j])
                         for i, j in cells)
    assert hidden.notna().any(axis=1).all()                 # no row left empty
    assert hidden.isna().sum().sum() == gappy.isna().sum().sum() + len(cells)
    assert str(hidden["kind"].dtype) == "category"
    again, same = imputation._hide_cells(gappy, 0.5, seed=0)
    assert same == cells and again.equals(hidden)


def test_cell_loss_is_squared_sds_for_numbers_and_mismatches_for_levels():
    truth = pd.DataFrame({"x": [0.0, 2.0, 4.0], "k": ["u", "v", "u"]})
    filled = truth.copy()
    filled.loc[0, "x"] = 2.0                                  # one sd (sd of x is 2) off
    filled.loc[1, "k"] = "u"                                  # a wrong level
    assert imputation._cell_loss(truth, filled, [(0, 0), (1, 1)]) == pytest.approx(1.0)
    assert imputation._cell_loss(truth, filled, [(2, 0), (2, 1)]) == 0.0


def test_auto_settings_are_tuned_on_hidden_cells_then_refit(table, monkeypatch):
    monkeypatch.setattr(imputation, "LATENT_GRID", (1, 3))
    monkeypatch.setattr(imputation, "SAMPLES_GRID", (5, 40))
    _, gappy = table
    imp = pv.impute.VAEImputer(hidden=(8,), epochs=4, num_particles=2, seed=1).fit(gappy)
    tuning = imp.tuning_
    assert set(tuning["latent_dim"]) == {1, 3} and set(tuning["num_samples"]) == {5, 40, 200}
    assert tuning["hidden_cells"] > 0 and tuning["seconds"] > 0
    chosen = tuning["chosen"]
    assert chosen["latent_dim"] == min(tuning["latent_dim"], key=tuning["latent_dim"].get)
    best = min(tuning["num_samples"].values())
    assert tuning["num_samples"][chosen["num_samples"]] <= best * 1.005
    assert (imp.latent_dim_, imp.num_samples_) == (chosen["latent_dim"], chosen["num_samples"])
    assert imp.result_.model.latent_dim == imp.latent_dim_      # refit with the choice
    filled = imp.transform(gappy)
    assert filled.notna().all().all()
    fixed = pv.impute.VAEImputer(latent_dim=2, num_samples=8, hidden=(8,), epochs=2).fit(gappy)
    assert fixed.tuning_ is None and fixed.num_samples_ == 8


def test_impute_of_data_alone_fits_a_tuned_imputer(table, monkeypatch, capsys):
    monkeypatch.setattr(imputation, "LATENT_GRID", (2,))
    monkeypatch.setattr(imputation, "SAMPLES_GRID", (10,))
    truth, gappy = table
    filled = pv.impute(gappy, hidden=(8,), epochs=3, num_particles=2)   # smaller, shorter
    assert isinstance(filled, pd.DataFrame) and filled.notna().all().all()
    observed = gappy["a"].notna()
    assert (filled.loc[observed, "a"] == gappy.loc[observed, "a"]).all()
    assert "impute: chose latent_dim 2" in capsys.readouterr().err
    res = pv.fit(pv.models.VAE(input_dim=2, latent_dim=1, hidden=(4,)),
                 np.zeros((10, 2), np.float32), epochs=1, progress=False)
    with pytest.raises(TypeError, match="give the data to fill"):
        pv.impute(res)
    with pytest.raises(TypeError, match="VAEImputer's settings"):
        pv.impute(res, np.zeros((2, 2), np.float32), epochs=3)


def test_bad_auto_settings_are_named():
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1 or 'auto'"):
        pv.impute.VAEImputer(latent_dim="big").fit(np.array([[1.0, np.nan], [2.0, 3.0]]))
