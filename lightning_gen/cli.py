"""The ``lightning-gen`` command: LightningCLI's fit / validate / test plus the project's jobs.

``lightning-gen fit --config configs/gan/digits.yaml`` trains; ``lightning-gen sample CKPT ...`` draws
samples from any checkpoint of the project. Run ``lightning-gen --help`` for the list.
"""

from __future__ import annotations

import os
import sys

from lightning_gen.errors import run_job

JOBS = {
    "sample": ("lightning_gen.jobs.sample", "draw samples from a checkpoint into an .npz (+ PNG grid)"),
    "evaluate": ("lightning_gen.jobs.evaluate", "FID / KID / IS / PR or TimeGAN scores, MMD, music stats: JSON report"),
    "sweep": ("lightning_gen.jobs.sweep", "run a W&B sweep file locally and offline, one process per trial"),
}


def run_lightning_cli(args: list[str] | None = None, run: bool = True):
    """Build (and with ``run``, run) the :class:`~lightning_gen.lightning_cli.GenCLI` on ``args``."""
    from lightning_gen import lightning_cli

    lightning_cli.quiet_lightning()
    return lightning_cli.run_lightning_cli(args, run)


def _usage() -> str:
    jobs = "\n".join(f"  {name:<10} {text}" for name, (_, text) in JOBS.items())
    return (
        "usage: lightning-gen {fit,validate,test} --config CONFIG.yaml [--threads N] [--key=value ...]\n"
        "       lightning-gen {" + ",".join(JOBS) + "} ...\n\n"
        "Lightning subcommands (LightningCLI; `lightning-gen fit --help` lists every option):\n"
        "  fit        train a model (ends with a summary: checkpoint, pictures, metrics)\n"
        "  validate   run the validation loop\n  test       run the test loop\n"
        "  (LightningCLI's `predict` also parses, but no model here has a predict step: use `sample`.)\n\n"
        "Jobs:\n" + jobs + "\n\n"
        "CPU threads: --threads N (fit / validate / test; default 1 or OMP_NUM_THREADS; 0: one per core).\n"
    )


def _add_cwd_to_path() -> None:
    """Let configs name classes of modules in the current folder (``mynets.MyGen``), as ``python -m`` would, without
    ``PYTHONPATH=.``. Appended last, so a file there never shadows an installed module. A checkpoint still imports
    such a module only after the explicit opt-in (``--allow-module`` / ``LIGHTNING_GEN_ALLOW_MODULES``)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def main(argv: list[str] | None = None) -> None:
    """``lightning-gen``: every job and subcommand runs under one error handler (:func:`errors.run_job`): bad
    input ends with ``error: <what was wrong and what to do>`` and exit status 2, a training divergence with
    status 3; ``LIGHTNING_GEN_TRACEBACK=1`` shows the traceback."""
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    _add_cwd_to_path()
    if argv and argv[0] in JOBS:
        import importlib

        module = importlib.import_module(JOBS[argv[0]][0])
        sys.exit(run_job(lambda: module.main(argv[1:])))
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        if not argv:
            sys.exit(2)
        return
    code = run_job(lambda: run_lightning_cli(None if from_sys else argv) and 0)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
