"""``lightning-gen sweep``: run a W&B sweep file locally, offline, one process per trial.

The trials are proposed by W&B's own sweep engine (the ``sweeps`` package behind ``wandb[sweeps]``: the
server's grid / random / bayes search and hyperband early termination), so the same sweep file works with
``wandb sweep`` + ``wandb agent`` online and with this runner on a machine that cannot reach W&B::

    lightning-gen sweep sweeps/gan_digits.yaml --count 8

Each trial runs the sweep file's ``command`` with ``${args}`` expanded as ``wandb agent`` expands it
(``--model.init_args.n_critic=2 ...``), plus ``--trainer.default_root_dir=<sweep dir>/trial-NNNN`` and a
:class:`TrialRecorder` callback that writes every validation's metrics to ``trial-NNNN/metrics.jsonl``.
Every trial is recorded in ``<sweep dir>/results.json`` (parameters, final metric, state, run folder,
failure reason); running the same command again continues the sweep (a higher ``--count`` runs only the new
trials; a trial that was cut off is run again). At the end a summary table, best trial first, is printed
and written to ``<sweep dir>/summary.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import pytorch_lightning as pl
import yaml

from lightning_gen.errors import UserError, check_float, check_int
from lightning_gen.io import atomic_write
from lightning_gen.procs import live_lock, start_child, write_lock

RESULTS = "results.json"
METRICS = "metrics.jsonl"
LOG = "output.log"
TRIAL_LOCK = "trial.lock"
RUNNER_LOCK = "runner.lock"
SWEEPS_ROOT = os.path.join("runs", "sweeps")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TRIAL_NAME_RE = re.compile(r"^trial-[0-9]{4,}$")
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


class TrialRecorder(pl.Callback):
    """Appends one JSON line per validation (and one at the end of fit) with every scalar metric to ``path``.

    Added to each trial by ``lightning-gen sweep``; the runner reads the file to follow the trial, to stop it
    early (hyperband) and to read its final metric.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._seen: dict[str, Any] = {}

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _metrics(self, trainer: pl.Trainer, fresh_only: bool) -> dict[str, float]:
        """Scalar callback metrics; with ``fresh_only`` only those logged since the last call (Lightning keeps
        a metric's last value in ``callback_metrics``, e.g. an FID computed every 5th epoch)."""
        out = {}
        for key, value in trainer.callback_metrics.items():
            if fresh_only and self._seen.get(key) is value:
                continue
            try:
                out[key] = float(value)
            except (TypeError, ValueError, RuntimeError):  # non-scalar: not a sweep metric
                continue
        self._seen = dict(trainer.callback_metrics)
        return out

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from lightning_gen.callbacks import run_dir

        if trainer.is_global_zero:
            self._write({"event": "start", "run_dir": os.path.abspath(run_dir(trainer))})

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            metrics = self._metrics(trainer, fresh_only=True)
            self._write(
                {"event": "validation", "epoch": trainer.current_epoch, "step": trainer.global_step, "metrics": metrics}
            )

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self._write({"event": "end", "step": trainer.global_step, "metrics": self._metrics(trainer, False)})


# ----------------------------------------------------------------------------------------------- sweep file


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
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    command = sweep_utils.create_sweep_command([str(c) for c in config["command"]])
    sweep_vars = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
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


# ----------------------------------------------------------------------------------------------- trials


def _sweep_run(record: dict[str, Any], metric: str):
    SweepRun = _sweeps().SweepRun

    state = {"finished": "finished", "stopped": "finished", "running": "running"}.get(record["state"], "failed")
    history = [{metric: v} for v in record.get("history", [])]
    summary = {metric: record["metric"]} if record.get("metric") is not None else {}
    return SweepRun(
        name=record["name"],
        state=state,
        config={k: {"value": v} for k, v in record["params"].items()},
        history=history,
        summary_metrics=summary,
    )


