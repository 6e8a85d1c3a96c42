"""Divergence guard, interrupts, unsafe --ckpt_path, bf16 and fp16 gradient clipping."""

import json
import os
import pickle
import signal

import pytest
import torch
from pytorch_lightning.plugins.precision import MixedPrecision

from lightning_gen.checkpoints import load_model
from lightning_gen.cli import main
from lightning_gen.data import ArrayImageDataModule
from lightning_gen.guards import DivergenceError, DivergenceGuard
from lightning_gen.models import GAN
from tests.conftest import WritesFile, tiny_trainer
from tests.robust_helpers import assert_same_tensors, family_args, family_params, fit_family, last_ckpt


def _probe(name: str, **init_args) -> str:
    return "--trainer.callbacks=" + json.dumps([{"class_path": f"tests.robust_helpers.{name}", "init_args": init_args}])


def _finite(path) -> bool:
    state = torch.load(path, weights_only=True)["state_dict"]
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("family", family_params())
def test_nan_stops_every_family_and_keeps_its_last_good_checkpoint(family, tmp_path, capsys):
    args = family_args(
        family, tmp_path, "--trainer.max_steps=5", "--checkpoint.every_n_train_steps=1", _probe("PoisonAt", step=3)
    )
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 3
    err = capsys.readouterr().err
    assert "Training diverged" in err and "at step 3 " in err
    if family == "gan":  # the whole message: where, which update, and where to resume from
        assert "Training diverged: the loss is nan at step 3 (epoch 1, batch 0)" in err
        assert "discriminator" in err and "last.ckpt" in err
    assert torch.load(last_ckpt(tmp_path), weights_only=True)["global_step"] == 3  # the last good batch's, kept
    assert _finite(last_ckpt(tmp_path))
    assert load_model(last_ckpt(tmp_path)).sample(2).isfinite().all()


def test_exploding_gradient_norm_stops_the_run(tmp_path):
    with pytest.raises(DivergenceError, match=r"gradient norm of discriminator is .* \(limit --guard.max_grad_norm"):
        fit_family("gan", tmp_path, "--trainer.max_steps=2", "--guard.max_grad_norm=1e-9")
    assert not os.path.exists(last_ckpt(tmp_path))


def test_checkpoint_with_non_finite_weights_is_refused(tmp_path, tiny_nets, adam, image_npz):
    model = GAN(*tiny_nets, optimizer_g=adam, optimizer_d=adam)
    trainer = tiny_trainer(tmp_path, max_steps=2, callbacks=[DivergenceGuard()])
    trainer.fit(model, ArrayImageDataModule(image_npz, batch_size=4))
    good = tmp_path / "good.ckpt"
    trainer.save_checkpoint(good)
    before = good.read_bytes()
    with torch.no_grad():
        next(model.generator.parameters()).fill_(float("inf"))
    with pytest.raises(DivergenceError, match="Refusing to write a checkpoint"):
        trainer.save_checkpoint(good)
    assert good.read_bytes() == before


def test_bad_guard_argument():
    with pytest.raises(ValueError, match="max_grad_norm must be > 0"):
        DivergenceGuard(max_grad_norm=0)


def _interrupted_run(root, signum, family: str = "gan") -> str:
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as exit_:  # SIGTERMException: Lightning's clean exit
        fit_family(family, root, "--trainer.max_steps=6", _probe("SignalAt", step=1, signum=signum))
    assert not exit_.value.code  # exit status 0
    assert signal.getsignal(signal.SIGINT) == previous  # the Ctrl-C handler is removed again
    path = last_ckpt(root)
    assert torch.load(path, weights_only=True)["global_step"] == 2  # stopped after the batch it was in
    assert load_model(path).sample(2).isfinite().all()
    return path


@pytest.mark.parametrize(  # SIGTERM: test_sigterm_saves_a_loadable_checkpoint_for_every_family[gan]
    "signum", [pytest.param(signal.SIGINT, id="Ctrl-C", marks=pytest.mark.slow)]
)
def test_interrupt_saves_a_loadable_checkpoint(signum, tmp_path):
    _interrupted_run(tmp_path, signum)


@pytest.mark.parametrize("family", family_params())
def test_sigterm_saves_a_loadable_checkpoint_for_every_family(family, tmp_path):
    _interrupted_run(tmp_path, signal.SIGTERM, family)


@pytest.mark.slow
def test_resume_after_sigterm_is_exact(tmp_path):
    path = _interrupted_run(tmp_path / "split", signal.SIGTERM)
    fit_family("gan", tmp_path / "split", "--trainer.max_steps=4", f"--ckpt_path={path}")
    fit_family("gan", tmp_path / "whole", "--trainer.max_steps=4")
    a = torch.load(last_ckpt(tmp_path / "whole"), weights_only=True)
    b = torch.load(last_ckpt(tmp_path / "split", version=1), weights_only=True)
    assert assert_same_tensors(a["state_dict"], b["state_dict"]) > 0
    assert_same_tensors(a["optimizer_states"], b["optimizer_states"])


def test_pickled_payload_in_ckpt_path_is_refused_and_not_run(tmp_path, capsys):
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": WritesFile(str(marker))}, evil, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    assert not marker.exists()
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path / "run", "--trainer.max_steps=2", f"--ckpt_path={evil}"))
    assert exit_.value.code == 2  # bad input: status 2 (a divergence: 3)
    assert "--ckpt_path" in (err := capsys.readouterr().err) and "pickled Python objects" in err
    assert not marker.exists()
    assert not os.path.exists(last_ckpt(tmp_path / "run"))


@pytest.mark.parametrize("family", family_params())
def test_bf16_mixed_trains(family, tmp_path):
    cli = fit_family(family, tmp_path, "--trainer.max_steps=2", "--trainer.precision=bf16-mixed")
    assert cli.trainer.precision == "bf16-mixed" and cli.trainer.global_step == 2
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())


def test_fp16_clipping_unscales_first(tmp_path, tiny_nets, image_npz):
    """With a GradScaler (scale 1024) and SGD(lr=1), a D step clipped to 1e-3 moves D by 1e-3, not 1e-3 / 1024."""
    import functools

    sgd = functools.partial(torch.optim.SGD, lr=1.0)
    model = GAN(*tiny_nets, optimizer_g=sgd, optimizer_d=sgd, n_critic=2, clip_grad_norm=1e-3)  # batch 0: D only
    before = [p.detach().clone() for p in model.discriminator.parameters()]
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    plugin = MixedPrecision("16-mixed", "cpu", scaler=scaler)
    trainer = tiny_trainer(tmp_path, max_steps=1, plugins=[plugin], callbacks=[DivergenceGuard()])
    trainer.fit(model, ArrayImageDataModule(image_npz, batch_size=4))
    assert scaler.get_scale() == 1024.0  # the step was taken, not skipped
    moved = torch.linalg.vector_norm(
        torch.stack(
            [torch.linalg.vector_norm(p.detach() - b) for p, b in zip(model.discriminator.parameters(), before)]
        )
    )
    assert 0.9e-3 < moved.item() < 1.01e-3


def test_missing_ckpt_path(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path / "run", f"--ckpt_path={tmp_path / 'nope.ckpt'}"))
    assert exit_.value.code == 2
    assert "--ckpt_path: Checkpoint" in (err := capsys.readouterr().err) and "does not exist" in err
