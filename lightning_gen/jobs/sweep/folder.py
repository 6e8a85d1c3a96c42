"""The sweep folder on disk: ``results.json`` (every trial's record), one folder per trial that never lies outside
the sweep folder, the lock that keeps a second runner out, and the summary table."""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any

from lightning_gen.io import atomic_write
from lightning_gen.jobs.sweep.config import SweepError
from lightning_gen.procs import live_lock, write_lock

RESULTS = "results.json"
METRICS = "metrics.jsonl"
LOG = "output.log"
TRIAL_LOCK = "trial.lock"
RUNNER_LOCK = "runner.lock"
TRIAL_NAME_RE = re.compile(r"^trial-[0-9]{4,}$")


class SweepFolder:
    """The records of one sweep folder; :class:`~lightning_gen.jobs.sweep.runner.LocalSweep` adds the trials.

    Expects ``path`` (the sweep file), ``config``, ``dir``, ``extra_args``, ``metric``, ``goal`` and ``trials``.
    """

    path: str
    config: dict[str, Any]
    dir: str
    extra_args: list[str]
    metric: str
    goal: str
    trials: list[dict[str, Any]]

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


def short_key(key: str) -> str:
    """``model.init_args.optimizer_g.init_args.lr`` -> ``model.optimizer_g.lr`` for tables."""
    return key.replace("init_args.", "")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
