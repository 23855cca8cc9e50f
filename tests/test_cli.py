"""The ``probvae`` command's help: what swaps by name, and each default once."""
import pytest

import probvae as pv
from probvae.applications.cli import build_parser


def test_train_help_lists_the_names_and_each_default_once(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in (*pv.priors.names(), *pv.likelihoods.names(), *pv.objectives.names()):
        assert name in text, f"--help does not mention {name!r}"
    assert "(default: None)" not in text
    assert "(default: pv.fit's" in text and "(default: pv.fit's, 1e-3) (default" not in text
    assert "(default: normal)" in text and "(default: numpyro)" in text


def test_the_command_says_what_python_says():
    """One vocabulary: `probvae train`'s defaults are VAE()'s and pv.fit's (None: fit decides
    from the model and the data), and its names are the Python API's (--path is path=)."""
    import inspect
    vae = inspect.signature(pv.models.VAE).parameters
    args = build_parser().parse_args(["train", "--out", "x"])
    for name in ("prior", "likelihood", "backend", "latent_dim"):
        assert getattr(args, name) == vae[name].default, name
    assert args.hidden == tuple(vae["hidden"].default)
    fit = inspect.signature(pv.fit).parameters
    for name in ("epochs", "batch_size", "lr", "objective"):
        assert getattr(args, name) is None and fit[name].default is None, name
    assert args.eval_samples == inspect.signature(pv.evaluate).parameters["num_samples"].default
    assert build_parser().parse_args(["train", "--path", "d", "--out", "x"]).data_dir == "d"
    assert build_parser().parse_args(["train", "--data-dir", "d", "--out", "x"]).data_dir == "d"


@pytest.mark.parametrize("command", ["evaluate", "sample", "diagnose"])
def test_other_commands_show_their_defaults(capsys, command):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 0)" in text                     # --seed
    assert "(default: False)" not in text and "(default: None)" not in text
    assert "a run folder written by probvae train" in text
