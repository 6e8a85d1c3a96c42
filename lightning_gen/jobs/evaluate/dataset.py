"""Which dataset the evaluate job compares with: ``--data CONFIG.yaml`` (repeated: an overlay stacked on its twin, as
``fit --config A --config B``), else what the checkpoint (or the ``config.yaml`` beside its run) records, with
``--data-arg KEY=VALUE`` applied; and the DataModule it names."""

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


def _stacked_data_section(paths: list[str]) -> dict:
    """The ``data:`` section of config files stacked in order, as ``fit --config A --config B`` stacks them: a later
    file's ``init_args`` update the earlier ones'; a later ``class_path`` of another class brings its own arguments."""
    from lightning_gen.lightning_cli.parser import merge_configs

    spec = None
    for path in paths:
        if not os.path.isfile(path):
            raise EvaluateError(f"--data {path}: no such file (give a YAML config with a `data:` section).")
        with open(path) as f:
            config = yaml.safe_load(f)
        if spec is None:
            section = config.get("data", config) if isinstance(config, dict) else None
            if isinstance(section, dict) and "class_path" not in section:
                raise EvaluateError(
                    f"--data {path} names no dataset class (no `data.class_path`). If it is an overlay (a conditional "
                    f"config), give the config it stacks on first: --data {path.replace('_cond.yaml', '.yaml')} "
                    f"--data {path}."
                )
            spec = _data_section(config, path)
        elif isinstance(config, dict) and isinstance(config.get("data"), dict):
            spec = _data_section(merge_configs({"data": spec}, {"data": config["data"]}), path)
    return spec


def resolve_data_spec(data: str | list[str] | None, checkpoint: str | None, data_args: list[str], allow=()) -> dict:
    """``{"class_path", "init_args"}`` of the reference dataset (``data``: one config file, or several stacked in
    order), with ``--data-arg KEY=VALUE`` applied."""
    if data:
        spec = _stacked_data_section([data] if isinstance(data, str) else list(data))
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
