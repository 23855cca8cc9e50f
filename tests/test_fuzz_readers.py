"""Fuzzing the readers of a run folder: whatever is done to its files, a reader says which file
(and field) is damaged, with DamagedFileError (or FileNotFoundError), and the CLI says so in
one line: never a KeyError, an OverflowError, a RecursionError or an error from inside NumPy,
JAX or torch.

Real run folders, written by a tiny fit on each backend, are damaged at random: a field at any
depth of ``config.json``, ``checkpoint.json`` or ``history.json`` replaced by random JSON,
deleted, nested thousands of levels deep, or set to ``1e400``, ``2**70``, NaN or a string; the
``.npz`` files truncated, their bytes flipped, an array swapped for one of another shape or
dtype (or a pickled one), arrays added or removed. Then ``pv.load``, ``read_config``,
``train_state.read``, a resumed ``pv.fit`` and ``probvae evaluate`` read the folder.
"""
import contextlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import probvae as pv
from probvae.applications.cli import main
from probvae.inference import checkpoint, train_state
from probvae.outputs import DamagedFileError

BACKENDS = ("pyro", "numpyro")
#: the data set record that lets `probvae evaluate` score the run
DATA = {"dataset": "digits", "data_dir": None, "data_seed": 0, "binarize": False,
        "image_shape": [8, 8]}
ALLOWED = (DamagedFileError, FileNotFoundError)
#: more examples per test: PROBVAE_FUZZ_SCALE=20 pytest tests/test_fuzz_readers.py
SCALE = int(os.environ.get("PROBVAE_FUZZ_SCALE", "1"))
FUZZ = settings(deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _vae(backend):
    return pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), backend=backend)


@pytest.fixture(scope="module")
def x():
    return pv.data.load("digits").train.x[:64]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, x):
    """A run folder per backend: two epochs, checkpointed, recording its data set."""
    out = {}
    for backend in BACKENDS:
        run = tmp_path_factory.mktemp("fuzz") / backend
        pv.fit(_vae(backend), x, epochs=2, batch_size=32, checkpoint=run, progress=False,
               run_info={"data": DATA})
        out[backend] = run
    return out


def write(path, text):
    """``text`` to ``path``, its lone surrogates as the bytes they stand for (not UTF-8)."""
    path.write_bytes(text.encode("utf-8", "surrogateescape"))


