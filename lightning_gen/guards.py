"""Callbacks that keep long runs safe: divergence guard, interrupt checkpoints, exact resume.

``lightning-gen fit`` adds all three by default (``--guard.*``, ``--interrupt.*``, ``--resume.*``):

- :class:`DivergenceGuard` stops the run at the first non-finite loss or exploding gradient norm, *before* the
  optimizer step, and refuses to write a checkpoint whose weights are not finite, so the last good
  checkpoint is never overwritten by a diverged state.
- :class:`InterruptCheckpoint` turns SIGTERM (Lightning's own handler) and a first Ctrl-C into a stop at the end
  of the current batch, then writes ``last.ckpt`` and exits cleanly: a preempted job resumes with
  ``--ckpt_path .../last.ckpt``.
- :class:`ExactResume` makes a resumed run continue as if never stopped: one ``global_step`` per training batch
  (Lightning counts every optimizer step, i.e. 2-3 per batch here) and random numbers drawn from a seed that is
  a function of (run seed, epoch, batch, rank), so noise, dropout and augmentations do not depend on where
  the run was stopped. The data order is the job of :mod:`lightning_gen.data.resumable`.
"""

from __future__ import annotations

import os
import random
import signal

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException

from lightning_gen.errors import DivergenceError
from lightning_gen.lightning_internals import (
    close_finished_epoch,
    count_one_optimizer_step,
    current_batch_index,
    lightning_optimizers,
    request_stop_after_batch,
    stop_counting_optimizer_steps,
)


def _trained_parts(pl_module: pl.LightningModule, optimizer=None) -> str:
    """Names of the top-level submodules being trained now, e.g. ``discriminator`` (for messages)."""
    if optimizer is not None:
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        names = [n for n, m in pl_module.named_children() if any(id(p) in ids for p in m.parameters())]
    else:
        names = [n for n, m in pl_module.named_children() if any(p.requires_grad for p in m.parameters())]
    return ", ".join(names) or "the model"


def _where(trainer: pl.Trainer) -> str:
    return f"step {trainer.global_step} (epoch {trainer.current_epoch}, batch {current_batch_index(trainer)})"


def _last_good_checkpoint(trainer: pl.Trainer) -> str:
    cb = trainer.checkpoint_callback
    path = getattr(cb, "last_model_path", "") or getattr(cb, "best_model_path", "")
    if path and os.path.exists(path):
        return f" The last good checkpoint is {path} (resume with --ckpt_path {path} and a lower learning rate)."
    return " No checkpoint was written before this point."


