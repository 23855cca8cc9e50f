"""Everything after training follows the model's contract, never a literal site name.

A user's two-level hierarchy (latents "top" (1,) and "mid" (2,), observed "obs", plate "rows",
a Student-t likelihood with a learned df; the pair of tests/models/test_contract.py, here with
``n=`` so that it generates) goes through evaluate, encode, reconstruct, sample, decode,
interpolate, traverse, synthesize and common-noise scoring on both backends; the built-in VAE
and SSVAE give the numbers they gave before the contract (pinned from a run of the code before
it), and M2's classifier is public.
"""
import numpy as np
import pytest

import probvae as pv
from user_pairs import hierarchy


@pytest.fixture(scope="module")
def fitted_hierarchy(small):
    cache = {}

    def get(backend):
        if backend not in cache:
            cache[backend] = pv.fit(hierarchy(backend), small.train, backend=backend, epochs=2,
                                    batch_size=32, progress=False)
        return cache[backend]
    return get


def test_evaluate_reports_kl_for_every_continuous_latent(backend, fitted_hierarchy, small):
    res = fitted_hierarchy(backend)
    assert res.model.contract.continuous_names == ("top", "mid")
    scores = pv.evaluate(res, small.test, num_samples=10)
    assert set(scores["kl_per_site"]) == {"top", "mid"}
    assert scores["kl_per_site"]["top"].shape == (1,)
    assert scores["kl_per_site"]["mid"].shape == (2,)
    kl = scores["kl_per_dim"]                   # the sites' dims in contract order
    assert kl.shape == (3,) and np.all(np.isfinite(kl))
    np.testing.assert_array_equal(kl, np.concatenate([scores["kl_per_site"]["top"],
                                                      scores["kl_per_site"]["mid"]]))
    # both latents factorise and there is no discrete one: the dims add up to the whole KL
    assert kl.sum() == pytest.approx(scores["kl"], rel=1e-3, abs=1e-3)
    assert set(scores["active_per_site"]) == {"top", "mid"}
    assert scores["active_units"] == sum(scores["active_per_site"].values())
    assert 0 <= scores["active_per_site"]["mid"] <= 2
    lw = pv.inference.log_weights(res, small.test.x[:4], num_samples=3, keep=("top", "mid"))
    assert lw["value_top"].shape == (4, 3, 1) and lw["value_mid"].shape == (4, 3, 2)
    assert lw["kl_dim"].shape == (4, 3)


def test_encode_gives_every_continuous_latent_by_name(backend, fitted_hierarchy, small):
    res = fitted_hierarchy(backend)
    x = small.test.x
    codes = pv.encode(res, x)
    assert isinstance(codes, dict) and list(codes) == ["top", "mid"]
    assert codes["top"].shape == (16, 1) and codes["mid"].shape == (16, 2)
    mid = pv.encode(res, x, site="mid")
    assert isinstance(mid, np.ndarray) and mid.shape == (16, 2)
    np.testing.assert_array_equal(mid, codes["mid"])
    with pytest.raises(ValueError, match=r"no latent site 'z'; its latent sites: \['top', 'mid'\]"):
        pv.encode(res, x, site="z")


def test_generation_reads_the_contracts_sites(backend, fitted_hierarchy, small):
    res = fitted_hierarchy(backend)
    x = small.test.x
    rec = pv.reconstruct(res, x)
    assert rec.shape == (16, 64) and np.all(np.isfinite(rec))
    assert pv.sample(res, n=5, seed=0).shape == (5, 64)
    assert pv.synthesize(res, 4, seed=0).shape == (4, 64)
    # an array is the principal latent (the contract's first continuous one, "top") ...
    assert res.model.contract.latent().name == "top"
    assert pv.decode(res, np.zeros((4, 1))).shape == (4, 64)
    assert pv.decode(res, np.zeros((3, 2)), site="mid").shape == (3, 64)
    with pytest.raises(ValueError, match=r"z must have shape \(N, 1\)"):
        pv.decode(res, np.zeros((3, 2)))
    # ... and encode's dict decodes as it is: every latent at its posterior mean, as reconstruct
    np.testing.assert_allclose(pv.decode(res, pv.encode(res, x)), rec, rtol=1e-5, atol=1e-5)
    path = pv.interpolate(res, x[0], x[1], steps=3)
    assert path.shape == (3, 64)
    np.testing.assert_allclose(path[[0, -1]], rec[:2], rtol=1e-4, atol=1e-4)
    assert pv.traverse(res, x=x[0], values=[-1, 0, 1]).shape == (1, 3, 64)
    assert pv.traverse(res, x=x[0], values=[-1, 1], site="mid").shape == (2, 2, 64)
    assert pv.traverse(res, z=np.zeros(2), dims=[1], values=[0, 1], site="mid").shape == (1, 2, 64)


def test_common_noise_fixes_every_continuous_latent(backend, fitted_hierarchy, small):
    """With the same eps for every example, a row's weights do not depend on its batch."""
    res = fitted_hierarchy(backend)
    x = small.test.x
    one = pv.inference.log_weights(res, x[:3], num_samples=4, common_noise=True)["log_w"]
    more = pv.inference.log_weights(res, x[:9], num_samples=4, common_noise=True)["log_w"]
    np.testing.assert_allclose(one, more[:3], rtol=1e-5, atol=1e-5)


