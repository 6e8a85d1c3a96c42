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

One module per job: :mod:`~lightning_gen.jobs.sweep.config` reads and checks the sweep file and expands a
trial's command, :mod:`~lightning_gen.jobs.sweep.recorder` is the callback each trial runs,
:mod:`~lightning_gen.jobs.sweep.folder` keeps the sweep folder (results file, trial folders, summary table),
:mod:`~lightning_gen.jobs.sweep.runner` proposes, runs and follows the trials, :mod:`~lightning_gen.jobs.sweep.cli`
is the command line. Everything is importable from ``lightning_gen.jobs.sweep``.
"""

from lightning_gen.jobs.sweep.cli import main
from lightning_gen.jobs.sweep.config import (
    ARG_MACROS,
    NAME_RE,
    SWEEPS_ROOT,
    SweepError,
    check_parameters,
    cli_args,
    expand_command,
    load_sweep,
    sweep_name,
)
from lightning_gen.jobs.sweep.folder import (
    LOG,
    METRICS,
    RESULTS,
    RUNNER_LOCK,
    TRIAL_LOCK,
    TRIAL_NAME_RE,
    SweepFolder,
    short_key,
)
from lightning_gen.jobs.sweep.recorder import TrialRecorder
from lightning_gen.jobs.sweep.runner import LocalSweep, failure_reason

__all__ = [
    "ARG_MACROS",
    "LOG",
    "METRICS",
    "NAME_RE",
    "RESULTS",
    "RUNNER_LOCK",
    "SWEEPS_ROOT",
    "TRIAL_LOCK",
    "TRIAL_NAME_RE",
    "LocalSweep",
    "SweepError",
    "SweepFolder",
    "TrialRecorder",
    "check_parameters",
    "cli_args",
    "expand_command",
    "failure_reason",
    "load_sweep",
    "main",
    "short_key",
    "sweep_name",
]
