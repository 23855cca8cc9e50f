"""Fits and samples from several threads: each call runs in its own parameter scope, one at a
time per backend (the libraries' handler stacks are global), with the results of a lone run."""
import threading

import numpy as np

import probvae as pv


def _fit(backend, data, seed, out, key):
    vae = pv.models.VAE(input_dim=64, latent_dim=3, hidden=(16,), backend=backend)
    out[key] = pv.fit(vae, data, epochs=3, batch_size=16, seed=seed, progress=False)


def test_two_fits_at_once_give_the_lone_results(backend, small):
    alone = {}
    for seed in (0, 1):
        _fit(backend, small.train, seed, alone, seed)
    together = {}
    threads = [threading.Thread(target=_fit, args=(backend, small.train, seed, together, seed))
               for seed in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in (0, 1):
        a = alone[seed].bk.params_to_numpy(alone[seed].param_state)
        b = together[seed].bk.params_to_numpy(together[seed].param_state)
        # the same numbers up to float round-off: a thread's BLAS may split sums differently
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(together[seed].history["train_loss"],
                                   alone[seed].history["train_loss"], rtol=1e-5)


def test_samples_from_threads_come_from_their_own_model(backend, small):
    results = {}
    for seed in (0, 1):
        _fit(backend, small.train, seed, results, seed)
    expected = {seed: pv.sample(results[seed], n=8, seed=5) for seed in (0, 1)}
    got, errors = {}, []

    def draw(seed, i):
        try:
            got[(seed, i)] = pv.sample(results[seed], n=8, seed=5)
        except Exception as err:            # noqa: BLE001 (reported below)
            errors.append(err)
    threads = [threading.Thread(target=draw, args=(seed, i)) for i in range(4)
               for seed in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (seed, _), x in got.items():
        np.testing.assert_allclose(x, expected[seed], rtol=1e-5, atol=1e-6)
        assert not np.allclose(x, expected[1 - seed])          # not the other model's
