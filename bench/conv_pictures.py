"""Short conv-VAE runs on MNIST and Fashion-MNIST (Pyro) for the README's pictures.

    .venv/bin/python bench/conv_pictures.py mnist 10           # about 4 minutes on one core
    .venv/bin/python bench/conv_pictures.py fashion_mnist 10

It trains a conv VAE (latent 32, dynamic binarization, Bernoulli likelihood) into
runs/conv_NAME, prints its test -ELBO and IWAE bound (100 samples), and writes
docs/NAME_conv_samples.png and docs/NAME_conv_reconstructions.png.
"""
import sys
import time
from pathlib import Path

import numpy as np

import probvae as pv

ROOT = Path(__file__).resolve().parents[1]
name, epochs = sys.argv[1], int(sys.argv[2])
data = pv.data.load(name, path=str(ROOT.parent / "shared" / "data" / name), seed=0)
vae = pv.models.VAE(image_shape=(1, 28, 28), latent_dim=32, encoder="conv", decoder="conv",
                    prior="normal", likelihood="bernoulli", backend="pyro")
t = time.time()
res = pv.fit(vae, data.train, validation=data.valid.binarize(stochastic=True, seed=0),
             binarize="dynamic",
             epochs=epochs, batch_size=100, lr=1e-3, seed=0, progress=False,
             checkpoint=ROOT / "runs" / f"conv_{name}", overwrite=True)
train_min = (time.time() - t) / 60
test = data.test.binarize(stochastic=True, seed=0)
s = pv.evaluate(res, test, num_samples=100)
print(f"{name}: conv VAE (Pyro), {epochs} epochs in {train_min:.1f} min, valid "
      f"{res.history['valid_loss'][-1]:.2f}; test -ELBO {-s['elbo']:.2f}, -log p(x) "
      f"{-s['log_likelihood']:.2f} (IWAE, 100 samples)", flush=True)
x = pv.sample(res, n=64, seed=0)
pv.plots.image_grid(x, (28, 28), ROOT / "docs" / f"{name}_conv_samples.png", ncol=8,
                    title=f"{name}: conv VAE samples (means)")
xt = test.x[:16]
rec = pv.reconstruct(res, xt)
pv.plots.image_grid(np.concatenate([xt[:8], rec[:8], xt[8:], rec[8:]]), (28, 28),
                    ROOT / "docs" / f"{name}_conv_reconstructions.png", ncol=8,
                    title=f"{name}: binarized test images (rows 1, 3) and reconstructions")
