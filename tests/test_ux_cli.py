"""A config error comes first and alone: a network class that cannot be imported is named in a few lines,
not after LightningCLI's usage block."""

from __future__ import annotations

import pytest

from lightning_gen.cli import main
from tests.robust_helpers import family_args


def test_a_class_path_that_cannot_be_imported_is_the_whole_message(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no nosuchnets.py here
    args = family_args("gan", tmp_path / "run", "--model.init_args.generator.class_path=nosuchnets.MyGen")
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the class path 'nosuchnets.MyGen' cannot be used: No module named 'nosuchnets'\n")
    assert "usage:" not in err and "[-h]" not in err  # no usage block before (or after) the error
    assert "mynets.MyGen` from ./mynets.py" in err and "--help` lists every option" in err
    assert len(err.splitlines()) < 25
    assert not (tmp_path / "run").exists()


def test_an_unknown_key_is_still_named_with_exit_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path / "run", "--model.init_args.n_critics=2"))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "n_critics" in err and "usage:" not in err


def test_loss_curves_panels_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path / "run", "--loss_curves.max_panels=0"))
    assert exit_.value.code == 2
    assert "LossCurves(max_panels=0): max_panels must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