def _read_metrics(path: str) -> list[dict[str, Any]]:
    if not os.path.isfile(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written right now
                break
    return records


def failure_reason(log_path: str, returncode: int) -> str:
    """The last error line of a trial's output (an exception or a CLI error), with the exit code."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [line.rstrip() for line in f if line.strip()]
    except OSError:
        lines = []
    pattern = re.compile(r"^(\w[\w.]*(Error|Exception|Interrupt)\b|error:)")
    for i in range(len(lines) - 1, -1, -1):
        if pattern.match(lines[i]):
            text = " ".join(lines[i : i + 8]) if lines[i].startswith("error:") else lines[i]
            return f"exit code {returncode}: {text[:500]}"
    return f"exit code {returncode}" + (f": {lines[-1][:300]}" if lines else "")


class LocalSweep:
    """One sweep folder: the sweep file's config, the trial records, and the loop that adds trials."""

    def __init__(
        self,
        path: str,
        directory: str | None = None,
        seed: int = 0,
        trial_timeout: float | None = None,
        poll: float = 1.0,
        extra_args: list[str] | None = None,
    ) -> None:
        self.path = path
        self.extra_args = list(extra_args or [])
        self.config = load_sweep(path)
        self.name = sweep_name(self.config.get("name"), path)
        self.dir = directory or os.path.join(SWEEPS_ROOT, self.name)
        self.metric = self.config["metric"]["name"]
        self.goal = self.config["metric"]["goal"]
        self.seed, self.trial_timeout, self.poll = seed, trial_timeout, poll
        self.trials: list[dict[str, Any]] = []
        self._load()

    # -- results file -------------------------------------------------------------------------------
    def _load(self) -> None:
        results = os.path.join(self.dir, RESULTS)
        if not os.path.isfile(results):
            return
        with open(results) as f:
            saved = json.load(f)
        keys = ("method", "metric", "parameters", "command")
        if saved.get("extra_args", []) != self.extra_args:
            raise SweepError(
                f"{self.dir} was started with the extra trial arguments {saved.get('extra_args', [])}, not "
                f"{self.extra_args}. Pass the same ones to continue, or --dir NEW_FOLDER for a new sweep."
            )
        if any(saved["sweep"].get(k) != self.config.get(k) for k in keys):
            raise SweepError(
                f"{self.dir} holds a sweep started from a different sweep file (method, metric, parameters or "
                f"command changed). Pass --dir NEW_FOLDER for a new sweep, or restore {self.path}."
            )
        trials = saved.get("trials")
        if not isinstance(trials, list) or not all(isinstance(t, dict) for t in trials):
            raise SweepError(f"{results} is damaged (no list of trials); pass --dir NEW_FOLDER for a new sweep.")
        for t in trials:
            if not isinstance(t.get("name"), str) or not TRIAL_NAME_RE.match(t["name"]):
                raise SweepError(
                    f"{results} holds a trial name {t.get('name')!r} that is not trial-NNNN; the file was edited or "
                    "damaged. Nothing was deleted; pass --dir NEW_FOLDER for a new sweep."
                )
            t["trial_dir"] = t["name"]  # relative to the sweep folder (older versions stored absolute paths)
            if isinstance(t.get("run_dir"), str) and os.path.isabs(t["run_dir"]):
                t["run_dir"] = self._relative(t["run_dir"])
        self.trials = trials

    def save(self) -> None:
        with atomic_write(os.path.join(self.dir, RESULTS)) as f:
            json.dump(
                {"sweep_file": self.path, "sweep": self.config, "extra_args": self.extra_args, "trials": self.trials},
                f,
                indent=1,
            )

    # -- paths: everything stays inside the sweep folder ------------------------------------------------
    def trial_dir(self, trial: dict[str, Any]) -> str:
        """The trial's folder: ``<sweep dir>/<trial name>``, never a path read from a file."""
        if not TRIAL_NAME_RE.match(str(trial.get("name", ""))):
            raise SweepError(f"Trial name {trial.get('name')!r} is not trial-NNNN.")
        return os.path.join(self.dir, trial["name"])

    def _relative(self, path: str) -> str | None:
        """``path`` relative to the sweep folder, or None when it lies outside."""
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(self.dir))
        return None if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel

    def _clear_trial_dir(self, trial: dict[str, Any]) -> None:
        """Remove what an interrupted attempt left, unless a live trial still writes there."""
        folder = self.trial_dir(trial)
        lock = live_lock(os.path.join(folder, TRIAL_LOCK))
        if lock is not None:
            raise SweepError(
                f"{trial['name']} is still running as process {lock['pid']} (pid {lock['pid']}, left by a runner that "
                f"was killed); it writes into {folder}. Wait for it to end or stop it (kill -TERM -{lock['pid']}), "
                "then run the same command again."
            )
        if os.path.islink(folder):
            os.unlink(folder)
        elif os.path.isdir(folder):
            real, base = os.path.realpath(folder), os.path.realpath(self.dir)
            if os.path.dirname(real) != base:  # never delete outside the sweep folder
                raise SweepError(f"{folder} resolves to {real}, outside {base}; refusing to delete it.")
            shutil.rmtree(folder)
        elif os.path.lexists(folder):
            os.unlink(folder)

    # -- proposing ------------------------------------------------------------------------------------
    def propose(self, number: int) -> dict[str, Any] | None:
        """The next trial's parameters from W&B's engine given every earlier trial, or None (grid done)."""
        import numpy as np

        sweeps = _sweeps()
        np.random.seed(self.seed * 100_003 + number)  # reproducible random / bayes proposals
        random.seed(self.seed * 100_003 + number)
        runs = [_sweep_run(t, self.metric) for t in self.trials]
        proposal = sweeps.next_run(self.config, runs)
        if proposal is None:
            return None
        return {k: v["value"] for k, v in proposal.config.items()}

    def _should_stop(self, trial: dict[str, Any]) -> str | None:
        """Hyperband's verdict (W&B's ``stop_runs``) on the running trial, with W&B's reasoning, or None."""
        if "early_terminate" not in self.config:
            return None

        sweeps = _sweeps()
        runs = [_sweep_run(t, self.metric) for t in self.trials]
        stop = sweeps.stop_runs(self.config, runs)
        for run in stop:
            if run.name == trial["name"]:
                lines = (run.early_terminate_info or {}).get("lines", [])
                return "early-terminated by hyperband: " + " ".join(str(line).strip() for line in lines[-1:])
        return None

    # -- running --------------------------------------------------------------------------------------
    def command(self, trial: dict[str, Any]) -> list[str]:
        folder = self.trial_dir(trial)
        recorder = {
            "class_path": "lightning_gen.sweep.TrialRecorder",
            "init_args": {"path": os.path.join(folder, METRICS)},
        }
        return (
            expand_command(self.config, trial["params"])
            + self.extra_args
            + [
                f"--trainer.default_root_dir={folder}",
                "--trainer.callbacks+=" + json.dumps(recorder),
            ]
        )

    def run_trial(self, trial: dict[str, Any]) -> None:
        """Run one trial to the end (or until stopped) and fill in its record."""
        self._clear_trial_dir(trial)  # what an interrupted attempt left (refused while a live trial writes there)
        folder = self.trial_dir(trial)
        os.makedirs(folder)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("WANDB_RUN_ID", None)
        env.pop("WANDB_SWEEP_ID", None)
        env.setdefault("WANDB_RUN_GROUP", self.name)
        env["WANDB_NAME"] = f"{self.name}-{trial['name']}"
        trial.update(state="running", started=datetime.datetime.now().isoformat(timespec="seconds"))
        trial["command"] = self.command(trial)
        self.save()
        start, seen = time.monotonic(), 0
        log_path = os.path.join(folder, LOG)
        lock = os.path.join(folder, TRIAL_LOCK)
        with open(log_path, "w") as log:
            # its own session (the runner stops the whole group), and SIGTERM when the runner dies, even by kill -9
            proc = start_child(trial["command"], stdout=log, stderr=subprocess.STDOUT, env=env)
            write_lock(lock, proc.pid, runner=os.getpid())  # the next continuation refuses a live trial
            try:
                stop_reason = self._follow(trial, proc, start)
            except BaseException:
                _terminate(proc)
                raise
            seen = proc.wait()
        if live_lock(lock) is None:  # the trial's whole process group has ended
            os.unlink(lock)
        trial["seconds"] = round(time.monotonic() - start, 1)
        self._finish(trial, seen, stop_reason, log_path)

    def _follow(self, trial: dict[str, Any], proc: subprocess.Popen, start: float) -> str | None:
        """Poll the trial: print each validation, ask hyperband whether to stop it, enforce the time limit."""
        shown = 0
        while True:
            done = proc.poll() is not None
            records = _read_metrics(os.path.join(self.trial_dir(trial), METRICS))
            trial["history"] = [
                r["metrics"][self.metric]
                for r in records
                if r.get("event") == "validation" and self.metric in r.get("metrics", {})
            ]
            for r in records[shown:]:
                if r.get("event") == "start":
                    trial["run_dir"] = self._relative(str(r.get("run_dir")))
                elif r.get("event") == "validation":
                    value = r["metrics"].get(self.metric)
                    shown_value = "-" if value is None else f"{value:.4g}"
                    print(
                        f"    {trial['name']}  epoch {r['epoch']}  step {r['step']}  {self.metric}={shown_value}",
                        flush=True,
                    )
            grew = len(records) > shown
            shown = len(records)
            if done:
                return None
            if grew and trial["history"]:
                reason = self._should_stop(trial)
                if reason:
                    _terminate(proc)
                    return reason
            if self.trial_timeout and time.monotonic() - start > self.trial_timeout:
                _terminate(proc)
                return f"stopped after the --trial-timeout of {self.trial_timeout:g} s"
            time.sleep(self.poll)

    def _finish(self, trial: dict[str, Any], returncode: int, stop_reason: str | None, log_path: str) -> None:
        records = _read_metrics(os.path.join(self.trial_dir(trial), METRICS))
        values = [r["metrics"][self.metric] for r in records if self.metric in r.get("metrics", {})]
        trial["logged"] = sorted({k for r in records for k in r.get("metrics", {})})
        trial["metric"] = values[-1] if values else None  # W&B's summary: the last logged value
        if trial["metric"] is not None and not math.isfinite(trial["metric"]):
            trial["metric"] = None
        if stop_reason:
            trial.update(state="stopped", reason=stop_reason)
        elif returncode != 0:
            trial.update(state="failed", reason=failure_reason(log_path, returncode))
        elif not values:
            trial.update(state="finished", reason=f"{self.metric} was never logged")
        else:
            trial.update(state="finished", reason=None)
        self.save()

    def run(self, count: int | None) -> list[dict[str, Any]]:
        """Add trials until ``count`` are recorded (all of a grid when None); return the trial records."""
        cap = self.config.get("run_cap")
        if count is None:
            if self.config["method"] != "grid":
                raise SweepError(f"{self.config['method']} search never ends by itself: pass --count N.")
            count = math.inf
        if cap:
            count = min(count, cap)
        if not self.trials:
            check_parameters(self.config, self.propose(1) or {}, self.path, self.extra_args)
        self._claim_folder()
        try:
            with atomic_write(os.path.join(self.dir, "sweep.yaml")) as f:
                yaml.safe_dump(self.config, f, sort_keys=False)
            return self._run(count)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.dir, RUNNER_LOCK))

    def _claim_folder(self) -> None:
        """One runner per sweep folder: a second one started at the same time is refused."""
        os.makedirs(self.dir, exist_ok=True)
        lock = os.path.join(self.dir, RUNNER_LOCK)
        other = live_lock(lock, group=False)
        if other is not None and other.get("pid") != os.getpid():
            raise SweepError(
                f"Another `lightning-gen sweep` (pid {other['pid']}) is running in {self.dir}; wait for it or stop "
                "it, or give this sweep another --dir."
            )
        write_lock(lock, os.getpid())

    def _run(self, count: float) -> list[dict[str, Any]]:
        total = "all" if count == math.inf else str(count)
        done = [t for t in self.trials if t["state"] != "running"]
        if done:
            print(f"{self.dir}: {len(done)} trial(s) already recorded; continuing to {total}.", flush=True)
        while True:
            trial = next((t for t in self.trials if t["state"] == "running"), None)
            if trial is not None:
                print(f"[{trial['number']}/{total}] {trial['name']} was cut off; running it again", flush=True)
            else:
                if len(self.trials) >= count:
                    break
                params = self.propose(len(self.trials) + 1)
                if params is None:
                    print(f"The grid is done: {len(self.trials)} trials.", flush=True)
                    break
                number = len(self.trials) + 1
                trial = {
                    "number": number,
                    "name": f"trial-{number:04d}",
                    "params": params,
                    "state": "pending",
                    "metric": None,
                    "run_dir": None,
                    "reason": None,
                    "trial_dir": f"trial-{number:04d}",  # relative to the sweep folder
                }
                self.trials.append(trial)
            params = "  ".join(f"{short_key(k)}={_fmt(v)}" for k, v in trial["params"].items())
            print(f"[{trial['number']}/{total}] {trial['name']}  {params}", flush=True)
            self.run_trial(trial)
            shown = "-" if trial["metric"] is None else f"{trial['metric']:.4g}"
            why = f"  ({trial['reason']})" if trial["reason"] else ""
            print(
                f"[{trial['number']}/{total}] {trial['name']} {trial['state']}  {self.metric}={shown}  "
                f"in {trial['seconds']:.0f} s{why}",
                flush=True,
            )
            self._check_metric_logged(trial)
        return self.trials

    def _check_metric_logged(self, trial: dict[str, Any]) -> None:
        finished = [t for t in self.trials if t["state"] == "finished"]
        if trial["state"] == "finished" and finished == [trial] and trial["metric"] is None:
            logged = ", ".join(trial.get("logged") or []) or "nothing"
            short = self._callbacks_longer_than_trial(trial)
            if short:
                raise SweepError(
                    f"The sweep's metric {self.metric!r} was never logged by {trial['name']} (it logged: {logged}): "
                    f"{short}. Make the trials longer than that (e.g. `-- --trainer.max_epochs=N` after the sweep "
                    "file) or log it more often (`-- --trainer.callbacks.init_args.every_n_epochs=1` when the "
                    f"callback is the only one). See {os.path.join(self.trial_dir(trial), LOG)}."
                )
            raise SweepError(
                f"The sweep's metric {self.metric!r} was never logged by {trial['name']} (it logged: {logged}). "
                f"Set `metric.name` in {self.path} to one of those, or add the callback that logs it to the "
                f"command. See {os.path.join(self.trial_dir(trial), LOG)}."
            )

    def _callbacks_longer_than_trial(self, trial: dict[str, Any]) -> str | None:
        """From the trial's saved ``config.yaml``: callbacks whose ``every_n_epochs`` exceeds ``trainer.max_epochs``
        (a metric callback that never runs in a short trial), described for the message; None when there are none."""
        import glob

        import yaml

        for path in sorted(glob.glob(os.path.join(self.trial_dir(trial), "**", "config.yaml"), recursive=True)):
            try:
                with open(path) as f:
                    config = yaml.safe_load(f) or {}
            except (OSError, yaml.YAMLError):
                continue
            trainer = (config.get("trainer") or {}) if isinstance(config, dict) else {}
            epochs = trainer.get("max_epochs") if isinstance(trainer, dict) else None
            callbacks = trainer.get("callbacks") if isinstance(trainer, dict) else None
            if not isinstance(epochs, int) or epochs < 1:
                continue
            if isinstance(callbacks, dict):
                callbacks = [callbacks]
            slow = []
            for cb in callbacks or []:
                args = cb.get("init_args") if isinstance(cb, dict) else None
                every = args.get("every_n_epochs") if isinstance(args, dict) else None
                if isinstance(every, int) and every > epochs:
                    slow.append(
                        f"{str(cb.get('class_path', 'a callback')).rsplit('.', 1)[-1]} runs every {every} epochs"
                    )
            if slow:
                return f"each trial trains {epochs} epoch(s) (trainer.max_epochs) but " + ", ".join(slow)
        return None

    def table(self) -> str:
        """Markdown table of every trial, best first (trials without a metric last)."""
        sign = -1.0 if self.goal == "maximize" else 1.0
        ranked = sorted(self.trials, key=lambda t: (t["metric"] is None, sign * (t["metric"] or 0.0), t["number"]))
        keys = list(self.config["parameters"])
        head = ["trial", "state", self.metric, *[short_key(k) for k in keys], "seconds", "run folder / reason"]
        rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for t in ranked:
            metric = "" if t["metric"] is None else f"{t['metric']:.4g}"
            where = (
                t.get("reason")
                if t["state"] == "failed"
                else os.path.relpath(os.path.join(self.dir, t.get("run_dir") or t["name"]))
            )
            cells = [
                str(t["number"]),
                t["state"],
                metric,
                *[_fmt(t["params"].get(k)) for k in keys],
                f"{t.get('seconds', 0):.0f}",
                str(where or "").replace("|", "/"),
            ]
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)


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


