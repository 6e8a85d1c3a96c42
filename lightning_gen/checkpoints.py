"""Loading checkpoints: one audited path for every job, ``--ckpt_path`` and the Python loader.

A checkpoint is data. Reading one never runs code and never imports a module it names unless that module is
on the allowlist:

1. ``torch.load(weights_only=True)``: tensors and plain data only; a pickled payload is refused unrun.
2. Every string anywhere in the checkpoint (outside the tensors) that Python could import, i.e. what
   jsonargparse's ``import_object`` accepts (``a.b.c`` of identifiers) and whose top-level module exists, must
   name something inside an allowed module (:data:`ALLOWED_MODULES`, plus ``--allow-module`` /
   ``LIGHTNING_GEN_ALLOW_MODULES``). Not only ``class_path`` keys: jsonargparse imports a plain dotted string
   given to a callable argument too (``optimizer_g: "mymod.f"``). This is checked before anything is imported.
3. The model's class is a ``lightning_gen`` class, and when a config is given, the same class as the config's.
4. Every floating-point weight is finite.
5. After the model is built from the recorded config (classes of the allowlist only), every tensor of the
   checkpoint must have the name and shape of one of the model's, and every tensor of the model must be there.

:func:`load_model` runs all five; ``lightning-gen fit/validate/test --ckpt_path`` runs 1-4 before the config is
parsed and 5 before the trainer starts (see :mod:`lightning_gen.cli`).
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from lightning_gen import lightning_internals as li
from lightning_gen.errors import UserError, config_reason
from lightning_gen.renamed import describe, needs_upgrade

#: Modules whose classes and functions a checkpoint may name (a name is allowed when it is one of these or lies
#: inside one). The project's own models, networks and datasets, and torch's optimizers, schedulers and layers.
ALLOWED_MODULES = ("lightning_gen", "torch.optim", "torch.nn")
#: Single names a checkpoint may hold: the instantiator LightningCLI records with the hyperparameters.
ALLOWED_NAMES = ("pytorch_lightning.cli.instantiate_module", "lightning.pytorch.cli.instantiate_module")
#: Environment variable with extra allowed modules, comma-separated (the opt-in for your own networks).
ALLOW_ENV = "LIGHTNING_GEN_ALLOW_MODULES"
_NOT_AUDITED = ("state_dict", "optimizer_states")  # tensors; strings there are never imported


class CheckpointError(UserError):
    """A checkpoint that does not exist, cannot be read safely, or is not one this project may load."""


def allowed_modules(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The allowlist: :data:`ALLOWED_MODULES`, then ``LIGHTNING_GEN_ALLOW_MODULES``, then ``extra``."""
    env = [m.strip() for m in os.environ.get(ALLOW_ENV, "").split(",") if m.strip()]
    out = list(ALLOWED_MODULES)
    for name in [*env, *extra]:
        if not _is_import_path(name) and not name.isidentifier():
            raise CheckpointError(
                f"--allow-module / {ALLOW_ENV}: {name!r} is not a module name (e.g. mynets or mypkg.nets)."
            )
        out.append(name)
    return tuple(out)


def add_allow_module_argument(parser) -> None:
    """The ``--allow-module`` option of the jobs that read checkpoints (``sample``, ``evaluate``)."""
    parser.add_argument(
        "--allow-module",
        action="append",
        default=[],
        metavar="MODULE",
        help=f"your own network module the checkpoint may import (repeatable; also {ALLOW_ENV}); "
        "only for checkpoints you trust",
    )


def _is_import_path(value: str) -> bool:
    # exactly the strings jsonargparse's import_object would try to import
    return "." in value and all(part.isidentifier() for part in value.split("."))


def _importable(value: str) -> bool:
    """Could ``import_object(value)`` import something? Looks up the top-level module only: no code runs."""
    root = value.split(".", 1)[0]
    try:
        return importlib.util.find_spec(root) is not None
    except (ImportError, ValueError):
        return True  # cannot tell: treat it as importable


