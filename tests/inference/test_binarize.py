"""Dynamic binarization: grey pixels, a fresh Bernoulli draw at every step."""
import numpy as np
import pytest

import probvae as pv


def test_dynamic_binarization_learns_the_grey_level(backend):
    """Pixels of grey 0.3 are drawn as 1 with probability 0.3 at each step: the model learns
    p(x=1) = 0.3, where training on one fixed draw or a threshold would not."""
    x = np.full((256, 16), 0.3, np.float32)
    vae = pv.models.VAE(input_dim=16, latent_dim=2, hidden=(16,), likelihood="bernoulli",
                        backend=backend)
    res = pv.fit(vae, x, binarize="dynamic", epochs=40, batch_size=64, lr=1e-2,
                 progress=False)
    assert res.options["binarize"] == "dynamic"
    mean = pv.sample(res, n=200, seed=0).mean()
    assert abs(mean - 0.3) < 0.05, mean
    scores = pv.evaluate(res, pv.data.from_arrays(x).binarize(stochastic=True), num_samples=5)
    assert np.isfinite(scores["log_likelihood"])


def test_dynamic_binarization_needs_binary_likelihood_and_grey_values(small, make_vae):
    with pytest.raises(ValueError, match="likelihood of binary data"):
        pv.fit(make_vae("numpyro"), small.train, binarize="dynamic", epochs=1, progress=False)
    vae = make_vae("numpyro", likelihood="bernoulli")
    with pytest.raises(ValueError, match="grey values in \\[0, 1\\]"):
        pv.fit(vae, small.train.x * 2, binarize="dynamic", epochs=1, progress=False)
    with pytest.raises(ValueError, match="binarize must be None .* or 'dynamic'"):
        pv.fit(vae, small.train, binarize="threshold", epochs=1, progress=False)


def test_stochastic_binarization_of_a_split():
    split = pv.data.from_arrays(np.full((400, 50), 0.25, np.float32))
    a = split.binarize(stochastic=True, seed=1).x
    assert set(np.unique(a)) == {0.0, 1.0} and abs(a.mean() - 0.25) < 0.01
    assert np.array_equal(a, split.binarize(stochastic=True, seed=1).x)
    assert not np.array_equal(a, split.binarize(stochastic=True, seed=2).x)
    assert split.binarize().x.max() == 0.0                     # threshold 0.5


@pytest.mark.slow       # 13 s: a conv model trained, stopped and resumed by the command
def test_cli_conv_dynamic_binarization_and_resume(tmp_path, capsys):
    from probvae.applications.cli import main
    run = tmp_path / "run"
    args = ["--likelihood", "bernoulli", "--binarize", "dynamic", "--encoder", "conv",
            "--decoder", "conv", "--latent-dim", "2", "--prior", "normal", "--eval-samples", "4",
            "--no-progress", "--batch-size", "64"]
    assert main(["train", "--epochs", "1", *args, "--out", str(run)]) == 0
    assert "dynamic binarization" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    res = pv.load(run)
    assert len(res.history["train_loss"]) == 2 and res.options["binarize"] == "dynamic"
    assert res.model.encoder_spec.channels == (32, 64)
