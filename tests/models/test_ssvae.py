"""SSVAE (M2): shapes, exact enumeration over classes, learning from few labels, bad labels."""
import numpy as np
import pytest

import probvae as pv
from probvae.inference.predict import class_probabilities

K = 10


@pytest.fixture(scope="module")
def fitted_ss(digits):
    """A small SSVAE per backend, trained briefly on digits with 5 labels per class."""
    cache = {}

    def get(backend):
        if backend not in cache:
            lab = digits.train.label_subset(n_per_class=5, seed=0)
            ss = pv.models.SSVAE(input_dim=64, num_classes=K, latent_dim=4, hidden=(64,),
                                 backend=backend)
            cache[backend] = pv.fit(ss, digits.train, labels=lab, objective="enum", epochs=3,
                                    batch_size=64, seed=0, validation=digits.valid,
                                    progress=False)
        return cache[backend]
    return get


def test_shapes_and_outputs(backend, fitted_ss, digits):
    res = fitted_ss(backend)
    probs = pv.predict(res, digits.test.x[:20])
    assert probs.shape == (20, K) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert pv.sample(res, n=6, y=3, seed=0).shape == (6, 64)
    assert pv.sample(res, n=3, y=[0, 1, 2], seed=0).shape == (3, 64)
    assert pv.sample(res, n=5, seed=0).shape == (5, 64)          # y drawn from p(y)
    assert pv.encode(res, digits.test.x[:7]).shape == (7, 4)
    assert pv.encode(res, digits.test.x[:7], y=digits.test.y[:7]).shape == (7, 4)
    rec = pv.reconstruct(res, digits.test.x[:7])
    assert rec.shape == (7, 64) and np.all((rec >= 0) & (rec <= 1))
    scores = pv.evaluate(res, digits.test.x[:30], num_samples=20)
    assert np.isfinite(scores["log_likelihood"]) and scores["log_likelihood"] >= scores["elbo"]
    h = res.history
    assert len(h["valid_accuracy"]) == 3 and all(0 <= a <= 1 for a in h["valid_accuracy"])


def test_a_short_run_beats_chance_by_far(backend, fitted_ss, digits):
    acc = (pv.predict(fitted_ss(backend), digits.test).argmax(1) == digits.test.y).mean()
    assert acc > 0.6          # chance is 0.1; 50 labels and 3 epochs already give ~0.85


def test_conditional_samples_follow_the_label(backend, fitted_ss):
    """Samples drawn for class c differ from those for another class (decoder uses y)."""
    res = fitted_ss(backend)
    a, b = pv.sample(res, n=8, y=0, seed=4), pv.sample(res, n=8, y=1, seed=4)
    assert np.abs(a - b).mean() > 1e-3


def _manual_unlabelled_elbo(bk, model, params, x, num_particles, seed):
    """sum_c q(c|x) [E_q(z|x,c) log p(x, c, z) - log q(z|x,c) - log q(c|x)], by hand."""
    probs = class_probabilities(model, params, np.asarray(x))[0]
    total = 0.0
    for c in range(model.num_classes):
        y = bk.asarray_int([c])

        def guide(x, y=y):
            with bk.plate("particles", num_particles, dim=-2):
                return model.guide(x, y=y)

        def mdl(x, y=y):
            with bk.plate("particles", num_particles, dim=-2):
                return model.model(x, y=y)

        gtr = bk.get_trace(bk.seed(bk.with_params(guide, params), seed + c), bk.asarray(x))
        mtr = bk.get_trace(bk.replay(bk.seed(bk.with_params(mdl, params), seed), gtr),
                           bk.asarray(x))
        lp = sum(bk.to_numpy(s["fn"].log_prob(s["value"])) for s in bk.sample_sites(mtr).values())
        lq = bk.to_numpy(gtr["z"]["fn"].log_prob(gtr["z"]["value"]))
        total += probs[c] * (np.mean(lp - lq) - np.log(probs[c]))
    return total


