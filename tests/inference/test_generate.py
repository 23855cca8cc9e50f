"""decode, interpolate, traverse, synthesize: consistent with encode/reconstruct/sample, both backends."""
import numpy as np
import pytest

import probvae as pv


@pytest.fixture(scope="module")
def fitted_ss(digits):
    cache = {}

    def get(backend):
        if backend not in cache:
            ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=3, hidden=(16,),
                                 backend=backend)
            cache[backend] = pv.fit(ss, digits.train, labels=digits.train.label_subset(2),
                                    objective="enum", epochs=1, batch_size=64, progress=False)
        return cache[backend]
    return get


def test_decode_of_codes_is_reconstruction(backend, fitted, small):
    res, _ = fitted(backend)
    x = small.test.x[:6]
    np.testing.assert_allclose(pv.decode(res, pv.encode(res, x)), pv.reconstruct(res, x),
                               atol=1e-5)
    draw = pv.decode(res, pv.encode(res, x), mean=False, seed=3)
    assert draw.shape == (6, 64) and not np.allclose(draw, pv.reconstruct(res, x))


def test_interpolation_ends_at_the_inputs(backend, fitted, small):
    res, _ = fitted(backend)
    a, b = small.test.x[0], small.test.x[1]
    path = pv.interpolate(res, a, b, steps=5)
    rec = pv.reconstruct(res, np.stack([a, b]))
    assert path.shape == (5, 64)
    np.testing.assert_allclose(path[[0, -1]], rec, atol=1e-5)
    z = pv.encode(res, np.stack([a, b]))
    np.testing.assert_allclose(path[2], pv.decode(res, z.mean(0))[0], atol=1e-5)


def test_traversal_moves_one_dim(backend, fitted, small):
    res, _ = fitted(backend)
    x = small.test.x[0]
    anchor = pv.encode(res, x[None])[0]
    values = np.stack([[anchor[d] - 2, anchor[d], anchor[d] + 2] for d in range(3)])
    grid = pv.traverse(res, x=x, values=values)
    assert grid.shape == (3, 3, 64)
    # the middle column keeps the anchor: every row decodes to the reconstruction
    for d in range(3):
        np.testing.assert_allclose(grid[d, 1], pv.reconstruct(res, x[None])[0], atol=1e-5)
    assert np.abs(grid[:, 0] - grid[:, 2]).max() > 1e-3
    zgrid = pv.traverse(res, z=np.zeros(3), dims=[1], values=[-1.0, 1.0])
    np.testing.assert_allclose(zgrid[0], pv.decode(res, [[0, -1, 0], [0, 1, 0]]), atol=1e-5)


def test_synthesize_without_labels_matches_sample(backend, fitted):
    res, _ = fitted(backend)
    x = pv.synthesize(res, 7, seed=2)
    np.testing.assert_array_equal(x, pv.sample(res, n=7, seed=2))
    np.testing.assert_array_equal(x, pv.synthesize(res, 7, seed=2))
    with pytest.raises(ValueError, match="no labels"):
        pv.synthesize(res, 3, y=1)


def test_synthesize_with_labels(backend, fitted_ss):
    res = fitted_ss(backend)
    x, y = pv.synthesize(res, 25, seed=0)
    assert x.shape == (25, 64) and np.bincount(y).tolist() == [3] * 5 + [2] * 5
    np.testing.assert_array_equal(x, pv.sample(res, n=25, y=y, seed=0))
    x3, y3 = pv.synthesize(res, 4, y=3)
    assert (y3 == 3).all() and x3.shape == (4, 64)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        pv.synthesize(res, 2, y=10)


def test_label_models_fix_the_class_along_paths(backend, fitted_ss, digits):
    res = fitted_ss(backend)
    a, b = digits.test.x[0], digits.test.x[1]
    path = pv.interpolate(res, a, b, steps=3, y=4)
    z = pv.encode(res, np.stack([a, b]), y=[4, 4])
    np.testing.assert_allclose(path[[0, -1]], pv.decode(res, z, y=4), atol=1e-5)
    assert pv.traverse(res, x=a, values=[-1, 1]).shape == (3, 2, 64)
    assert pv.decode(res, np.zeros((2, 3)), y=[1, 2]).shape == (2, 64)


def test_generation_errors(fitted):
    res, _ = fitted("numpyro")
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        pv.decode(res, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        pv.decode(res, np.full((1, 3), np.nan))
    with pytest.raises(ValueError, match="no labels"):
        pv.decode(res, np.zeros((1, 3)), y=1)
    with pytest.raises(ValueError, match="steps >= 2"):
        pv.interpolate(res, np.zeros(64), np.ones(64), steps=1)
    with pytest.raises(ValueError, match="features|shape|64"):
        pv.interpolate(res, np.zeros(10), np.ones(10))
    with pytest.raises(ValueError, match="dims"):
        pv.traverse(res, dims=[5])
    with pytest.raises(ValueError, match="not both"):
        pv.traverse(res, x=np.zeros(64), z=np.zeros(3))
    with pytest.raises(ValueError, match="values"):
        pv.traverse(res, dims=[0, 1], values=np.zeros((3, 4)))


def test_plots_write_pngs(tmp_path):
    grid = np.random.default_rng(0).random((6, 64))
    fig = pv.plots.image_grid(grid, (8, 8), path=tmp_path / "g.png", ncol=3,
                              row_labels=["dim 0", "dim 1"])
    assert (tmp_path / "g.png").stat().st_size > 0 and len(fig.axes) == 6
    pv.plots.latent_scatter(np.random.default_rng(0).normal(size=(30, 2)), np.arange(30) % 3,
                            path=tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(ValueError, match="PCA"):
        pv.plots.latent_scatter(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="labels"):
        pv.plots.latent_scatter(np.zeros((5, 2)), labels=np.zeros(4))


def test_learning_curves_from_a_fit_and_its_run_folder(tmp_path, digits):
    ss = pv.models.SSVAE(input_dim=64, num_classes=10, latent_dim=2, hidden=(16,))
    lab = digits.train.label_subset(n_per_class=2, seed=0)
    res = pv.fit(ss, digits.train, labels=lab, epochs=2, batch_size=128, progress=False,
                 validation=digits.valid, checkpoint=tmp_path / "run")
    fig = pv.plots.learning_curves(res, path=tmp_path / "curves.png", title="M2")
    assert len(fig.axes) == 2                     # losses, and validation accuracy
    assert (tmp_path / "curves.png").stat().st_size > 0
    lines = fig.axes[0].get_lines()
    assert list(lines[0].get_ydata()) == res.history["train_loss"]
    fig = pv.plots.learning_curves(tmp_path / "run")
    assert len(fig.axes) == 2
    assert len(pv.plots.learning_curves({"train_loss": [2.0, 1.0]}).axes) == 1
    with pytest.raises(ValueError, match="train_loss"):
        pv.plots.learning_curves({"train_loss": []})
    with pytest.raises(FileNotFoundError, match="history.json"):
        pv.plots.learning_curves(tmp_path)
