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
                                            num_samples=200)
    z = idata.posterior["z"]
    assert z.dims == ("chain", "draw", "obs", "latent") and z.shape == (1, 200, 20, 2)
    assert list(idata.posterior["label"].values) == list(y)
    assert idata.observed_data["x"].dims == ("obs", "feature")
    assert idata.sample_stats["log_weight"].dims == ("chain", "draw", "obs")
    np.testing.assert_allclose(idata.observed_data["x"].values, x)
    # independent draws are one chain: r_hat has nothing to say (NaN), ESS is the draw count
    summary = az.summary(idata, var_names=["z"])
    assert len(summary) == 40 and summary["r_hat"].isna().all()
    path = tmp_path / "post.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    np.testing.assert_allclose(back.posterior["z"].values, z.values)
    assert {"prior", "guide", "sample_stats"} <= set(back.groups())
    np.testing.assert_allclose(back.sample_stats["khat"].values, idata.sample_stats["khat"].values)


def test_prior_guide_and_weights_groups_hold_the_closed_form(backend, xy):
    """A user pair: the prior group is the model run without the guide (N(0, I) here), the
    guide group holds q's loc and scale per example, sample_stats the k-hat and the ESS of the
    importance weights (all of them equal for the exact guide: ESS = the draw count)."""
    x, _ = xy
    idata = pv.diagnostics.latent_posterior(linear_gaussian(backend), x, num_samples=300, seed=3)
    prior = idata.prior["z"]
    assert prior.dims == idata.posterior["z"].dims and prior.shape == (1, 300, 20, 2)
    assert abs(float(prior.mean())) < 0.05 and abs(float(prior.std()) - 1) < 0.05
    assert float(prior.mean(("chain", "draw", "obs")).std()) > 0   # not the posterior's draws
    guide = idata.guide
    assert sorted(guide.data_vars) == ["z_loc", "z_scale"]
    assert guide["z_loc"].dims == ("obs", "latent") and guide.attrs["family_z"] == "Normal"
    mean, sd = true_posterior(x)
    np.testing.assert_allclose(guide["z_loc"].values, mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(guide["z_scale"].values, np.broadcast_to(sd, mean.shape),
                               rtol=1e-5)
    stats = idata.sample_stats
    assert stats["khat"].dims == ("obs",) and stats["importance_ess"].dims == ("obs",)
    np.testing.assert_allclose(stats["khat"].values, pv.diagnostics.khat(idata).values)
    np.testing.assert_allclose(stats["importance_ess"].values, 300, rtol=1e-3)


def test_one_argument_chooses_the_container(backend, xy, tmp_path):
    """format="datatree": an xarray DataTree made by arviz_base, with the groups, variables,
    dims and values of the InferenceData; arviz_stats reads it."""
    azb = pytest.importorskip("arviz_base")
    azs = pytest.importorskip("arviz_stats")
    import xarray as xr
    x, y = xy
    res, split = linear_gaussian(backend), pv.data.from_arrays(x[:6], y[:6])
    idata = pv.diagnostics.latent_posterior(res, split, num_samples=50, seed=1)
    tree = pv.diagnostics.latent_posterior(res, split, num_samples=50, seed=1, format="datatree")
    assert isinstance(tree, xr.DataTree)
    assert tree["posterior"].attrs["creation_library_version"] == azb.__version__
    assert sorted(tree.children) == sorted(idata.groups())
    for name in idata.groups():
        a, b = idata[name], tree[name].to_dataset()
        assert {k: (v.dims, v.shape) for k, v in a.data_vars.items()} == \
            {k: (v.dims, v.shape) for k, v in b.data_vars.items()}
        for k in a.data_vars:
            np.testing.assert_array_equal(a[k].values, b[k].values)
    assert list(tree.posterior["label"].values) == list(y[:6])
    summary = azs.summary(tree, var_names=["z"])
    assert len(summary) == 12 and summary["r_hat"].isna().all()
    ess = azs.ess(tree, var_names=["z"])["z"]             # independent draws: about 50
    assert ess.dims == ("obs", "latent") and float(ess.mean()) > 25
    assert azs.summary(tree, group="prior", var_names=["z"]).shape[0] == 12
    np.testing.assert_allclose(pv.diagnostics.khat(tree).values, pv.diagnostics.khat(idata).values)
    with_pp = pv.diagnostics.posterior_predictive(res, tree, data=x[:6])
    assert with_pp.posterior_predictive["x"].dims == ("chain", "draw", "obs", "feature")
    tree.to_netcdf(tmp_path / "tree.nc")
    back = xr.open_datatree(tmp_path / "tree.nc")
    np.testing.assert_allclose(back["guide"]["z_loc"].values, tree["guide"]["z_loc"].values)
    with pytest.raises(ValueError, match=r"use one of \['inferencedata', 'datatree'\]"):
        pv.diagnostics.latent_posterior(res, x[:2], num_samples=5, format="netcdf")


def arviz_plots():
    """arviz_plots, or a skip saying why it does not import here."""
    try:
        import arviz_plots as azp
    except ImportError:
        pytest.skip("arviz_plots is not installed (arviz-plots 0.8 imports only beside "
                    "matplotlib < 3.11: arviz-devs/arviz-plots#500)")
    except AttributeError as err:     # arviz-plots 0.8.0 under matplotlib >= 3.11
        pytest.skip(f"arviz_plots 0.8 does not import beside this matplotlib ({err}; "
                    "arviz-devs/arviz-plots#500): it needs matplotlib < 3.11")
    return azp


def test_arviz_plots_draws_the_datatree(backend, xy, tmp_path):
    azp = arviz_plots()
    import matplotlib
    matplotlib.use("Agg")
    x, _ = xy
    tree = pv.diagnostics.latent_posterior(linear_gaussian(backend), x[:3], num_samples=100,
                                           format="datatree")
    for name, plot in (("dist", azp.plot_dist), ("prior_posterior", azp.plot_prior_posterior)):
        plot(tree, var_names=["z"], coords={"obs": [0]}, backend="matplotlib").savefig(
            tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 0


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
    np.testing.assert_allclose(idata.sample_stats["khat"].values, k.values)
    assert float(idata.sample_stats["importance_ess"].median()) < 0.1 * 1000
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
    # the label is drawn from p(y) in the prior group, and q(y|x) is given by its probabilities
    prior_y = idata.prior["y"]
    assert prior_y.dims == ("chain", "draw", "obs") and prior_y.dtype == np.int64
    assert len(np.unique(prior_y.values)) > 5 and set(np.unique(prior_y.values)) <= set(range(10))
    probs = idata.guide["y_probs"]
    assert probs.dims == ("obs", "y_value") and probs.shape == (5, 10)
    np.testing.assert_allclose(probs.sum("y_value").values, 1, rtol=1e-5)
    assert idata.guide["z_loc"].dims == ("obs", "latent")
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
