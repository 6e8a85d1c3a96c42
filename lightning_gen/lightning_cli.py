"""The Lightning side of ``lightning-gen``: :class:`GenCLI` (LightningCLI fit / validate / test) and its helpers.

Kept apart from :mod:`lightning_gen.cli` so that ``lightning-gen --help`` and the jobs start without importing
Lightning. Besides LightningCLI's own options it adds ``--threads`` (torch CPU threads, 1 by default), a plain
one-line-per-epoch progress report when the output is not a terminal, a closing summary of a fit with its loss
curves (``--loss_curves.*``), generator-side metrics for ``test``, a clear message (and no new folder) when
``--ckpt_path`` names a run that already reached its limits, and config errors printed alone (no usage block).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
import warnings

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ModelSummary, ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities import rank_zero_info

from lightning_gen.callbacks import LossCurves
from lightning_gen.checkpoints import CheckpointError, check_weights, load_checkpoint, model_config
from lightning_gen.errors import UserError
from lightning_gen.guards import DivergenceGuard, ExactResume, InterruptCheckpoint

#: ``--threads`` default. Not a per-config measurement: on a 2-core machine busy with other work, torch's default of
#: two threads ran 3.8x (GAN) to 5.5x (R-VAE-GAN) slower than one (issue 16). The models are small: try more
#: threads only on an idle machine with many cores; 0 keeps torch's default.
DEFAULT_THREADS = 1


def apply_threads(threads: int | None) -> int:
    """Set torch's intra-op (and, where still allowed, inter-op) CPU threads; returns the intra-op count in use.

    ``threads`` None (not given): :data:`DEFAULT_THREADS`, unless ``OMP_NUM_THREADS`` is set, which torch already
    follows; 0: torch's default (one per core, or ``OMP_NUM_THREADS``)."""
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS", "").strip():
            return torch.get_num_threads()
        threads = DEFAULT_THREADS
    if not isinstance(threads, int) or threads < 0:
        raise UserError(f"--threads must be an integer >= 0 (0: torch's default), got {threads!r}.")
    if threads == 0:
        return torch.get_num_threads()
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # inter-op threads can be set once, before any parallel work
        torch.set_num_interop_threads(threads)
    return torch.get_num_threads()


_NOISE = (
    # notices that ask nothing of the run: without tensorboard installed the CSV logger is the complete default
    r".*`tensorboardX` has been removed as a dependency.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # inside Lightning's own _pytree, not user code
)


#: Lightning info lines that ask nothing of the user (an available but unused GPU is still reported)
_DROPPED_INFO = ("litlogger", "TPU available:", "GPU available: False", "already configured with model summary")


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not any(text in message for text in _DROPPED_INFO)


