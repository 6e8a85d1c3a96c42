"""Session-wide checkpoints for tests that only read one (edited copies are written elsewhere): one tiny fit serves
every module that imports the fixture, instead of one fit per module.

pytest keeps one instance of a fixture per module that imports it (only a conftest.py fixture is shared), so the
checkpoint itself is remembered here, in this module, which Python imports once."""

from __future__ import annotations

import pytest

from tests.robust_helpers import fit_family, last_ckpt

_MADE: dict[str, str] = {}


@pytest.fixture(scope="session")
def tiny_gan_ckpt(tmp_path_factory) -> str:
    """``last.ckpt`` of the tiny GAN of :data:`tests.robust_helpers.FAMILIES` after 2 steps. Read it; never write
    into its run folder."""
    if "gan" not in _MADE:
        root = tmp_path_factory.mktemp("tiny_gan")
        fit_family("gan", root, "--trainer.max_steps=2")
        _MADE["gan"] = last_ckpt(root)
    return _MADE["gan"]
