"""The ``lightning-gen`` command: LightningCLI's fit / validate / test plus the project's jobs.

``lightning-gen fit --config configs/gan/digits.yaml`` trains; ``lightning-gen sample CKPT ...`` draws
samples from any checkpoint of the project. Run ``lightning-gen --help`` for the list.
"""

from __future__ import annotations

import contextlib
import os
import sys

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities import rank_zero_info

from lightning_gen.checkpoints import CheckpointError, check_weights, load_checkpoint, model_config
from lightning_gen.errors import UserError, run_job
from lightning_gen.guards import DivergenceGuard, ExactResume, InterruptCheckpoint

JOBS = {
    "sample": ("lightning_gen.sample", "draw samples from a checkpoint into an .npz (+ PNG grid)"),
    "evaluate": ("lightning_gen.evaluate", "FID / KID / IS / PR or TimeGAN scores, MMD, music stats: JSON report"),
    "sweep": ("lightning_gen.sweep", "run a W&B sweep file locally and offline, one process per trial"),
}


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

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads --ckpt_path to take the model's config from it, importing what that config names.
        # Read and audit it first with the project's loader (weights only, allowlist over every importable
        # string, finite weights, the config's model family), so a hostile or broken checkpoint is refused with
        # a clear message before anything is imported, built or written. The weights are checked against the
        # built model in `_check_ckpt_weights`, before the trainer starts.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        self._ckpt_state = None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):
            try:
                ckpt = load_checkpoint(ckpt_path)
                model = self.config[subcommand].get("model")
                expected = model.get("class_path") if hasattr(model, "get") else None
                model_config(ckpt, ckpt_path, expected=expected if isinstance(expected, str) else None)
            except CheckpointError as err:
                raise CheckpointError(f"--ckpt_path: {err}") from err
            self._ckpt_state = (ckpt_path, ckpt["state_dict"])
        super()._parse_ckpt_path()

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
        fails before writing anything (bad data) leaves no folder behind."""
        created = _reserve_run_folder(self.trainer)
        try:
            self.trainer.fit(**kwargs)
        except BaseException:
            for folder in created:  # deepest first; only folders this run made and left empty
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
            raise

    def before_validate(self) -> None:
        self._check_ckpt_weights()

    def before_test(self) -> None:
        self._check_ckpt_weights()

    def instantiate_trainer(self, **kwargs) -> pl.Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = list(trainer_config.get("callbacks") or [])
        wants_bar = trainer_config.get("enable_progress_bar") is not False
        if wants_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
            kwargs["callbacks"] = [*callbacks, RichProgressBar()]
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
)


def _reserve_run_folder(trainer: pl.Trainer) -> list[str]:
    """Create the CSV / TensorBoard logger's ``version_N`` folder with ``os.mkdir`` (atomic: it fails when another
    process made it first) and pin the logger to it. Returns the folders created, deepest first."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    if any(int(os.environ.get(var, "0") or 0) != 0 for var in ("RANK", "LOCAL_RANK", "NODE_RANK")):
        return []  # rank 0 names the folder; the others never write into it
    for logger in trainer.loggers:
        if isinstance(logger, (CSVLogger, TensorBoardLogger)) and logger._version is None:
            root = logger.root_dir
            created, missing = [], root
            while missing and not os.path.isdir(missing):  # the folders this run makes, deepest first
                created.append(missing)
                missing = os.path.dirname(missing)
            os.makedirs(root, exist_ok=True)
            version = logger._get_next_version()
            while True:
                folder = os.path.join(root, f"version_{version}")
                try:
                    os.mkdir(folder)
                    break
                except FileExistsError:
                    version += 1
            logger._version = version
            return [folder, *created]
    return []


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
        args=args,
        run=run,
    )


def _usage() -> str:
    jobs = "\n".join(f"  {name:<10} {text}" for name, (_, text) in JOBS.items())
    return (
        "usage: lightning-gen {fit,validate,test,predict} --config CONFIG.yaml [--key=value ...]\n"
        "       lightning-gen {" + ",".join(JOBS) + "} ...\n\n"
        "Lightning subcommands (LightningCLI; `lightning-gen fit --help` lists every option):\n"
        "  fit        train a model\n  validate   run the validation loop\n  test       run the test loop\n\n"
        "Jobs:\n" + jobs + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    """``lightning-gen``: every job and subcommand runs under one error handler (:func:`errors.run_job`): bad
    input ends with ``error: <what was wrong and what to do>`` and exit status 2, a training divergence with
    status 3; ``LIGHTNING_GEN_TRACEBACK=1`` shows the traceback."""
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in JOBS:
        import importlib

        module = importlib.import_module(JOBS[argv[0]][0])
        sys.exit(run_job(lambda: module.main(argv[1:])))
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        if not argv:
            sys.exit(2)
        return
    code = run_job(lambda: run_lightning_cli(None if from_sys else argv) and 0)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