def quiet_lightning() -> None:
    """Silence the notices a user cannot act on (Lightning's tensorboardX and litlogger tips, torch's LeafSpec
    deprecation raised inside Lightning); every other warning is kept."""
    for pattern in _NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in log.filters):
            log.addFilter(_DropTips())


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class QuietRichProgressBar(RichProgressBar):
    """Lightning's rich bar without ``v_num`` (the run folder's number, not a metric)."""

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class EpochLineProgressBar(ProgressBar):
    """One plain line per training epoch (epoch, batches, seconds, the progress-bar metrics), for output that
    goes to a file or a pipe: no carriage returns or terminal control codes in the log."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._start = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        metrics = {**_final_metrics(trainer), **self.get_metrics(trainer, pl_module)}
        metrics.pop("v_num", None)
        shown = "  ".join(f"{k}={_fmt(metrics[k])}" for k in sorted(metrics))
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        print(
            f"epoch {trainer.current_epoch + 1}/{total}  step {trainer.global_step}  "
            f"{time.monotonic() - self._start:.1f}s  {shown}".rstrip(),
            flush=True,
        )


def _fmt(value) -> str:
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _progress(ckpt: dict) -> tuple[int, int]:
    """(epochs whose training finished, global step) recorded in a Lightning checkpoint."""
    try:
        epochs = int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        epochs = -1  # not a fit checkpoint (or an older layout): never called finished
    try:
        steps = int(ckpt.get("global_step", -1))
    except (TypeError, ValueError):
        steps = -1
    return epochs, steps


def _final_metrics(trainer: pl.Trainer) -> dict:
    return {k: v for k, v in trainer.callback_metrics.items() if not k.endswith("_step")}


def _run_folder(trainer: pl.Trainer) -> str | None:
    """``trainer.log_dir`` without its broadcast (a collective call: the summary runs on rank 0 only)."""
    if not trainer.loggers:
        return None
    logger = trainer.loggers[0]
    return getattr(logger, "log_dir", None) or logger.save_dir


def fit_summary(trainer: pl.Trainer, resumed_from: str | None = None) -> str:
    """The closing lines of a fit: where the run folder, checkpoint, pictures and metrics are; the final metrics.
    ``resumed_from``: the ``--ckpt_path`` of a resumed run, whose earlier metrics are in its own folder."""
    lines = [f"Fit finished: {trainer.current_epoch} epoch(s), {trainer.global_step} step(s)."]
    folder = _run_folder(trainer)
    if folder and os.path.isdir(folder):
        lines.append(f"  run folder:  {folder}")
    ckpt = trainer.checkpoint_callback
    last = getattr(ckpt, "last_model_path", "") or getattr(ckpt, "best_model_path", "")
    if last:
        lines.append(f"  checkpoint:  {last}")
        config = os.path.join(folder, "config.yaml") if folder else "<config>"
        lines.append(
            f"  train more:  lightning-gen fit --config {config} --ckpt_path {last} --trainer.max_epochs=<more>"
        )
    lines += _output_lines(trainer, folder)
    if resumed_from:
        earlier = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(resumed_from))), "metrics.csv")
        if os.path.isfile(earlier) and os.path.abspath(earlier) != os.path.abspath(
            os.path.join(folder or "", "metrics.csv")
        ):
            lines.append(f"               (the steps before the resume: {earlier})")
    final = _final_metrics(trainer)
    if final:
        shown = [f"{k}={_fmt(final[k])}" for k in sorted(final)]
        lines.append("  final:       " + "  ".join(shown))
    return "\n".join(lines)


def _output_lines(trainer: pl.Trainer, folder: str | None) -> list[str]:
    """The summary's lines on the pictures (sub-folders with PNGs), the loss curves and ``metrics.csv``."""
    lines = []
    if folder and os.path.isdir(folder):
        pictures = sorted(
            {os.path.relpath(root, folder) for root, _, files in os.walk(folder) for f in files if f.endswith(".png")}
            - {"."}
        )
        if pictures:
            lines.append("  pictures:    " + ", ".join(os.path.join(folder, p) for p in pictures))
    curves = next((cb.last_path for cb in trainer.callbacks if isinstance(cb, LossCurves) and cb.last_path), None)
    if curves:
        lines.append(f"  loss curves: {curves}")
    metrics_csv = os.path.join(folder, "metrics.csv") if folder else None
    if metrics_csv and os.path.isfile(metrics_csv):
        lines.append(f"  metrics:     {metrics_csv}")
    return lines


_CLASS_PATH_HINT = (
    "A class path is `module.Class` of an importable module: a module of the folder you run lightning-gen in (e.g. "
    "`mynets.MyGen` from ./mynets.py), an installed package, or one on PYTHONPATH."
)


class ErrorFirstParser(LightningArgumentParser):
    """LightningCLI's parser, whose errors print ``error: <message>`` alone (and a pointer to ``--help``) instead of
    the subcommand's usage block, dozens of lines long, before the message (issue 16). Exit status 2 as before."""

    def error(self, message: str, ex: Exception | None = None):
        debug = os.environ.get("JSONARGPARSE_DEBUG", "").lower() not in ("", "0", "false", "no")
        if not self.exit_on_error or debug:  # jsonargparse raises an ArgumentError there: keep that
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {_lead(message)}\n(`{prog} --help` lists every option)\n")
        self.exit(2)


