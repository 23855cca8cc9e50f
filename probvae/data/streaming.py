"""Data larger than memory: rows of a ``.npy`` or IDX file read from disk a chunk at a time.

``pv.fit(vae, pv.data.stream("big.npy"), ...)`` trains on the file without loading it: each
epoch visits the chunks in a fresh random order and shuffles the rows inside each chunk
(the usual shuffle of streamed data: rows of one chunk share its batches within an epoch),
and only one chunk is in memory at a time, read with plain file reads (not a memory map,
whose touched pages would count against the process as the file grows). NumPyro runs its
compiled epoch program on each chunk in turn; Pyro steps through each chunk's batches.

The file must stay as it is while a stream reads it: a read checks the file's size against
the size it had when the stream was opened (and that the rows are all there), and a fit
checks each chunk it reads again against a digest of what that chunk held when the fit
began. A change stops with :class:`StreamChangedError` instead of training on other data.

Examples
--------
>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
>>> np.save(path, np.random.default_rng(0).random((1000, 8), dtype=np.float32))
>>> s = stream(path, chunk_rows=256)
>>> len(s), s.dim, s.num_chunks, s.read(0, 3).shape
(1000, 8, 4, (3, 8))
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import _IDX_DTYPES

__all__ = ["Stream", "stream", "StreamChangedError"]


class StreamChangedError(ValueError):
    """A streamed file changed after it was opened (rewritten, truncated or grown), so its rows
    are no longer those the stream, or a fit on it, began with.

    Parameters
    ----------
    path : str or Path
        The file.
    rows : tuple of int
        ``(start, stop)``: the rows being read when the change was seen.
    detail : str
        What differs (the file's size, a chunk's contents, missing rows).
    fitting : bool
        Whether a fit was training on the file (the message then says how to go on).

    Examples
    --------
    >>> err = StreamChangedError("x.npy", (0, 100), "it holds other values")
    >>> isinstance(err, ValueError), err.rows
    (True, (0, 100))
    """

    def __init__(self, path, rows, detail: str, fitting: bool = False):
        self.path, self.rows, self.detail, self.fitting = Path(path), tuple(rows), detail, fitting
        start, stop = self.rows
        if fitting:
            what, fix = ("changed while training on it", "restore it (a fit with checkpoint= "
                         "can then resume: the run folder keeps its last checkpoint), or start "
                         "a new fit on the new file")
        else:
            what, fix = ("changed since pv.data.stream opened it",
                         "restore it, or open the new file with pv.data.stream")
        super().__init__(f"{self.path} {what} ({detail}, seen reading rows {start}.."
                         f"{stop - 1}): {fix}")

    def __reduce__(self):                 # pickles (e.g. across processes) with its fields
        return type(self), (self.path, self.rows, self.detail, self.fitting)


class Stream:
    """An (N, D) float32 view of a file's rows, read ``chunk_rows`` at a time.

    Parameters
    ----------
    path : str or Path
        A ``.npy`` file of shape (N, ...) (any numeric dtype), or an IDX file (MNIST's
        format, uncompressed) of shape (N, ...); trailing dimensions are flattened.
    chunk_rows : int
        Rows per chunk read from disk (and per compiled NumPyro call).
    scale : float, optional
        Each value is multiplied by it (default: 1/255 for uint8 files, i.e. pixels in
        [0, 1]; 1 otherwise).
    """

    def __init__(self, path, chunk_rows: int = 8192, scale: float | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no file {self.path}")
        if isinstance(chunk_rows, bool) or int(chunk_rows) != chunk_rows or chunk_rows < 1:
            raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
        self.chunk_rows = int(chunk_rows)
        with open(self.path, "rb") as f:
            head = f.read(6)
            f.seek(0)
            if head[:2] == b"\x1f\x8b":
                raise ValueError(f"{self.path} is gzipped; streaming reads plain files: "
                                 "gunzip it first")
            if head == b"\x93NUMPY":       # the header only
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read(f)
                if fortran and len(shape) > 1:
                    raise ValueError(f"{self.path} is stored in Fortran order; rows cannot be "
                                     "read one chunk at a time: save it with np.save(path, "
                                     "np.ascontiguousarray(x))")
                self.offset = f.tell()
            else:
                shape, dtype = _idx_header(f, self.path)
                self.offset = f.tell()
        if len(shape) < 2 or shape[0] < 1:
            raise ValueError(f"{self.path} holds an array of shape {shape}; streaming needs "
                             "one row per example: shape (N, D) or (N, H, W)")
        if dtype.kind not in "uif":
            raise ValueError(f"{self.path} holds {dtype} values; streaming needs numbers")
        self.n, self.shape, self.dtype = int(shape[0]), tuple(shape), np.dtype(dtype)
        self.dim = int(np.prod(shape[1:]))
        self.image_shape = tuple(shape[1:]) if len(shape) == 3 else None
        self.scale = (1 / 255 if self.dtype == np.uint8 else 1.0) if scale is None else scale
        self.row_bytes = self.dim * self.dtype.itemsize
        self.size = self.path.stat().st_size       # a read checks the file still has it
        if self.size < self.offset + self.n * self.row_bytes:
            raise ValueError(f"{self.path} is truncated: its header declares {self.shape} but "
                             f"it holds {self.size - self.offset} data bytes")

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return (f"Stream({str(self.path)!r}, rows={self.n}, dim={self.dim}, "
                f"chunk_rows={self.chunk_rows})")

    @property
    def num_chunks(self) -> int:
        return -(-self.n // self.chunk_rows)

    def bounds(self, i: int) -> tuple:
        """``(start, stop)`` rows of chunk ``i``."""
        start = i * self.chunk_rows
        return start, min(start + self.chunk_rows, self.n)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as float32 (N, D), scaled; read from disk now.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "u.npy")
        >>> np.save(p, np.full((4, 2, 2), 255, np.uint8))
        >>> stream(p).read(1, 3).tolist()[0]
        [1.0, 1.0, 1.0, 1.0]
        """
        start, stop = max(0, int(start)), min(self.n, int(stop))
        count = max(0, stop - start) * self.dim
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            raise StreamChangedError(self.path, (start, stop), "the file is gone") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            if size != self.size:
                raise StreamChangedError(self.path, (start, stop), f"it held {self.size} bytes "
                                         f"when opened and holds {size} now")
            f.seek(self.offset + start * self.row_bytes)
            raw = np.fromfile(f, dtype=self.dtype, count=count)
        if raw.size != count:                        # cut short between the check and the read
            raise StreamChangedError(self.path, (start, stop), f"{raw.size // self.dim} of "
                                     f"these {stop - start} rows are left")
        out = raw.reshape(-1, self.dim).astype(np.float32)
        if self.scale != 1.0:
            out *= np.float32(self.scale)
        return out

    def chunks(self):
        """Yield ``(start, rows)`` for every chunk in file order."""
        for i in range(self.num_chunks):
            start, stop = self.bounds(i)
            yield start, self.read(start, stop)


def stream(path, chunk_rows: int = 8192, scale: float | None = None) -> Stream:
    """A :class:`Stream` over a ``.npy`` or IDX file, for ``pv.fit`` on data larger than memory.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(p, np.zeros((10, 3), np.float32))
    >>> stream(p, chunk_rows=4).num_chunks
    3
    """
    return Stream(path, chunk_rows=chunk_rows, scale=scale)


def _idx_header(f, path):
    magic = f.read(4)
    if len(magic) < 4 or magic[:2] != b"\x00\x00" or magic[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: neither a .npy file nor an IDX file (unknown header "
                         f"{magic.hex()})")
    ndim = magic[3]
    dims = np.frombuffer(f.read(4 * ndim), dtype=">u4")
    if len(dims) != ndim:
        raise ValueError(f"{path}: IDX header is cut short")
    return tuple(int(d) for d in dims), np.dtype(_IDX_DTYPES[magic[2]])
