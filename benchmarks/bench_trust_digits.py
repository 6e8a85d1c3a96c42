"""Does ``lightning-gen evaluate`` rank a collapsed or copying model below a varied one? Digits, classifier features.

    lightning-gen fit --config configs/classifier/digits.yaml        # runs/classifier/digits
    lightning-gen fit --config configs/gan/digits.yaml               # runs/gan/digits
    lightning-gen fit --config configs/gan/digits.yaml --config configs/gan/digits_cond.yaml   # runs/gan/digits_cond
    python benchmarks/bench_trust_digits.py --classifier runs/classifier/digits \\
        --model gan=runs/gan/digits --model gan_cond=runs/gan/digits_cond \\
        --config gan=configs/gan/digits.yaml --config gan_cond=configs/gan/digits_cond.yaml \\
        --out benchmarks/results/trust_digits

Each ``--model NAME=CHECKPOINT`` (a checkpoint or a run folder) is sampled (``--num-samples``, seeded; a
conditional model draws labels from its training mix; ``--samples NAME=NPZ`` scores samples drawn earlier), and
two stand-ins are scored beside them: ``copies`` (random training digits with Gaussian noise of std
``--copy-noise``) and ``collapsed`` (one training digit per class, repeated, with noise of std 0.01). Every set
is scored twice with the same classifier features:

- the OLD protocol: ``--split test --metrics fid`` (the digits test split: 180 images for 64 features);
- the default protocol of ``lightning-gen evaluate`` (``--split auto``: validation + test, never trained on; FID,
  FID-infinity, KID, precision / recall, density / coverage, the copying test, the real data's own scores, flags).

The table ranks the sets by the old FID and by the evaluate report's rank key (a set with a serious flag, low
diversity or copying, below every set without; then KID). Written: ``--out/<name>.json`` (the reports),
``--out/table.md`` and ``benchmarks/results/leaderboard/trust_digits.json``. Budget: process CPU seconds of the
scoring (sampling included), one torch thread.
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
DIGITS = str(REPO / "configs/gan/digits.yaml")


def stand_ins(n: int, noise: float, seed: int) -> dict[str, np.ndarray]:
    """Noisy copies of random training digits, and one training digit per class repeated (tiny noise)."""
    from lightning_gen.data import DigitsDataModule
    from lightning_gen.metrics.reference import split_items

    train, labels = split_items(DigitsDataModule(batch_size=64), "train")
    rng = np.random.default_rng(seed)
    copies = train[rng.integers(0, len(train), n)].numpy() + rng.normal(0, noise, (n, 1, 8, 8))
    first = [int(np.flatnonzero(labels.numpy() == c)[0]) for c in range(10)]
    collapsed = train[np.repeat(first, n // 10 + 1)[:n]].numpy() + rng.normal(0, 0.01, (n, 1, 8, 8))
    return {"copies": np.clip(copies, 0, 1), "collapsed": np.clip(collapsed, 0, 1)}


def sample(checkpoint: str, n: int, path: Path) -> None:
    from lightning_gen.jobs import sample as job

    assert job.main([checkpoint, "--num-samples", str(n), "--output", str(path), "--seed", "0"]) == 0


def score(path: Path, classifier: str, data: str = DIGITS) -> tuple[dict, dict]:
    """The old protocol's report and the default protocol's, ``data`` a config whose ``data:`` section is the
    samples' dataset (its training split is the copying test's "seen" set)."""
    from lightning_gen import api

    common = {"data": data, "classifier": classifier, "no_cache": True, "threads": 1}
    old = api.evaluate(path, split="test", metrics=["fid"], **common)
    new = api.evaluate(path, **common)
    return old, new


def summary(name: str, old: dict, new: dict) -> dict:
    from lightning_gen.jobs.evaluate.trust import problems

    m = new["metrics"]
    row = {
        "name": name,
        "old_fid_test180": old["metrics"]["fid"]["value"],
        "fid": m["fid"]["value"],
        "fid_inf": m["fid_inf"]["value"],
        "kid": m["kid"]["value"],
        "kid_std": m["kid"].get("std"),
        "precision": m["precision_recall"]["precision"],
        "recall": m["precision_recall"]["recall"],
        "density": m["density_coverage"]["density"],
        "coverage": m["density_coverage"]["coverage"],
        "ct": m["memorization"]["value"],
        "copy_share": m["memorization"]["copy_share"]["value"],
        "nearest_unseen": m["memorization"]["seen_unseen"]["value"],
        "nearest_unseen_expected": m["memorization"]["seen_unseen"]["expected"],
        "problems": problems(new),
        "real": {
            k: (m[k].get("real") or {}) for k in ("fid", "fid_inf", "kid", "precision_recall", "density_coverage")
        },  # fmt: skip
        "reference": new["reference"]["why"],
    }
    for key in ("class_accuracy", "class_recall", "class_diversity"):
        if key in m:
            row[key] = m[key]["value"]
    return row


def table(rows: list[dict]) -> str:
    from lightning_gen.jobs.evaluate.trust import rank_key

    old_rank = {r["name"]: i + 1 for i, r in enumerate(sorted(rows, key=lambda r: r["old_fid_test180"]))}
    keyed = {
        r["name"]: rank_key({"metrics": {"kid": {"value": r["kid"]}}, "flags": [{"kind": p} for p in r["problems"]]})
        for r in rows
    }
    new_rank = {name: i + 1 for i, name in enumerate(sorted(keyed, key=keyed.get))}
    head = (
        "| samples | old FID (test, 180) | old rank | FID | FID-inf | KID | P | R | density | coverage | C_T | "
        "copy share | nearest unseen | class div. | flags | new rank |\n|" + "---|" * 16 + "\n"
    )
    lines = []
    for r in rows:
        div = f"{r['class_diversity']:.2f}" if "class_diversity" in r else "-"
        lines.append(
            f"| {r['name']} | {r['old_fid_test180']:.2f} | {old_rank[r['name']]} | {r['fid']:.2f} | "
            f"{_f(r['fid_inf'])} | {r['kid']:.3f} | {r['precision']:.2f} | {r['recall']:.2f} | {r['density']:.2f} | "
            f"{r['coverage']:.2f} | {_f(r['ct'])} | {r['copy_share']:.1%} | {r['nearest_unseen']:.1%} "
            f"({r['nearest_unseen_expected']:.0%}) | {div} | {', '.join(r['problems']) or '-'} | "
            f"{new_rank[r['name']]} |"
        )
    real = rows[0]["real"]
    lines.append(
        f"| real data (training items, n={real['fid']['n']:,}) | - | - | {real['fid']['fid']:.2f} | "
        f"{real['fid_inf']['fid_inf']:.2f} | {real['kid']['kid']:.3f} | {real['precision_recall']['precision']:.2f} | "
        f"{real['precision_recall']['recall']:.2f} | {real['density_coverage']['density']:.2f} | "
        f"{real['density_coverage']['coverage']:.2f} | (seen) | | | | | |"
    )
    return head + "\n".join(lines) + "\n"


def _f(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--classifier", required=True)
    p.add_argument("--model", action="append", default=[], metavar="NAME=CHECKPOINT")
    p.add_argument("--config", action="append", default=[], metavar="NAME=CONFIG", help="the config a model ran")
    p.add_argument(
        "--samples",
        action="append",
        default=[],
        metavar="NAME=NPZ",
        help="samples drawn earlier (`lightning-gen sample`)",
    )
    p.add_argument("--num-samples", type=int, default=2000)
    p.add_argument("--copy-noise", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/trust_digits")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.process_time()
    sets = {}
    for item in args.model:
        name, _, ckpt = item.partition("=")
        from lightning_gen.checkpoints import resolve_checkpoint

        sets[name] = out / f"{name}.npz"
        sample(str(resolve_checkpoint(ckpt)), args.num_samples, sets[name])
    for item in args.samples:  # e.g. of a checkpoint written with option names the models no longer take
        name, _, path = item.partition("=")
        sets[name] = Path(path)
    for name, x in stand_ins(args.num_samples, args.copy_noise, args.seed).items():
        sets[name] = out / f"{name}.npz"
        np.savez(sets[name], samples=x.astype(np.float32))
    rows = []
    for name, path in sets.items():
        old, new = score(path, args.classifier)
        (out / f"{name}.json").write_text(json.dumps({"old": old, "new": new}, indent=1, default=str))
        rows.append(summary(name, old, new))
        print(name, rows[-1]["problems"], f"cpu {time.process_time() - start:.0f}s", flush=True)
    cpu = time.process_time() - start
    md = table(rows)
    (out / "table.md").write_text(md)
    print(md)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    command = "python benchmarks/bench_trust_digits.py " + " ".join(
        [f"--classifier {args.classifier}"]
        + [f"--model {m}" for m in args.model]
        + [f"--samples {s}" for s in args.samples]
        + [f"--config {c}" for c in args.config]
        + [f"--out {args.out}"]
    )
    configs = dict(item.split("=", 1) for item in args.config)
    configs["copies"] = f"stand-in: random training digits + N(0, {args.copy_noise}) noise"
    configs["collapsed"] = "stand-in: one training digit per class repeated + N(0, 0.01) noise"
    board = [
        {
            "model": r["name"],
            "config": configs.get(r["name"], "checkpoint"),
            "dataset": "digits (validation + test reference, 342 items)",
            "budget_cpu_s": round(cpu, 1),
            "metrics": {
                k: {"value": r[k], "spread": r["kid_std"] if k == "kid" else None}
                for k in (
                    "fid",
                    "fid_inf",
                    "kid",
                    "precision",
                    "recall",
                    "density",
                    "coverage",
                    "ct",
                    "copy_share",
                    "old_fid_test180",
                    "class_diversity",
                    "class_recall",
                    "class_accuracy",
                )
                if k in r
            },  # fmt: skip
            "real_data": {k: v for part in r["real"].values() for k, v in part.items() if k not in ("n", "items")},
            "problems": r["problems"],
            "seeds": 1,
            "command": command,
            "commit": commit,
        }
        for r in rows
    ]
    board_path = REPO / "benchmarks/results/leaderboard/trust_digits.json"
    board_path.parent.mkdir(parents=True, exist_ok=True)
    board_path.write_text(json.dumps(board, indent=1))
    print(f"process CPU {cpu:.0f}s; wrote {out}/table.md and {board_path}")


if __name__ == "__main__":
    main()
