"""Diagnostics on a linear-Gaussian model whose posterior is known in closed form.

z ~ N(0, I_2), x | z ~ N(W z, sigma^2 I_4) with orthogonal columns of W, so
p(z|x) = N(C W^T x / sigma^2, C) with diagonal C = (I + W^T W / sigma^2)^-1.
"""
import warnings

import arviz as az
import numpy as np
import pytest

import probvae as pv
from probvae.inference import FitResult
from probvae.models import CustomModel

W = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 2.0]], np.float32)
SIGMA = 0.5
COV = 1.0 / (1.0 + (W ** 2).sum(0) / SIGMA ** 2)           # (2,)
A = (COV[:, None] * W.T / SIGMA ** 2).astype(np.float32)      # posterior mean = x @ A.T


def true_posterior(x):
    return x @ A.T, np.sqrt(COV) * np.ones((len(x), 1))


def linear_gaussian(backend, scale_factor=1.0, w=W, guide_loc=None):
    """A FitResult around a hand-written model/guide pair (no learned parameters)."""
    bk = pv.backends.get(backend)
    a = A if guide_loc is None else guide_loc
    wt, at = bk.asarray(w.T), bk.asarray(a.T)
    s = bk.asarray(np.sqrt(COV) * scale_factor)

    def model(x=None, n=None):
        with bk.plate("data", x.shape[0] if x is not None else n):
            z = bk.sample("z", bk.dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            bk.sample("x", bk.dist.Normal(z @ wt, SIGMA).to_event(1), obs=x)

    def guide(x=None, n=None):
        with bk.plate("data", x.shape[0]):
            bk.sample("z", bk.dist.Normal(x @ at, s).to_event(1))

    return FitResult(CustomModel(model, guide, backend), bk.new_params(), {}, "elbo")


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20, 2))
    x = (z @ W.T + SIGMA * rng.normal(size=(20, 4))).astype(np.float32)
    return x, np.arange(20) % 3


def test_dims_coords_and_groups(backend, xy, tmp_path):
    x, y = xy
    idata = pv.diagnostics.latent_posterior(linear_gaussian(backend), pv.data.from_arrays(x, y),
                                            num_samples=200, chains=4)
    z = idata.posterior["z"]
    assert z.dims == ("chain", "draw", "obs", "latent") and z.shape == (4, 50, 20, 2)
    assert list(idata.posterior["label"].values) == list(y)
    assert idata.observed_data["x"].dims == ("obs", "feature")
    assert idata.sample_stats["log_weight"].dims == ("chain", "draw", "obs")
    np.testing.assert_allclose(idata.observed_data["x"].values, x)
    summary = az.summary(idata, var_names=["z"])
    assert len(summary) == 40 and summary["r_hat"].max() < 1.1
    path = tmp_path / "post.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    np.testing.assert_allclose(back.posterior["z"].values, z.values)


def test_exact_guide_has_low_khat_and_its_iwae_is_log_evidence(backend, xy):
    x, _ = xy
    idata = pv.diagnostics.latent_posterior(linear_gaussian(backend), x, num_samples=400)
    k = pv.diagnostics.khat(idata)
    assert k.dims == ("obs",) and float(k.max()) < 0.5
    # with q = p(z|x) every weight equals p(x): the IWAE bound is exact
    cov_x = W @ W.T + SIGMA ** 2 * np.eye(4)
    _, logdet = np.linalg.slogdet(cov_x)
    log_px = -0.5 * (np.einsum("ni,ij,nj->n", x, np.linalg.inv(cov_x), x) + logdet
                     + 4 * np.log(2 * np.pi))
    ll = pv.diagnostics.iwae_log_likelihood(idata).values
    np.testing.assert_allclose(ll, log_px, atol=1e-3)


def test_poor_guide_has_high_khat(backend, xy):
    x, _ = xy
    idata = pv.diagnostics.latent_posterior(linear_gaussian(backend, scale_factor=0.2), x,
                                            num_samples=1000)
    k = pv.diagnostics.khat(idata)
    assert float((k > pv.diagnostics.KHAT_THRESHOLD).mean()) >= 0.75 and float(k.median()) > 0.8
    import matplotlib
    matplotlib.use("Agg")
    az.plot_khat(k.values)
    az.plot_forest(idata, var_names=["z"], coords={"obs": [0, 1]})