def test_a_classifier_encodes_its_label_as_probabilities(digits):
    m = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(16,))
    res = pv.fit(m, digits.train, labels=digits.train.label_subset(n_per_class=2), epochs=1,
                 batch_size=64, progress=False)
    x = digits.test.x[:6]
    assert pv.encode(res, x).shape == (6, 2)                     # the label is left out
    probs = pv.encode(res, x, site="y")
    np.testing.assert_allclose(probs, pv.predict(res, x), rtol=1e-6)
    assert callable(res.model.classify) and not hasattr(pv.models.VAE, "classify")


def test_a_model_with_an_auxiliary_latent_encodes_both(digits):
    m = pv.models.ADGM(input_dim=64, num_classes=10, latent_dim=3, aux_dim=2, hidden=(16,))
    res = pv.fit(m, digits.train, labels=digits.train.label_subset(n_per_class=2), epochs=1,
                 batch_size=64, progress=False)
    x, y = digits.test.x[:5], digits.test.y[:5]
    codes = pv.encode(res, x, y=y)
    assert {k: v.shape for k, v in codes.items()} == {"a": (5, 2), "z": (5, 3)}
    np.testing.assert_array_equal(pv.encode(res, x, y=y, site="z"), codes["z"])
    np.testing.assert_allclose(pv.decode(res, codes, y=y), pv.reconstruct(res, x, y=y),
                               rtol=1e-5, atol=1e-5)
    scores = pv.evaluate(res, x, num_samples=5)
    assert {k: v.shape for k, v in scores["kl_per_site"].items()} == {"a": (2,), "z": (3,)}
    assert scores["kl_per_dim"].shape == (5,)


#: numbers of the code before the contract (HEAD 6a7e984) for these fits: (evaluate's elbo,
#: log_likelihood, kl_per_dim, active_units), then sums of encode[:3], reconstruct, sample,
#: decode, traverse, interpolate, impute and the common-noise log weights
BEFORE = {
    ("numpyro", "vae"): ((0.17375205623415801, 0.6759570951180233,
                          [0.040377773344516754, 0.26241496205329895, 0.12767478823661804], 0),
                         [0.0041160136461257935, 385.3448486328125, 160.59585571289062,
                          96.46402740478516, 289.10565185546875, 128.43878173828125,
                          89.6996078491211, -4.272241324186325]),
    ("numpyro", "ssvae"): ((35.74809100551483, 36.50015479903394,
                            [4.010580539703369, 2.344667673110962, 0.6825363039970398], 3),
                           [18.263408660888672, 299.16510009765625, 142.40231323242188,
                            88.43335723876953, 237.33352661132812, 100.1846694946289,
                            82.35502624511719, 2111.68262386322]),
    ("pyro", "vae"): ((-0.8094768622364753, -0.34537949837068044,
                       [0.21016104519367218, 0.1586250513792038, 0.10767034441232681], 0),
                      [1.3417540788650513, 383.41522216796875, 159.37753295898438,
                       95.83601379394531, 287.2665710449219, 127.79615020751953,
                       89.49021911621094, -51.685272783041]),
    ("pyro", "ssvae"): ((33.60607372430655, 34.33850769206479,
                         [5.144404888153076, 0.7589464783668518, 0.44292429089546204], 2),
                        [-4.8619842529296875, 308.2158203125, 144.64535522460938,
                         86.95829772949219, 241.30633544921875, 103.11557006835938,
                         82.46975708007812, 2049.0035829544067]),
}


@pytest.mark.parametrize("kind", ["vae", "ssvae"])
def test_built_in_models_give_the_numbers_they_gave_before(backend, kind, digits):
    train, x = digits.train, digits.test.x[:12]
    xm = x.copy()
    xm[np.random.default_rng(0).random(xm.shape) < 0.3] = np.nan
    if kind == "vae":
        m = pv.models.VAE(input_dim=64, latent_dim=3, hidden=(16,), backend=backend)
        res = pv.fit(m, train.x[:96], epochs=2, batch_size=32, progress=False)
    else:
        m = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=3, hidden=(16,),
                            backend=backend)
        res = pv.fit(m, train, labels=train.label_subset(n_per_class=2), epochs=2,
                     batch_size=32, progress=False)
    (elbo, ll, kl, active), sums = BEFORE[backend, kind]
    scores = pv.evaluate(res, x, num_samples=130)
    assert scores["elbo"] == pytest.approx(elbo, rel=1e-6, abs=1e-6)
    assert scores["log_likelihood"] == pytest.approx(ll, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(scores["kl_per_dim"], kl, rtol=1e-6, atol=1e-6)
    assert scores["active_units"] == active and list(scores["kl_per_site"]) == ["z"]
    got = [pv.encode(res, x)[:3].sum(), pv.reconstruct(res, x).sum(),
           pv.sample(res, n=5, seed=2).sum(),
           pv.decode(res, np.linspace(-1, 1, 9, dtype=np.float32).reshape(3, 3), seed=1).sum(),
           pv.traverse(res, x=x[0], values=[-1, 0, 1]).sum(),
           pv.interpolate(res, x[0], x[1], steps=4).sum(),
           np.nansum(pv.impute(res, xm[:4], num_samples=9)),
           pv.inference.log_weights(res, x, num_samples=5, common_noise=True)["log_w"].sum()]
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), sums, rtol=1e-6, atol=1e-5)