def test_enumeration_sums_over_classes(backend, digits, enum_loss):
    """The enum objective equals the explicit sum over the 10 classes (up to MC noise in z)."""
    ss = pv.models.SSVAE(input_dim=64, num_classes=K, latent_dim=2, hidden=(16,), alpha=0.0,
                         backend=backend).build(0)
    bk = ss.bk
    x = digits.train.x[:1]
    params = pv.backends.init_params(bk, ss, {"x": bk.asarray(x)}, 0)
    n = 3000
    manual = _manual_unlabelled_elbo(bk, ss, params, x, n, seed=1)
    loss = enum_loss(ss, params, x, n)
    assert abs(-loss - manual) < 0.5, (loss, manual)
    # and the enumerated trace really carries one value per class
    gtr = bk.get_trace(bk.seed(bk.with_params(ss.guide, params), 0), bk.asarray(x))
    assert bk.to_numpy(gtr["y"]["value"]).shape == (1,)          # sampled outside enumeration


@pytest.mark.parametrize("prior", ["vamp", "flow", "mixture"])
def test_priors_swap_by_keyword(backend, prior, digits):
    ss = pv.models.SSVAE(input_dim=64, num_classes=K, latent_dim=3, hidden=(16,), prior=prior,
                         likelihood="bernoulli", backend=backend)
    data = pv.data.from_arrays(digits.train.x[:200] > 0.5, digits.train.y[:200])
    lab = data.label_subset(n_per_class=2, seed=0)
    res = pv.fit(ss, data, labels=lab, objective="enum", epochs=1, batch_size=50,
                 progress=False)
    assert np.isfinite(res.history["train_loss"][0])
    assert pv.predict(res, data.x[:5]).shape == (5, K)


def test_save_and_load_round_trip(backend, fitted_ss, digits, tmp_path):
    res = fitted_ss(backend)
    loaded = pv.load(pv.save(res, tmp_path / "ss"))
    np.testing.assert_allclose(pv.predict(loaded, digits.test.x[:10]),
                               pv.predict(res, digits.test.x[:10]), atol=1e-6)


@pytest.fixture(scope="module")
def ss_numpyro():
    return pv.models.SSVAE(input_dim=64, num_classes=K, latent_dim=2, hidden=(8,))


def test_labels_out_of_range(ss_numpyro, digits):
    y = digits.train.y.copy()
    y[3] = 12
    data = pv.data.from_arrays(digits.train.x, y)
    lab = np.concatenate([digits.train.label_subset(n_per_class=1, seed=0), [3]])
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9.*\[12\]"):
        pv.fit(ss_numpyro, data, labels=lab, objective="enum", epochs=1, progress=False)


def test_labels_mask_of_wrong_length(ss_numpyro, digits):
    with pytest.raises(ValueError, match="one entry per example"):
        pv.fit(ss_numpyro, digits.train, labels=np.ones(10, bool), objective="enum", epochs=1,
               progress=False)


def test_labels_index_out_of_bounds(ss_numpyro, digits):
    with pytest.raises(ValueError, match="index out of range"):
        pv.fit(ss_numpyro, digits.train, labels=[0, 5, 10**6], objective="enum", epochs=1,
               progress=False)


def test_a_class_without_labelled_examples(ss_numpyro, digits):
    lab = digits.train.label_subset(n_per_class=2, seed=0)
    lab = lab[digits.train.y[lab] != 7]
    with pytest.raises(ValueError, match=r"no labelled example of class\(es\) \[7\]"):
        pv.fit(ss_numpyro, digits.train, labels=lab, objective="enum", epochs=1, progress=False)


def test_labels_need_y_and_a_model_that_uses_them(ss_numpyro, digits):
    with pytest.raises(ValueError, match="needs data with labels"):
        pv.fit(ss_numpyro, pv.data.from_arrays(digits.train.x), labels=[0, 1],
               objective="enum", epochs=1, progress=False)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))
    with pytest.raises(ValueError, match="does not use them"):
        pv.fit(vae, digits.train, labels=[0, 1], epochs=1, progress=False)