class DivergenceGuard(pl.Callback):
    """Stop at the first non-finite loss or exploding gradient norm, before it reaches the weights.

    The loss is checked in ``on_before_backward`` (every ``manual_backward``) and the gradient norm of each
    optimizer's parameters in ``on_before_optimizer_step``, i.e. after mixed-precision unscaling and before
    the step: a diverged batch never changes the weights. Under DDP the decision is shared by all ranks. A
    checkpoint whose weights are not finite is refused, so ``last.ckpt`` always holds the last good state.

    With fp16 and a gradient scaler, non-finite gradients are normal (the scaler skips that step and lowers
    its scale); only the loss and the norm limit are checked then.

    Args:
        max_grad_norm: stop when a gradient norm (before any clipping) exceeds this; ``None`` checks only
            that norms are finite.
        check_loss: check every loss passed to ``manual_backward`` (or returned by ``training_step``).
    """

    def __init__(self, max_grad_norm: float | None = 1.0e6, check_loss: bool = True) -> None:
        super().__init__()
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 (or null to check only finiteness), got {max_grad_norm}.")
        self.max_grad_norm, self.check_loss = max_grad_norm, check_loss

    def _stop(self, trainer: pl.Trainer, bad: bool, message: str) -> None:
        if trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            if not bad:
                message = f"Divergence on another rank at {_where(trainer)}; stopping this rank too."
            raise DivergenceError(message + _last_good_checkpoint(trainer))

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if not self.check_loss or not trainer.training:
            return
        value = loss.detach().float()
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and scaler.is_enabled():
            value = value / scaler.get_scale()  # the loss arrives already multiplied by the fp16 loss scale
        bad = not bool(torch.isfinite(value).all())
        self._stop(
            trainer,
            bad,
            f"Training diverged: the loss is {value.flatten()[0].item()} at {_where(trainer)}, in the update of "
            f"{_trained_parts(pl_module)}. Nothing of this batch was applied.",
        )

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads]))
        norm = norm.item()
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        skipped_by_scaler = scaler is not None and scaler.is_enabled() and not np.isfinite(norm)
        too_big = self.max_grad_norm is not None and np.isfinite(norm) and norm > self.max_grad_norm
        bad = (not np.isfinite(norm) and not skipped_by_scaler) or too_big
        limit = f" (limit --guard.max_grad_norm={self.max_grad_norm})" if too_big else ""
        self._stop(
            trainer,
            bad,
            f"Training diverged: the gradient norm of {_trained_parts(pl_module, optimizer)} is {norm:.4g}{limit} "
            f"at {_where(trainer)}. The step was not taken.",
        )

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        bad = [k for k, v in checkpoint["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise DivergenceError(
                f"Refusing to write a checkpoint at {_where(trainer)}: weights {bad[:5]} are not finite."
                + _last_good_checkpoint(trainer)
            )


class InterruptCheckpoint(pl.Callback):
    """On SIGTERM or Ctrl-C: finish the current batch, write ``last.ckpt``, exit cleanly.

    Lightning already catches SIGTERM (cluster preemption, ``kill``, ``scancel``): it sets a flag, shares it
    between DDP ranks, and raises ``SIGTERMException`` after the current batch, but saves nothing. (With
    ``SLURMEnvironment(auto_requeue=True)`` it also saves an ``hpc_ckpt`` and requeues on ``SIGUSR1``.) This
    callback saves the checkpoint at that point, where D and G have both finished their steps. The first
    Ctrl-C is routed through the same flag (a second one aborts at once, as usual).

    Args:
        on_ctrl_c: make the first Ctrl-C stop gracefully too.
    """

    def __init__(self, on_ctrl_c: bool = True) -> None:
        super().__init__()
        self.on_ctrl_c = on_ctrl_c
        self._previous_sigint = None
        self.saved_path: str | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import threading

        if not self.on_ctrl_c or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGINT)

        def first_ctrl_c(signum, frame) -> None:
            rank_zero_info("\nCtrl-C: stopping after this batch and saving last.ckpt (press Ctrl-C again to abort).")
            signal.signal(signal.SIGINT, previous)
            request_stop_after_batch(trainer)  # as Lightning's own SIGTERM handler does

        self._previous_sigint = previous
        signal.signal(signal.SIGINT, first_ctrl_c)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_sigint()

    def checkpoint_path(self, trainer: pl.Trainer) -> str:
        cb = trainer.checkpoint_callback
        if cb is not None and getattr(cb, "dirpath", None):
            return os.path.join(cb.dirpath, cb.CHECKPOINT_NAME_LAST + cb.FILE_EXTENSION)
        return os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints", "last.ckpt")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore_sigint()
        if not isinstance(exception, SIGTERMException) or not trainer.training:
            return  # a divergence or a bug: keep the last good checkpoint as it is
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        self.saved_path = path
        rank_zero_info(
            f"Interrupted at {_where(trainer)}: saved {path}. Resume with: lightning-gen fit --config ... "
            f"--ckpt_path {path}"
        )


class ExactResume(pl.Callback):
    """Make a stopped-and-resumed run identical to one that never stopped.

    - ``count_batches``: under manual optimization Lightning's ``global_step`` counts optimizer steps (two
      or three per batch here, fewer on batches without a G step). With this on, ``global_step`` counts
      training batches instead, so ``--trainer.max_steps``, ``ModelCheckpoint(every_n_train_steps)`` and
      checkpoint names mean batches, like ``log_every_n_steps`` already does.
    - ``seed_per_batch``: before every training batch, the torch, numpy and ``random`` generators are seeded
      from (run seed, epoch, batch index, rank). The run seed is ``seed_everything``'s (else drawn once and
      stored in the checkpoint). Every rank draws different noise, and no random number depends on what
      happened before the batch, so a resumed run draws what the uninterrupted run drew.

    Optimizer, scheduler, EMA and loop states are in Lightning's checkpoint already; the data order comes
    from :class:`lightning_gen.data.resumable.ResumableSampler`.
    """

    def __init__(self, count_batches: bool = True, seed_per_batch: bool = True) -> None:
        super().__init__()
        self.count_batches, self.seed_per_batch = count_batches, seed_per_batch
        self.base_seed: int | None = None

    def state_dict(self) -> dict:
        return {"base_seed": self.base_seed}

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_seed = state_dict.get("base_seed")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.base_seed is None:
            env = os.environ.get("PL_GLOBAL_SEED")
            seed = int(env) if env is not None else int(np.random.SeedSequence().entropy % 2**31)
            self.base_seed = int(trainer.strategy.broadcast(seed))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.count_batches and not pl_module.automatic_optimization:
            for opt in lightning_optimizers(pl_module):
                stop_counting_optimizer_steps(opt)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if self.seed_per_batch:
            seed_batch(self.base_seed, trainer.current_epoch, batch_idx, trainer.global_rank)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        if self.count_batches and not pl_module.automatic_optimization:
            count_one_optimizer_step(trainer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # a checkpoint of an epoch's end without validation resumes in the next epoch, not one batch later
        close_finished_epoch(checkpoint)


def seed_batch(base_seed: int, epoch: int, batch_idx: int, rank: int) -> int:
    """Seed torch (all devices), numpy and ``random`` from (base_seed, epoch, batch_idx, rank); returns the seed."""
    seed = int(np.random.SeedSequence([base_seed, epoch, batch_idx, rank]).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed
