"""Sizes checked before they are allocated: a user's number (``n``, ``num_samples``, rows to
synthesize, ...) that would need more memory than this machine has free is refused at once,
with a message naming the setting and a way round it, instead of growing until the kernel
kills the process.

Examples
--------
>>> check_allocation(8 * 1000, "n=1000", "a smaller n", what="pv.sample")     # 8 kB: fine
8000
>>> format_bytes(3 * 2**30)
'3.0 GiB'
"""
from __future__ import annotations

import os

__all__ = ["TooLargeError", "available_bytes", "check_allocation", "format_bytes", "maps_in_use",
           "round_down", "FRACTION"]

#: the share of the memory available now that one call may plan to hold
FRACTION = 0.5


class TooLargeError(MemoryError, ValueError):
    """A setting asks for more memory than this machine has free; raised before allocating.

    Both a ``MemoryError`` (what it prevents: code that falls back to smaller pieces on
    ``except MemoryError`` still does) and a ``ValueError`` (what it is: a setting out of
    range for this machine, refused like any other bad argument, and shown by the CLI as an
    ``error:`` line).
    """


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None        # cgroup v2 writes "max" for no limit


def _meminfo_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def maps_in_use():
    """``(used, limit)``: this process's memory maps and the most the kernel allows it
    (``vm.max_map_count``, 65,530 by default), or None where ``/proc`` cannot tell (not Linux).

    Each program XLA compiles for the CPU maps its code in many pieces (a fit of a 64-column
    table's VAE: thousands), and a process past the limit fails inside LLVM ("Cannot allocate
    memory") and crashes: the caches of compiled programs let their oldest go before that
    (:func:`probvae.inference.compiling.keep_programs`).

    >>> used, limit = maps_in_use() or (1, 1)
    >>> 0 < used <= limit
    True
    """
    limit = _read_int("/proc/sys/vm/max_map_count")
    try:
        with open("/proc/self/maps", "rb") as f:
            used = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return None
    return None if limit is None else (used, limit)


def available_bytes() -> int:
    """Memory this process can still allocate, in bytes: ``MemAvailable`` from
    ``/proc/meminfo`` (else free physical pages), or what is left under the cgroup's memory
    limit (a container's) when that is smaller; 0 when neither can be read.

    Examples
    --------
    >>> available_bytes() >= 0
    True
    """
    free = _meminfo_available()
    for limit_path, used_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                   "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit = _read_int(limit_path)
        if limit is None or limit >= 1 << 60:           # cgroup v1 writes a huge number for none
            continue
        left = max(limit - (_read_int(used_path) or 0), 0)
        free = left if free is None else min(free, left)
        break
    return int(free or 0)


def format_bytes(nbytes) -> str:
    """``nbytes`` in binary units, e.g. ``'1.5 GiB'``.

    Examples
    --------
    >>> format_bytes(512), format_bytes(1536), format_bytes(7.5 * 2**40)
    ('512 B', '1.5 KiB', '7.5 TiB')
    """
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value /= 1024
    else:
        unit = "PiB"
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def round_down(count) -> int:
    """``count`` rounded down to one significant digit (at least 1): a number to suggest.

    Examples
    --------
    >>> round_down(163_840), round_down(7), round_down(0)
    (100000, 7, 1)
    """
    count = int(count)
    if count < 10:
        return max(count, 1)
    scale = 10 ** (len(str(count)) - 1)
    return count // scale * scale


def check_allocation(nbytes, setting, fix, what="this call", detail="") -> int:
    """Refuse ``nbytes`` when it exceeds :data:`FRACTION` of the memory available now.

    Call it before allocating or computing anything whose size a user's number sets.

    Parameters
    ----------
    nbytes : int
        Estimated bytes the call would hold at its peak.
    setting : str
        The user's setting and its value, e.g. ``"n=1000000000"``.
    fix : str or callable
        The way round, e.g. ``"a smaller num_samples, e.g. 5000"``; a callable gets the bytes
        that may be used (the budget) and returns that text, so it can suggest a size that fits.
    what : str
        The call, e.g. ``"pv.sample"``.
    detail : str
        How the estimate is made up, e.g. ``"n x 64 features x 4 bytes"``.

    Returns
    -------
    int
        ``nbytes``, when it fits (or when the available memory cannot be read).

    Raises
    ------
    TooLargeError
        A ``MemoryError`` and ``ValueError`` naming the setting, the bytes needed and
        available, and ``fix``.

    Examples
    --------
    >>> check_allocation(10**6, "n=1000", "a smaller n")
    1000000
    >>> check_allocation(2**80, "n=10**20", "a smaller n, e.g. n=1000", what="pv.sample")
    Traceback (most recent call last):
    ...
    probvae.memory.TooLargeError: pv.sample: n=10**20 needs about ... of memory, more than half of the ... available on this machine; a smaller n, e.g. n=1000
    """
    nbytes = int(nbytes)
    free = available_bytes()
    budget = int(free * FRACTION)
    if not free or nbytes <= budget:
        return nbytes
    share = "half" if FRACTION == 0.5 else f"{FRACTION:.0%}"
    how = f" ({detail})" if detail else ""
    text = fix(budget) if callable(fix) else fix
    raise TooLargeError(f"{what}: {setting} needs about {format_bytes(nbytes)} of memory{how}, "
                        f"more than {share} of the {format_bytes(free)} available on this "
                        f"machine; {text}")
