"""LightningCLI for the project: :class:`GenCLI` and :func:`run_lightning_cli`.

Besides LightningCLI's own options it adds ``--checkpoint.*`` (``last.ckpt`` always kept), the safety nets of
:mod:`lightning_gen.guards` (``--guard.*``, ``--interrupt.*``, ``--resume.*``), ``--loss_curves.*`` and ``--threads``;
it audits ``--ckpt_path`` before LightningCLI reads it, checks the trainer's limits and the project's callbacks
before training, and runs a fit in a run folder reserved atomically.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import sys

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ModelSummary, ProgressBar
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities import rank_zero_info

from lightning_gen.callbacks import LossCurves
from lightning_gen.checkpoints import CheckpointError, check_weights, load_checkpoint, model_config, resolve_checkpoint
from lightning_gen.errors import UserError, config_reason
from lightning_gen.guards import DivergenceGuard, ExactResume, InterruptCheckpoint
from lightning_gen.lightning_cli.console import EpochLineProgressBar, QuietRichProgressBar, fit_summary, is_terminal
from lightning_gen.lightning_cli.parser import ErrorFirstParser, check_config_files, check_overlay_order
from lightning_gen.lightning_cli.run_folder import checkpoint_progress, finished_run_message, reserve_run_folder
from lightning_gen.lightning_cli.threads import apply_threads


class GenCLI(LightningCLI):
    """LightningCLI with a checkpoint callback that always keeps ``last.ckpt`` and a rich progress bar.

    The checkpoint callback is configured with ``--checkpoint.*`` (``save_last`` is on by default). The
    rich progress bar is added unless the config has its own progress bar or
    ``--trainer.enable_progress_bar=false``. Everything else is standard LightningCLI (``--config``,
    dotted overrides, ``--print_config``).
    """

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.filename": "{epoch}-{step}"})
        # safety nets of lightning_gen.guards, on by default: --guard.*, --interrupt.*, --resume.*
        parser.add_lightning_class_args(DivergenceGuard, "guard")
        parser.add_lightning_class_args(InterruptCheckpoint, "interrupt")
        parser.add_lightning_class_args(ExactResume, "resume")
        parser.add_lightning_class_args(LossCurves, "loss_curves")  # loss_curves.png at the end of every fit
        parser.add_argument(
            "--threads",
            type=int | None,
            default=None,
            help="torch CPU threads (intra- and inter-op) for this run; 0: torch's default (one per core). Default: "
            "OMP_NUM_THREADS when it is set, else 1: "
            "on a small model a second thread gains little on an idle machine and costs several times over on a "
            "busy one. A top-level `threads:` key in a config sets it too.",
        )

    def before_instantiate_classes(self) -> None:
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        apply_threads(config.get("threads"))

    def instantiate_classes(self) -> None:
        """LightningCLI's, with a model refused for a value recorded in ``--ckpt_path``'s hyperparameters (which
        LightningCLI applies over the config and the command line) said to come from the checkpoint."""
        try:
            super().instantiate_classes()
        except ValueError as err:
            found = config_reason(err)
            ckpt_path = (getattr(self, "_ckpt_progress", None) or (None,))[0]
            if not found or not ckpt_path or not (found[0] or "").startswith("model."):
                raise
            key = "hyper_parameters." + found[0].removeprefix("model.init_args.")
            raise UserError(
                f"{found[1]}\nThe value comes from --ckpt_path {ckpt_path} (checkpoint key {key}): LightningCLI "
                "rebuilds the model from the hyperparameters a checkpoint records, over the config and the command "
                "line. Use a checkpoint written by `lightning-gen fit`, or start a new run without --ckpt_path."
            ) from err

    def parse_arguments(self, parser, args) -> None:
        # LightningCLI reads --ckpt_path right after this (its private ``_parse_ckpt_path``) to take the model's
        # config from it, importing what that config names. Read and audit it first with the project's loader
        # (weights only, allowlist over every importable string, finite weights, the config's model family), so a
        # hostile or broken checkpoint is refused with a clear message before anything is imported, built or
        # written. The weights are checked against the built model in `_check_ckpt_weights`, before the trainer
        # starts. (tests/test_lightning_internals.py checks that parse_arguments runs just before that read.)
        check_config_files(list(sys.argv[1:] if args is None else args))
        check_overlay_order(list(sys.argv[1:] if args is None else args))
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        self._ckpt_state = self._ckpt_progress = None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):
            try:
                # a run folder stands for its newest last.ckpt: Lightning is handed that file
                ckpt_path = str(resolve_checkpoint(ckpt_path))
                self.config[subcommand]["ckpt_path"] = ckpt_path
                ckpt = load_checkpoint(ckpt_path)
                model = self.config[subcommand].get("model")
                expected = model.get("class_path") if hasattr(model, "get") else None
                model_config(ckpt, ckpt_path, expected=expected if isinstance(expected, str) else None)
            except CheckpointError as err:
                raise CheckpointError(f"--ckpt_path: {err}") from err
            self._ckpt_state = (ckpt_path, ckpt["state_dict"])
            self._ckpt_progress = (ckpt_path, *checkpoint_progress(ckpt))

    def _check_ckpt_weights(self) -> None:
        if getattr(self, "_ckpt_state", None) is not None:
            path, state = self._ckpt_state
            self._ckpt_state = None
            try:
                check_weights(self.model, state, path)
            except CheckpointError as err:
                raise CheckpointError(f"--ckpt_path: {err}") from err

    def _check_trainer(self) -> None:
        trainer = self.trainer
        if trainer.max_steps == 0 or trainer.max_epochs == 0:
            raise UserError(
                f"--trainer.max_steps={trainer.max_steps} / --trainer.max_epochs={trainer.max_epochs}: a run of 0 "
                "steps trains nothing and writes no checkpoint. Give max_steps >= 1 or max_epochs >= 1 (-1: no limit)."
            )
        if trainer.limit_train_batches == 0:
            raise UserError(
                "--trainer.limit_train_batches=0 trains nothing; give a number of batches >= 1 or a fraction in (0, 1]."
            )

    def _check_callbacks(self) -> None:
        # a count of 0 in one of the project's callbacks would fail only when it is first used, often at the end
        # of the whole run (the final sample grid): check it before training
        for cb in self.trainer.callbacks:
            if not type(cb).__module__.startswith("lightning_gen."):
                continue
            for name in _POSITIVE_CALLBACK_ARGS:
                value = getattr(cb, name, None)
                if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                    raise UserError(
                        f"--trainer.callbacks: {type(cb).__name__}({name}={value}): {name} must be >= 1 (it would "
                        "fail only when first used, possibly after the whole run)."
                    )

    def before_fit(self) -> None:
        self._check_ckpt_weights()
        self._check_trainer()
        self._check_callbacks()
        log_effective_batch_size(self.trainer, self.datamodule)

    def fit(self, **kwargs) -> None:
        """``trainer.fit`` in a run folder reserved atomically: two fits started at once in the same
        ``default_root_dir`` get ``version_N`` and ``version_N+1`` instead of writing into one folder. A fit that
        fails before writing anything (bad data) leaves no folder behind; a resume of a run that already reached
        its limits says so and creates nothing. A fit that ends normally prints :func:`fit_summary`."""
        finished = self._finished_run_message()
        if finished:
            print(finished, file=sys.stderr)
            return
        created = reserve_run_folder(self.trainer)
        try:
            self.trainer.fit(**kwargs)
        except BaseException:
            if created and self.trainer.global_step == 0 and not glob.glob(os.path.join(created[0], "**", "*.ckpt")):
                # the version_N this run reserved holds only what Lightning wrote before a batch was trained (its
                # config.yaml, a model's data check failing in setup): nothing of value, nobody else's
                shutil.rmtree(created[0], ignore_errors=True)
            for folder in created:  # deepest first; only folders this run made and left empty
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
            raise
        if self.trainer.is_global_zero and not self.trainer.interrupted:
            print(
                fit_summary(self.trainer, getattr(self, "_ckpt_progress", None) and self._ckpt_progress[0]),
                file=sys.stderr,
            )

    def _finished_run_message(self) -> str | None:
        """:func:`~lightning_gen.lightning_cli.run_folder.finished_run_message` for ``--ckpt_path``, if given."""
        if getattr(self, "_ckpt_progress", None) is None:
            return None
        return finished_run_message(self.trainer, *self._ckpt_progress)

    def before_validate(self) -> None:
        self._check_ckpt_weights()

    def before_test(self) -> None:
        self._check_ckpt_weights()

    def instantiate_trainer(self, **kwargs) -> pl.Trainer:
        config = self.config_init.get(str(self.subcommand), self.config_init)  # the subcommand's, or the whole
        trainer_config = config.get("trainer", {})
        callbacks = list(trainer_config.get("callbacks") or [])
        extra = []
        wants_bar = trainer_config.get("enable_progress_bar") is not False
        if wants_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
            # a live rich bar on a terminal; one plain line per epoch in a log file or pipe (no control codes)
            extra = [QuietRichProgressBar()] if is_terminal() else [EpochLineProgressBar()]
            wants_summary = trainer_config.get("enable_model_summary") is not False
            if not is_terminal() and wants_summary and not any(isinstance(c, ModelSummary) for c in callbacks):
                extra.append(ModelSummary())  # Lightning's default is the rich table: box drawing in a log file
        if getattr(self, "subcommand", None) == "test":
            from lightning_gen.metrics.callback import GeneratorTestMetrics

            extra.append(GeneratorTestMetrics())  # G's side of the test metrics, not only D's
        if extra:
            kwargs["callbacks"] = [*callbacks, *extra]
        trainer = super().instantiate_trainer(**kwargs)
        from lightning_gen.wandb_utils import attach_loggers

        attach_loggers(self, trainer)  # W&B: one folder per run, the full resolved config as hyperparameters
        return trainer


_POSITIVE_CALLBACK_ARGS = (
    "every_n_epochs",
    "num_samples",
    "nrow",
    "num_sequences",
    "num_reference",
    "iterations",
    "repeats",
    "batch_size",
    "max_panels",
)


def log_effective_batch_size(trainer: pl.Trainer, datamodule) -> int | None:
    """Log (and return) batch size x devices x nodes: what one optimizer step of each network sees."""
    per_device = getattr(datamodule, "batch_size", None)
    if not isinstance(per_device, int):
        return None
    effective = per_device * trainer.world_size
    rank_zero_info(
        f"Effective batch size: {effective} = {per_device} per device x {trainer.num_devices} device(s) x "
        f"{trainer.num_nodes} node(s) (scale learning rates yourself if you change it)."
    )
    return effective


def run_lightning_cli(args: list[str] | None = None, run: bool = True) -> GenCLI:
    torch.set_float32_matmul_precision("high")
    return GenCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,  # each model injects one optimizer factory per network
        parser_kwargs={"parser_mode": "omegaconf"},
        parser_class=ErrorFirstParser,
        args=args,
        run=run,
    )
