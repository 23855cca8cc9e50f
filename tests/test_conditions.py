"""Conditions: a per-example ``condition`` (a batch key) through fit, scoring and generation.

The built-in conditional VAE (``VAE(condition_dim=K)``, Sohn et al. 2015) on both backends:
fit / evaluate / encode / reconstruct / sample / decode / synthesize / impute with
``condition=``, validation rows that keep their conditions, save / load / continue, the clear
errors, class-conditional samples that look like their class, and a table conditioned on some
of its columns (``VAE.for_table(table, condition=[...])``, ``pv.synthesize(res, n,
condition=df)``).
"""
import numpy as np
import pandas as pd
import pytest

import probvae as pv
from probvae import batch as batching
from probvae.inference.inputs import hold_out

K = 10


@pytest.fixture(scope="module")
def digits():
    return pv.data.load("digits", seed=0)


def _cvae(backend, **kw):
    return pv.models.VAE(input_dim=64, latent_dim=3, hidden=(16,), condition_dim=K,
                         backend=backend, **kw)


def _onehot(split, rows=None):
    y = split.y if rows is None else split.y[:rows]
    return pv.data.one_hot(y, K)


def test_one_hot():
    assert pv.data.one_hot([1, 0], 3).tolist() == [[0, 1, 0], [1, 0, 0]]
    assert pv.data.one_hot(2, 3).shape == (1, 3)
    with pytest.raises(ValueError, match="0..2"):
        pv.data.one_hot([3], 3)


def test_a_conditional_vae_lives_its_whole_life(backend, digits):
    train, test = digits.train[:200], digits.test[:40]
    c_train, c_test = _onehot(train), _onehot(test)
    fit = dict(condition=c_train, epochs=2, batch_size=32, seed=0, progress=False)
    res = pv.fit(_cvae(backend), train, **fit)          # "auto": rows held out with theirs
    assert res.options["holdout"] == 30 and np.all(np.isfinite(res.history["valid_loss"]))
    scores = pv.evaluate(res, test, num_samples=8, condition=c_test)
    assert np.isfinite(scores["elbo"]) and scores["log_likelihood"] >= scores["elbo"]
    assert pv.encode(res, test, condition=c_test).shape == (40, 3)
    assert pv.reconstruct(res, test.x[:5], condition=c_test[:5]).shape == (5, 64)
    # one condition row for every sample, or one per sample
    one = pv.sample(res, n=6, seed=1, condition=pv.data.one_hot(3, K))
    assert one.shape == (6, 64)
    each = pv.sample(res, n=6, seed=1, condition=np.repeat(pv.data.one_hot(3, K), 6, 0))
    np.testing.assert_allclose(one, each, rtol=1e-6)
    assert not np.allclose(one, pv.sample(res, n=6, seed=1, condition=pv.data.one_hot(4, K)))
    assert pv.decode(res, np.zeros((4, 3)), condition=pv.data.one_hot([0, 1, 2, 3], K)).shape \
        == (4, 64)
    assert pv.synthesize(res, 5, condition=c_test[:5]).shape == (5, 64)
    assert pv.interpolate(res, test.x[0], test.x[1], steps=4, condition=c_test[0]).shape \
        == (4, 64)
    assert pv.traverse(res, x=test.x[0], values=[-1, 1], condition=c_test[0]).shape \
        == (3, 2, 64)
    gappy = test.x[:6].copy()
    gappy[:, :8] = np.nan
    filled = pv.impute(res, gappy, num_samples=8, condition=c_test[:6])
    assert filled.shape == (6, 64) and not np.isnan(filled).any()
    assert pv.impute(res, gappy, num_samples=8, multiple=2, condition=c_test[:6]).shape \
        == (2, 6, 64)


def test_a_conditional_vae_saves_loads_and_continues(backend, digits, tmp_path):
    train, test = digits.train[:200], digits.test[:40]
    c_train, c_test = _onehot(train), _onehot(test)
    fit = dict(condition=c_train, epochs=2, batch_size=32, seed=0, progress=False)
    res = pv.fit(_cvae(backend), train, **fit)
    loaded = pv.load(pv.save(res, tmp_path / "run"))
    assert loaded.model.condition_dim == K
    np.testing.assert_allclose(pv.encode(loaded, test, condition=c_test),
                               pv.encode(res, test, condition=c_test), rtol=1e-5, atol=1e-6)
    more = pv.fit(loaded, train, condition=c_train, epochs=3, progress=False)
    full = pv.fit(_cvae(backend), train, **{**fit, "epochs": 3})
    np.testing.assert_allclose(more.history["train_loss"], full.history["train_loss"],
                               rtol=1e-5)


def test_validation_keeps_each_rows_condition(backend, digits):
    x = np.tile(np.linspace(0.05, 0.95, 64, dtype=np.float32), (200, 1))
    c = np.arange(200, dtype=np.float32)[:, None]
    x[:, 0] = c[:, 0] / 200                       # row i: x[i, 0] = condition[i] / 200
    train, valid = hold_out(batching.make(x=x, condition=c), 30, seed=0)
    for part in (train, valid):
        np.testing.assert_allclose(part["x"][:, 0], part["condition"][:, 0] / 200)
    # given validation data with their condition: a pair (data, condition)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), condition_dim=1,
                        backend=backend)
    res = pv.fit(vae, x[:150], condition=c[:150], validation=(x[150:], c[150:]), epochs=1,
                 progress=False)
    assert np.isfinite(res.history["valid_loss"][0])
    with pytest.raises(ValueError, match=r"validation=\(x_valid, condition_valid\)"):
        pv.fit(vae, x[:150], condition=c[:150], validation=x[150:], epochs=1, progress=False)


