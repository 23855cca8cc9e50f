"""Loading is checked: every damaged or hostile run folder gets an error naming the file and the
field, before anything large is allocated; the CLI says so without a traceback."""
import json
import time
import zipfile

import numpy as np
import pytest

import probvae as pv
from probvae.applications.cli import main
from probvae.outputs import DamagedFileError


@pytest.fixture(scope="module")
def saved(tmp_path_factory, digits):
    """A small trained run folder, written by the CLI (it records its data set)."""
    run = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--prior",
                 "normal", "--eval-samples", "4", "--no-progress", "--out", str(run)]) == 0
    return run


@pytest.fixture
def copy(saved, tmp_path):
    """A fresh copy of the saved run to damage."""
    out = tmp_path / "run"
    out.mkdir()
    for f in saved.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    return out


def edit_config(run, fn):
    cfg = json.loads((run / "config.json").read_text())
    fn(cfg)
    (run / "config.json").write_text(json.dumps(cfg))


def rewrite_params(run, fn):
    with np.load(run / "params.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    fn(arrays)
    np.savez(run / "params.npz", **arrays)


def cli_error(capsys, run):
    code = main(["evaluate", str(run), "--num-samples", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.startswith("probvae evaluate: error:")
    return err


CASES = {
    "truncated arrays": (lambda r: (r / "params.npz").write_bytes(
        (r / "params.npz").read_bytes()[:100]), "params.npz is damaged"),
    "empty arrays": (lambda r: (r / "params.npz").write_bytes(b""), "params.npz is damaged"),
    "invalid JSON": (lambda r: (r / "config.json").write_text('{"format": "probvae-'),
                     "config.json is not valid JSON"),
    "missing field": (lambda r: edit_config(r, lambda c: c.pop("objective")),
                      "field 'objective' is missing"),
    "extra field": (lambda r: edit_config(r, lambda c: c.update(surprise=1)),
                    "field 'surprise' is not one probvae writes"),
    "extra model field": (lambda r: edit_config(r, lambda c: c["model"].update(depth=3)),
                          "field 'model.depth' is not a setting of VAE"),
    "wrong shapes": (lambda r: edit_config(r, lambda c: c["model"].update(latent_dim=5)),
                     "has shape .* needs"),
    "NaN parameters": (lambda r: rewrite_params(r, lambda a: a[sorted(a)[0]].fill(np.nan)),
                       "NaN/inf values"),
    "absurd size": (lambda r: edit_config(r, lambda c: c["model"].update(latent_dim=10 ** 9)),
                    "more than this machine's .* memory"),
    "missing parameter": (lambda r: rewrite_params(r, lambda a: a.pop(sorted(a)[0])),
                          "is missing; the arrays do not belong"),
    "wrong type": (lambda r: edit_config(r, lambda c: c.update(options=[1])),
                   "field 'options' should be dict"),
    "unknown model class": (lambda r: edit_config(r, lambda c: c["model"].update({"class": "GAN"})),
                            "field 'model.class' is 'GAN'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_run_is_named(case, copy, capsys):
    damage, message = CASES[case]
    damage(copy)
    t0 = time.perf_counter()
    with pytest.raises((DamagedFileError, FileNotFoundError), match=message):
        pv.load(copy)
    assert time.perf_counter() - t0 < 20       # refused, not allocated
    err = cli_error(capsys, copy)
    assert "config.json" in err or "params.npz" in err


def test_hostile_array_header_is_refused_before_allocating(copy):
    """An .npz whose header claims a huge array is refused without reading it."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (10 ** 6, 10 ** 6)}
    raw = b"\x93NUMPY\x01\x00"
    text = repr(header).encode()
    text += b" " * (118 - len(text)) + b"\n"
    raw += len(text).to_bytes(2, "little") + text + b"\x00" * 16
    with zipfile.ZipFile(copy / "params.npz", "w") as zf:
        zf.writestr("huge.npy", raw)
    with pytest.raises(DamagedFileError, match="declares shape"):
        pv.load(copy)


def test_pickled_arrays_are_refused(copy):
    np.savez(copy / "params.npz", evil=np.array([object()], dtype=object))
    with pytest.raises(DamagedFileError, match="Python objects"):
        pv.load(copy)


def test_intact_copy_loads(copy):
    assert pv.load(copy).model.latent_dim == 2


def test_nan_scores_fail_the_cli(copy, capsys, monkeypatch):
    """evaluate refuses to print NaN scores as if they were results."""
    rewrite_params(copy, lambda a: a.update({k: v * 1e30 for k, v in a.items()}))
    code = main(["evaluate", str(copy), "--num-samples", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "not finite" in err or "NaN or infinite values" in err
