"""Loading checkpoints safely: ``weights_only`` unpickling, and only models of this project."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

TRUSTED_PREFIXES = ("lightning_gen.", "torch.", "pytorch_lightning.", "lightning.")


class CheckpointError(ValueError):
    """A checkpoint that does not exist, cannot be read safely, or is not one of this project."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``: tensors and plain data only, no code runs."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} is not a file (give the .ckpt file, e.g. checkpoints/last.ckpt).")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds pickled Python objects, not just tensors and plain data. It was refused without "
            f"running them (weights_only loading). Only load checkpoints you trust. Detail: {str(err)[:300]}"
        ) from err
    except Exception as err:  # noqa: BLE001  (garbage bytes fail in many ways inside the unpickler)
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({type(err).__name__}: {err}).") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (it has no 'state_dict').")
    return ckpt


def _class_paths(obj) -> list[str]:
    if isinstance(obj, dict):
        found = [v for k, v in obj.items() if k in ("class_path", "_class_path") and isinstance(v, str)]
        return found + [p for v in obj.values() for p in _class_paths(v)]
    if isinstance(obj, (list, tuple)):
        return [p for v in obj for p in _class_paths(v)]
    return []


def model_config(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> dict[str, Any]:
    """The model's config recorded by ``lightning-gen fit`` (LightningCLI stores it as hyperparameters)."""
    hparams = dict(ckpt.get("hyper_parameters") or {})
    class_path = hparams.get("_class_path")
    if not isinstance(class_path, str) or not class_path.startswith("lightning_gen."):
        raise CheckpointError(
            f"{path} is not a checkpoint of a lightning_gen model written by `lightning-gen fit` (its "
            f"hyperparameters name no lightning_gen class; found {class_path!r})."
        )
    untrusted = [p for p in _class_paths(hparams) if not p.startswith(TRUSTED_PREFIXES)]
    if untrusted:
        raise CheckpointError(
            f"{path} asks to import {untrusted}, outside {TRUSTED_PREFIXES}; refused. If these are your own "
            "networks, build the model in Python and call load_state_dict instead."
        )
    return hparams


def load_model(path: str | Path, map_location: str | torch.device = "cpu"):
    """Rebuild the LightningModule of a checkpoint from its recorded config and load its weights."""
    import pytorch_lightning as pl
    from pytorch_lightning.cli import instantiate_module

    import lightning_gen.models  # noqa: F401  (makes the model classes importable subclasses)

    ckpt = load_checkpoint(path)
    hparams = model_config(ckpt, path)
    hparams.pop("_instantiator", None)
    model = instantiate_module(pl.LightningModule, hparams)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: the weights do not fit the recorded model (missing {missing[:5]}, unexpected {unexpected[:5]})."
        )
    return model.to(map_location).eval()
