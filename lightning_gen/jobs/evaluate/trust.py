"""Scores a researcher can trust: every image score beside the real data's own score on the same protocol, the
copying test, and the report's flags.

- **The real floor.** The training split's real items (as many as the generated samples, at most the split) are
  scored against the same reference exactly as the samples are: what real data scores on this protocol. The
  samples are scored again at that count (``matched``) so the two compare at equal sample sizes (FID and its
  kin depend on them). A distance at or below the floor is a question (copying? collapse? the metric's bias on a
  small reference?), never a win (:func:`flags`).
- **Fidelity and diversity apart.** Recall, coverage and, for conditional samples, per-class recall and
  within-class diversity well below the real data's own values flag a lack of variety (collapse), whatever
  FID says.
- **Copying** (:mod:`lightning_gen.metrics.memorization`): the samples' pixels against the training split (seen)
  and the reference (never trained on).
"""

from __future__ import annotations

import numpy as np
import torch

#: distances: lower is better, and a value at or below the real data's own is a question
LOWER_BETTER = ("fid", "fid_inf", "kid", "class_fid", "mmd")
#: diversity numbers: below this share of the real data's own value the report flags a lack of variety
DIVERSITY = ("recall", "coverage", "class_recall", "class_diversity")
LOW_DIVERSITY = 0.7


def numbers(name: str, entry: dict) -> dict[str, float]:
    """The comparable numbers of a metric entry: ``{name: value}``, or each part of a two-part metric."""
    if name == "precision_recall":
        return {"precision": entry["precision"], "recall": entry["recall"]}
    if name == "density_coverage":
        return {"density": entry["density"], "coverage": entry["coverage"]}
    value = entry.get("value")
    return {} if value is None else {name: value}


def safe_scores(compute, names: list[str], required=("fid",)) -> dict:
    """``compute(names) -> {name: entry}`` one metric at a time; a metric the sets are too small for is reported
    ``{"value": None, "not_computed": reason}`` (``required`` ones raise, as asked)."""
    out = {}
    for name in names:
        try:
            out.update(compute([name]))
        except ValueError as err:
            if name in required:
                raise
            out[name] = {"value": None, "not_computed": str(err)}
    return out


def attach_floor(values: dict, real: dict, matched: dict | None, n: int, where: str) -> None:
    """Put the real data's own numbers (``real``, n items of ``where``) and the samples' numbers at the same count
    (``matched``; None when the counts are equal already) beside each metric of ``values``."""
    for name, entry in values.items():
        if name not in real or "not_computed" in entry:
            continue
        own = numbers(name, real[name])
        if not own:
            continue
        entry["real"] = {**{k: round(v, 6) for k, v in own.items()}, "n": n, "items": where}
        if len(own) == 1 and "reference_value" not in entry:
            entry["reference_value"] = next(iter(own.values()))
        if matched is not None and name in matched:
            entry["matched"] = {**{k: round(v, 6) for k, v in numbers(name, matched[name]).items()}, "n": n}


def flags(values: dict) -> list[dict]:
    """The report's questions: a distance at or below the real data's own (compared at equal sample counts), a
    diversity number under ``LOW_DIVERSITY`` of the real data's, copying; each ``{"kind", "message"}``."""
    out = []
    for name, entry in values.items():
        real = entry.get("real")
        if real:
            model = entry.get("matched") or numbers(name, entry)
            out += _compare(name, model, real)
        if name == "memorization" and entry.get("copying"):
            out.append({"kind": "copying", "message": entry["verdict"]})
    return out


def _compare(name: str, model: dict, real: dict) -> list[dict]:
    out = []
    for key, value in model.items():
        if key == "n" or key not in real or value is None:
            continue
        floor = real[key]
        if key in LOWER_BETTER and value <= floor:
            out.append({
                "kind": "at_real_floor",
                "message": f"{key} {value:.4g} is at or below real data's own {floor:.4g} (n={real['n']:,} each): "
                "a question, not a win (copying? collapse? the metric's bias?); read recall, coverage and the "
                "copying test",
            })  # fmt: skip
        if key in DIVERSITY and floor > 0 and value < LOW_DIVERSITY * floor:
            out.append({
                "kind": "low_diversity",
                "message": f"{key} {value:.3g} is under {LOW_DIVERSITY:.0%} of real data's own {floor:.3g}: the "
                "samples lack the data's variety (mode collapse?)",
            })  # fmt: skip
    return out


#: training items read for the copying test (and the real data's own scores): a random subset of larger splits
#: (CIFAR-10's 50,000 images would cost 600 MB as floats); copies of items outside it are not seen
MAX_TRAIN_ITEMS = 20000

#: the flags that rank a model below every model without them (a lack of variety, copying)
SERIOUS = ("low_diversity", "copying")


def problems(report: dict) -> list[str]:
    """The serious problems a report flags (``SERIOUS`` kinds, each once, in order)."""
    return sorted({f["kind"] for f in report.get("flags") or [] if f["kind"] in SERIOUS})


def rank_key(report: dict, metric: str = "kid") -> tuple:
    """How to rank evaluate reports, best first: models with no serious problem before those with one (collapse,
    copying), then by ``metric`` (an unbiased distance by default, KID: lower is better)."""
    entry = report["metrics"].get(metric) or {}
    value = entry.get("value")
    return (len(problems(report)), float("inf") if value is None else value)


def floor_count(num_fake: int, num_train: int) -> int:
    """How many real training items stand in for the samples: as many as the samples, at most the split."""
    return min(num_fake, num_train)


