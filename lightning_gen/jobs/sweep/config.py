"""The sweep file: read it, check it with W&B's own schema and with ``lightning-gen``'s parser, and expand a
trial's command line as ``wandb agent`` does."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from typing import Any

import yaml

from lightning_gen.errors import UserError
from lightning_gen.lightning_internals import wandb_sweep_args, wandb_sweep_command

SWEEPS_ROOT = os.path.join("runs", "sweeps")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ARG_MACROS = ("${args}", "${args_no_hyphens}", "${args_no_boolean_flags}", "${args_json}", "${args_no_equals}")


def _sweeps():
    """W&B's sweep engine, imported without its pydantic-v2 config warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Valid config keys have changed in V2")
        import sweeps
    return sweeps


class SweepError(UserError):
    """A sweep that cannot run as asked; the message says what was wrong and what to do."""


def load_sweep(path: str) -> dict[str, Any]:
    """Read a sweep file and check it with W&B's own schema and with what the local runner needs."""
    sweeps = _sweeps()
    if not os.path.isfile(path):
        raise SweepError(f"No sweep file at {path}.")
    with open(path) as f:
        try:
            config = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise SweepError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(config, dict):
        raise SweepError(f"{path} must hold a mapping (method, metric, parameters, command), not {type(config)}.")
    violations = sweeps.schema_violations_from_proposed_config(config)
    if violations:
        raise SweepError(
            f"{path} is not a valid W&B sweep config; W&B's schema check says:\n"
            + "\n".join(f"  - {v}" for v in violations)
        )
    if config["method"] not in ("grid", "random", "bayes"):
        raise SweepError(f"{path}: method {config['method']!r} needs W&B's server; use grid, random or bayes.")
    metric = config.get("metric")
    if not isinstance(metric, dict) or not metric.get("name"):
        raise SweepError(f"{path} needs `metric: {{name: val/..., goal: minimize}}` to rank the trials.")
    metric.setdefault("goal", "minimize")
    command = [str(c) for c in config.get("command") or []]
    if "lightning-gen" not in command or "fit" not in command:
        raise SweepError(
            f"{path}: `command` must run `lightning-gen fit --config <config> ${{args}}` (got {command or 'none'})."
        )
    if not any(c in ARG_MACROS for c in command):
        raise SweepError(f"{path}: `command` must contain ${{args}}, where W&B puts the trial's parameters.")
    return config


def expand_command(config: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The trial's command line, expanded with W&B's own helpers exactly as ``wandb agent`` does.

    A leading ``lightning-gen`` becomes ``<this python> -m lightning_gen.cli`` so trials use this install.
    """
    command = wandb_sweep_command(config["command"])
    sweep_vars = wandb_sweep_args(params)
    sweep_vars.update(interpreter=[sys.executable], program=[str(config.get("program", ""))], env=[])
    out: list[str] = []
    for c in command:
        if c.startswith("${") and c.endswith("}"):
            out += sweep_vars.get(c[2:-1]) or []
        elif c == "lightning-gen" and not out:
            out += [sys.executable, "-m", "lightning_gen.cli"]
        else:
            out.append(c)
    return out


def cli_args(command: list[str]) -> list[str]:
    """The arguments after ``lightning-gen`` (``fit --config ...``) in an expanded command."""
    if "lightning_gen.cli" in command:
        return command[command.index("lightning_gen.cli") + 1 :]
    return command[command.index("lightning-gen") + 1 :]


def _lookup(tree: Any, dotted: str) -> bool:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_parameters(
    config: dict[str, Any], params: dict[str, Any], path: str = "the sweep file", extra_args: list[str] | None = None
) -> dict:
    """Parse the expanded command with ``lightning-gen``'s own parser (``--print_config``, nothing runs) and
    check that every sweep parameter is a key of the resolved config. Returns the resolved config."""
    from lightning_gen.cli import run_lightning_cli

    args = cli_args(expand_command(config, params)) + list(extra_args or []) + ["--print_config"]
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_lightning_cli(args)
        except SystemExit as e:
            code = e.code
        except Exception as e:  # noqa: BLE001 - any parse failure becomes a SweepError below
            code, err = 1, io.StringIO(f"error: {e}")
    if code not in (0, None):
        message = err.getvalue()
        message = message[message.find("error:") :] if "error:" in message else message[-2000:]
        raise SweepError(
            f"{path}: `lightning-gen {' '.join(args[:-1])}` is rejected by the CLI. Sweep parameter names must "
            f"be keys of the config (see `lightning-gen fit --config <config> --print_config`), e.g. "
            f"model.init_args.n_critic.\n{message.strip()}"
        )
    resolved = yaml.safe_load(out.getvalue())
    missing = [key for key in params if not _lookup(resolved, key)]
    if missing:
        raise SweepError(f"{path}: parameter(s) {', '.join(missing)} are not keys of the resolved config.")
    return resolved


def sweep_name(name: Any, path: str) -> str:
    """The sweep's name (``name:`` of the file, else the file's stem): one folder name under runs/sweeps."""
    if name is None:
        name = os.path.splitext(os.path.basename(path))[0]
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise SweepError(
            f"{path}: the sweep name {name!r} must be one folder name under {SWEEPS_ROOT} (letters, digits, '_', "
            "'-', '.'; no '/' or '..'). Set `name:` in the sweep file, or give the folder with --dir."
        )
    return name
