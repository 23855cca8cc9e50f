"""The diagnostics on a user's model that looks nothing like a VAE: every latent site its own
ArviZ variable, dims from the declared contract, the same layout on both backends.

The pair (from tests/models/test_contract.py): latents ``top`` (1,) and ``mid`` (2,), observed
``obs`` (64,) in plate ``rows``, a Student-t likelihood with a learned df. Its observed site is
called ``obs``, so the dim over examples takes the plate's name, ``rows``.
"""
import importlib.util
import warnings

import arviz as az
import matplotlib
import numpy as np
import pytest

import probvae as pv
from user_pairs import hierarchy


matplotlib.use("Agg")

#: the containers latent_posterior makes here (the DataTree needs arviz_base, Python >= 3.11)
FORMATS = ("inferencedata",) + (("datatree",) if importlib.util.find_spec("arviz_base") else ())


@pytest.fixture(scope="module")
def fits(small):
    """The hierarchy fitted for 2 epochs on each backend."""
    return {b: pv.fit(hierarchy(b), small.train, backend=b, epochs=2, batch_size=32,
                      progress=False) for b in ("pyro", "numpyro")}


def layout(idata):
    """``{group: {variable: (dims, shape)}}`` of an InferenceData or a DataTree."""
    groups = idata.children if hasattr(idata, "children") else idata.groups()
    return {g: {k: (v.dims, v.shape) for k, v in idata[g].data_vars.items()} for g in groups}


def test_every_latent_is_a_variable_with_its_own_dims(backend, fits, small, tmp_path):
    x = small.test.x[:6]
    idata = pv.diagnostics.latent_posterior(fits[backend], x, num_samples=40)
    post = idata.posterior
    assert set(post.data_vars) == {"top", "mid"}
    assert post["top"].dims == ("chain", "draw", "rows", "top_dim")
    assert post["mid"].dims == ("chain", "draw", "rows", "mid_dim")
    assert post["top"].shape == (1, 40, 6, 1) and post["mid"].shape == (1, 40, 6, 2)
    # the prior: the pair's model run without its guide, every latent by its own name
    prior = idata.prior
    assert {k: (v.dims, v.shape) for k, v in prior.data_vars.items()} == \
        {k: (v.dims, v.shape) for k, v in post.data_vars.items()}
    assert abs(float(prior["top"].mean())) < 0.5 and 0.6 < float(prior["top"].std()) < 1.4
    # q's parameters per example, named after each site
    guide = idata.guide
    assert sorted(guide.data_vars) == ["mid_loc", "mid_scale", "top_loc", "top_scale"]
    assert guide["mid_scale"].dims == ("rows", "mid_dim") and guide["top_loc"].shape == (6, 1)
    assert float(guide["mid_scale"].min()) > 0
    assert idata.sample_stats["khat"].dims == ("rows",)
    assert "row" not in idata.observed_data.coords        # a bare array: no image shape
    assert idata.observed_data["obs"].dims == ("rows", "feature")
    np.testing.assert_allclose(idata.observed_data["obs"].values, x)
    assert idata.sample_stats["log_weight"].dims == ("chain", "draw", "rows")
    summary = az.summary(idata, var_names=["mid"])
    assert len(summary) == 6 * 2
    k = pv.diagnostics.khat(idata)
    assert k.dims == ("rows",) and k.shape == (6,) and np.all(np.isfinite(k.values))
    assert pv.diagnostics.iwae_log_likelihood(idata).dims == ("rows",)
    path = tmp_path / "post.nc"
    idata.to_netcdf(str(path))
    np.testing.assert_allclose(az.from_netcdf(str(path)).posterior["mid"].values,
                               post["mid"].values)


def test_posterior_predictive_replicates_the_declared_observed_site(backend, fits, small):
    idata = pv.diagnostics.latent_posterior(fits[backend], small.test.x[:5], num_samples=8,
                                            posterior_predictive=True)
    pp = idata.posterior_predictive
    assert list(pp.data_vars) == ["obs"]
    assert pp["obs"].dims == ("chain", "draw", "rows", "feature")
    assert pp["obs"].shape == (1, 8, 5, 64) and np.all(np.isfinite(pp["obs"].values))
    summary = pv.diagnostics.ppc_summary(idata)
    assert summary["p_mean"].dims == ("feature",) and summary.sizes["feature"] == 64


