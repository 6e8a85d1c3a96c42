"""LightningCLI's parser with its errors printed alone: ``error: <message>``, led by the class path at fault."""

from __future__ import annotations

import os
import re
import sys

from pytorch_lightning.cli import LightningArgumentParser

_CLASS_PATH_HINT = (
    "A class path is `module.Class` of an importable module: a module of the folder you run lightning-gen in (e.g. "
    "`mynets.MyGen` from ./mynets.py), an installed package, or one on PYTHONPATH."
)


class ErrorFirstParser(LightningArgumentParser):
    """LightningCLI's parser, whose errors print ``error: <message>`` alone (and a pointer to ``--help``) instead of
    the subcommand's usage block, dozens of lines long, before the message. Exit status 2 as before."""

    def error(self, message: str, ex: Exception | None = None):
        debug = os.environ.get("JSONARGPARSE_DEBUG", "").lower() not in ("", "0", "false", "no")
        if not self.exit_on_error or debug:  # jsonargparse raises an ArgumentError there: keep that
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {_lead(message)}\n(`{prog} --help` lists every option)\n")
        self.exit(2)


def check_config_files(args: list[str]) -> None:
    """Every ``--config FILE`` of ``args`` that is a YAML file holds a mapping (or nothing): jsonargparse's own
    message for a list or a scalar is ``Unexpected config:`` and the file's text, without the file's name."""
    import yaml

    from lightning_gen.errors import UserError
    from lightning_gen.renamed import check_arguments

    configs = []
    for i, arg in enumerate(args):
        path = arg.split("=", 1)[1] if arg.startswith("--config=") else None
        if arg in ("--config", "-c") and i + 1 < len(args):
            path = args[i + 1]
        if not path or not os.path.isfile(path):
            continue
        try:
            with open(path) as f:
                content = yaml.safe_load(f)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # jsonargparse names the file and the line
        if content is not None and not isinstance(content, dict):
            kind = "a list" if isinstance(content, list) else f"a single {type(content).__name__} value"
            raise UserError(
                f"--config {path}: the file holds {kind}, not a YAML mapping of keys. A config is a mapping that "
                "names at least the `model:` and `data:` to train, e.g. configs/gan/digits.yaml."
            )
        configs.append(content or {})
    renamed = check_arguments(args, configs)  # an option of a VAE-type model under its old name: say the new one
    if renamed:
        raise UserError(renamed)


def _lead(message: str) -> str:
    """jsonargparse's message, led by its innermost class-path problem (nested several levels deep in it: a
    network inside the model) in one line, with where class paths come from."""
    if message.strip() == "Unexpected config:":  # jsonargparse's whole message for an empty `--config` file
        return (
            "Unexpected config: a --config file is empty (or not a YAML mapping). A config names at least the "
            "`model:` and `data:` to train, e.g. configs/gan/digits.yaml."
        )
    if message.startswith("Unexpected config:"):  # jsonargparse's message for a config that is not a mapping
        return (
            "a --config file (or a --config / --model / --data value) is not a YAML mapping of keys; it reads: "
            f"{message.removeprefix('Unexpected config:').strip()[:200]!r}. A config names at least the `model:` "
            "and `data:` to train, e.g. configs/gan/digits.yaml."
        )
    problems = re.findall(r"Problem with given class_path '([^']+)':[ \t]*\n\s*(?!Parser key)([^\n]+)", message)
    if not problems:
        return message.rstrip()
    class_path, reason = problems[-1]
    hint = f"{_CLASS_PATH_HINT}\n" if "module" in reason or "import" in reason else ""
    return f"the class path '{class_path}' cannot be used: {reason.strip()}\n{hint}{message.rstrip()}"


def config_stack(config: str) -> list[str]:
    """The ``--config`` files that run ``config``, in order: a conditional config ``<name>_cond.yaml`` is an overlay
    that goes after its unconditional twin ``<name>.yaml``; any other config runs alone."""
    return [config.removesuffix("_cond.yaml") + ".yaml", config] if config.endswith("_cond.yaml") else [config]


def merge_configs(base: dict, overlay: dict) -> dict:
    """``overlay`` (a later ``--config``) merged into ``base`` as LightningCLI merges them, on the files' own keys (no
    defaults): mappings key by key; a mapping whose ``class_path`` names another class replaces the earlier one
    (LightningCLI also keeps the earlier arguments that class takes); a list or a value replaces the earlier one."""
    out = dict(base)
    for key, value in overlay.items():
        old = base.get(key)
        same = isinstance(value, dict) and isinstance(old, dict)
        same = same and value.get("class_path", old.get("class_path")) == old.get("class_path")
        out[key] = merge_configs(old, value) if same else value
    return out


def stacked_config(paths: list[str]) -> dict:
    """The YAML config files ``paths`` stacked in order (``--config A --config B``), merged by :func:`merge_configs`."""
    import yaml

    config = {}
    for path in paths:
        with open(path) as f:
            config = merge_configs(config, yaml.safe_load(f) or {})
    return config


def check_overlay_order(args: list[str]) -> None:
    """The first ``--config`` that sets the model (or the data) names its class: a file that only changes some of its
    arguments (an overlay, e.g. the conditional ``configs/gan/digits_cond.yaml``) goes after the config it changes.
    Alone, jsonargparse's message is that ``generator.init_args.num_classes`` is not an option of LightningModule."""
    import yaml

    from lightning_gen.errors import UserError

    paths = [a.split("=", 1)[1] if a.startswith("--config=") else b for a, b in zip(args, [*args[1:], ""])]
    paths = [p for a, p in zip(args, paths) if p and (a in ("--config", "-c") or a.startswith("--config="))]
    named = {s for s in ("model", "data") if any(a == f"--{s}" or a.startswith(f"--{s}=") for a in args)}
    for path in paths:
        try:
            with open(path) as f:
                config = yaml.safe_load(f)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # check_config_files and jsonargparse say what is wrong with it
        for section in ("model", "data"):
            value = config.get(section) if isinstance(config, dict) else None
            if section in named or not isinstance(value, dict):
                continue
            if "class_path" not in value:
                twin = config_stack(path)[0] if len(config_stack(path)) > 1 else "BASE.yaml"
                raise UserError(
                    f"--config {path} changes the {section} without naming its class (`{section}.class_path`): it is "
                    f"an overlay, which goes after the config it changes: --config {twin} --config {path}"
                )
            named.add(section)
