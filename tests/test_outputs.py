"""Nothing lost: output folders never delete or overwrite what probvae did not write.

Each case is one a user met: ``probvae train --out`` or ``pv.save`` pointed at a folder of theirs,
at the data folder, at an earlier run holding their notes, or at a place that cannot be written.
"""
import json
import os
import time

import pytest

import probvae as pv
from probvae.applications.cli import main
from probvae.outputs import OutputError, check_run_dir, is_run, write_run

FAST = ["--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--eval-samples", "4",
        "--no-progress", "--prior", "normal"]


def snapshot(root):
    """{relative path: bytes} of every file under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def user_folder(tmp_path):
    home = tmp_path / "thesis"
    (home / "sub").mkdir(parents=True)
    (home / "thesis.tex").write_text("\\documentclass{article}")
    (home / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return home


@pytest.fixture(scope="module")
def tiny_result(digits):
    vae = pv.models.VAE(input_dim=64, latent_dim=2, hidden=(8,), prior="normal")
    return pv.fit(vae, digits.train.x[:64], epochs=1, batch_size=32, progress=False)


def test_save_refuses_a_folder_of_yours_and_keeps_it(tiny_result, user_folder):
    before = snapshot(user_folder)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="did not write .*thesis.tex"):
            pv.save(tiny_result, user_folder, overwrite=overwrite)
    assert snapshot(user_folder) == before
    assert sorted(p.name for p in user_folder.parent.iterdir()) == ["thesis"]   # no temp left


def test_save_into_new_or_empty_folder(tiny_result, tmp_path):
    out = pv.save(tiny_result, tmp_path / "a" / "b")
    assert is_run(out)
    empty = tmp_path / "empty"
    empty.mkdir()
    pv.save(tiny_result, empty)             # with its training state: a checkpoint too
    assert sorted(os.listdir(empty)) == ["checkpoint.json", "config.json", "history.json",
                                         "params.npz", "state-000000.npz"]
    assert pv.load(empty).model.latent_dim == 2


def test_overwrite_replaces_only_probvae_files(tiny_result, tmp_path):
    run = pv.save(tiny_result, tmp_path / "run", metrics={"score": 1.0})
    (run / "NOTES.txt").write_text("my notes")
    with pytest.raises(OutputError, match="earlier probvae run.*overwrite=True"):
        pv.save(tiny_result, run)
    assert (run / "metrics.json").is_file()
    pv.save(tiny_result, run, overwrite=True)            # no metrics this time
    assert (run / "NOTES.txt").read_text() == "my notes"
    assert not (run / "metrics.json").exists()           # probvae's stale file removed
    assert json.loads((run / "config.json").read_text())["files"] == [
        "config.json", "params.npz", "history.json", "checkpoint.json"]


def test_save_refuses_a_file_and_an_unwritable_place(tiny_result, tmp_path):
    f = tmp_path / "report.pdf"
    f.write_bytes(b"%PDF")
    with pytest.raises(OutputError, match="is a file"):
        pv.save(tiny_result, f)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        pv.save(tiny_result, f / "run")
    assert f.read_bytes() == b"%PDF"
    with pytest.raises(OutputError, match="cannot write"):
        pv.save(tiny_result, "/proc/probvae-run")


def test_check_run_dir_protects_the_data_folder(tmp_path):
    data = tmp_path / "mnist"
    data.mkdir()
    for target in (data, data / "runs", tmp_path):
        with pytest.raises(OutputError, match="data folder"):
            check_run_dir(target, protect=[data])


def test_write_run_kill_between_files_leaves_old_config(tmp_path):
    """A failure while writing leaves the earlier run loadable (config.json is written last)."""
    def config(tag):
        return lambda tmp: tmp.write_text(json.dumps({"format": "probvae-checkpoint",
                                                      "tag": tag, "files": ["config.json", "a"]}))
    run = write_run(tmp_path / "run", {"a": lambda t: t.write_text("1"), "config.json": config(1)})

    def boom(tmp):
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        write_run(run, {"a": boom, "config.json": config(2)}, overwrite=True)
    assert json.loads((run / "config.json").read_text())["tag"] == 1
    assert (run / "a").read_text() == "1"
    assert sorted(os.listdir(run)) == ["a", "config.json"]      # no temporary file left


# ---------------------------------------------------------------- the command line
def _cli(capsys, *argv):
    t0 = time.perf_counter()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err, time.perf_counter() - t0


def test_cli_train_refuses_before_training(capsys, user_folder, tmp_path):
    before = snapshot(user_folder)
    code, out, err, _ = _cli(capsys, "train", *FAST, "--out", str(user_folder))
    assert code != 0 and "did not write" in err and "Traceback" not in err
    assert "training" not in out                         # refused before any training
    assert snapshot(user_folder) == before
    data = tmp_path / "mnist"
    data.mkdir()
    (data / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03mnist")
    before = snapshot(data)
    for out_dir in (data, data / "run"):
        code, out, err, _ = _cli(capsys, "train", *FAST, "--dataset", "mnist", "--path",
                                 str(data), "--out", str(out_dir))
        assert code != 0 and "data folder" in err and "training" not in out
    assert snapshot(data) == before


@pytest.mark.parametrize("where", ["file", "under_file", "proc", "cwd"])
def test_cli_train_refuses_impossible_out(capsys, tmp_path, monkeypatch, where):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    monkeypatch.chdir(tmp_path)
    out = {"file": str(f), "under_file": str(f / "run"), "proc": "/proc/run", "cwd": "."}[where]
    code, stdout, err, seconds = _cli(capsys, "train", *FAST, "--out", out)
    assert code != 0 and err.startswith("probvae train: error:") and "Traceback" not in err
    assert "training" not in stdout and f.read_text() == "x"


def test_cli_train_overwrite_keeps_notes(capsys, tmp_path):
    run = tmp_path / "run"
    assert _cli(capsys, "train", *FAST, "--out", str(run))[0] == 0
    (run / "NOTES.txt").write_text("keep me")
    code, _, err, _ = _cli(capsys, "train", *FAST, "--out", str(run))
    assert code != 0 and "--overwrite" in err
    assert _cli(capsys, "train", *FAST, "--out", str(run), "--overwrite")[0] == 0
    assert (run / "NOTES.txt").read_text() == "keep me" and (run / "metrics.json").is_file()
    # sample never replaces a file unless told to
    png = tmp_path / "mine.png"
    png.write_bytes(b"mine")
    code, _, err, _ = _cli(capsys, "sample", str(run), "--png", str(png))
    assert code != 0 and "already exists" in err and png.read_bytes() == b"mine"
    assert _cli(capsys, "sample", str(run), "--npy", str(tmp_path / "s.npy"))[0] == 0
    # diagnose refuses a folder of yours
    code, _, err, _ = _cli(capsys, "diagnose", str(run), "--out", str(tmp_path), "--n", "4",
                           "--num-samples", "8")
    assert code != 0 and "did not write" in err