@contextlib.contextmanager
def copy_of(run):
    """A fresh copy of run folder ``run`` to damage, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="probvae-fuzz-"))
    try:
        yield Path(shutil.copytree(run, base / "run"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---- damage ------------------------------------------------------------------------------
#: JSON texts that break readers in their own ways (1e400 reads as inf; 5000 digits is more
#: than Python converts to an int)
TOKENS = ["1e400", "-1e400", str(2 ** 70), str(-2 ** 70), str(2 ** 31), "NaN", "Infinity",
          "-Infinity", '"x"', '""', "[]", "{}", "null", "true", "false", "-1", "0", "0.5",
          "1e-400", "[1, 2]", '{"name": 1}', "1" + "0" * 5000]
_MARK = "\x00probvae-fuzz\x00"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 4, 10 ** 4) | st.floats()
    | st.sampled_from([2 ** 31, 2 ** 63, 2 ** 70, -1, 0]) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)


def _paths(doc):
    """Every place in a JSON document, as a tuple of keys and indices (in a fixed order)."""
    out, stack = [], [((), doc)]
    while stack:
        path, value = stack.pop()
        out.append(path)
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in enumerate(value))
    return sorted(out[1:], key=lambda p: (len(p), repr(p)))


def damage_json(text: str, data) -> str:
    """``text`` (a JSON object) with one random thing done to it."""
    how = data.draw(st.sampled_from(["replace", "delete", "token", "deep", "rename", "truncate",
                                     "garbage"]), label="how")
    if how == "truncate":
        return text[:data.draw(st.integers(0, len(text) - 1), label="at")]
    if how == "garbage":
        return data.draw(st.sampled_from(["", "[]", "7", "\udcff\udcfe", '"probvae"', "{" * 10 ** 5,
                                          "[" * 5000 + "]" * 5000]), label="garbage")
    doc = json.loads(text)
    path = data.draw(st.sampled_from(_paths(doc)), label="path")
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if how == "delete" or how == "rename" and not isinstance(parent, dict):
        del parent[key]
    elif how == "rename":
        parent[key + data.draw(st.sampled_from(["_", "X", " "]))] = parent.pop(key)
    elif how == "replace":
        parent[key] = data.draw(json_values, label="value")
    else:                                   # a raw token, or the value nested deeply
        parent[key] = _MARK
        depth = data.draw(st.sampled_from([70, 990, 5000, 200000]), label="depth")
        token = (data.draw(st.sampled_from(TOKENS), label="token") if how == "token" else
                 "[" * depth + "]" * depth)
        return json.dumps(doc).replace(json.dumps(_MARK), token)
    return json.dumps(doc)


ODD_ARRAYS = [np.zeros((3, 5), np.float32), np.zeros(2, np.float64), np.array(7, np.int64),
              np.ones((1,), np.uint8), np.array([True]), np.zeros(3, np.complex64),
              np.array(["abc"]), np.array([float("nan")], np.float32),
              np.array([object()], dtype=object), np.zeros((0, 4), np.float32)]


def damage_npz(path: Path, data):
    """One random thing done to the ``.npz`` file at ``path``."""
    raw = path.read_bytes()
    how = data.draw(st.sampled_from(["truncate", "flip", "swap", "add", "remove", "retype",
                                     "garbage"]), label="how")
    if how == "truncate":
        path.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1), label="at")])
        return
    if how == "flip":
        buf = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            i = data.draw(st.integers(0, len(buf) - 1), label="byte")
            buf[i] ^= data.draw(st.integers(1, 255), label="mask")
        path.write_bytes(bytes(buf))
        return
    if how == "garbage":
        path.write_bytes(data.draw(st.sampled_from([b"", b"PK\x03\x04", b"\x93NUMPY" * 9,
                                                    b"mine"]), label="garbage"))
        return
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    name = data.draw(st.sampled_from(sorted(arrays)), label="array")
    if how == "remove":
        arrays.pop(name)
    elif how == "add":
        arrays[data.draw(st.sampled_from(["extra", "param/extra", "svi/999", "best/x",
                                          "optim/99", "epoch/perm"]), label="new")] = np.zeros(3)
    elif how == "swap" or arrays[name].dtype.kind not in "biuf":
        arrays[name] = data.draw(st.sampled_from(ODD_ARRAYS), label="odd")
    else:                                     # same values, another dtype
        arrays[name] = arrays[name].astype(data.draw(st.sampled_from(
            [np.float64, np.float16, np.int32, np.uint8, np.complex64]), label="dtype"))
    with zipfile.ZipFile(path, "w") as zf:    # as np.savez writes it, object arrays too
        for k, a in arrays.items():
            with zf.open(k + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=True)


# ---- the readers ---------------------------------------------------------------------------
def read(fn, run, resume=False):
    """Call reader ``fn``: it succeeds, or fails with an allowed error that names a file of
    ``run`` (a resume may also refuse other settings than the run's)."""
    try:
        fn()
    except ALLOWED as err:
        assert str(run) in str(err), f"the error does not name the file: {err}"
    except ValueError as err:
        if not (resume and str(err).startswith("cannot resume from")):
            raise


def resume(backend, x, run):
    pv.fit(_vae(backend), x, epochs=3, batch_size=32, checkpoint=run, resume=run,
           progress=False)


def cli_evaluate(run):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["evaluate", str(run), "--num-samples", "2"])
    text = err.getvalue()
    assert code in (0, 2), text
    assert "Traceback" not in text
    if code == 2:
        assert text.startswith("probvae evaluate: error:"), text


@pytest.mark.parametrize("backend", BACKENDS)
@settings(FUZZ, max_examples=100 * SCALE)
@given(data=st.data())
def test_damaged_json_is_named(runs, backend, data):
    """config.json and history.json: pv.load and read_config."""
    name = data.draw(st.sampled_from(["config.json", "history.json"]), label="file")
    with copy_of(runs[backend]) as run:
        f = run / name
        write(f, damage_json(f.read_text(), data))
        read(lambda: checkpoint.read_config(run), run)
        read(lambda: pv.load(run), run)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(FUZZ, max_examples=80 * SCALE)
