"""Pictures of data and samples (matplotlib, no display needed)."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["image_grid", "latent_scatter", "learning_curves", "save_png"]


def image_grid(x, image_shape=None, path=None, ncol=None, title=None, cmap="gray_r",
               row_labels=None):
    """Draw flattened images as a grid; write a PNG to ``path`` if given.

    Parameters
    ----------
    x : array (N, H*W) or (N, H, W)
        Images, one per row, values shown on a [0, 1] scale (clipped).
    image_shape : tuple (H, W), optional
        The images' shape; default: from ``x`` of shape (N, H, W), or square when H*W is
        a square number (a data set's ``image_shape`` gives it otherwise).
    path : str or Path, optional
        PNG file to write (written atomically).
    ncol : int, optional
        Images per row (default: about sqrt(N)).
    title : str, optional
    row_labels : sequence of str, optional
        One label per row, written left of the row (e.g. ``"dim 3"`` for a traversal).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = image_grid(np.random.rand(16, 64), (8, 8))
    >>> len(fig.axes), len(image_grid(np.random.rand(4, 8, 8)).axes)
    (16, 4)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(x, dtype=np.float32)
    h, w = _image_shape(x, image_shape)
    x = x.reshape(len(x), -1) if x.ndim == 3 else x
    if x.ndim != 2 or x.shape[1] != h * w:
        raise ValueError(f"image_grid needs x of shape (N, {h * w}) for images {h}x{w}, "
                         f"got {x.shape}")
    n = len(x)
    ncol = int(ncol or math.ceil(math.sqrt(n)))
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(ncol * 0.6 + 0.2, nrow * 0.6 + (0.5 if title else 0.2)))
    FigureCanvasAgg(fig)
    for i in range(n):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        ax.imshow(np.clip(x[i].reshape(h, w), 0, 1), cmap=cmap, vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_axis_off()
        if row_labels is not None and i % ncol == 0 and i // ncol < len(row_labels):
            ax.text(-0.15, 0.5, str(row_labels[i // ncol]), transform=ax.transAxes,
                    ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0.02, right=0.98, bottom=0.02,
                        top=0.9 if title else 0.98)
    if path is not None:
        save_png(fig, path)
    return fig


def _image_shape(x, image_shape):
    """``(H, W)`` of :func:`image_grid`'s images, checked, with an error that names the fix."""
    if isinstance(image_shape, (str, bytes)) or hasattr(image_shape, "__fspath__"):
        raise TypeError(f"image_grid's second argument is image_shape, (H, W); got "
                        f"{image_shape!r}: pass the file as path=, e.g. "
                        f"image_grid(x, path={str(image_shape)!r})")
    if image_shape is None:
        if x.ndim == 3:
            return x.shape[1:]
        side = math.isqrt(x.shape[-1]) if x.ndim == 2 else 0
        if x.ndim != 2 or side * side != x.shape[-1]:
            raise ValueError(f"image_grid cannot tell the images' shape from x of shape "
                             f"{x.shape}; pass image_shape=(H, W) (a data set's image_shape)")
        return side, side
    try:
        h, w = (int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise TypeError(f"image_shape must be two integers (H, W), got {image_shape!r}") from None
    if x.ndim == 3 and x.shape[1:] != (h, w):
        raise ValueError(f"image_grid got images of shape {x.shape[1:]} and image_shape={(h, w)}")
    return h, w


def latent_scatter(z, labels=None, path=None, title=None, ax_labels=("z[0]", "z[1]")):
    """Scatter plot of 2-D codes, coloured by label: a map of the latent space.

    Parameters
    ----------
    z : array (N, 2)
        Codes (e.g. ``pv.encode(res, x)`` of a 2-D model, or a 2-D projection of codes).
    labels : array (N,), optional
        Integer classes; each gets a colour and a legend entry.
    path : str or Path, optional
        PNG file to write (written atomically).
    title : str, optional
    ax_labels : (str, str)

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = latent_scatter(np.random.randn(50, 2), labels=np.arange(50) % 3)
    >>> len(fig.axes)
    1
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"latent_scatter needs codes of shape (N, 2), got {z.shape}; project "
                         "higher-dimensional codes first (e.g. PCA)")
    fig = Figure(figsize=(5.2, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=6, alpha=0.7)
    else:
        labels = np.asarray(labels)
        if labels.shape != (len(z),):
            raise ValueError(f"labels must have shape ({len(z)},), got {labels.shape}")
        cmap = _cmap("tab10" if len(np.unique(labels)) <= 10 else "tab20")
        for i, k in enumerate(np.unique(labels)):
            m = labels == k
            ax.scatter(z[m, 0], z[m, 1], s=6, alpha=0.7, color=cmap(i % cmap.N), label=str(k))
        ax.legend(markerscale=2.5, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  frameon=False)
    ax.set_xlabel(ax_labels[0])
    ax.set_ylabel(ax_labels[1])
    if title:
        ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        save_png(fig, path)
    return fig


def learning_curves(history, path=None, title=None, best_epoch=None):
    """Plot a training run's history: losses per epoch, and validation accuracy if recorded.

    The left panel shows ``train_loss`` and ``valid_loss`` (when there is one) against the
    epoch, with the best validation epoch marked; a right panel shows ``valid_accuracy`` for
    models that learn labels. Use it to see whether a run that stopped was still improving.

    Parameters
    ----------
    history : dict, FitResult, or str/Path of a run folder
        Per-epoch lists as in ``res.history`` (``train_loss`` required); a run folder is read
        from its ``history.json``.
    path : str or Path, optional
        PNG file to write (written atomically).
    title : str, optional
    best_epoch : int, optional
        Epoch (1-based) to mark; default: the one with the lowest ``valid_loss``.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = learning_curves({"train_loss": [3.0, 2.0, 1.5], "valid_loss": [3.1, 2.2, 1.9],
    ...                        "valid_accuracy": [0.5, 0.7, 0.8]})
    >>> len(fig.axes)
    2
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    history = _history_of(history)
    train = np.asarray(history.get("train_loss", []), dtype=float)
    if train.size == 0:
        raise ValueError("learning_curves needs a history with at least one epoch of "
                         "'train_loss' (res.history or a run folder's history.json)")
    valid = np.asarray(history.get("valid_loss") or [], dtype=float)
    acc = np.asarray(history.get("valid_accuracy") or [], dtype=float)
    fig = Figure(figsize=(9.0 if acc.size else 5.0, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2 if acc.size else 1, 1)
    epochs = np.arange(1, train.size + 1)
    ax.plot(epochs, train, label="train loss")
    if valid.size:
        ax.plot(np.arange(1, valid.size + 1), valid, label="validation loss")
        best = best_epoch or int(np.nanargmin(valid)) + 1
        ax.axvline(best, color="grey", ls=":", lw=1, label=f"best epoch {best}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per example")
    ax.legend(fontsize=8, frameon=False)
    if acc.size:
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.plot(np.arange(1, acc.size + 1), acc, color="C2")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("validation accuracy")
        ax2.set_title(f"last {acc[-1]:.3f}, best {np.nanmax(acc):.3f}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        save_png(fig, path)
    return fig


def _history_of(history) -> dict:
    """A history dict from a dict, a FitResult, or a run folder."""
    import json

    if isinstance(history, dict):
        return history
    if isinstance(history, (str, os.PathLike)):
        file = Path(history) / "history.json"
        if not file.is_file():
            raise FileNotFoundError(f"{history} has no history.json: give a run folder written "
                                    "by pv.fit(checkpoint=...), pv.save or probvae train")
        return json.loads(file.read_text())
    if hasattr(history, "history"):
        return history.history
    raise TypeError(f"learning_curves needs a history dict, a FitResult or a run folder, got "
                    f"{type(history).__name__}")


def _cmap(name):
    import matplotlib

    return matplotlib.colormaps[name]


def save_png(fig, path, dpi=100):
    """Write a matplotlib figure to ``path`` as PNG atomically (no half-written file on error).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> fig = image_grid(np.random.rand(4, 64), (8, 8))
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "grid.png"
    >>> save_png(fig, p); p.stat().st_size > 0
    True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