def short_key(key: str) -> str:
    """``model.init_args.optimizer_g.init_args.lr`` -> ``model.optimizer_g.lr`` for tables."""
    return key.replace("init_args.", "")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _terminate(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the trial's process group, SIGKILL it if it is still there after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # a killed runner stops its trial and leaves the sweep ready to continue


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        prog="lightning-gen sweep",
        description="Run a W&B sweep file locally and offline: W&B's own engine proposes each trial, each trial "
        "runs the sweep's command in its own process, results go to <dir>/results.json. Run it again to continue.",
    )
    parser.add_argument("sweep_file", help="a W&B sweep YAML, e.g. sweeps/gan_digits.yaml")
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="total trials in the sweep folder (already recorded ones count); default: a whole grid",
    )
    parser.add_argument("--dir", default=None, help="the sweep's folder (default runs/sweeps/<sweep name>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random / bayes proposals")
    parser.add_argument("--trial-timeout", type=float, default=None, help="stop a trial after this many seconds")
    parser.epilog = (
        "Arguments after `--` are added to every trial's command (after ${args}), e.g. "
        "`-- --config configs/trainer/gpu.yaml` or `-- --trainer.max_epochs=5`."
    )
    args = parser.parse_args(argv)
    try:
        check_int("--count", args.count, 1)
        check_int("--seed", args.seed, 0, 2**32 - 1)
        check_float("--trial-timeout", args.trial_timeout, 0.0)
        sweep = LocalSweep(
            args.sweep_file, args.dir, seed=args.seed, trial_timeout=args.trial_timeout, extra_args=extra
        )
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
        try:
            sweep.run(args.count)
        finally:
            signal.signal(signal.SIGTERM, previous)
            if sweep.trials:
                table = sweep.table()
                with atomic_write(os.path.join(sweep.dir, "summary.md")) as f:
                    f.write(table + "\n")
                print(
                    f"\n{sweep.name}: {sweep.metric} ({sweep.goal}), best first\n{table}\n"
                    f"results: {os.path.join(sweep.dir, RESULTS)}"
                )
    except UserError as e:  # SweepError and the argument checks
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nStopped. Run the same command again to continue the sweep.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