def test_nuts_reference_recovers_the_closed_form(backend, xy):
    x = xy[0][:3]
    n = 300 if backend == "numpyro" else 150
    ref = pv.diagnostics.reference_posterior(linear_gaussian(backend), x, chains=2,
                                             num_samples=n, num_warmup=n)
    z = ref.posterior["z"]
    mean, sd = true_posterior(x)
    np.testing.assert_allclose(z.mean(("chain", "draw")).values, mean, atol=0.1)
    np.testing.assert_allclose(z.std(("chain", "draw")).values, sd, rtol=0.25)
    assert float(az.rhat(ref)["z"].max()) < 1.1
    cmp = pv.diagnostics.compare_posteriors(
        pv.diagnostics.latent_posterior(linear_gaussian(backend), x, num_samples=400), ref)
    assert cmp.attrs["mean_abs_mean_diff"] < 0.3 and 0.75 < cmp.attrs["mean_sd_ratio"] < 1.3


def test_collapsed_dim_is_reported(backend, xy):
    x, _ = xy
    w = W.copy()
    w[:, 1] = 0.0                                   # z_1 does not reach x
    loc = A.copy()
    loc[1] = 0.0                                    # and the guide leaves it at the prior
    res = linear_gaussian(backend, w=w, guide_loc=loc)
    with pytest.warns(UserWarning, match=r"latent dims \[1\] are inactive"):
        col = pv.diagnostics.collapse(res, x, num_samples=50)
    assert list(col["active"].values) == [True, False]
    assert col.attrs["active_units"] == 1


def test_report_and_ssvae_posterior(digits):
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(16,))
    res = pv.fit(ss, digits.train, labels=digits.train.label_subset(2), objective="enum",
                 epochs=1, progress=False)
    idata = pv.diagnostics.latent_posterior(res, digits.test.x[:5], num_samples=40)
    assert idata.posterior["y"].dims == ("chain", "draw", "obs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = pv.diagnostics.report(res, digits.test.x[:10], num_samples=40)
    assert rep["khat"].shape == (10,) and rep["kl"].shape == (2,)
    assert 0 <= float(rep["fraction_khat_above_0.7"]) <= 1


def test_cli_diagnose_writes_table_and_plots(tmp_path, capsys):
    from probvae.applications.cli import main
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--hidden", "16", "--latent-dim", "2",
                 "--eval-samples", "5", "--no-progress", "--out", str(run)]) == 0
    out = tmp_path / "diag"
    assert main(["diagnose", str(run), "--out", str(out), "--n", "8", "--num-samples", "40"]) == 0
    for name in ("report.txt", "per_observation.csv", "per_latent_dim.csv", "report.json",
                 "latent_posterior.nc", "khat.png", "forest.png", "pair_obs0.png"):
        assert (out / name).stat().st_size > 0, name
    assert "k-hat > 0.7" in capsys.readouterr().out


def test_amortization_gap_is_zero_for_the_exact_guide_and_positive_for_a_poor_one(backend, xy):
    x = xy[0][:10]
    exact = pv.diagnostics.amortization_gap(linear_gaussian(backend), x, steps=100,
                                            num_samples=400)
    assert abs(exact.attrs["mean_gap"]) < 0.05
    poor = pv.diagnostics.amortization_gap(linear_gaussian(backend, scale_factor=0.2), x,
                                           steps=200, num_samples=400)
    assert poor.attrs["mean_gap"] > 1.0
    assert float(poor["gap"].min()) > 0.3


def test_ssvae_amortization_gap_and_reference(backend, digits):
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(16,), backend=backend)
    res = pv.fit(ss, digits.train, labels=digits.train.label_subset(2), objective="enum",
                 epochs=1, progress=False)
    gap = pv.diagnostics.amortization_gap(res, digits.test.x[:4], steps=30, num_samples=100)
    assert np.all(np.isfinite(gap["gap"].values)) and gap.attrs["mean_gap"] > -0.5
    ref = pv.diagnostics.reference_posterior(res, digits.test.x[:2], chains=1, num_samples=30,
                                             num_warmup=30)
    assert ref.posterior["z"].shape == (1, 30, 2, 2)
    import matplotlib
    matplotlib.use("Agg")
    az.plot_posterior(ref, var_names=["z"], coords={"obs": [0]})
