"""Did the VAE's amortized posterior work, and which prior fits better?

Part 1 trains six VAEs that differ only in their prior (normal, laplace, student_t, mixture,
vamp, flow) and ranks them by held-out elpd (the IWAE estimate of log p(x) on test digits) with
paired standard errors, in az.compare's table; a difference counts as real when it exceeds
twice its paired standard error. It draws the compare plot (az.plot_compare) and a posterior
predictive check of the best model (az.plot_ppc), and lists the pixels whose replicated mean
disagrees with the observed one.

Part 2 diagnoses two of them (normal and vamp) in depth.

Trains `VAE(prior="normal")` and `VAE(prior="vamp")` on digits with the same settings, then for
100 test digits compares, in one table: the IWAE log-likelihood, PSIS k-hat of q(z|x) (Yao et al.
2018; above 0.7 q is unreliable for that digit), KL and active units per latent dim, and how
far q's means and sds are from a NUTS reference posterior on a few digits, and the amortization
gap (ELBO of a per-digit optimised Gaussian minus the encoder's, Cremer et al. 2018). Writes ArviZ plots
(k-hat per digit for both models, a forest plot of q against NUTS, the vamp prior against q for
one digit from the InferenceData's prior and posterior groups) to --out.

    python examples/diagnostics.py                    # NumPyro, ~2 minutes
    python examples/diagnostics.py --backend pyro --epochs 30
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import probvae as pv  # noqa: E402
from probvae import diagnostics as dg  # noqa: E402


PRIORS = ("normal", "laplace", "student_t", "mixture", "vamp", "flow")


def compare_priors(args, data, out):
    """Six priors, one held-out comparison table, the compare plot and a PPC plot."""
    fits = {}
    for prior in PRIORS:
        vae = pv.models.VAE(input_dim=64, latent_dim=8, hidden=(256, 256), prior=prior,
                            backend=args.backend)
        fits[prior] = pv.fit(vae, data.train, objective="elbo", epochs=args.epochs,
                             batch_size=32, seed=0, validation=data.valid, progress=False)
    table = dg.compare(fits, data.test, num_samples=args.compare_samples)
    print(f"\nheld-out comparison on all {len(data.test)} test digits "
          f"({args.compare_samples} importance samples each), best first:")
    print(table[["rank", "elpd_loo", "se", "elpd_diff", "dse", "elpd_mean", "khat_above",
                 "warning"]].round(2).to_string())
    best = table.index[0]
    for name in table.index[1:]:
        diff, dse = table.loc[name, "elpd_diff"], table.loc[name, "dse"]
        verdict = "real" if diff > 2 * dse else "within noise"
        print(f"  {best} vs {name}: {diff:.1f} nats in total, paired se {dse:.1f} -> {verdict}")
    az.plot_compare(table, figsize=(6, 3.5))
    plt.gcf().savefig(out / "compare.png", dpi=90, bbox_inches="tight")
    plt.close("all")
    idata = dg.latent_posterior(fits[best], data.test, num_samples=200,
                                posterior_predictive=True)
    summary = dg.ppc_summary(idata)
    print(f"  posterior predictive check of {best}: replicated pixel means disagree with the "
          f"observed ones (p < 0.025 or > 0.975) at {len(summary.attrs['disagree_mean'])} of "
          f"64 pixels, variances at {len(summary.attrs['disagree_var'])}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        az.plot_ppc(idata, num_pp_samples=50, figsize=(6, 3.5))
    plt.gcf().savefig(out / "ppc.png", dpi=90, bbox_inches="tight")
    plt.close("all")
    print(f"  wrote {out}/compare.png and {out}/ppc.png\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", choices=["numpyro", "pyro"], default="numpyro")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--n", type=int, default=100, help="test digits to diagnose")
    ap.add_argument("--nuts-digits", type=int, default=3)
    ap.add_argument("--compare-samples", type=int, default=1000,
                    help="importance samples per test digit in the comparison")
    ap.add_argument("--out", default=None,
                    help="folder for the pictures (default: runs/diagnostics/BACKEND, one "
                         "folder per kind of run, so that no run replaces another's)")
    args = ap.parse_args()
    out = Path(args.out or Path("runs", "diagnostics", args.backend))
    out.mkdir(parents=True, exist_ok=True)
    data = pv.data.load("digits", seed=0)
    test = pv.data.from_arrays(data.test.x[:args.n], data.test.y[:args.n])
    compare_priors(args, data, out)
    rows, idatas = {}, {}
    for prior in ("normal", "vamp"):
        vae = pv.models.VAE(input_dim=64, latent_dim=8, hidden=(256, 256), prior=prior,
                            backend=args.backend)
        res = pv.fit(vae, data.train, objective="elbo", epochs=args.epochs, batch_size=32,
                     seed=0, validation=data.valid)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rep = dg.report(res, test, num_samples=1000)
        for w in caught:
            print(f"  warning: {w.message}")
        idata = dg.latent_posterior(res, test, num_samples=1000)
        x_ref = test.x[:args.nuts_digits]
        ref = dg.reference_posterior(res, x_ref, chains=2, num_samples=300, num_warmup=300)
        cmp = dg.compare_posteriors(dg.latent_posterior(res, x_ref, num_samples=1000), ref)
        gap = dg.amortization_gap(res, test)
        rows[prior] = (rep, cmp, ref, gap)
        idatas[prior] = idata
        print(f"\n== prior {prior} ==\n{dg.format_report(rep)}")

    print(f"\n{'':34}{'normal':>10}{'vamp':>10}")
    def line(name, fn, fmt="{:10.3f}"):
        print(f"{name:34}" + "".join(fmt.format(fn(*rows[p])) for p in ("normal", "vamp")))
    line("mean IWAE log-likelihood (nats)", lambda r, c, f, g: float(r["mean_iwae_log_likelihood"]))
    line("fraction k-hat > 0.7", lambda r, c, f, g: float(r["fraction_khat_above_0.7"]))
    line("max k-hat", lambda r, c, f, g: float(r["khat_max"]))
    line("active units", lambda r, c, f, g: int(r["active_units"]), "{:10d}")
    line("total KL (nats)", lambda r, c, f, g: float(np.nansum(r["kl"].values)))
    line("amortization gap (nats)", lambda r, c, f, g: g.attrs["mean_gap"])
    line("|mean q - mean NUTS| / sd NUTS", lambda r, c, f, g: c.attrs["mean_abs_mean_diff"])
    line("sd q / sd NUTS", lambda r, c, f, g: c.attrs["mean_sd_ratio"])
    line("NUTS max R-hat", lambda r, c, f, g: float(az.rhat(f)["z"].max()))

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, prior in zip(axes, ("normal", "vamp")):
        az.plot_khat(dg.khat(idatas[prior]).values, ax=ax)
        ax.set_title(f"prior {prior}: k-hat per test digit")
    fig.savefig(out / "khat.png", dpi=90, bbox_inches="tight")
    plt.close("all")
    az.plot_forest([idatas["vamp"].isel(obs=[0]), rows["vamp"][2].isel(obs=[0])],
                          model_names=["q(z|x) amortized", "NUTS reference"], var_names=["z"],
                          combined=True, figsize=(6, 4))
    plt.gcf().savefig(out / "forest_vamp_digit0.png", dpi=90, bbox_inches="tight")
    plt.close("all")
    az.plot_dist_comparison(idatas["vamp"], var_names=["z"],      # the prior group against q
                            coords={"obs": [0], "latent": [0, 1]})
    plt.gcf().savefig(out / "prior_posterior_vamp_digit0.png", dpi=90, bbox_inches="tight")
    plt.close("all")
    print(f"\nwrote {out}/khat.png, {out}/forest_vamp_digit0.png and "
          f"{out}/prior_posterior_vamp_digit0.png")


if __name__ == "__main__":
    main()
