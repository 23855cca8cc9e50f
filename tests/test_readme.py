"""Every ```python block of README.md runs as written, so the front page cannot rot.

Each block is its own program: it runs in a fresh Python process, in an empty temporary folder
(blocks may write ``runs/`` folders and pictures), with ``MPLBACKEND=Agg``. A block that raises
fails its test. Each block is named by the README heading above it (``"Heading #2"`` for a
second block under the same heading) and classified in ``BLOCKS``: ``"fast"`` blocks run in
``make test``, ``"slow"`` ones under ``-m slow`` (``make test-slow``). A block added to the
README without an entry here, or an entry whose block has gone, fails ``make test``.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

#: README heading of each python block -> "fast" or "slow". Seconds: the block as a program on
#: 2 CPU cores, quiet to beside another test run (NumPyro's program cache warm; cold adds up to
#: 4 s). A block over about 20 s is slow; the fast ones together stay under about 40 s (21-35 s
#: measured), since `make test` is tight.
BLOCKS = {
    "In Python": "slow",                                   # 22-29 s: 50 epochs, IWAE x8, vamp
    "Your own model": "fast",                              # 6 s: 20 Pyro epochs
    "Tables": "fast",                                      # 9 s: fit's defaults, 240 rows
    "Tables #2": "slow",                                   # 60-90 s: pv.impute(df) tunes itself
    "More devices, and data larger than memory": "fast",   # 7-11 s: 4 forced CPU devices
    "Model families: conditions, posteriors, hierarchies, your own networks": "slow",  # 46 s
    "What swaps by name": "slow",                          # 16-23 s: 50 epochs, 16 particles
}


def python_blocks(text=None):
    """``[(name, code)]``: the README's ```python blocks in order, each named by its heading."""
    text = README.read_text(encoding="utf-8") if text is None else text
    blocks, heading, seen, fence, lines = [], None, {}, None, []
    for line in text.splitlines():
        if fence is None:
            if line.startswith("```"):
                fence, lines = line[3:].strip(), []
            elif line.startswith("#"):
                heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            if fence == "python":
                seen[heading] = seen.get(heading, 0) + 1
                name = heading if seen[heading] == 1 else f"{heading} #{seen[heading]}"
                blocks.append((name, "\n".join(lines) + "\n"))
            fence = None
        else:
            lines.append(line)
    assert fence is None, f"README.md ends inside a ```{fence} block"
    return blocks


def _slug(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _cases():
    for name, code in python_blocks():
        marks = [pytest.mark.slow] if BLOCKS.get(name) == "slow" else []
        yield pytest.param(name, code, marks=marks, id=_slug(name))


def test_every_block_is_classified():
    names = [name for name, _ in python_blocks()]
    assert names, "no ```python block found in README.md"
    missing = [n for n in names if n not in BLOCKS]
    stale = [n for n in BLOCKS if n not in names]
    assert not missing, (f"README python blocks not classified in tests/test_readme.py BLOCKS: "
                         f"{missing}; time each one and add it as 'fast' or 'slow'")
    assert not stale, f"BLOCKS names README blocks that no longer exist: {stale}"
    assert set(BLOCKS.values()) <= {"fast", "slow"}, BLOCKS


@pytest.mark.parametrize("name, code", list(_cases()))
def test_readme_block_runs(name, code, tmp_path):
    assert name in BLOCKS, f"README block under {name!r} is not classified in BLOCKS"
    (tmp_path / "block.py").write_text(code, encoding="utf-8")
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "block.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, (f"README block under {name!r} failed:\n{code}\n"
                                  f"{proc.stderr[-4000:]}")
