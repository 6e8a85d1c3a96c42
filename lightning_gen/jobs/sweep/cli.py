"""The ``lightning-gen sweep`` command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from lightning_gen.errors import UserError, check_float, check_int
from lightning_gen.io import atomic_write
from lightning_gen.jobs.sweep.folder import RESULTS
from lightning_gen.jobs.sweep.runner import LocalSweep


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
