"""Every access to private internals of PyTorch Lightning and W&B, each behind one small named function.

Written for pytorch-lightning 2.6 (2.6.6) and wandb 0.31 (the versions pinned in ``pyproject.toml``). Lightning
offers no public API for what these functions do; where one exists it is used instead, and the function
is kept only so that callers have one name for it. Each function has one test in
``tests/test_lightning_internals.py``: after an upgrade of Lightning or W&B, run that file first. A failure
there names the one accessor to rewrite, instead of a symptom somewhere in training (a wrong ``global_step``,
a resumed run that repeats batches, a Ctrl-C that saves nothing).

Rules for callers: import the accessor, never the private attribute; add a new private access here, with its
docstring (the Lightning version it was written for, what public API would replace it) and its test.

Not an accessor, but tied to the same versions: ``GenCLI`` audits ``--ckpt_path`` in LightningCLI's public
``parse_arguments`` hook, which LightningCLI runs right before it reads the path (its private
``_parse_ckpt_path``); the test file checks that order.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing this module imports neither Lightning nor W&B
    import pytorch_lightning as pl

WRITTEN_FOR = {"pytorch_lightning": "2.6", "wandb": "0.31"}

# ----------------------------------------------------------------------------------------- LightningModule


def attached_trainer(module: pl.LightningModule) -> pl.Trainer | None:
    """The module's trainer, or None when it is not attached to one (a model loaded for sampling).

    Public API (any Lightning 2.x): ``module.trainer``, which raises ``RuntimeError`` when detached; this
    replaces reading the private ``module._trainer``.
    """
    try:
        return module.trainer
    except RuntimeError:
        return None


def given_hyperparameters() -> dict | None:
    """The plain config dict LightningCLI hands to the model it is instantiating, or None outside that.

    Lightning 2.6: the ``ContextVar`` ``pytorch_lightning.core.mixins.hparams_mixin._given_hyperparameters``,
    set by ``LightningCLI`` around the model's ``__init__`` (it is what ``save_hyperparameters`` records then).
    No public API: a LightningModule cannot tell otherwise whether LightningCLI built it.
    """
    try:
        from pytorch_lightning.core.mixins.hparams_mixin import _given_hyperparameters
    except ImportError:  # pragma: no cover - older or newer Lightning without it
        return None
    return _given_hyperparameters.get()


def lightning_optimizers(pl_module: pl.LightningModule) -> list:
    """The module's optimizers as Lightning wraps them (``LightningOptimizer``), always as a list.

    Public API: ``pl_module.optimizers()`` (a single optimizer comes back unwrapped from its list); replaces
    the private ``trainer.strategy._lightning_optimizers``, which it returns.
    """
    opts = pl_module.optimizers()
    return list(opts) if isinstance(opts, (list, tuple)) else [opts]


# ----------------------------------------------------------------------------------------- loop progress
# Lightning 2.6: ``trainer.fit_loop.epoch_loop.batch_progress`` is a ``_BatchProgress`` with ``current`` (this
# epoch) and ``total`` counters ``ready`` / ``started`` / ``processed`` / ``completed``; it is saved in and
# restored from checkpoints. No public API: hooks get ``batch_idx`` as an argument, callers outside a hook do not.


def _batch_progress(trainer: pl.Trainer):
    return trainer.fit_loop.epoch_loop.batch_progress


def current_batch_index(trainer: pl.Trainer) -> int:
    """Index in its epoch of the training batch being run (the ``batch_idx`` hooks receive); -1 before one.

    Lightning 2.6: ``fit_loop.epoch_loop.batch_progress.current.ready - 1`` (what the loop's own ``batch_idx``
    property computes). Public API only inside batch hooks (their ``batch_idx`` argument).
    """
    return _batch_progress(trainer).current.ready - 1


def batches_processed_this_epoch(trainer: pl.Trainer) -> int:
    """Training batches of this epoch whose training step has run (``processed``; ``completed`` moves later,
    after ``on_train_batch_end``). Lightning 2.6: ``batch_progress.current.processed``. No public API."""
    return int(_batch_progress(trainer).current.processed)


def batches_completed_this_epoch(trainer: pl.Trainer) -> int:
    """Training batches of this epoch that completed (all hooks ran). Lightning 2.6:
    ``batch_progress.current.completed``. No public API."""
    return int(_batch_progress(trainer).current.completed)


def fit_ends_after_this_batch(trainer: pl.Trainer) -> bool:
    """Whether the fit stops after the current training batch: asked to stop, ``max_steps`` reached, or the last
    batch of the last epoch (Lightning 2.6's own stopping conditions; the last-batch flag is
    ``fit_loop.epoch_loop.batch_progress.is_last_batch``). No public API."""
    if trainer.should_stop:
        return True
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return True
    last_batch = bool(_batch_progress(trainer).is_last_batch)
    return last_batch and trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs


def batches_completed(trainer: pl.Trainer) -> int:
    """Training batches completed in the whole fit, restored on resume (not ``global_step``, which counts optimizer
    steps under manual optimization). Lightning 2.6: ``batch_progress.total.completed``. No public API."""
    return int(_batch_progress(trainer).total.completed)


def count_one_optimizer_step(trainer: pl.Trainer) -> None:
    """Advance ``trainer.global_step`` by one, as one optimizer step under manual optimization does.

    Lightning 2.6: ``global_step`` is ``fit_loop.epoch_loop.manual_optimization.optim_step_progress.total.completed``
    under manual optimization; this increments its ``ready`` and ``completed`` counters. No public API
    (``global_step`` is read-only).
    """
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    progress.increment_ready()
    progress.increment_completed()


def _noop() -> None:
    return None


#: a hook that is always ``_noop``: assigning it is ignored
_IGNORED_HOOK = property(lambda self: _noop, lambda self, fn: None)


class _UncountedSteps:
    """Mixed into a LightningOptimizer: its steps no longer advance ``optim_step_progress`` (``global_step``).

    Lightning's manual-optimization loop re-assigns these two hooks before every batch; as properties whose
    setter does nothing they keep ignoring that.
    """

    _on_before_step = _IGNORED_HOOK
    _on_after_step = _IGNORED_HOOK


def stop_counting_optimizer_steps(opt) -> None:
    """Make a ``LightningOptimizer``'s ``step()`` stop advancing ``global_step`` (the caller counts instead).

    Lightning 2.6: ``_ManualOptimization`` sets ``opt._on_before_step`` / ``opt._on_after_step`` before each
    batch to count optimizer steps; the optimizer's class is swapped (once) for a subclass whose two hooks
    are no-ops and ignore assignment. No public API: ``global_step`` counts optimizer steps by design
    (Lightning #17958).
    """
    if not isinstance(opt, _UncountedSteps):
        opt.__class__ = type("Uncounted" + type(opt).__name__, (_UncountedSteps, type(opt)), {})


# ----------------------------------------------------------------------------------------- trainer state


def request_stop_after_batch(trainer: pl.Trainer) -> None:
    """Stop the fit as a SIGTERM would: after the current batch, with ``SIGTERMException`` (DDP ranks agree).

    Lightning 2.6: sets ``trainer._signal_connector.received_sigterm``, the flag of Lightning's own SIGTERM
    handler. The public ``trainer.should_stop`` stops at the end of the epoch's batch too, but raises nothing,
    so ``on_exception`` (where the interrupt checkpoint is written) would not run.
    """
    trainer._signal_connector.received_sigterm = True


def logger_writes_this_step(trainer: pl.Trainer) -> bool:
    """Whether the loggers will write this training step's ``on_step`` metrics (every ``log_every_n_steps``).

    Lightning 2.6: ``trainer._logger_connector.should_update_logs`` (True when the connector is missing). No
    public API; ``trainer.log_every_n_steps`` alone does not say which batch counter Lightning uses.
    """
    connector = getattr(trainer, "_logger_connector", None)
    return bool(getattr(connector, "should_update_logs", True))


def fit_epochs_finished(ckpt: dict) -> int:
    """Epochs whose training finished, as recorded in a Lightning checkpoint dict; -1 when it holds none (not
    a fit checkpoint, or another layout).

    Lightning 2.6 checkpoint layout: ``ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]``.
    The public ``ckpt["epoch"]`` is the epoch being run when the checkpoint was written, finished or not.
    """
    try:
        return int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        return -1


def close_finished_epoch(ckpt: dict) -> bool:
    """Record a checkpoint written at the end of a training epoch as the start of the next one; returns whether it
    changed anything.

    Lightning 2.6 writes a checkpoint saved in ``on_train_epoch_end`` (``ModelCheckpoint`` of a run without
    validation, and so the ``last.ckpt`` of a run that ``max_steps`` stopped at an epoch's end) with the epoch
    ``processed`` but not ``completed``. Resumed from it, the training epoch loop waits for a validation that never
    runs and trains one batch more in the finished epoch than the uninterrupted run did. Here the epoch is marked
    completed and the batch counters of the epoch are reset, as they are when the next epoch starts. Layout:
    ``ckpt["loops"]["fit_loop"]["epoch_progress"]`` and ``["epoch_loop.batch_progress"]``. No public API.
    """
    try:
        fit = ckpt["loops"]["fit_loop"]
        epochs, batches = fit["epoch_progress"], fit["epoch_loop.batch_progress"]
        total, current = epochs["total"], batches["current"]
        epoch_processed = total["ready"] == total["started"] == total["processed"] == total["completed"] + 1
        batch_done = current["ready"] == current["started"] == current["processed"] == current["completed"] > 0
    except (KeyError, TypeError):
        return False
    if not (epoch_processed and batch_done and batches.get("is_last_batch")):
        return False
    for part in ("total", "current"):
        epochs[part]["completed"] = epochs[part]["processed"]
    batches["current"] = dict.fromkeys(current, 0)
    batches["is_last_batch"] = False
    return True


# ----------------------------------------------------------------------------------------- loggers


def logger_version_pinned(logger) -> bool:
    """Whether a ``CSVLogger`` / ``TensorBoardLogger`` already has its ``version_N`` number.

    Lightning 2.6: ``logger._version is not None``. Reading the public ``logger.version`` picks the next
    free number (and pins it), so it cannot ask.
    """
    return logger._version is not None


def next_logger_version(logger) -> int:
    """The next free ``version_N`` number under the logger's ``root_dir`` (without pinning it).

    Lightning 2.6: ``logger._get_next_version()``. No public API.
    """
    return int(logger._get_next_version())


def pin_logger_version(logger, version: int) -> None:
    """Make a constructed ``CSVLogger`` / ``TensorBoardLogger`` write to ``version_<version>``.

    Lightning 2.6: sets ``logger._version``. Public API only at construction (``version=``).
    """
    logger._version = version


def lightning_info_loggers() -> list[logging.Logger]:
    """The ``logging`` loggers Lightning's ``rank_zero_info`` / ``rank_zero_warn`` messages go through.

    Lightning 2.6: the loggers of the modules ``pytorch_lightning.utilities.rank_zero`` and
    ``lightning_fabric.utilities.rank_zero`` (named after them). No public API names them.
    """
    names = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")
    return [logging.getLogger(name) for name in names]


# ----------------------------------------------------------------------------------------- LightningCLI

#: Lightning 2.6: the keys LightningCLI adds to the hyperparameters of a module (or data module) it builds
CLI_CLASS_PATH_KEY, CLI_INSTANTIATOR_KEY = "_class_path", "_instantiator"


def cli_class_path(hparams: dict) -> Any:
    """The class path LightningCLI recorded in a module's hyperparameters (``checkpoint["hyper_parameters"]``),
    e.g. ``lightning_gen.models.GAN``; None when LightningCLI did not build it. Not checked to be a string.

    Lightning 2.6: the ``_class_path`` key (with the init args beside it and ``_instantiator``). Public API:
    ``pytorch_lightning.cli.instantiate_module(class_type, hparams)`` builds from such hparams.
    """
    return hparams.get(CLI_CLASS_PATH_KEY)


def without_cli_instantiator(hparams: dict) -> dict:
    """A copy of LightningCLI-written hyperparameters without its ``_instantiator`` entry (the form
    ``instantiate_module`` takes; ``_class_path`` stays). Lightning 2.6: the ``_instantiator`` key."""
    return {k: v for k, v in hparams.items() if k != CLI_INSTANTIATOR_KEY}


# ----------------------------------------------------------------------------------------- W&B


def wandb_run_id(logger) -> str | None:
    """The run id a Lightning ``WandbLogger`` was constructed with, before or after its run starts.

    Lightning 2.6: ``logger._id``. The public ``logger.version`` is the same until the run starts, then the id
    of ``wandb.run``, which differs when another run was already active in the process.
    """
    return logger._id


def wandb_run_started(logger) -> bool:
    """Whether a Lightning ``WandbLogger`` has started (or attached to) its W&B run.

    Lightning 2.6: ``logger._experiment is not None``. Reading the public ``logger.experiment`` starts the run.
    """
    return logger._experiment is not None


def wandb_init_kwargs(logger) -> dict[str, Any]:
    """The keyword arguments a Lightning ``WandbLogger`` will pass to ``wandb.init`` (a dict to edit before the
    run starts). Lightning 2.6: ``logger._wandb_init``. Public API only at construction (``**kwargs``)."""
    return logger._wandb_init


def wandb_netrc_api_key(base_url: str) -> str | None:
    """The API key ``wandb login`` stored in ``~/.netrc`` for the host of ``base_url``, or None.

    wandb 0.31: ``wandb.sdk.lib.wbauth.read_netrc_auth``. The public ``wandb.login()`` verifies the key
    online; the stdlib ``netrc`` module would miss wandb's host normalisation and ``$NETRC``.
    """
    from wandb.sdk.lib.wbauth import read_netrc_auth

    return read_netrc_auth(host=base_url)


def wandb_generate_run_id() -> str:
    """A new W&B run id, as W&B itself makes them. wandb 0.31: ``wandb.sdk.lib.runid.generate_id`` (the public
    ``wandb.util.generate_id`` of older releases is gone)."""
    from wandb.sdk.lib.runid import generate_id

    return generate_id()


def wandb_sweep_command(command: list[str]) -> list[str]:
    """A sweep file's ``command`` list in the form ``wandb agent`` expands (its ``${...}`` macros kept).

    wandb 0.31: ``wandb.sdk.launch.sweeps.utils.create_sweep_command``. No public API.
    """
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    return sweep_utils.create_sweep_command([str(c) for c in command])


def wandb_sweep_args(params: dict[str, Any]) -> dict[str, list[str]]:
    """What ``wandb agent`` puts in for each ``${...}`` macro (``args``, ``args_no_hyphens``, ...) given a trial's
    parameters ``{name: value}``. wandb 0.31: ``wandb.sdk.launch.sweeps.utils.create_sweep_command_args``."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    return sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
