"""Does ``lightning-gen evaluate`` flag collapsed and copying sequence models? Sines, stand-ins, no training.

    python benchmarks/bench_trust_sines.py --out benchmarks/results/trust_sines

The data is ``configs/rvae/sines.yaml``'s (10,000 sines of 24 steps x 5 features, split 80 / 10 / 10). Three
sets as many as the validation split, written in the data's original scale as ``lightning-gen sample`` writes
them: ``unseen`` (the real validation split: as varied as the data, never trained on, not the reference),
``copies`` (random training windows with Gaussian noise of std ``--copy-noise``) and ``collapsed`` (ten training
windows, each repeated, noise std 0.002). Each is scored by ``lightning-gen evaluate --metrics
mmd,density_coverage,memorization`` against the test split (MMD, density / coverage and the copying test in the
flattened min-max-scaled windows, each with the real data's own value). TimeGAN's discriminative / predictive
scores are left out (their GRUs cost minutes each). Written: ``--out/<name>.json``, ``--out/table.md`` and
``benchmarks/results/leaderboard/trust_sines.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
SINES = str(REPO / "configs/rvae/sines.yaml")
METRICS = ["mmd", "density_coverage", "memorization"]


def stand_ins(noise: float, seed: int) -> dict[str, np.ndarray]:
    from lightning_gen.jobs import evaluate

    dm = evaluate.build_datamodule(evaluate.resolve_data_spec(SINES, None, []))
    dm.setup()
    train, unseen = dm.inverse_scale(dm.splits["train"]), dm.inverse_scale(dm.splits["val"])
    rng, n = np.random.default_rng(seed), len(unseen)
    copies = train[rng.integers(0, len(train), n)] + rng.normal(0, noise, unseen.shape)
    collapsed = np.repeat(train[:10], n // 10 + 1, axis=0)[:n] + rng.normal(0, 0.002, unseen.shape)
    return {"unseen": unseen, "copies": copies, "collapsed": collapsed}


def main() -> None:
    from lightning_gen import api
    from lightning_gen.jobs.evaluate.trust import problems, rank_key

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--copy-noise", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/trust_sines")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.process_time()
    reports = {}
    for name, x in stand_ins(args.copy_noise, args.seed).items():
        path = out / f"{name}.npz"
        np.savez(path, samples=x.astype(np.float32))
        reports[name] = api.evaluate(path, data=SINES, metrics=METRICS, threads=1)
        (out / f"{name}.json").write_text(json.dumps(reports[name], indent=1, default=str))
    cpu = time.process_time() - start
    ranked = sorted(reports, key=lambda n: rank_key(reports[n], "mmd"))
    lines = [
        "| samples | MMD | density | coverage | C_T | copy share | nearest unseen | flags | rank |",
        "|" + "---|" * 9,
    ]
    for name, r in reports.items():
        m = r["metrics"]
        mem, dc = m["memorization"], m["density_coverage"]
        lines.append(
            f"| {name} | {m['mmd']['value']:.4f} | {dc['density']:.2f} | {dc['coverage']:.2f} | {mem['value']:.2f} | "
            f"{mem['copy_share']['value']:.1%} | {mem['seen_unseen']['value']:.1%} "
            f"({mem['seen_unseen']['expected']:.0%}) | {', '.join(problems(r)) or '-'} | {ranked.index(name) + 1} |"
        )
    real = reports["unseen"]["metrics"]["density_coverage"]["real"]
    lines.append(
        f"| real data (training windows, n={real['n']:,}) | "
        f"{reports['unseen']['metrics']['mmd']['reference_value']:.4f}"
        f" | {real['density']:.2f} | {real['coverage']:.2f} | (seen) | | | | |"
    )
    md = "\n".join(lines) + "\n"
    (out / "table.md").write_text(md)
    print(md)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    board = [
        {
            "model": name,
            "config": {
                "unseen": "real validation split",
                "copies": f"stand-in: training windows + N(0, {args.copy_noise})",
                "collapsed": "stand-in: ten training windows repeated + N(0, 0.002)",
            }[name],  # fmt: skip
            "dataset": "sines (configs/rvae/sines.yaml), test split reference",
            "budget_cpu_s": round(cpu, 1),
            "metrics": {
                "mmd": {"value": r["metrics"]["mmd"]["value"], "spread": None},
                "density": {"value": r["metrics"]["density_coverage"]["density"], "spread": None},
                "coverage": {"value": r["metrics"]["density_coverage"]["coverage"], "spread": None},
                "ct": {"value": r["metrics"]["memorization"]["value"], "spread": None},
                "copy_share": {"value": r["metrics"]["memorization"]["copy_share"]["value"], "spread": None},
            },
            "real_data": {
                "mmd": r["metrics"]["mmd"].get("reference_value"),
                **{k: v for k, v in r["metrics"]["density_coverage"]["real"].items() if k in ("density", "coverage")},
            },
            "problems": problems(r),
            "seeds": 1,
            "command": f"python benchmarks/bench_trust_sines.py --out {args.out}",
            "commit": commit,
        }
        for name, r in reports.items()
    ]
    board_path = REPO / "benchmarks/results/leaderboard/trust_sines.json"
    board_path.write_text(json.dumps(board, indent=1))
    print(f"process CPU {cpu:.0f}s; wrote {out}/table.md and {board_path}")


if __name__ == "__main__":
    main()