def _lead(message: str) -> str:
    """jsonargparse's message, led by its innermost class-path problem (nested several levels deep in it: a
    network inside the model) in one line, with where class paths come from."""
    if message.strip() == "Unexpected config:":  # jsonargparse's whole message for an empty `--config` file
        return (
            "Unexpected config: a --config file is empty (or not a YAML mapping). A config names at least the "
            "`model:` and `data:` to train, e.g. configs/gan/digits.yaml."
        )
    problems = re.findall(r"Problem with given class_path '([^']+)':[ \t]*\n\s*(?!Parser key)([^\n]+)", message)
    if not problems:
        return message.rstrip()
    class_path, reason = problems[-1]
    hint = f"{_CLASS_PATH_HINT}\n" if "module" in reason or "import" in reason else ""
    return f"the class path '{class_path}' cannot be used: {reason.strip()}\n{hint}{message.rstrip()}"


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

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads --ckpt_path to take the model's config from it, importing what that config names.
        # Read and audit it first with the project's loader (weights only, allowlist over every importable
        # string, finite weights, the config's model family), so a hostile or broken checkpoint is refused with
        # a clear message before anything is imported, built or written. The weights are checked against the
        # built model in `_check_ckpt_weights`, before the trainer starts.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        self._ckpt_state = self._ckpt_progress = None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):
            try:
                ckpt = load_checkpoint(ckpt_path)
                model = self.config[subcommand].get("model")
                expected = model.get("class_path") if hasattr(model, "get") else None
                model_config(ckpt, ckpt_path, expected=expected if isinstance(expected, str) else None)
            except CheckpointError as err:
                raise CheckpointError(f"--ckpt_path: {err}") from err
            self._ckpt_state = (ckpt_path, ckpt["state_dict"])
            self._ckpt_progress = (ckpt_path, *_progress(ckpt))
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
        fails before writing anything (bad data) leaves no folder behind; a resume of a run that already reached
        its limits says so and creates nothing. A fit that ends normally prints :func:`fit_summary`."""
        finished = self._finished_run_message()
        if finished:
            print(finished, file=sys.stderr)
            return
        created = _reserve_run_folder(self.trainer)
        try:
            self.trainer.fit(**kwargs)
        except BaseException:
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
        """The message for ``--ckpt_path`` of a run that already trained ``max_epochs`` epochs or ``max_steps``
        steps (Lightning would stop at once, after making a new, near-empty ``version_N``), else None."""
        if getattr(self, "_ckpt_progress", None) is None:
            return None
        path, epochs, steps = self._ckpt_progress
        trainer = self.trainer
        if trainer.max_steps is not None and trainer.max_steps >= 0 and steps >= trainer.max_steps:
            limit, more = f"max_steps={trainer.max_steps}: {steps} steps trained", f"--trainer.max_steps={2 * steps}"
        elif trainer.max_epochs is not None and trainer.max_epochs >= 0 and epochs >= trainer.max_epochs:
            limit, more = (
                f"max_epochs={trainer.max_epochs}: {epochs} epochs trained",
                f"--trainer.max_epochs={2 * epochs}",
            )
        else:
            return None
        return (
            f"Nothing to do: the run of {path} is finished (it reached {limit}); nothing was trained or written.\n"
            f"To train it further, run the same command with a higher limit, e.g. add {more}."
        )

    def before_validate(self) -> None:
        self._check_ckpt_weights()

    def before_test(self) -> None:
        self._check_ckpt_weights()

    def instantiate_trainer(self, **kwargs) -> pl.Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = list(trainer_config.get("callbacks") or [])
        extra = []
        wants_bar = trainer_config.get("enable_progress_bar") is not False
        if wants_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
            # a live rich bar on a terminal; one plain line per epoch in a log file or pipe (no control codes)
            extra = [QuietRichProgressBar()] if _is_terminal() else [EpochLineProgressBar()]
            wants_summary = trainer_config.get("enable_model_summary") is not False
            if not _is_terminal() and wants_summary and not any(isinstance(c, ModelSummary) for c in callbacks):
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
        parser_class=ErrorFirstParser,
        args=args,
        run=run,
    )
