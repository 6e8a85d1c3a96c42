"""Which dataset the evaluate job compares with: ``--data CONFIG.yaml``, else what the checkpoint (or the
``config.yaml`` beside its run) records, with ``--data-arg KEY=VALUE`` applied; and the DataModule it names."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import yaml

from lightning_gen.errors import check_init_args
from lightning_gen.jobs.evaluate.options import EvaluateError


def _data_section(config: dict, where: str) -> dict:
    section = config.get("data", config) if isinstance(config, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("class_path"), str):
        raise EvaluateError(f"{where} names no dataset (expected a `data:` section with `class_path`).")
    return {"class_path": section["class_path"], "init_args": dict(section.get("init_args") or {})}


def resolve_data_spec(data: str | None, checkpoint: str | None, data_args: list[str], allow=()) -> dict:
    """``{"class_path", "init_args"}`` of the reference dataset, with ``--data-arg KEY=VALUE`` applied."""
    if data is not None:
        if not os.path.isfile(data):
            raise EvaluateError(f"--data {data}: no such file (give a YAML config with a `data:` section).")
        with open(data) as f:
            spec = _data_section(yaml.safe_load(f), data)
    elif checkpoint is not None:
        spec = _spec_from_checkpoint(checkpoint, allow)
    else:
        raise EvaluateError(
            "Which dataset? Give --data CONFIG.yaml (e.g. configs/gan/digits.yaml: its `data:` section names the "
            "dataset and split settings)."
        )
    for item in data_args:
        key, sep, value = item.partition("=")
        if not sep:
            raise EvaluateError(f"--data-arg {item!r}: expected KEY=VALUE (e.g. data_dir=data).")
        spec["init_args"][key] = yaml.safe_load(value)
    return spec


def _spec_from_checkpoint(checkpoint: str, allow=()) -> dict:
    from lightning_gen.checkpoints import load_checkpoint

    ckpt = load_checkpoint(checkpoint, allow)  # audited: nothing it names is imported unless allowed
    hp = dict(ckpt.get("datamodule_hyper_parameters") or {})
    if isinstance(hp.get("_class_path"), str):
        class_path = hp.pop("_class_path")
        hp.pop("_instantiator", None)
        return {"class_path": class_path, "init_args": hp}
    config = Path(checkpoint).resolve().parent.parent / "config.yaml"  # version_N/checkpoints/x.ckpt
    if config.is_file():
        with open(config) as f:
            return _data_section(yaml.safe_load(f), str(config))
    raise EvaluateError(
        f"{checkpoint} does not record its dataset and no config.yaml lies beside its run; give --data CONFIG.yaml."
    )


def build_datamodule(spec: dict):
    class_path = spec["class_path"]
    if not class_path.startswith("lightning_gen."):
        raise EvaluateError(f"Dataset class {class_path!r} is outside lightning_gen; refused.")
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise EvaluateError(f"Unknown dataset class {class_path!r} ({err}).") from err
    check_init_args("--data-arg / the data config", cls, spec["init_args"])
    return cls(**spec["init_args"])


def data_kind_of(datamodule) -> str:
    return "sequence" if hasattr(datamodule, "data_min") else "image"