def test_clear_errors(digits):
    train = digits.train[:64]
    cvae, plain = _cvae("numpyro"), pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))
    with pytest.raises(ValueError, match=r"is conditional: pass condition=.*one_hot\(y, 10\)"):
        pv.fit(cvae, train, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"takes no condition: drop condition=.*condition_dim=10"):
        pv.fit(plain, train, condition=_onehot(train), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"looks like class labels.*one_hot\(labels, 10\)"):
        pv.fit(cvae, train, condition=train.y, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"shape \(64, 10\)"):
        pv.fit(cvae, train, condition=np.zeros((64, 3)), epochs=1, progress=False)
    with pytest.raises(ValueError, match="labels= is for models.*condition=pv.data.one_hot"):
        pv.fit(plain, train, labels=[0, 1], epochs=1, progress=False)
    with pytest.raises(ValueError, match="pseudo-inputs"):
        _cvae("numpyro", prior="vamp")
    res = pv.fit(cvae, train, condition=_onehot(train), epochs=1, validation=None,
                 progress=False)
    for call in (lambda: pv.sample(res, n=2), lambda: pv.encode(res, train),
                 lambda: pv.decode(res, np.zeros((2, 3))),
                 lambda: pv.evaluate(res, train, num_samples=2)):
        with pytest.raises(ValueError, match="is conditional: pass condition="):
            call()
    with pytest.raises(ValueError, match="3 rows for 5 examples"):
        pv.sample(res, n=5, condition=_onehot(train, 3))


def test_class_conditional_samples_look_like_their_class(digits):
    """A short training already puts the samples of class c nearest to class c's real digits
    far more often than chance (0.1); bench/conditions.py measures it with a classifier."""
    from sklearn.linear_model import LogisticRegression
    vae = pv.models.VAE(input_dim=64, latent_dim=4, hidden=(64,), condition_dim=K)
    res = pv.fit(vae, digits.train, condition=_onehot(digits.train), epochs=40, lr=3e-3,
                 validation=None, seed=0, progress=False)
    labels = np.repeat(np.arange(K), 20)
    samples = pv.sample(res, n=len(labels), seed=0, condition=pv.data.one_hot(labels, K))
    clf = LogisticRegression(max_iter=500).fit(digits.train.x, digits.train.y)
    share = (clf.predict(samples) == labels).mean()
    assert share > 0.5, share


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    kind = rng.choice(["a", "b", "c"], 300)
    size = np.select([kind == "a", kind == "b"], [1.0, 5.0], 10.0) + rng.normal(0, 0.3, 300)
    return pd.DataFrame({"size": size, "kind": kind, "flag": rng.random(300) < 0.3,
                         "age": rng.normal(40, 10, 300)})


def test_a_table_synthesized_for_given_column_values(backend, frame, tmp_path):
    table = pv.data.from_frame(frame, verbose=False)
    vae = pv.models.VAE.for_table(table, latent_dim=2, hidden=(32,), condition=["kind", "age"],
                                  backend=backend)
    assert (vae.input_dim, vae.condition_dim) == (2, 4)      # size, flag | kind (3), age
    res = pv.fit(vae, table.frames["train"], epochs=60, lr=1e-2, batch_size=64,
                 validation=table.frames["valid"], progress=False)
    assert np.isfinite(pv.evaluate(res, table.frames["test"], num_samples=8)["elbo"])
    rows = {k: pv.synthesize(res, 100, seed=0, condition=pd.DataFrame({"kind": [k],
                                                                      "age": [30.0]}))
            for k in ("a", "c")}
    assert list(rows["a"].columns) == ["size", "flag", "kind", "age"]
    assert (rows["c"]["kind"] == "c").all() and (rows["c"]["age"] == 30.0).all()
    assert rows["c"]["size"].mean() > rows["a"]["size"].mean() + 2     # learned from kind
    per_row = pv.synthesize(res, 3, condition=table.frames["test"][:3])
    assert per_row["kind"].tolist() == table.frames["test"]["kind"][:3].tolist()
    loaded = pv.load(pv.save(res, tmp_path / "run"))
    assert loaded.model.condition_table.names == ["kind", "age"]
    gappy = table.frames["test"][:5].copy()
    gappy.loc[gappy.index[:2], "size"] = np.nan
    filled = pv.impute(loaded, gappy, num_samples=8)
    assert not filled["size"].isna().any() and filled["kind"].tolist() == gappy["kind"].tolist()
    with pytest.raises(ValueError, match="condition= names columns"):
        pv.models.VAE.for_table(table, condition=["colour"])


def test_a_users_pair_takes_condition_as_an_argument(backend, digits):
    from user_pairs import conditioned
    x = digits.train.x[:64]
    c = np.eye(3, dtype=np.float32)[np.arange(64) % 3]
    res = pv.fit(conditioned(backend), x, condition=c, backend=backend, epochs=1,
                 validation=None, progress=False)
    assert pv.encode(res, x, condition=c).shape == (64, 2)
    assert pv.sample(res, n=3, condition=c[:1]).shape == (3, 64)
