"""Tables: mixed-type columns with gaps, column likelihoods, DataFrames in and out."""
import warnings

import numpy as np
import pandas as pd
import pytest

import probvae as pv
from probvae.data import from_frame


def make_frame(n=120, seed=0, gaps=0.15):
    rng = np.random.default_rng(seed)
    group = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(10, 2, n) + (group == "red") * 3
    df = pd.DataFrame({
        "size": size,
        "weight": np.exp(rng.normal(1, 0.5, n)),
        "visits": rng.poisson(3, n),
        "member": rng.random(n) < 0.4,
        "group": pd.Categorical(group),
        "city": rng.choice(["A", "B"], n),
        "source": "web",
    })
    df.index = np.arange(100, 100 + n)                 # not a RangeIndex: it must survive
    holes = rng.random((n, 4)) < gaps
    for j, col in enumerate(["size", "visits", "group", "city"]):
        df.loc[df.index[holes[:, j]], col] = np.nan
    return df


@pytest.fixture(scope="module")
def frame():
    return make_frame()


@pytest.fixture(scope="module")
def table(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_frame(frame, kinds={"weight": "positive"}, seed=0)


def test_kinds_are_inferred_and_overridden(table):
    assert table.kinds == {"size": "real", "weight": "positive", "visits": "count",
                           "member": "binary", "group": "categorical", "city": "binary",
                           "source": "constant"}
    assert table.width == 1 + 1 + 1 + 1 + 3 + 1
    assert len(table.train) + len(table.valid) + len(table.test) == 120
    assert set(table.frames) == {"train", "valid", "test"}


def test_constant_column_is_warned_and_restored(frame):
    with pytest.warns(UserWarning, match="'source' holds one value"):
        t = from_frame(frame, split=False)
    back = t.decode(t.encode(frame))
    assert (back["source"] == "web").all()


def test_encode_decode_round_trip(table, frame):
    complete = frame.dropna()
    back = table.decode(table.encode(complete), index=complete.index)
    assert list(back.columns) == list(frame.columns)
    assert (back.index == complete.index).all()
    for col in ("visits", "member", "group", "city", "source"):
        assert (back[col].astype(str) == complete[col].astype(str)).all(), col
    np.testing.assert_allclose(back["size"], complete["size"], rtol=1e-5)
    np.testing.assert_allclose(back["weight"], complete["weight"], rtol=1e-5)
    assert str(back["group"].dtype) == "category" and back["member"].dtype == bool


@pytest.mark.parametrize("case, df, message", [
    ("duplicate", pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]), "duplicate column names"),
    ("all missing", pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [np.nan] * 3}),
     "'b' has no observed value"),
    ("dates", pd.DataFrame({"d": pd.date_range("2020", periods=3), "a": [1.0, 2, 3]}),
     "dates or times"),
    ("free text", pd.DataFrame({"t": [f"note {i}" for i in range(60)]}), "too many"),
    ("unknown kind", pd.DataFrame({"a": [1.0, 2.5, 3.0]}), "unknown kinds"),
])
def test_bad_tables_fail_clearly(case, df, message):
    kinds = {"a": "fuzzy"} if case == "unknown kind" else None
    with pytest.raises(ValueError, match=message):
        from_frame(df, kinds=kinds)


def test_columns_likelihood_masks_whole_columns(table, backend):
    bk = pv.backends.get(backend)
    lik = pv.likelihoods.Columns(table.columns)
    x = np.nan_to_num(table.train.x[:5])
    rng = np.random.default_rng(0)
    params = tuple(bk.asarray(np.abs(v) + 0.5 if h.transform == "positive" else v)
                   for h in lik.heads(table.width)
                   for v in [rng.normal(size=(5, h.size)).astype(np.float32)])
    mask = np.ones_like(x, bool)
    mask[0, 4:7] = False                                # row 0: "group" (one-hot) missing

    def logp(m, value):
        fn = bk.seed(bk.with_params(lambda: lik.distribution(bk, params, mask=m)
                                    .log_prob(bk.asarray(value)), bk.new_params()), 0)
        return np.asarray(bk.to_numpy(fn()))
    full, masked = logp(None, x), logp(bk.asarray_bool(mask), x)
    assert np.allclose(full[1:], masked[1:]) and not np.isclose(full[0], masked[0])
    other = x.copy()
    other[0, 4:7] = [0, 0, 1] if x[0, 6] == 0 else [1, 0, 0]
    assert logp(bk.asarray_bool(mask), other)[0] == masked[0]     # its value is ignored
    assert logp(None, other)[0] != full[0]


@pytest.fixture(scope="module")
def fitted_table(table):
    cache = {}

    def get(backend):
        if backend not in cache:
            vae = pv.models.VAE.for_table(table, latent_dim=2, hidden=(16,), backend=backend)
            cache[backend] = pv.fit(vae, table.train, missing="mask", epochs=5, batch_size=32,
                                    progress=False)
        return cache[backend]
    return get


