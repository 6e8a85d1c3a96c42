"""Render the leaderboard from the benchmark result files.

Every benchmark run that produces a leaderboard row writes it as data to ``benchmarks/results/leaderboard/*.json``:
a JSON list of rows, each::

    {"model": "R-VAE-GAN", "config": "configs/rvae_gan/stocks.yaml", "dataset": "stocks",
     "budget_cpu_s": 300, "metrics": {"discriminative": {"value": 0.05, "spread": 0.01}, ...},
     "real_data": {"discriminative": 0.02, ...}, "seeds": 1, "command": "python benchmarks/...",
     "commit": "abc1234"}

This script renders one table per dataset, with the real data's own score on the same protocol beside each metric
(a model at or below it is a question, not a win), into ``benchmarks/README.md`` between the
``<!-- leaderboard:start -->`` / ``<!-- leaderboard:end -->`` markers (and the docs site's
``docs/leaderboard.md``), and a short version (one line per row) into ``README.md`` between
``<!-- leaderboard-short:start -->`` / ``<!-- leaderboard-short:end -->``.

    python benchmarks/leaderboard.py           # rewrite the tables
    python benchmarks/leaderboard.py --check   # exit 1 when a table is out of date (tests/test_leaderboard.py)
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results", "leaderboard")
REQUIRED = ("model", "config", "dataset", "metrics", "command", "commit")
FULL = ("benchmarks/README.md", "<!-- leaderboard:start -->", "<!-- leaderboard:end -->")
DOCS = ("docs/leaderboard.md", "<!-- leaderboard:start -->", "<!-- leaderboard:end -->")
SHORT = ("README.md", "<!-- leaderboard-short:start -->", "<!-- leaderboard-short:end -->")


class LeaderboardError(ValueError):
    """A result file that cannot be rendered, or a README without the leaderboard markers."""


def load_rows(folder: str = RESULTS) -> list[dict]:
    """All rows of every ``*.json`` in ``folder``, each checked and tagged with its file name."""
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        name = os.path.basename(path)
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise LeaderboardError(f"{name}: not readable as JSON ({err}); fix or remove the file.") from err
        for i, row in enumerate(data if isinstance(data, list) else [data]):
            missing = [k for k in REQUIRED if not isinstance(row, dict) or k not in row]
            if missing:
                raise LeaderboardError(f"{name}, row {i}: missing {missing}; every row needs {list(REQUIRED)}.")
            rows.append({**row, "_file": name})
    return rows


def _number(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}" if abs(value) >= 100 else str(value)
    return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.3f}"


def _cell(entry) -> str:
    if isinstance(entry, dict):
        text = _number(entry.get("value"))
        if entry.get("spread"):  # a spread of 0 is one repeat, not a certainty
            text += f" ± {_number(entry['spread'])}"
        return text
    return _number(entry)


def _budget(row: dict) -> str:
    budget = row.get("budget_cpu_s")
    return "n/a" if budget is None else f"{budget / 60:.3g} CPU-min"


def _metric_names(rows: list[dict]) -> list[str]:
    names: list[str] = []
    for row in rows:
        names += [m for m in row["metrics"] if m not in names]
    return names


def render_full(rows: list[dict]) -> str:
    """One table per dataset: model, config, budget, seeds, every metric as ``model (real)``, commit."""
    if not rows:
        return "_No leaderboard rows yet: benchmark scripts write them to `benchmarks/results/leaderboard/`._"
    parts = []
    for dataset in sorted({r["dataset"] for r in rows}):
        group = [r for r in rows if r["dataset"] == dataset]
        metrics = _metric_names(group)
        head = ["model", "config", "budget", "seeds", *[f"{m} (real data)" for m in metrics], "commit"]
        lines = [f"### {dataset}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in sorted(group, key=lambda r: (r["model"], _config(r), r.get("budget_cpu_s") or 0)):
            real = r.get("real_data") or {}
            cells = [f"{_cell(r['metrics'][m])} ({_cell(real.get(m))})" if m in r["metrics"] else "" for m in metrics]
            lines.append(
                "| "
                + " | ".join([r["model"], f"`{_config(r)}`", _budget(r), str(r.get("seeds", 1)), *cells, r["commit"]])
                + " |"
            )
        commands = sorted({r["command"] for r in group})
        lines += ["", "Measured with:", "", "```bash", *commands, "```"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


HEADLINE = (
    "fid",
    "recall",
    "class_diversity",
    "diversity",
    "coverage",
    "discriminative",
    "predictive",
    "context_fid",
    "length_ks",
    "speaker_accuracy",
    "top_motion",
    "pitch_class_distance",
)


def _config(row: dict) -> str:
    config = row["config"]
    return ", ".join(config) if isinstance(config, list) else str(config)


def _short_dataset(name: str) -> str:
    return re.split(r" \(|;|,", name)[0].strip()


#: the front page's order: images, then the field's real sequence benchmarks, then the toy ones
FRONT_ORDER = ("mnist", "digits", "stocks", "energy", "japanese-vowels", "chorales", "sines", "conditional sines")


def _dataset_rank(name: str) -> int:
    short = _short_dataset(name).lower()
    return next((i for i, prefix in enumerate(FRONT_ORDER) if short.startswith(prefix)), len(FRONT_ORDER))


def render_short(rows: list[dict], metrics_per_row: int = 3) -> str:
    """The front page's version: shipped configs only (not stand-ins, configs of an older commit or scores against a
    reference that holds training data), one row per dataset and config (its longest budget), a short dataset name
    and the first few headline metrics of each row, with the real data's figure."""
    shipped = [
        r
        for r in rows
        if _config(r).startswith("configs/") and "@" not in _config(r) and "training split included" not in r["dataset"]
    ]
    if not shipped:
        return "_No leaderboard rows yet._"
    longest: dict[tuple[str, str], dict] = {}  # one row per dataset and config: its longest budget
    for r in sorted(shipped, key=lambda r: r.get("budget_cpu_s") or 0):
        longest[(_short_dataset(r["dataset"]), _config(r))] = r
    lines = ["| dataset | config | budget | headline scores (real data's own in brackets) |", "|---|---|---|---|"]
    for r in sorted(
        longest.values(), key=lambda r: (_dataset_rank(r["dataset"]), _short_dataset(r["dataset"]), _config(r))
    ):
        real = r.get("real_data") or {}
        names = [m for m in HEADLINE if m in r["metrics"]][:metrics_per_row] or list(r["metrics"])[:metrics_per_row]
        scores = ", ".join(f"{m} {_cell(r['metrics'][m])} ({_cell(real.get(m))})" for m in names)
        config = re.split(r" \(|;| @", _config(r))[0]
        lines.append(f"| {_short_dataset(r['dataset'])} | `{config}` | {_budget(r)} | {scores} |")
    return "\n".join(lines)


def splice(text: str, start: str, end: str, body: str, where: str) -> str:
    """``text`` with everything between the two markers replaced by ``body``."""
    if start not in text or end not in text or text.index(start) > text.index(end):
        raise LeaderboardError(f"{where} has no {start} ... {end} pair; add both markers where the table goes.")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a rendered table is out of date")
    parser.add_argument("--results", default=RESULTS, help="folder of the result files (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        rows = load_rows(args.results)
        stale = []
        full = render_full(rows)
        for (rel, start, end), body in ((FULL, full), (DOCS, full), (SHORT, render_short(rows))):
            path = os.path.join(REPO, rel)
            with open(path) as f:
                text = f.read()
            new = splice(text, start, end, body, rel)
            if new != text:
                stale.append(rel)
                if not args.check:
                    with open(path, "w") as f:
                        f.write(new)
    except LeaderboardError as err:
        print(f"leaderboard: {err}", file=sys.stderr)
        return 2
    if args.check and stale:
        stale_list = ", ".join(stale)
        print(f"leaderboard: out of date in {stale_list}; run `python benchmarks/leaderboard.py`.", file=sys.stderr)
        return 1
    print(f"leaderboard: {len(rows)} rows; {'rewrote ' + ', '.join(stale) if stale else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
