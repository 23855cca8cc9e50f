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
    assert "(default 50)" in text and "(default 50) (default" not in text
    assert "(default: vamp)" in text and "(default: numpyro)" in text


@pytest.mark.parametrize("command", ["evaluate", "sample", "diagnose"])
def test_other_commands_show_their_defaults(capsys, command):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 0)" in text                     # --seed
    assert "(default: False)" not in text and "(default: None)" not in text
    assert "a run folder written by probvae train" in text
