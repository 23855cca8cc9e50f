"""ADGM/SDGM (M2 with an auxiliary latent): both variants on both backends, the enumerated
bound against an explicit sum over classes, conv networks, save/load, bad settings."""
import numpy as np
import pytest

import probvae as pv

K = 10


@pytest.fixture(scope="module")
def fitted_adgm(digits):
    """A small ADGM or SDGM per backend, trained briefly on digits with 5 labels per class."""
    cache = {}

    def get(backend, skip):
        if (backend, skip) not in cache:
            lab = digits.train.label_subset(n_per_class=5, seed=0)
            m = pv.models.ADGM(input_dim=64, num_classes=K, latent_dim=4, aux_dim=3,
                               hidden=(64,), skip=skip, backend=backend)
            cache[backend, skip] = pv.fit(m, digits.train, labels=lab, epochs=3, batch_size=64,
                                          seed=0, validation=digits.valid, progress=False)
        return cache[backend, skip]
    return get


@pytest.mark.parametrize("skip", [False, True], ids=["adgm", "sdgm"])
def test_trains_and_answers_like_m2(backend, skip, fitted_adgm, digits, tmp_path):
    res = fitted_adgm(backend, skip)
    assert res.objective == "enum"                      # discrete y: enumeration by default
    probs = pv.predict(res, digits.test)
    assert probs.shape == (len(digits.test), K) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == digits.test.y).mean() > 0.6       # chance is 0.1
    bayes = pv.predict(res, digits.test.x[:30], method="model", num_samples=8)
    assert bayes.shape == (30, K) and (bayes.argmax(1) == digits.test.y[:30]).mean() > 0.3
    assert pv.sample(res, n=4, y=3, seed=0).shape == (4, 64)
    assert np.abs(pv.sample(res, n=8, y=0, seed=4) - pv.sample(res, n=8, y=1, seed=4)).mean() > 1e-3
    assert pv.encode(res, digits.test.x[:7], site="z").shape == (7, 4)
    assert set(pv.encode(res, digits.test.x[:7])) == {"a", "z"}      # its two latents
    scores = pv.evaluate(res, digits.test.x[:30], num_samples=20)
    assert np.isfinite(scores["log_likelihood"]) and scores["log_likelihood"] >= scores["elbo"]
    loaded = pv.load(pv.save(res, tmp_path / "adgm"))
    assert type(loaded.model).__name__ == "ADGM" and loaded.model.skip is skip
    assert loaded.model.display_name == ("SDGM" if skip else "ADGM")
    np.testing.assert_allclose(pv.predict(loaded, digits.test.x[:10]), probs[:10], atol=1e-6)


def _manual_unlabelled_elbo(bk, model, params, x, num_particles, seed):
    """E_q(a|x) [sum_c q(c|a,x) (E_q(z|a,x,c) [log p(x, c, z, a) - log q(z|a,x,c)]
    - log q(c|a,x)) - log q(a|x)], by hand, summed over the examples: the same a draws for
    every class (same seed)."""
    total = 0.0
    for c in range(model.num_classes):
        y = bk.asarray_int([c])

        def guide(x, y=y):
            with bk.plate("particles", num_particles, dim=-2):
                return model.guide(x, y=y)

        def mdl(x, y=y):
            with bk.plate("particles", num_particles, dim=-2):
                return model.model(x, y=y)

        gtr = bk.get_trace(bk.seed(bk.with_params(guide, params), seed), bk.asarray(x))
        mtr = bk.get_trace(bk.replay(bk.seed(bk.with_params(mdl, params), seed), gtr),
                           bk.asarray(x))
        logits = bk.to_numpy(bk.with_params(lambda v, a: model.classify(v, a).logits, params)(
            bk.asarray(x), gtr["a"]["value"]))                  # (particles, examples, classes)
        log_q_c = logits[..., c] - np.logaddexp.reduce(logits, axis=-1)
        lp = sum(bk.to_numpy(s["fn"].log_prob(s["value"])) for s in bk.sample_sites(mtr).values())
        lq = sum(bk.to_numpy(gtr[s]["fn"].log_prob(gtr[s]["value"])) for s in ("a", "z"))
        total = total + np.exp(log_q_c) * (lp - lq - log_q_c)
    return float(np.mean(total, axis=0).sum())


@pytest.mark.parametrize("skip", [False, True], ids=["adgm", "sdgm"])
def test_enumeration_sums_over_classes(backend, skip, digits, enum_loss):
    """The enum objective equals the explicit sum over the 10 classes (up to MC noise)."""
    m = pv.models.ADGM(input_dim=64, num_classes=K, latent_dim=2, aux_dim=2, hidden=(16,),
                       alpha=0.0, skip=skip, backend=backend).build(0)
    bk = m.bk
    x = digits.train.x[:2]      # (NumPyro's funsor enumeration fails on a plate of size 1 here)
    params = pv.backends.init_params(bk, m, {"x": bk.asarray(x)}, 0)
    n = 3000
    manual = _manual_unlabelled_elbo(bk, m, params, x, n, seed=1)
    loss = enum_loss(m, params, x, n)
    assert abs(-loss - manual) < 0.5, (loss, manual)


def test_conv_networks(backend, digits):
    """With image_shape and conv networks every x-reading net (q(a|x), the classifier, the
    encoder, p(a|x,y,z)) convolves; one epoch trains and classifies."""
    m = pv.models.ADGM(image_shape=(8, 8), num_classes=K, latent_dim=2, aux_dim=2,
                       encoder=pv.networks.Conv(channels=(4,), hidden=(16,)), decoder="mlp",
                       hidden=(16,), backend=backend)
    assert type(m.aux_decoder_spec).__name__ == "ConvSpec"
    part = pv.data.from_arrays(digits.train.x[:200], digits.train.y[:200])
    res = pv.fit(m, part, labels=part.label_subset(n_per_class=2), epochs=1, batch_size=50,
                 progress=False)
    assert np.isfinite(res.history["train_loss"][0])
    assert pv.predict(res, digits.test.x[:5]).shape == (5, K)


def test_bad_settings():
    with pytest.raises(ValueError, match="aux_dim"):
        pv.models.ADGM(input_dim=64, aux_dim=0)
    with pytest.raises(ValueError, match="skip=True"):
        pv.models.ADGM(input_dim=64, skip="sdgm")
    with pytest.raises(ValueError, match="num_classes"):
        pv.models.ADGM(input_dim=64, num_classes=1)


def test_vamp_prior_feeds_the_encoder_its_auxiliary_mean(backend, digits):
    """The VampPrior's pseudo-inputs go through q(a|u), the classifier and the encoder."""
    m = pv.models.ADGM(input_dim=64, latent_dim=3, aux_dim=2, hidden=(16,), prior="vamp",
                       backend=backend)
    res = pv.fit(m, digits.train, labels=digits.train.label_subset(n_per_class=2), epochs=1,
                 progress=False)
    assert np.isfinite(res.history["train_loss"][0])
    assert np.isfinite(pv.evaluate(res, digits.test.x[:20], num_samples=5)["log_likelihood"])
