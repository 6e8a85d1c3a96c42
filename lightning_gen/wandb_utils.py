"""Weights & Biases logging that never hangs: online when it can reach W&B, offline (``wandb sync`` later) when not.

``configs/logger/wandb.yaml`` selects :class:`WandbLogger`, a Lightning ``WandbLogger`` that

- decides once, before any run starts, whether W&B can be reached: ``WANDB_MODE`` wins when set; otherwise
  with no API key (``WANDB_API_KEY`` or ``wandb login``) or no connection to the W&B host it runs in W&B's
  offline mode and says so once, with the ``wandb sync`` command to upload the run later;
- keeps each run's files in its own folder, ``<default_root_dir>/<project>/<run id>/`` (``config.yaml``,
  ``samples/``, ``checkpoints/``), next to W&B's ``<default_root_dir>/wandb/`` folder, so runs never collide;
- logs the full resolved LightningCLI config as the run's hyperparameters (``config`` in the W&B run).
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any
from urllib.parse import urlparse

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger
from pytorch_lightning.utilities import rank_zero_only

from lightning_gen.lightning_internals import (
    wandb_generate_run_id,
    wandb_init_kwargs,
    wandb_netrc_api_key,
    wandb_run_id,
    wandb_run_started,
)

_ANNOUNCED = False  # the offline notice is printed once per process


def _api_key(base_url: str) -> str | None:
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    try:  # the key `wandb login` wrote into ~/.netrc
        return wandb_netrc_api_key(base_url)
    except Exception:  # an unreadable netrc or a wandb without this helper: treat as no key
        return None


def _reachable(base_url: str, timeout: float = 3.0) -> bool:
    """A TCP connection to the W&B host within ``timeout`` seconds (no request is sent)."""
    url = urlparse(base_url)
    host, port = url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wandb_mode(timeout: float = 3.0) -> tuple[str, str | None]:
    """W&B mode to use (``online`` / ``offline`` / ``disabled``) and why it is not online, if it is not."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return ("offline", None) if mode == "dryrun" else (mode, None)
    base_url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    if not _api_key(base_url):
        return "offline", "no W&B API key (set WANDB_API_KEY or run `wandb login`)"
    if not _reachable(base_url, timeout):
        return "offline", f"cannot reach {base_url}"
    return "online", None


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` with an offline fallback and one folder per run.

    Args:
        project: W&B project (default ``$WANDB_PROJECT``, else ``lightning_gen``).
        name: run name (default: W&B's random name, or ``$WANDB_NAME``).
        group: run group, e.g. one per sweep (default ``$WANDB_RUN_GROUP``).
        tags: run tags.
        save_dir: where W&B's ``wandb/`` folder and the run folders go (default: the trainer's
            ``default_root_dir``).
        log_model: upload checkpoints as W&B artifacts: ``False``, ``True`` (at the end) or ``"all"`` (each one).
            Off in offline mode (Lightning cannot upload artifacts offline).
        offline: force W&B's offline mode.
        connect_timeout: seconds to wait for the W&B host before falling back to offline mode.
        **kwargs: passed to ``wandb.init`` (``entity``, ``notes``, ``job_type``, ...).
    """

    def __init__(
        self,
        project: str | None = None,
        name: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        save_dir: str | None = None,
        log_model: bool | str = False,
        offline: bool = False,
        connect_timeout: float = 3.0,
        **kwargs: Any,
    ) -> None:
        mode, why = ("offline", None) if offline else wandb_mode(connect_timeout)
        if mode != "online" and log_model:
            why = (why + "; " if why else "") + "checkpoint artifacts (log_model) are off offline"
            log_model = False
        self.mode, self.offline_reason = mode, why
        # The run id is fixed now (a `wandb agent` trial's id comes from WANDB_RUN_ID) so that the run folder
        # is known before W&B starts.
        run_id = kwargs.pop("id", None) or kwargs.pop("version", None) or os.environ.get("WANDB_RUN_ID")
        if run_id is None:
            run_id = wandb_generate_run_id()
        if kwargs.get("settings") is None:
            kwargs["settings"] = {"init_timeout": 60.0}  # never wait W&B's default 90 s for a stuck start
        super().__init__(
            project=project or os.environ.get("WANDB_PROJECT", "lightning_gen"),
            name=name,
            group=group,
            tags=tags,
            save_dir=save_dir,
            log_model=log_model,
            id=run_id,
            mode=mode,
            **kwargs,
        )
        self._root = save_dir
        self.full_config: dict[str, Any] | None = None

    @property
    def root_dir(self) -> str:
        """The folder that holds W&B's ``wandb/`` folder and this logger's run folders."""
        return self._root or os.environ.get("WANDB_DIR") or "."

    @property
    def save_dir(self) -> str:
        """This run's own folder: ``<root>/<project>/<run id>`` (config.yaml, samples/, checkpoints/)."""
        # Lightning's `WandbLogger.name` is the project; `.version` would become wandb.run's id once the run starts
        return os.path.join(self.root_dir, str(self.name), str(wandb_run_id(self)))

    @property
    def experiment(self):
        if not wandb_run_started(self):
            init = wandb_init_kwargs(self)
            init["dir"] = self.root_dir
            if init.get("anonymous") is None:  # Lightning passes None; wandb warns about any value
                init.pop("anonymous", None)
            os.makedirs(self.root_dir, exist_ok=True)
            self._announce()
        return super().experiment

    @rank_zero_only
    def _announce(self) -> None:
        global _ANNOUNCED
        if self.mode == "offline" and not _ANNOUNCED:
            _ANNOUNCED = True
            why = f": {self.offline_reason}" if self.offline_reason else ""
            folder = os.path.join(self.root_dir, "wandb", "offline-run-*")
            print(
                f"W&B runs offline{why}. The run is kept in {folder}; upload it later with `wandb sync {folder}`.",
                file=sys.stderr,
            )

    def attach(self, trainer: pl.Trainer, config: dict[str, Any] | None = None) -> None:
        """Called by ``lightning-gen`` once the trainer exists: root the run under ``default_root_dir``, put
        checkpoints into the run folder and keep the full resolved config to log as hyperparameters."""
        if self._root is None:
            self._root = trainer.default_root_dir
        for callback in trainer.callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = os.path.join(self.save_dir, "checkpoints")
        self.full_config = config

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        super().log_hyperparams(params)
        if self.full_config is not None:
            self.experiment.config.update({"config": self.full_config}, allow_val_change=True)


def attach_loggers(cli: Any, trainer: pl.Trainer) -> None:
    """Hook for ``GenCLI.instantiate_trainer``: hand each :class:`WandbLogger` the trainer and the resolved config."""
    loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
    if not loggers:
        return
    import yaml

    subcommand = getattr(cli, "subcommand", None)
    full = yaml.safe_load(cli.parser.dump(cli.config, skip_none=False, skip_check=True))
    if subcommand:  # the main parser dumps {subcommand: {...}, "subcommand": ...}; keep the subcommand's own
        full = full[subcommand]
    for logger in loggers:
        logger.attach(trainer, full)