def subset(feats: dict, n: int) -> dict:
    """The first ``n`` items of a feature dict (``features`` and ``logits``)."""
    return {k: v[:n] for k, v in feats.items()}


def copying_entry(train_images, reference_images, fake_images, seed: int, split: str) -> dict:
    """The copying test's report entry on pixels (:func:`~lightning_gen.metrics.memorization.pixel_space`), or
    ``not computed`` with the reason when the reference is the training split (nothing unseen to compare with)."""
    if split == "train":
        return {"value": None, "not_computed": "the reference is the training split: no unseen items to compare with"}
    from lightning_gen.metrics.memorization import copying_tests, pixel_space

    train, unseen, fake = pixel_space(train_images, reference_images, fake_images, seed=seed)
    entry = copying_tests(train, unseen, fake, seed)
    entry["features"] = f"pixels ({train.shape[1]} dimensions" + (
        ", PCA of the training split)" if train.shape[1] < fake_images[0].numel() else ")"
    )
    return entry


#: the sequence scores of this module: fidelity / diversity and the copying test in the post-hoc feature space
SEQUENCE_TRUST_METRICS = ("precision_recall", "density_coverage", "memorization")


def sequence_space(datamodule, fake) -> np.ndarray:
    """Generated sequences (in the data's original scale, as the sample job writes them) in the model's space: the
    training split's min-max scaling (none for piano rolls), each (T, D) window flattened to one row."""
    from lightning_gen.scaling import min_max_scale

    x = np.asarray(fake.numpy() if isinstance(fake, torch.Tensor) else fake, dtype=np.float32)
    if getattr(datamodule, "scale_data", True):
        x = min_max_scale(x, datamodule.data_min, datamodule.data_max)
    return x.reshape(len(x), -1)


def sequence_trust(metrics, datamodule, reference: torch.Tensor, fake, split: str, seed: int = 0) -> dict:
    """Precision / recall (Kynkaanniemi et al. 2019), density / coverage (Naeem et al. 2020) and the copying test of
    generated sequences, in the post-hoc feature space of the flattened min-max-scaled windows (the space TimeGAN's
    scores and MMD read), each with the real data's own value: as many training windows against the same
    reference."""
    from lightning_gen.metrics.fidelity import density_coverage, precision_recall_knn
    from lightning_gen.metrics.reference import split_items

    asked = [m for m in metrics if m in SEQUENCE_TRUST_METRICS]
    if not asked:
        return {}
    real, fake = reference.reshape(len(reference), -1).numpy(), sequence_space(datamodule, fake)
    train = None if split == "train" else split_items(datamodule, "train", MAX_TRAIN_ITEMS)[0]
    train = None if train is None else train.reshape(len(train), -1).numpy()
    space = "flattened windows, min-max scaled with the training split's range"
    out = {}
    scores = {
        "precision_recall": lambda r, f: {**precision_recall_knn(r, f), "k": 3},
        "density_coverage": density_coverage,
    }
    for name in [m for m in asked if m in scores]:
        score = scores[name]
        out[name] = {**score(real, fake), "features": space}
        if train is not None:
            n = floor_count(len(fake), len(train))
            matched = {name: score(real, fake[:n])} if n < len(fake) else None
            attach_floor(out, {name: score(real, train[:n])}, matched, n, "training windows")
    if "memorization" in asked:
        if train is None:
            out["memorization"] = {"value": None, "not_computed": "the reference is the training split"}
        else:
            from lightning_gen.metrics.memorization import copying_tests, pixel_space

            t, u, f = pixel_space(train, real, fake, seed=seed)
            reduced = f", PCA of the training windows to {t.shape[1]} dimensions" if t.shape[1] < train.shape[1] else ""
            out["memorization"] = {**copying_tests(t, u, f, seed), "features": space + reduced}
    return out


def sequence_mmd_floor(values: dict, datamodule, reference: torch.Tensor, fake, split: str) -> None:
    """The real data's own MMD beside the samples': as many training windows against the same reference, in the
    space the MMD is scored in (:func:`lightning_gen.metrics.timegan.scoring_space`); and the samples' MMD at that
    count. Sequences of different lengths are left as they are (no floor)."""
    entry = values.get("mmd")
    if entry is None or split == "train" or getattr(datamodule, "lengths", None) is not None:
        return
    from lightning_gen.metrics.mmd import mmd_rbf
    from lightning_gen.metrics.reference import split_items
    from lightning_gen.metrics.timegan import scoring_space

    train = split_items(datamodule, "train", MAX_TRAIN_ITEMS)[0].numpy()
    real = reference.numpy()
    if getattr(datamodule, "scale_data", True):  # the model's [0, 1] -> the data's original scale, as `fake`
        train, real = datamodule.inverse_scale(train), datamodule.inverse_scale(real)
    fake = np.asarray(fake.numpy() if isinstance(fake, torch.Tensor) else fake, dtype=np.float32)
    n = floor_count(len(fake), len(train))
    lo, hi = datamodule.data_min, datamodule.data_max
    real_s, train_s, _ = scoring_space(real, train[:n], lo, hi)
    own = {"mmd": {"value": mmd_rbf(real_s, train_s)}}
    matched = None
    if n < len(fake):
        matched = {"mmd": {"value": mmd_rbf(*scoring_space(real, fake[:n], lo, hi)[:2])}}
    attach_floor({"mmd": entry}, own, matched, n, "training windows")
