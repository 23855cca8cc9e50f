"""Can this approximate posterior be trusted? ArviZ diagnostics of the amortized q(z|x).

* :func:`latent_posterior`: draws from q(z|x) as ``arviz.InferenceData`` (or, with
  ``format="datatree"``, the new ArviZ's ``xarray.DataTree``), every latent site of the model
  a variable of its own (a VAE's ``z``: dims ``chain, draw, obs, latent``, one chain of
  independent draws), with draws from the prior, q's parameters per example (``guide``), the
  observed data, and the log importance weights log p(x, z) - log q(z|x) with their k-hat and
  ESS per example in ``sample_stats``.
* :func:`khat`: Pareto k-hat per observation from those weights (Yao et al. 2018): above 0.7
  the importance weights, and so q, are not to be trusted for that observation.
* :func:`iwae_log_likelihood`: the importance-weighted log-likelihood bound per observation.
* :func:`collapse`: KL per latent dim and active units per latent site (Burda et al. 2016),
  warning on collapsed dims.
* :func:`reference_posterior` / :func:`compare_posteriors`: NUTS on p(z|x) with the trained
  decoder and prior, and the per-dim differences from q, site by site.
* :func:`amortization_gap`: ELBO of a per-example optimised q minus the encoder's (Cremer et
  al. 2018).
* :func:`report`: all of it in one ``xarray.Dataset``.
* :func:`compare`: models ranked by held-out elpd with paired standard errors, in
  ``az.compare``'s shape (``az.plot_compare`` draws it).
* :func:`posterior_predictive` / :func:`ppc_summary`: replicated data for ``az.plot_ppc`` and
  where they disagree with the observed data, feature by feature.

Everything is built from ``{site: ndarray}`` dicts with named dims and converted with ArviZ's
generic dict converter (``arviz``'s or ``arviz_base``'s ``dict_to_dataset``): the same code for
both backends and for any model, built-in or a user's pair, whatever its sites and plate are
called. The sites, their dims and coordinates come from
the model's contract (``res.model.contract``; see :class:`~probvae.applications.diagnostics.common.Layout`):
a latent site ``top`` of event shape (1,) beside ``mid`` (2,) gives variables ``top`` (chain,
draw, obs, top_dim) and ``mid`` (chain, draw, obs, mid_dim).

References
----------
Yao, Vehtari, Simpson & Gelman (2018), "Yes, but Did It Work?: Evaluating Variational
Inference", ICML. Burda, Grosse & Salakhutdinov (2016), "Importance Weighted Autoencoders".

Examples
--------
>>> import probvae as pv
>>> sorted(pv.diagnostics.__all__)[:3]
['KHAT_THRESHOLD', 'amortization_gap', 'collapse']
"""
from .amortized import collapse, format_report, iwae_log_likelihood, khat, latent_posterior, report
from .common import KHAT_THRESHOLD
from .predictive import compare, posterior_predictive, ppc_summary
from .reference import amortization_gap, compare_posteriors, reference_posterior

__all__ = ["latent_posterior", "khat", "iwae_log_likelihood", "collapse", "reference_posterior",
           "compare", "posterior_predictive", "ppc_summary",
           "compare_posteriors", "amortization_gap", "report", "format_report", "KHAT_THRESHOLD"]