def test_collapse_and_report_per_site(backend, fits, small):
    x = small.test.x[:16]
    col = pv.diagnostics.collapse(fits[backend], x, num_samples=10, warn=False)
    assert list(col["site"].values) == ["top", "mid", "mid"]
    assert list(col["unit"].values) == [0, 0, 1]
    assert set(col.attrs["active_units_by_site"]) == {"top", "mid"}
    assert sum(col.attrs["active_units_by_site"].values()) == col.attrs["active_units"]
    assert set(col.attrs["collapsed_by_site"]) == {"top", "mid"}
    assert col["activity"].groupby("site").mean().sizes["site"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = pv.diagnostics.report(fits[backend], x, num_samples=20)
    assert rep["khat"].dims == ("rows",) and rep["kl"].dims == ("latent",)
    assert rep.sizes["latent"] == 3
    text = pv.diagnostics.format_report(rep)
    assert "top0" in text and "mid1" in text and "by site" in text


def test_reference_posterior_and_comparison_per_site(backend, fits, small):
    x = small.test.x[:2]
    ref = pv.diagnostics.reference_posterior(fits[backend], x, chains=1, num_samples=20,
                                             num_warmup=20, format=FORMATS[-1])
    assert set(ref.posterior.data_vars) == {"top", "mid"}
    assert ref.posterior["top"].dims == ("chain", "draw", "rows", "top_dim")
    assert ref.posterior["mid"].shape == (1, 20, 2, 2)
    q = pv.diagnostics.latent_posterior(fits[backend], x, num_samples=40, format=FORMATS[-1])
    cmp = pv.diagnostics.compare_posteriors(q, ref)
    assert cmp["mean_diff"].dims == ("rows", "latent")
    assert list(cmp["site"].values) == ["top", "mid", "mid"]
    assert set(cmp.attrs["by_site"]) == {"top", "mid"}
    assert set(cmp.attrs["by_site"]["mid"]) == {"mean_abs_mean_diff", "mean_sd_ratio"}


def test_amortization_gap_and_compare_for_the_hierarchy(backend, fits, small):
    gap = pv.diagnostics.amortization_gap(fits[backend], small.test.x[:3], steps=5,
                                          num_samples=10)
    assert gap["gap"].dims == ("rows",) and np.all(np.isfinite(gap["gap"].values))
    vae = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend=backend,
                               likelihood="gaussian"),
                 small.train, epochs=1, progress=False)
    table = pv.diagnostics.compare({"hierarchy": fits[backend], "vae": vae}, small.test.x[:8],
                                   num_samples=5)
    assert set(table.index) == {"hierarchy", "vae"} and np.all(np.isfinite(table["elpd_loo"]))


def test_both_backends_give_the_same_layout(fits, small):
    x = small.test[:4]
    made = [pv.diagnostics.latent_posterior(fits[b], x, num_samples=8, posterior_predictive=True,
                                            format=f)
            for b in ("pyro", "numpyro") for f in FORMATS]
    layouts = [layout(idata) for idata in made]
    assert all(part == layouts[0] for part in layouts[1:])
    # the Split's image shape (8, 8) names the pixels of the observed site, replicas included
    for idata in made:
        rows = idata.posterior_predictive["obs"]["row"]
        assert rows.dims == ("feature",) and rows.values.tolist() == [i // 8 for i in range(64)]
    summary = pv.diagnostics.ppc_summary(made[-1])         # a DataTree where arviz_base is
    assert summary["column"].values.tolist() == [i % 8 for i in range(64)]
    assert set(layouts[0]) == {"posterior", "prior", "guide", "sample_stats", "observed_data",
                               "posterior_predictive"}


def test_a_built_in_vae_keeps_its_layout(backend, small):
    res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=3, hidden=(8,), backend=backend),
                 small.train, epochs=1, progress=False)
    idata = pv.diagnostics.latent_posterior(res, small.test[:4], num_samples=200)
    sampled = (("chain", "draw", "obs", "latent"), (1, 200, 4, 3))
    assert layout(idata) == {
        "posterior": {"z": sampled},
        "prior": {"z": sampled},
        "guide": {"z_loc": (("obs", "latent"), (4, 3)), "z_scale": (("obs", "latent"), (4, 3))},
        "sample_stats": {"log_weight": (("chain", "draw", "obs"), (1, 200, 4)),
                         "log_lik": (("chain", "draw", "obs"), (1, 200, 4)),
                         "khat": (("obs",), (4,)), "importance_ess": (("obs",), (4,))},
        "observed_data": {"x": (("obs", "feature"), (4, 64))}}
    # the built-in prior (normal) drawn through the model; q's loc is the encoder's mean
    prior = idata.prior["z"]
    assert abs(float(prior.mean())) < 0.1 and abs(float(prior.std()) - 1) < 0.1
    np.testing.assert_allclose(idata.guide["z_loc"].values, pv.encode(res, small.test.x[:4]),
                               rtol=1e-5, atol=1e-6)
    # the Split's image shape (8, 8) names each feature's pixel
    x = idata.observed_data["x"]
    assert x.sel(feature=19)["row"] == 2 and x.sel(feature=19)["column"] == 3
    assert x.set_index(feature=["row", "column"]).unstack("feature").dims == ("obs", "row", "column")
    with pytest.raises(ValueError, match="no observed site has that many features"):
        pv.diagnostics.latent_posterior(res, small.test.x[:2], num_samples=4, image_shape=(7, 7))
    col = pv.diagnostics.collapse(res, small.test.x, num_samples=5, warn=False)
    assert list(col["latent"].values) == [0, 1, 2] and set(col["site"].values) == {"z"}
    assert np.all(np.isfinite(col["kl"].values))
