"""Model comparison on held-out data and posterior predictive checks, the ArviZ way."""
import warnings

import arviz as az
import matplotlib
import numpy as np
import pytest

import probvae as pv
from probvae.inference.scoring import log_mean_exp

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def two_fits(digits):
    return {prior: pv.fit(pv.models.VAE(input_dim=64, latent_dim=3, hidden=(16,), prior=prior),
                          digits.train.x[:300], epochs=3, batch_size=50, progress=False)
            for prior in ("normal", "vamp")}


def test_table_has_az_compare_shape_and_plots(two_fits, digits):
    import matplotlib.pyplot as plt
    table = pv.diagnostics.compare(two_fits, digits.test.x[:60], num_samples=30)
    for col in ("rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse", "warning",
                "scale", "elpd_mean", "se_mean", "khat_above"):
        assert col in table.columns
    assert list(table["rank"]) == [0, 1] and table["elpd_diff"].iloc[0] == 0
    assert table["elpd_loo"].iloc[0] >= table["elpd_loo"].iloc[1]
    assert abs(table["weight"].sum() - 1) < 1e-9
    az.plot_compare(table)
    plt.close("all")


def test_paired_standard_error_is_the_direct_computation(two_fits, digits):
    x = digits.test.x[:60]
    table = pv.diagnostics.compare(two_fits, x, num_samples=30, seed=4)
    point = {name: log_mean_exp(pv.inference.log_weights(res, x, num_samples=30, seed=4)["log_w"],
                                axis=1) for name, res in two_fits.items()}
    best, other = table.index
    diff = point[best] - point[other]
    n = len(x)
    assert table.loc[other, "elpd_diff"] == pytest.approx(diff.sum())
    assert table.loc[other, "dse"] == pytest.approx(np.sqrt(n * np.var(diff, ddof=1)))
    assert table.loc[best, "se"] == pytest.approx(np.sqrt(n * np.var(point[best], ddof=1)))
    # pairing matters: the paired se is far below the unpaired one
    unpaired = np.sqrt(table.loc[best, "se"] ** 2 + table.loc[other, "se"] ** 2)
    assert table.loc[other, "dse"] < unpaired


def test_models_of_different_families_compare(two_fits, digits):
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=3, hidden=(16,))
    res_ss = pv.fit(ss, digits.train, labels=digits.train.label_subset(2), objective="enum",
                    epochs=1, progress=False)
    table = pv.diagnostics.compare({"vae": two_fits["normal"], "m2": res_ss},
                                   digits.test.x[:30], num_samples=10)
    assert set(table.index) == {"vae", "m2"} and np.all(np.isfinite(table["elpd_loo"]))


def test_compare_refuses_densities_against_probabilities(two_fits, digits):
    binary = pv.fit(pv.models.VAE(input_dim=64, latent_dim=3, hidden=(16,),
                                  likelihood="bernoulli"),
                    digits.train.binarize().x[:100], epochs=1, progress=False)
    with pytest.raises(ValueError, match="cannot be compared"):
        pv.diagnostics.compare({"cb": two_fits["normal"], "bern": binary}, digits.test.x[:5])
    with pytest.raises(ValueError, match="at least two"):
        pv.diagnostics.compare({"cb": two_fits["normal"]}, digits.test.x[:5])


def test_posterior_predictive_group_and_checks(backend, digits):
    import matplotlib.pyplot as plt
    vae = pv.models.VAE(input_dim=64, latent_dim=3, hidden=(16,), backend=backend,
                        likelihood=pv.likelihoods.Gaussian(scale=0.1))
    res = pv.fit(vae, digits.train.x[:300], epochs=5, batch_size=50, progress=False)
    x = digits.test.x[:40].copy()
    x[:, 27] += 0.8                                   # a feature the model cannot explain
    idata = pv.diagnostics.latent_posterior(res, x, num_samples=80, posterior_predictive=True)
    pp = idata.posterior_predictive["x"]
    assert pp.dims == ("chain", "draw", "obs", "feature") and pp.shape == (1, 80, 40, 64)
    assert idata.observed_data["x"].dims == ("obs", "feature")
    summary = pv.diagnostics.ppc_summary(idata)
    assert summary["p_mean"].dims == ("feature",)
    assert 27 in summary.attrs["disagree_mean"]
    assert float(summary["p_mean"].sel(feature=27)) < 0.025
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        az.plot_ppc(idata, num_pp_samples=10)
        az.plot_bpv(idata, kind="t_stat", t_stat="mean")
    plt.close("all")


def test_az_loo_refuses_per_example_latents(two_fits, digits):
    idata = pv.diagnostics.latent_posterior(two_fits["normal"], digits.test.x[:5], num_samples=20)
    assert "log_likelihood" not in idata.groups()
    assert idata.sample_stats["log_lik"].dims == ("chain", "draw", "obs")
    with pytest.raises(TypeError, match="log likelihood"):
        az.loo(idata)
