"""FitResult's views for a user: the history as a DataFrame."""
import numpy as np
import pandas as pd
import pytest

import probvae as pv


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_history_frame_without_and_with_validation(backend):
    data = pv.data.load("digits", seed=0)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend=backend)
    res = pv.fit(vae, data.train[:200], epochs=2, batch_size=64, progress=False, seed=0,
                 validation=None)                     # (else fit holds out 30 of the rows)
    with pytest.raises(ValueError):        # what a user met before: lists of unequal length
        pd.DataFrame(res.history)
    frame = res.history_frame()
    assert frame.index.tolist() == [1, 2] and frame.index.name == "epoch"
    assert frame["valid_loss"].isna().all()
    np.testing.assert_allclose(frame["train_loss"], res.history["train_loss"])
    res2 = pv.fit(vae, data.train[:200], epochs=2, batch_size=64, progress=False, seed=0,
                  validation=data.valid[:100])
    frame2 = res2.history_frame()
    assert not frame2["valid_loss"].isna().any()
    assert set(frame2.columns) >= {"train_loss", "valid_loss", "kl_weight", "seconds"}