@given(data=st.data())
def test_damaged_checkpoint_is_named(runs, backend, x, data):
    """checkpoint.json: train_state.read and a resumed fit (which restores the loop)."""
    with copy_of(runs[backend]) as run:
        f = run / train_state.POINTER
        write(f, damage_json(f.read_text(), data))
        read(lambda: train_state.read(run), run)
        read(lambda: resume(backend, x, run), run, resume=True)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(FUZZ, max_examples=100 * SCALE)
@given(data=st.data())
def test_damaged_arrays_are_named(runs, backend, x, data):
    """params.npz (pv.load) and the state file (train_state.read, a resumed fit)."""
    name = data.draw(st.sampled_from(["params.npz", "state"]), label="file")
    with copy_of(runs[backend]) as run:
        if name == "state":
            name = json.loads((run / train_state.POINTER).read_text())["arrays"]
        damage_npz(run / name, data)
        if name == "params.npz":
            read(lambda: pv.load(run), run)
        else:
            read(lambda: train_state.read(run), run)
            read(lambda: resume(backend, x, run), run, resume=True)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(FUZZ, max_examples=25 * SCALE)
@given(data=st.data())
def test_cli_says_damaged_in_one_line(runs, backend, data):
    """`probvae evaluate` on a damaged run: exit status 2 and one line, or its scores."""
    with copy_of(runs[backend]) as run:
        if data.draw(st.booleans(), label="json"):
            f = run / "config.json"
            write(f, damage_json(f.read_text(), data))
        else:
            damage_npz(run / "params.npz", data)
        cli_evaluate(run)


# ---- the cases that were tracebacks ----------------------------------------------------------
def _edit(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("backend", BACKENDS)
def test_deep_json_is_named_not_a_recursion_error(runs, backend, x):
    with copy_of(runs[backend]) as run:
        (run / "config.json").write_text("[" * 100000 + "]" * 100000)
        with pytest.raises(DamagedFileError, match="config.json nests its JSON deeper"):
            pv.load(run)
        text = (run / train_state.POINTER).read_text()
        (run / train_state.POINTER).write_text(text.replace('"loop": {',
                                                            '"loop": {"deep": ' + "[" * 100
                                                            + "]" * 100 + ", ", 1))
        with pytest.raises(DamagedFileError, match=r"checkpoint.json: field 'loop' nests more"):
            train_state.read(run)


@pytest.mark.parametrize("backend", BACKENDS)
def test_overflowing_numbers_are_named(runs, backend):
    with copy_of(runs[backend]) as run:
        cfg = run / "config.json"
        text = cfg.read_text()
        cfg.write_text(text.replace('"input_dim": 64', '"input_dim": 1e400', 1))
        with pytest.raises(DamagedFileError, match=r"config.json: field 'model.input_dim' "
                                                   r"should be int or null, found float inf"):
            pv.load(run)
        cfg.write_text(text)
        _edit(cfg, lambda c: c.update(seed=2 ** 70))
        with pytest.raises(DamagedFileError, match=r"config.json: field 'seed' is "
                                                   r"1180591620717411303424, outside"):
            pv.load(run)


@pytest.mark.parametrize("backend", BACKENDS)
def test_checkpoint_missing_a_key_is_named(runs, backend, x):
    with copy_of(runs[backend]) as run:
        _edit(run / train_state.POINTER, lambda m: m["tracker"].pop("best"))
        with pytest.raises(DamagedFileError, match=r"checkpoint.json: field 'tracker.best' is "
                                                   "missing"):
            resume(backend, x, run)
        assert not (run / "state-000003.npz").exists()       # refused before training


def test_config_missing_a_field_is_named_by_the_cli(tmp_path, capsys):
    """`probvae train --resume` of a run whose recorded settings lost one."""
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--prior",
                 "normal", "--eval-samples", "4", "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    _edit(run / "config.json", lambda c: c["cli"].pop("model"))
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{run / 'config.json'}: field 'cli.model' is missing" in err