def test_bad_labels_to_sample_and_predict_on_a_vae(fitted_ss, digits):
    res = fitted_ss("numpyro")
    with pytest.raises(ValueError, match=r"y must lie in 0\.\.9"):
        pv.sample(res, n=2, y=10)
    with pytest.raises(ValueError, match="one integer label or 3"):
        pv.sample(res, n=3, y=[1, 2])
    vae = pv.fit(pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,)), digits.train,
                 epochs=1, progress=False)
    with pytest.raises(ValueError, match="has no classifier"):
        pv.predict(vae, digits.test.x[:3])


def test_bad_model_settings():
    with pytest.raises(ValueError, match="num_classes"):
        pv.models.SSVAE(input_dim=64, num_classes=1)
    with pytest.raises(ValueError, match="alpha"):
        pv.models.SSVAE(input_dim=64, num_classes=3, alpha=-1.0)


def test_needs_the_enum_objective(ss_numpyro, digits):
    with pytest.raises(ValueError, match="objective='enum'"):
        pv.fit(ss_numpyro, digits.train, labels=digits.train.label_subset(1), objective="elbo",
               epochs=1, progress=False)
    res = pv.fit(ss_numpyro, digits.train, labels=digits.train.label_subset(1), epochs=1,
                 progress=False)                        # the default for discrete latents
    assert res.objective == "enum"


def test_scores_leave_out_the_auxiliary_term(backend, fitted_ss, digits):
    """log p(x, y) given y must not include M2's training-only alpha * log q(y|x) site."""
    import copy
    import dataclasses

    res = fitted_ss(backend)
    plain = copy.copy(res.model)
    plain.alpha = 0.0                     # the same model without the y_aux site
    res0 = dataclasses.replace(res, model=plain)
    x, y = digits.test.x[:5], digits.test.y[:5]
    a = pv.inference.log_weights(res, x, num_samples=4, y=y, seed=1)["log_w"]
    b = pv.inference.log_weights(res0, x, num_samples=4, y=y, seed=1)["log_w"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_predict_by_bayes_rule_under_the_model(backend, fitted_ss, digits):
    """method="model": softmax over classes of log p(x, y=c), each an IWAE estimate given y=c."""
    from scipy.special import logsumexp

    res = fitted_ss(backend)
    x = digits.test.x[:40]
    probs = pv.predict(res, x, method="model", num_samples=8, seed=2)
    assert probs.shape == (40, K) and np.allclose(probs.sum(1), 1, atol=1e-5)
    log_joint = np.stack([logsumexp(pv.inference.log_weights(
        res, x, num_samples=8, seed=2, y=np.full(40, c))["log_w"], axis=1) for c in range(K)], 1)
    np.testing.assert_allclose(np.log(probs[:, 3] / probs[:, 7]),
                               log_joint[:, 3] - log_joint[:, 7], rtol=1e-3, atol=1e-2)
    assert (probs.argmax(1) == digits.test.y[:40]).mean() > 0.3          # chance is 0.1
    with pytest.raises(ValueError, match="'classifier'.*'model'"):
        pv.predict(res, x, method="bayes")


def test_fit_takes_the_models_own_defaults(digits):
    """Left out, epochs and batch_size come from the model (SSVAE: 100 of 32, chosen on the
    validation split); a VAE keeps fit's general 50 of 128; given ones always win."""
    part = pv.data.from_arrays(digits.train.x[:64], digits.train.y[:64])
    lab = part.label_subset(n_per_class=1)
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(8,))
    res = pv.fit(ss, part, labels=lab, progress=False)
    assert (res.options["epochs"], res.options["batch_size"]) == (100, 32)
    assert len(res.history["train_loss"]) == 100 and res.objective == "enum"
    res = pv.fit(ss, part, labels=lab, epochs=2, batch_size=16, progress=False)
    assert (res.options["epochs"], res.options["batch_size"]) == (2, 16)
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,))
    res = pv.fit(vae, part, epochs=1, progress=False)
    assert res.options["batch_size"] == 128
    assert pv.models.SSVAE(input_dim=64).latent_dim == 32
