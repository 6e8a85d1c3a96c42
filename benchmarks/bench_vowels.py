"""Japanese Vowels: sequences of different lengths (7 to 29 steps, 12 features, 9 speakers), every sequence family.

Each model is built from its shipped config (``configs/<model>/vowels.yaml`` or ``vowels_cond.yaml``, the speaker
as the class), trained for a budget of *process CPU time* (the CPU-budget callback of ``bench_sines.py``, one torch
thread), then asked for as many utterances as the data holds (640), each of a length drawn from the training length
distribution (per speaker for a conditional model, whose speakers are drawn from the training label counts). Scored:

- ``length_ks``: the two-sample Kolmogorov-Smirnov statistic between generated and real lengths (target <= .1);
- ``discriminative``: TimeGAN's discriminative score on the variable-length protocol (post-hoc GRU reading each
  sequence up to its length, 80/20 split, |accuracy - 0.5|; ``lightning_gen.metrics.timegan.sequence_scores``, the
  code path of ``lightning-gen evaluate``), beside the real data's own score: one random half of the utterances
  against the other half, same protocol;
- ``speaker_accuracy`` (conditional configs): the share of generated utterances that a classifier trained on the
  real training utterances (``lightning_gen.metrics.conditional.sequence_class_accuracy``, the evaluate job's
  sequence classifier; zero-padded sequences, as the generated ones) puts in the speaker asked for, beside its
  accuracy on the real test utterances (target >= .8);
- ``predictive``: TimeGAN's predictive score ("train on synthetic, test on real", the last coefficient one step
  ahead, MAE on every real utterance up to its length), beside the same score trained on the real utterances.

``--override KEY=VALUE`` (repeatable) changes a config value for a variant row, named ``--name``: e.g. the
LSTM-GAN's generator trained by maximum likelihood alone (its teacher-forced pretraining for the whole budget).
Rows are merged into the result files: a row of the same config, variant and budget is replaced, others are kept.

    python benchmarks/bench_vowels.py --data-dir ../shared/data/japanese-vowels --budget-cpu-s 600 --repeats 2

Writes ``--out`` (JSON, after every model) and ``benchmarks/results/leaderboard/vowels.json``; prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import pytorch_lightning as pl
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "benchmarks")]
from bench_sines import cpu_budget_callback  # noqa: E402

from lightning_gen.cli import run_lightning_cli  # noqa: E402
from lightning_gen.lightning_cli.parser import config_stack  # noqa: E402
from lightning_gen.metrics.conditional import sequence_class_accuracy  # noqa: E402
from lightning_gen.metrics.timegan import length_ks, sequence_scores, zero_padding  # noqa: E402

CONFIGS = ("lstm_gan/vowels", "lstm_gan/vowels_cond", "rvae/vowels", "rvae/vowels_cond", "rvae_gan/vowels",
           "rvae_gan/vowels_cond")  # fmt: skip


def build(config: str, data_dir: str, seed: int, overrides: tuple[str, ...] = ()):
    cli = run_lightning_cli(
        [*(a for part in config_stack(f"configs/{config}.yaml") for a in ("--config", os.path.join(REPO, part))),
         f"--seed_everything={seed}",
         f"--data.init_args.data_dir={data_dir}", "--data.init_args.download=false", *(f"--{o}" for o in overrides)],
        run=False,
    )  # fmt: skip
    return cli.model, cli.datamodule


def train(config: str, data_dir: str, budget_s: float, seed: int, overrides: tuple[str, ...] = ()):
    model, datamodule = build(config, data_dir, seed, overrides)
    budget = cpu_budget_callback(budget_s)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=100_000, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[budget],
    )  # fmt: skip
    trainer.fit(model, datamodule)
    batches = trainer.fit_loop.epoch_loop.batch_progress.total.completed
    return model, datamodule, {"cpu_s": round(budget.used, 1), "batches": batches}


def real_split(datamodule, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A split's utterances in the data's original scale (zero-padded), their lengths and labels."""
    lengths = datamodule.lengths[split]
    x = zero_padding(datamodule.inverse_scale(datamodule.splits[split]).astype(np.float32), lengths)
    return x, lengths, None if datamodule.labels is None else datamodule.labels[split]


def real_all(datamodule):
    parts = [real_split(datamodule, s) for s in ("train", "val", "test")]
    labels = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), labels


@torch.no_grad()
def generate(model, n: int, steps: int, labels: np.ndarray | None = None, seed: int = 0):
    """``n`` utterances (original scale, zero-padded to ``steps``) and their lengths, drawn from the model's
    training length distribution (per class for the ``labels`` of a conditional model)."""
    torch.manual_seed(seed)
    model.eval()
    y = None if labels is None else torch.as_tensor(labels)
    lengths = model.sample_lengths(n, y).cpu()
    x = model.sample(n, labels=y, lengths=lengths).cpu()
    x = torch.nn.functional.pad(x, (0, 0, 0, steps - x.shape[1]))
    original = model.to_original(x).numpy().astype(np.float32)
    return zero_padding(original, lengths.numpy()), lengths.numpy()


