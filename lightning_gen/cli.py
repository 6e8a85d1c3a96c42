"""The ``lightning-gen`` command: LightningCLI's fit / validate / test plus the project's jobs.

``lightning-gen fit --config configs/gan/digits.yaml`` trains; ``lightning-gen sample CKPT ...`` draws
samples from any checkpoint of the project. Run ``lightning-gen --help`` for the list.
"""

from __future__ import annotations

import os
import sys

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.utilities import rank_zero_info

from lightning_gen.checkpoints import CheckpointError, load_checkpoint
from lightning_gen.guards import DivergenceError, DivergenceGuard, ExactResume, InterruptCheckpoint

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
        # LightningCLI reads --ckpt_path (weights-only) to take the model's config from it; read it first with
        # our loader, so that a checkpoint with a pickled payload, a missing file or garbage gets a clear
        # message, before anything is built or written.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):
            try:
                load_checkpoint(ckpt_path)
            except CheckpointError as err:
                raise CheckpointError(f"--ckpt_path: {err}") from err
        super()._parse_ckpt_path()

    def before_fit(self) -> None:
        log_effective_batch_size(self.trainer, self.datamodule)

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
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in JOBS:
        import importlib

        module = importlib.import_module(JOBS[argv[0]][0])
        sys.exit(module.main(argv[1:]))
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        if not argv:
            sys.exit(2)
        return
    try:
        run_lightning_cli(None if from_sys else argv)
    except (DivergenceError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(3)
    except (ValueError, FileNotFoundError, KeyError) as err:
        # Bad config or data: our errors say what was wrong and what to do; the traceback adds nothing for a
        # user. LIGHTNING_GEN_TRACEBACK=1 shows it.
        if os.environ.get("LIGHTNING_GEN_TRACEBACK"):
            raise
        print(f"error: {err}\n(set LIGHTNING_GEN_TRACEBACK=1 to see the traceback)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
