"""Exact resume: N steps, stop, resume N more == 2N steps in one go (weights, optimizers, EMA, counters)."""

import pytest
import torch

from lightning_gen.data.resumable import ResumableSampler, resumable_train_loader
from lightning_gen.guards import seed_batch
from tests.robust_helpers import DEFAULT_RESUME_FAMILIES, assert_same_tensors, family_params, fit_family, last_ckpt

N = 4  # batches before the stop; epochs are 3 batches, so the stop is mid-epoch and the resume crosses epochs


def _stop_and_resume(family: str, tmp_path, n: int, *extra: str) -> None:
    """n steps, stop, resume to 2n == 2n steps in one go, bit for bit."""
    whole = fit_family(family, tmp_path / "whole", f"--trainer.max_steps={2 * n}", *extra)
    assert whole.trainer.global_step == 2 * n  # one step per training batch, whatever the optimizers do

    fit_family(family, tmp_path / "split", f"--trainer.max_steps={n}", *extra)
    first = torch.load(last_ckpt(tmp_path / "split"), weights_only=True)
    assert first["global_step"] == n
    ckpt = f"--ckpt_path={last_ckpt(tmp_path / 'split')}"
    resumed = fit_family(family, tmp_path / "split", f"--trainer.max_steps={2 * n}", ckpt, *extra)
    assert resumed.trainer.global_step == 2 * n

    a = torch.load(last_ckpt(tmp_path / "whole"), weights_only=True)
    b = torch.load(last_ckpt(tmp_path / "split", version=1), weights_only=True)
    assert any(not torch.equal(first["state_dict"][k], v) for k, v in b["state_dict"].items())  # it trained on
    matched = assert_same_tensors(a["state_dict"], b["state_dict"], "state_dict")  # includes the EMA copy
    matched += assert_same_tensors(a["optimizer_states"], b["optimizer_states"], "optimizer_states")
    assert matched > 10
    assert a["global_step"] == b["global_step"] == 2 * n
    assert a["epoch"] == b["epoch"]
    assert a["loops"]["fit_loop"]["state_dict"] == b["loops"]["fit_loop"]["state_dict"]  # data position


@pytest.mark.parametrize("family", family_params(DEFAULT_RESUME_FAMILIES))
def test_stop_and_resume_is_exact(family, tmp_path):
    _stop_and_resume(family, tmp_path, N)


@pytest.mark.parametrize("family", ["gan", pytest.param("vae_gan", marks=pytest.mark.slow)])  # the same internals
def test_a_stop_at_an_epochs_end_without_validation_resumes_exactly(family, tmp_path):
    """The checkpoint is written in on_train_epoch_end; as Lightning wrote it, the resumed run trained one batch more
    in the finished epoch (every family; ``lightning_internals.close_finished_epoch``)."""
    _stop_and_resume(family, tmp_path, 3, "--trainer.limit_val_batches=0")


def test_sampler_order_depends_on_seed_and_epoch_only():
    data = list(range(20))
    a, b = ResumableSampler(data, seed=3), ResumableSampler(data, seed=3)
    torch.manual_seed(123)  # the global random state plays no part
    a.set_epoch(2)
    b.set_epoch(2)
    order = list(a)
    assert order == list(b) and sorted(order) == data
    b.set_epoch(1)
    assert list(b) != order
    b.set_epoch(2)
    b.skip = 8
    assert list(b) == order[8:]
    assert list(b) == order  # the skip applies once


def test_sampler_shards_across_ranks():
    data = list(range(10))
    shards = [list(ResumableSampler(data, num_replicas=2, rank=r, seed=0)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0]) & set(shards[1])


def test_seed_batch_is_a_function_of_its_arguments():
    seed_batch(0, 1, 2, 0)
    x = torch.randn(3)
    torch.randn(100)
    seed_batch(0, 1, 2, 0)
    assert torch.equal(torch.randn(3), x)
    seed_batch(0, 1, 2, 1)  # another rank draws other noise
    assert not torch.equal(torch.randn(3), x)


def test_loader_state_skips_trained_batches_and_checks_the_seed(monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    data = torch.arange(12)
    loader = resumable_train_loader(None, data, 2, seed=5)  # 6 batches an epoch
    loader.sampler.set_epoch(1)
    epoch1 = [b.tolist() for b in loader]
    resumed = resumable_train_loader(None, data, 2, seed=5)
    resumed.load_state_dict({"epoch": 1, "batches_done": 4, "seed": 5})
    assert [b.tolist() for b in resumed] == epoch1[4:]


def test_resume_with_another_data_seed_is_refused(monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    loader = resumable_train_loader(None, list(range(8)), 2, seed=5)
    with pytest.raises(ValueError, match="data order was drawn with seed 0, this run uses 5"):
        loader.load_state_dict({"epoch": 1, "batches_done": 1, "seed": 0})