def discriminative(real, real_len, fake, fake_len, datamodule, args) -> dict:
    out, _ = sequence_scores(
        real, fake, ("discriminative",), args.disc_iterations, 1, args.repeats, args.seed,
        data_min=datamodule.data_min, data_max=datamodule.data_max, real_lengths=real_len, fake_lengths=fake_len,
    )  # fmt: skip
    return out["discriminative"]


def predictive(real, real_len, fake, fake_len, datamodule, args) -> dict:
    """TimeGAN's predictive score of ``fake`` (trained on it, tested on every real utterance)."""
    out, _ = sequence_scores(
        real, fake, ("predictive",), 1, args.pred_iterations, args.pred_repeats, args.seed,
        data_min=datamodule.data_min, data_max=datamodule.data_max, reference_predictive=False,
        real_lengths=real_len, fake_lengths=fake_len,
    )  # fmt: skip
    return out["predictive"]


def real_own_score(datamodule, args) -> dict:
    """The real data's own discriminative score: one random half of the utterances against the other."""
    x, lengths, _ = real_all(datamodule)
    order = np.random.default_rng(args.seed).permutation(len(x))
    a, b = order[: len(x) // 2], order[len(x) // 2 :]
    return discriminative(x[a], lengths[a], x[b], lengths[b], datamodule, args)


def score(config: str, model, datamodule, args) -> dict:
    real, real_len, real_y = real_all(datamodule)
    labels = None
    if model.conditional:
        labels = model.labels_for(len(real)).cpu().numpy()  # drawn from the training label counts
    fake, fake_len = generate(model, len(real), real.shape[1], labels, args.seed)
    metrics = {"length_ks": {"value": length_ks(real_len, fake_len)["value"]}}
    disc = discriminative(real, real_len, fake, fake_len, datamodule, args)
    metrics["discriminative"] = {"value": disc["value"], "spread": disc.get("std")}
    if args.pred_iterations > 0:
        pred = predictive(real, real_len, fake, fake_len, datamodule, args)
        metrics["predictive"] = {"value": pred["value"], "spread": pred.get("std")}
    if model.conditional:
        train_x, _, train_y = real_split(datamodule, "train")
        test_x, _, test_y = real_split(datamodule, "test")
        asked = np.arange(args.per_class * model.num_classes) % model.num_classes
        gen, _ = generate(model, len(asked), real.shape[1], asked, args.seed + 1)
        acc = sequence_class_accuracy(train_x, train_y, gen, asked, test_x, test_y, seed=args.seed)
        metrics["speaker_accuracy"] = {
            "value": acc["value"],
            "spread": acc.get("std"),
            "real_test": acc["reference_value"],
        }
    return metrics


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=CONFIGS)
    p.add_argument("--data-dir", default="data/japanese-vowels", help="folder of the two JapaneseVowels .ts files")
    p.add_argument("--budget-cpu-s", type=float, default=600.0, help="training budget per config, CPU seconds")
    p.add_argument("--disc-iterations", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3, help="repeats of the discriminative score")
    p.add_argument("--pred-iterations", type=int, default=5000, help="predictor's iterations (0: no predictive score)")
    p.add_argument("--pred-repeats", type=int, default=1, help="repeats of the predictive score")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config value for every model, as the CLI takes it (e.g. model.init_args.n_critic=2)",
    )
    p.add_argument(
        "--real-from",
        default="",
        help="an earlier run's results file (--out) whose real-data scores "
        "at this budget are reused (same protocol options); computed when it has none",
    )
    p.add_argument("--name", default="", help="the variant's name in the results (with --override)")
    p.add_argument("--per-class", type=int, default=100, help="generated utterances per speaker for the accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "vowels.json"))
    p.add_argument("--leaderboard", default=os.path.join(REPO, "benchmarks", "results", "leaderboard", "vowels.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    command = "python benchmarks/bench_vowels.py " + " ".join(sys.argv[1:] if argv is None else argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    results = {"command": command, "commit": commit.strip(), "budget_cpu_s": args.budget_cpu_s,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads 1, torch {torch.__version__}",
               "configs": {}}  # fmt: skip
    overrides = tuple(args.override)
    _, datamodule = build(args.configs[0], args.data_dir, args.seed)
    datamodule.setup()
    if not args.real_from:
        real_scores(datamodule, args, results)
    for config in args.configs:
        model, datamodule, info = train(config, args.data_dir, args.budget_cpu_s, args.seed, overrides)
        t = time.process_time()
        metrics = score(config, model, datamodule, args)
        info["score_cpu_s"] = round(time.process_time() - t, 1)
        if "real_half_vs_half" not in results:  # --real-from: read (or computed) once the first model is scored
            real_scores(datamodule, args, results)
        own, real_pred = results["real_half_vs_half"], results.get("real_predictive")
        key = f"{config} ({args.name})" if args.name else config
        results["configs"][key] = {**info, "overrides": list(overrides), "metrics": metrics}
        print(key, info, metrics, flush=True)
        real = {"discriminative": {"value": own["discriminative"], "spread": own.get("std")}}  # the metrics' names
        if real_pred is not None:
            real["predictive"] = {"value": real_pred["predictive"], "spread": real_pred.get("std")}
        if "speaker_accuracy" in metrics:
            real["speaker_accuracy"] = metrics["speaker_accuracy"]["real_test"]
        model_name = config.split("/")[0] + (f" ({args.name})" if args.name else "")
        row = {"model": model_name, "config": f"configs/{config}.yaml", "dataset": "japanese-vowels",
               "budget_cpu_s": args.budget_cpu_s, "metrics": {k: {"value": v["value"], "spread": v.get("spread")}
               for k, v in metrics.items()}, "real_data": real, "seeds": 1, "command": command,
               "commit": results["commit"]}  # fmt: skip
        merge_row(args.leaderboard, row)
        merge_results(args.out, results, key)
    print_table(results)
    return 0


def real_scores(datamodule, args, results: dict) -> None:
    """The real data's own scores into ``results``: read from ``--real-from`` (an earlier run's results file, same
    budget entry) when it holds them, else computed: the discriminative score of one half against the other and
    the predictive score of a predictor trained on the real utterances themselves (the floor)."""
    earlier = _load(args.real_from, {}).get("by_budget", {}).get(str(args.budget_cpu_s), {}) if args.real_from else {}
    if "real_half_vs_half" in earlier and (args.pred_iterations == 0 or "real_predictive" in earlier):
        results["real_half_vs_half"] = {**earlier["real_half_vs_half"], "from": args.real_from}
        if args.pred_iterations > 0:
            results["real_predictive"] = {**earlier["real_predictive"], "from": args.real_from}
        print("real scores read from", args.real_from, flush=True)
        return
    t = time.process_time()
    own = real_own_score(datamodule, args)
    results["real_half_vs_half"] = {"discriminative": own["value"], "std": own.get("std"),
                                    "cpu_s": round(time.process_time() - t, 1)}  # fmt: skip
    print("real half vs half:", results["real_half_vs_half"], flush=True)
    if args.pred_iterations > 0:  # the predictor trained on the real utterances themselves: the floor
        x, lengths, _ = real_all(datamodule)
        real_pred = predictive(x, lengths, x, lengths, datamodule, args)
        results["real_predictive"] = {"predictive": real_pred["value"], "std": real_pred.get("std")}
        print("real predictive:", results["real_predictive"], flush=True)


def _load(path: str, default):
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return default


def _dump(path: str, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=float)
    os.replace(tmp, path)


def merge_row(path: str, row: dict) -> None:
    """Add ``row`` to the leaderboard file, replacing a row of the same model, config and budget."""
    same = ("model", "config", "budget_cpu_s")
    rows = [r for r in _load(path, []) if any(r.get(k) != row[k] for k in same)]
    _dump(path, [*rows, row])


def merge_results(path: str, results: dict, key: str) -> None:
    """Add this run's ``key`` to the results file, kept per budget (``by_budget``), other entries untouched."""
    data = _load(path, {})
    if "by_budget" not in data:  # a file of one run (one budget) becomes one entry
        data = {"by_budget": {str(data["budget_cpu_s"]): data}} if "budget_cpu_s" in data else {"by_budget": {}}
    run = data["by_budget"].setdefault(str(results["budget_cpu_s"]), {**results, "configs": {}})
    for name in ("real_half_vs_half", "real_predictive", "machine", "commit"):
        if name in results:
            run[name] = results[name]
    run["configs"][key] = {**results["configs"][key], "command": results["command"]}
    _dump(path, data)


def print_table(results: dict) -> None:
    own = results["real_half_vs_half"]["discriminative"]
    real_pred = results.get("real_predictive", {}).get("predictive")
    print("\n| config | length KS | discriminative (real half vs half) | predictive (real) "
          "| speaker accuracy (real test) | training |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for config, info in results["configs"].items():
        m = info["metrics"]
        acc = m.get("speaker_accuracy")
        acc = f"{acc['value']:.3f} ({acc['real_test']:.3f})" if acc else "-"
        pred = f"{m['predictive']['value']:.4f} ({real_pred:.4f})" if "predictive" in m else "-"
        print(f"| {config} | {m['length_ks']['value']:.3f} | {m['discriminative']['value']:.3f} ({own:.3f}) | {pred} | "
              f"{acc} | {info['cpu_s']} CPU s, {info['batches']} batches |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
