"""The trials of a local sweep: W&B's engine proposes each one, the runner starts it as its own process, follows
its metrics (hyperband may stop it early), and records how it ended."""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import random
import re
import signal
import subprocess
import time
from typing import Any

import yaml

from lightning_gen.io import atomic_write
from lightning_gen.jobs.sweep.config import (
    SWEEPS_ROOT,
    SweepError,
    _sweeps,
    check_parameters,
    expand_command,
    load_sweep,
    sweep_name,
)
from lightning_gen.jobs.sweep.folder import LOG, METRICS, RUNNER_LOCK, TRIAL_LOCK, SweepFolder, _fmt, short_key
from lightning_gen.procs import live_lock, start_child, write_lock


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


class LocalSweep(SweepFolder):
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
            "class_path": "lightning_gen.jobs.sweep.TrialRecorder",
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