def _strings(obj: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(obj, str):
        yield where, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if where == "" and key in _NOT_AUDITED:
                continue
            yield from _strings(value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _strings(value, f"{where}[{i}]")


def foreign_imports(obj: Any, allow: Iterable[str] = ALLOWED_MODULES) -> list[str]:
    """``"where: name"`` for every importable string in ``obj`` outside the allowlist ``allow``."""
    allow = tuple(allow)
    out = []
    for where, value in _strings(obj, ""):
        if not _is_import_path(value) or value in ALLOWED_NAMES:
            continue
        if any(value == m or value.startswith(m + ".") for m in allow):
            continue
        if _importable(value):
            out.append(f"{where or 'value'}: {value}")
    return out


def resolve_checkpoint(path: str | Path) -> Path:
    """The ``.ckpt`` file ``path`` names: the file itself, or for a folder its run's ``last.ckpt``.

    A folder may be a run folder (``runs/classifier/digits``, the config's ``default_root_dir``: its newest
    ``lightning_logs/version_N`` that holds ``checkpoints/last.ckpt``, N the highest), one ``version_N`` folder, or a
    ``checkpoints`` folder. So ``--classifier runs/classifier/digits`` names the last classifier trained with
    ``configs/classifier/digits.yaml``, whatever its version number.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"Checkpoint {path} is not a file (give the .ckpt file, e.g. checkpoints/last.ckpt).")
    candidates = [path / "last.ckpt", path / "checkpoints" / "last.ckpt"]
    for logs in (path / "lightning_logs", path):
        versions = [v for v in logs.glob("version_*") if v.name[len("version_") :].isdigit()]
        versions.sort(key=lambda v: int(v.name[len("version_") :]), reverse=True)
        candidates += [v / "checkpoints" / "last.ckpt" for v in versions]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"{path} is a folder without a last.ckpt (looked in {path}/, {path}/checkpoints/ and "
        f"{path}/lightning_logs/version_N/checkpoints/). Give the .ckpt file, or the run folder of a finished fit."
    )


def load_checkpoint(path: str | Path, allow_modules: Iterable[str] = ()) -> dict[str, Any]:
    """Read and audit a checkpoint (steps 1, 2 and 4 of the module docstring); no code runs, nothing is imported.

    Args:
        path: the ``.ckpt`` file, or a run folder (:func:`resolve_checkpoint`).
        allow_modules: modules allowed beside :data:`ALLOWED_MODULES` and ``LIGHTNING_GEN_ALLOW_MODULES``.
    """
    path = resolve_checkpoint(path)
    allow = allowed_modules(allow_modules)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds pickled Python objects, not just tensors and plain data. It was refused without "
            f"running them (weights_only loading). Only load checkpoints you trust. Detail: {str(err)[:300]}"
        ) from err
    except Exception as err:  # noqa: BLE001  (garbage bytes fail in many ways inside the unpickler)
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({type(err).__name__}: {err}).") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (it has no 'state_dict').")
    for key in ("hyper_parameters", "datamodule_hyper_parameters"):
        if ckpt.get(key) is not None and not isinstance(ckpt[key], dict):
            raise CheckpointError(
                f"{path}: its {key!r} is a {type(ckpt[key]).__name__}, not a mapping of argument names to values, so "
                "the model or data it was trained with cannot be rebuilt. The file was edited or written by other "
                "code: use a checkpoint written by `lightning-gen fit`."
            )
    foreign = foreign_imports(ckpt, allow)
    if foreign:
        raise CheckpointError(
            f"{path} asks to import {foreign[:5]}, outside the allowed modules {list(allow)}; refused (nothing "
            f"was imported). A checkpoint is data: it may name only the project's classes and torch's optimizers "
            f"and layers. If a name is your own network module and you trust this file, allow it with "
            f"--allow-module MODULE or {ALLOW_ENV}=MODULE."
        )
    _check_finite(ckpt["state_dict"], path)
    return ckpt


def _check_finite(state_dict: dict[str, Any], path) -> None:
    bad = []
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state_dict entry {key!r} is a {type(value).__name__}, not a tensor.")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad.append(key)
    if bad:
        raise CheckpointError(
            f"{path} holds non-finite (NaN or infinite) weights in {bad[:5]}{' ...' if len(bad) > 5 else ''}; "
            "refused: a model with them generates NaN. Use an earlier checkpoint of the run."
        )


def model_config(ckpt: dict[str, Any], path: str | Path = "checkpoint", expected: str | None = None) -> dict[str, Any]:
    """The model's config recorded by ``lightning-gen fit`` (LightningCLI stores it as hyperparameters).

    Args:
        expected: the class path the caller's config builds; a checkpoint of another class is refused.
    """
    hparams = dict(ckpt.get("hyper_parameters") or {})
    class_path = li.cli_class_path(hparams)
    if not isinstance(class_path, str) or not class_path.startswith("lightning_gen."):
        raise CheckpointError(
            f"{path} is not a checkpoint of a lightning_gen model written by `lightning-gen fit` (its "
            f"hyperparameters name no lightning_gen class; found {class_path!r})."
        )
    found = needs_upgrade(ckpt)  # written before the VAE-type models' options were renamed
    if found:
        raise CheckpointError(
            f"{path} was written with old option names ({describe(found)}). Convert it once with "
            f"`python -m lightning_gen.renamed {path} NEW.ckpt` and use NEW.ckpt."
        )
    if expected is not None and _short(expected) != _short(class_path):
        raise CheckpointError(
            f"{path} holds a {class_path}, but the config builds a {expected}: give the config of the checkpoint's "
            "model family (e.g. configs/<family>/<dataset>.yaml of the run that wrote it)."
        )
    return hparams


def _short(class_path: str) -> str:
    # lightning_gen.models.GAN and lightning_gen.models.gan.GAN are the same class
    return class_path.rsplit(".", 1)[-1]


def check_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], path) -> None:
    """Every tensor of the checkpoint has the name and shape of one of the model's, and none is missing."""
    own = model.state_dict()
    optional = set(getattr(model, "optional_state_keys", tuple)())  # state older checkpoints lack, with a default
    missing = [k for k in own if k not in state_dict and k not in optional]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [
        f"{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"shapes differ for {wrong[:3]}{' ...' if len(wrong) > 3 else ''}")
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        raise CheckpointError(
            f"{path}: the weights do not fit the model its config builds ({'; '.join(parts)}). The checkpoint was "
            "edited or written by another version of the model; use the config of the run that wrote it."
        )


def load_model(path: str | Path, map_location: str | torch.device = "cpu", allow_modules: Iterable[str] = ()):
    """Rebuild the LightningModule of a checkpoint from its recorded config and load its weights (all 5 checks).

    Args:
        path: a ``.ckpt`` written by ``lightning-gen fit``, or its run folder (:func:`resolve_checkpoint`).
        map_location: device of the returned model.
        allow_modules: your own network modules the checkpoint may name (also ``LIGHTNING_GEN_ALLOW_MODULES``).
    """
    path = resolve_checkpoint(path)
    ckpt = load_checkpoint(path, allow_modules)
    hparams = model_config(ckpt, path)
    # imports happen only from here on, and only of names the audit allowed
    import pytorch_lightning as pl
    from pytorch_lightning.cli import instantiate_module

    # the class is imported by the path the checkpoint records (allowlisted above): this module imports no model,
    # so the metrics' training callback may load its classifier through it without importing upward
    hparams = li.without_cli_instantiator(hparams)
    try:
        model = instantiate_module(pl.LightningModule, hparams)
    except Exception as err:  # noqa: BLE001  (jsonargparse reports bad recorded arguments in many ways)
        found = config_reason(err)
        if found is None:
            detail = f"({type(err).__name__}: {str(err)[:500]})"
        else:  # the constructor's own reason, not jsonargparse's Union text and namespace dump
            key, reason = found
            at = f"hyper_parameters.{key.removeprefix('model.init_args.')}" if key and "." in key else None
            detail = f"({reason}{f' [checkpoint key {at}]' if at else ''})"
        raise CheckpointError(
            f"{path}: the model cannot be built from its recorded config {detail}. The checkpoint was edited or "
            "written by another version of the project: use one written by `lightning-gen fit` with this version."
        ) from err
    check_weights(model, ckpt["state_dict"], path)
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.to(map_location).eval()