def test_impute_returns_the_frame_with_gaps_filled(backend, fitted_table, frame):
    res = fitted_table(backend)
    filled = pv.impute(res, frame, num_samples=10)
    assert list(filled.columns) == list(frame.columns) and (filled.index == frame.index).all()
    assert filled.isna().sum().sum() == 0
    assert filled.dtypes.to_dict() == frame.dtypes.to_dict()
    observed = frame.notna()
    for col in frame.columns:
        assert (filled.loc[observed[col], col] == frame.loc[observed[col], col]).all(), col
    assert set(filled["group"].unique()) <= {"red", "green", "blue"}
    draws = pv.impute(res, frame.iloc[:10], num_samples=10, multiple=3)
    assert len(draws) == 3 and all(d.isna().sum().sum() == 0 for d in draws)


def test_synthesize_gives_rows_of_the_table(backend, fitted_table, frame):
    syn = pv.synthesize(fitted_table(backend), 50, seed=1)
    assert list(syn.columns) == list(frame.columns) and len(syn) == 50
    assert syn.dtypes.to_dict() == frame.dtypes.to_dict()
    assert set(syn["city"]) <= {"A", "B"} and (syn["source"] == "web").all()
    assert (syn["visits"] >= 0).all() and (syn["weight"] > 0).all()


def test_evaluate_and_save_load_a_table_model(fitted_table, table, frame, tmp_path):
    res = fitted_table("numpyro")
    scores = pv.evaluate(res, table.test, num_samples=8)
    assert np.isfinite(scores["log_likelihood"])
    assert np.isfinite(pv.evaluate(res, frame.iloc[:10], num_samples=4)["elbo"])  # a DataFrame
    loaded = pv.load(pv.save(res, tmp_path / "run"))
    assert loaded.model.likelihood.columns == res.model.likelihood.columns
    np.testing.assert_allclose(pv.encode(loaded, table.test), pv.encode(res, table.test),
                               rtol=1e-5, atol=1e-6)


def test_unseen_category_is_an_error_for_impute(fitted_table, frame):
    bad = frame.iloc[:3].copy()
    bad["group"] = bad["group"].astype(object)
    bad.iloc[0, bad.columns.get_loc("group")] = "purple"
    with pytest.raises(ValueError, match="'group' has levels not seen in training: \\['purple'\\]"):
        pv.impute(fitted_table("numpyro"), bad)


def test_estimators_take_dataframes_with_gaps(frame):
    from sklearn.pipeline import make_pipeline
    from sklearn.linear_model import LinearRegression
    tiny = dict(latent_dim=2, hidden=(16,), epochs=3, batch_size=32)
    det = pv.anomaly.VAEAnomalyDetector(num_samples=8, **tiny).fit(frame)
    scores = det.score_samples(frame)
    assert scores.shape == (120,) and np.isfinite(scores).all()
    odd = frame.iloc[:2].copy()
    odd["city"] = odd["city"].astype(object)
    odd.iloc[0, odd.columns.get_loc("city")] = "Z"
    with pytest.warns(UserWarning, match="never seen"):
        s = det.score_samples(odd)
    assert s[0] == -np.inf and np.isfinite(s[1])
    assert pv.features.VAEEncoder(**tiny).fit(frame).transform(frame).shape == (120, 2)
    imp = pv.impute.VAEImputer(num_samples=8, **tiny).fit(frame)
    out = imp.transform(frame)
    assert isinstance(out, pd.DataFrame) and out.isna().sum().sum() == 0
    x = frame[["size", "visits"]].to_numpy()
    model = make_pipeline(pv.impute.VAEImputer(num_samples=4, **tiny), LinearRegression())
    model.fit(x, np.nan_to_num(frame["weight"].to_numpy()))
    assert model.predict(x[:4]).shape == (4,)


@pytest.mark.parametrize("values, kind", [
    (list(range(18, 91)) * 3, "real"),                      # an age in years: a measurement
    ([0, 1, 2, 3, 5, 8, 13, 20] * 5, "count"),              # small non-negative integers
    ([0] * 10 + list(range(21, 100)), "count"),             # piled at zero: days in hospital
    ([1] + list(range(25, 100)), "real"),                   # few zeros, many levels: a measure
    ([120, 135, 150, 118, 142, 160, 128] * 4, "real"),      # a blood pressure in mmHg
    ([-3, 0, 2, 5] * 3, "real"),                            # negative integers: never counts
])
def test_counts_are_small_non_negative_integers(values, kind):
    assert pv.data.tables.infer_kind(pd.Series(values, name="v")) == kind


def test_from_frame_prints_each_kind_and_why_and_a_table_prints_concisely(capsys, frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = from_frame(frame.assign(age=np.arange(len(frame)) % 70 + 18), kinds={"weight": "positive"})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"from_frame: 8 columns, {len(frame)} rows" and len(out) == 9
    lines = {line.split()[0]: line for line in out[1:]}
    assert lines["weight"].split()[1:] == ["positive", "given", "by", "kinds="]
    assert "a measurement, not a count" in lines["age"] and lines["age"].split()[1] == "real"
    assert lines["visits"].split()[1] == "count"
    text = repr(t)
    assert text.startswith("Table of 8 columns") and "train" in text and "[" not in text
    assert len(text.splitlines()) == 9
    from_frame(frame, verbose=False)
    assert capsys.readouterr().out == ""
