"""The diagnostics on a user's model that looks nothing like a VAE: every latent site its own
ArviZ variable, dims from the declared contract, the same layout on both backends.

The pair (from tests/models/test_contract.py): latents ``top`` (1,) and ``mid`` (2,), observed
``obs`` (64,) in plate ``rows``, a Student-t likelihood with a learned df. Its observed site is
called ``obs``, so the dim over examples takes the plate's name, ``rows``.
"""
import warnings

import arviz as az
import matplotlib
import numpy as np
import pytest

import probvae as pv
from user_pairs import hierarchy


matplotlib.use("Agg")


@pytest.fixture(scope="module")
def fits(small):
    """The hierarchy fitted for 2 epochs on each backend."""
    return {b: pv.fit(hierarchy(b), small.train, backend=b, epochs=2, batch_size=32,
                      progress=False) for b in ("pyro", "numpyro")}


def layout(idata):
    """``{group: {variable: (dims, shape)}}`` of an InferenceData."""
    return {g: {k: (v.dims, v.shape) for k, v in idata[g].data_vars.items()}
            for g in idata.groups()}


def test_every_latent_is_a_variable_with_its_own_dims(backend, fits, small, tmp_path):
    x = small.test.x[:6]
    idata = pv.diagnostics.latent_posterior(fits[backend], x, num_samples=40, chains=2)
    post = idata.posterior
    assert set(post.data_vars) == {"top", "mid"}
    assert post["top"].dims == ("chain", "draw", "rows", "top_dim")
    assert post["mid"].dims == ("chain", "draw", "rows", "mid_dim")
    assert post["top"].shape == (2, 20, 6, 1) and post["mid"].shape == (2, 20, 6, 2)
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
                                            chains=2, posterior_predictive=True)
    pp = idata.posterior_predictive
    assert list(pp.data_vars) == ["obs"]
    assert pp["obs"].dims == ("chain", "draw", "rows", "feature")
    assert pp["obs"].shape == (2, 4, 5, 64) and np.all(np.isfinite(pp["obs"].values))
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
        rep = pv.diagnostics.report(fits[backend], x, num_samples=20, chains=2)
    assert rep["khat"].dims == ("rows",) and rep["kl"].dims == ("latent",)
    assert rep.sizes["latent"] == 3
    text = pv.diagnostics.format_report(rep)
    assert "top0" in text and "mid1" in text and "by site" in text


def test_reference_posterior_and_comparison_per_site(backend, fits, small):
    x = small.test.x[:2]
    ref = pv.diagnostics.reference_posterior(fits[backend], x, chains=1, num_samples=20,
                                             num_warmup=20)
    assert set(ref.posterior.data_vars) == {"top", "mid"}
    assert ref.posterior["top"].dims == ("chain", "draw", "rows", "top_dim")
    assert ref.posterior["mid"].shape == (1, 20, 2, 2)
    q = pv.diagnostics.latent_posterior(fits[backend], x, num_samples=40, chains=2)
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
    x = small.test.x[:4]
    layouts = [layout(pv.diagnostics.latent_posterior(fits[b], x, num_samples=8, chains=2,
                                                      posterior_predictive=True))
               for b in ("pyro", "numpyro")]
    assert layouts[0] == layouts[1]


def test_a_built_in_vae_keeps_its_layout(backend, small):
    res = pv.fit(pv.models.VAE(input_dim=64, latent_dim=3, hidden=(8,), backend=backend),
                 small.train, epochs=1, progress=False)
    idata = pv.diagnostics.latent_posterior(res, small.test.x[:4], num_samples=8, chains=2)
    assert layout(idata) == {
        "posterior": {"z": (("chain", "draw", "obs", "latent"), (2, 4, 4, 3))},
        "sample_stats": {"log_weight": (("chain", "draw", "obs"), (2, 4, 4)),
                         "log_lik": (("chain", "draw", "obs"), (2, 4, 4))},
        "observed_data": {"x": (("obs", "feature"), (4, 64))}}
    col = pv.diagnostics.collapse(res, small.test.x, num_samples=5, warn=False)
    assert list(col["latent"].values) == [0, 1, 2] and set(col["site"].values) == {"z"}
    assert np.all(np.isfinite(col["kl"].values))
