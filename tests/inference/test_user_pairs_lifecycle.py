"""A user's pairs that the built-in models do not resemble go through everything after
training, on both backends: a discrete latent summed out by enumeration beside a continuous
one (``user_pairs.mixture``), and a pair that takes a per-example condition
(``user_pairs.conditioned``). Each: fit, evaluate, encode, sample, latent_posterior, compare,
save / load / continue, and the beta objective's KL warm-up."""
import numpy as np
import pytest

import probvae as pv
from user_pairs import conditioned, mixture

ROWS = 96


@pytest.fixture(scope="module")
def digits():
    return pv.data.load("digits", seed=0)


def _data(kind, split):
    x = split.x[:ROWS]
    if kind == "mixture":
        return x
    cond = np.eye(3, dtype=np.float32)[np.arange(len(x)) % 3]
    return {"x": x, "condition": cond}


PAIRS = {"mixture": (mixture, "enum"), "conditioned": (conditioned, "elbo")}


@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_a_users_pair_lives_its_whole_life(kind, backend, digits, tmp_path):
    make, objective = PAIRS[kind]
    train, test = _data(kind, digits.train), _data(kind, digits.test)
    fit = dict(backend=backend, objective=objective, batch_size=32, lr=1e-2, seed=0,
               validation=None, progress=False)
    res = pv.fit(make(backend), train, epochs=2, **fit)
    assert np.all(np.isfinite(res.history["train_loss"]))
    if kind == "mixture":             # summed out in the model: q has only z to give
        assert tuple(res.model.contract.latent_names) == ("z",)
    scores = pv.evaluate(res, test, num_samples=8)
    assert np.isfinite(scores["elbo"]) and np.isfinite(scores["log_likelihood"])
    assert set(scores["kl_per_site"]) == {"z"}
    z = pv.encode(res, test)
    assert z.shape == (ROWS, 2) and np.all(np.isfinite(z))
    assert pv.sample(res, n=4, seed=0).shape == (4, 64)
    idata = pv.diagnostics.latent_posterior(res, test if kind == "mixture" else
                                            {k: v[:5] for k, v in test.items()}, num_samples=10)
    assert idata.posterior["z"].shape == (1, 10, 5 if kind != "mixture" else ROWS, 2)
    other = pv.fit(make(backend), train, epochs=1, **fit)
    table = pv.diagnostics.compare({"two": res, "one": other}, test, num_samples=8)
    assert set(table.index) == {"one", "two"}
    # save, load with the functions passed again, continue: equal to an unbroken run
    loaded = pv.load(pv.save(res, tmp_path / "run"), model=make(backend))
    more = pv.fit(loaded, train, epochs=3, progress=False)
    full = pv.fit(make(backend), train, epochs=3, **fit)
    np.testing.assert_allclose(more.history["train_loss"], full.history["train_loss"],
                               rtol=1e-5)
    # the beta objective scales the pair's latents from outside, with a warm-up
    warm = pv.fit(make(backend), train, epochs=3, **{**fit, "objective": "beta"}, warmup=2)
    assert warm.history["kl_weight"][0] < warm.history["kl_weight"][-1] == 1.0
