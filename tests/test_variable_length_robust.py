"""Exact resume and a 2-process DDP fit of the speaker-conditioned LSTM-GAN on sequences of different lengths
(batches with a mask, packed networks, the auxiliary classifier): the shared checks of test_resume / test_ddp on
small Japanese-Vowels-shaped files. Slow: three fits and a pair of DDP processes."""

from __future__ import annotations

import pytest

from tests import test_ddp, test_resume
from tests.robust_helpers import FAMILIES
from tests.variable_length_helpers import write_fake_vowels

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
FAMILY = "lstm_gan_vowels_cond"


@pytest.fixture
def vowels_family(tmp_path, monkeypatch):
    folder = write_fake_vowels(str(tmp_path / "jv"))  # lengths 3-9, 9 speakers
    data = [
        f"--data.init_args.data_dir={folder}",
        "--data.init_args.download=false",
        "--data.init_args.check_files=false",
        "--model.init_args.generator.init_args.hidden_size=8",
        "--model.init_args.discriminator.init_args.hidden_size=8",
        "--model.init_args.classifier_hidden=4",
    ]
    monkeypatch.setitem(FAMILIES, FAMILY, ("configs/lstm_gan/vowels_cond.yaml", data))
    return FAMILY


def test_variable_length_conditional_lstm_gan_resumes_exactly(vowels_family, tmp_path):
    test_resume.test_stop_and_resume_is_exact(vowels_family, tmp_path)


def test_variable_length_conditional_lstm_gan_trains_in_two_ddp_processes(vowels_family, tmp_path):
    test_ddp.test_ddp_two_processes(vowels_family, tmp_path)
