"""Pictures of data and samples (matplotlib, no display needed)."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["image_grid"]


def image_grid(x, image_shape, path=None, ncol=None, title=None, cmap="gray_r"):
    """Draw flattened images as a grid; write a PNG to ``path`` if given.

    Parameters
    ----------
    x : array (N, H*W)
        Images, one per row, values shown on a [0, 1] scale (clipped).
    image_shape : tuple (H, W)
    path : str or Path, optional
        PNG file to write (written atomically).
    ncol : int, optional
        Images per row (default: about sqrt(N)).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = image_grid(np.random.rand(16, 64), (8, 8))
    >>> len(fig.axes)
    16
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(x, dtype=np.float32)
    h, w = (int(s) for s in image_shape)
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
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0.02, right=0.98, bottom=0.02,
                        top=0.9 if title else 0.98)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=100)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return fig
