"""Within-class diversity of a conditional model: are the samples of one class as varied as that class's data?

A conditional generator can put every sample in the asked class (class accuracy near 1) and still draw one
item per class: mode collapse within the class, the failure AC-GAN is known for (Shu 2017, "AC-GAN learns a
biased distribution"; Gong et al. 2019, TAC-GAN). Class accuracy cannot see it, and an FID against a small
reference can even reward it. This module measures it directly, in a feature space (e.g. a classifier's
penultimate features, as FID's): per class, the mean pairwise Euclidean distance of the generated items'
features over that of the real items of the class, the spread ratio used to read diversity in GAN evaluations
(the "diversity" of MSGAN's LPIPS score, Mao et al. 2019, here against the data's own spread so 1.0 means "as
varied as the data"). Well below 1: the class has collapsed; well above: noise-like samples.

``per_class_recall`` gives the complementary coverage number, improved recall (Kynkaanniemi et al. 2019) within
each class: the share of a class's real items that lie in the k-NN balls of that class's generated items.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import pdist

from lightning_gen.metrics.conditional import check_class_labels

#: classes with more items than this are subsampled (seeded) for the pairwise distances: O(n^2) memory
MAX_ITEMS_PER_CLASS = 2000


def _as_features(features, name: str) -> np.ndarray:
    arr = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if arr.ndim != 2:
        raise ValueError(f"{name}: features must be shaped (N, D), got {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: features hold NaN or infinite values; check the samples and the extractor.")
    return arr.astype(np.float64)


def _subsample(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= limit else x[rng.choice(len(x), limit, replace=False)]


def _split_by_class(fake_features, fake_labels, real_features, real_labels):
    fake, real = _as_features(fake_features, "generated"), _as_features(real_features, "real")
    if fake.shape[1] != real.shape[1]:
        raise ValueError(f"generated features have {fake.shape[1]} dimensions, real ones {real.shape[1]}.")
    fake_y = check_class_labels(fake_labels, len(fake), None, "generated labels").numpy()
    real_y = check_class_labels(real_labels, len(real), None, "real labels").numpy()
    return fake, fake_y, real, real_y


def within_class_diversity(
    fake_features, fake_labels, real_features, real_labels, max_per_class: int = MAX_ITEMS_PER_CLASS, seed: int = 0
) -> dict:
    """Per class, mean pairwise feature distance of the generated items over that of the real items.

    Args:
        fake_features, fake_labels: (N, D) features of generated items and their (requested) classes (N,).
        real_features, real_labels: (M, D) features of real items of the same space, and their classes (M,).
        max_per_class: classes with more items are subsampled (seeded) to this many per set.
        seed: the subsampling's seed.

    Returns:
        ``{"value": mean over the classes scored, "per_class": {label: ratio}, "skipped": [labels]}``; a class is
        scored when both sets hold 2 or more of its items and its real items are not all identical; ``skipped``
        lists the others seen in either set (absent when none). 1.0: as varied as the data.

    Raises:
        ValueError: on malformed features or labels, or when no class can be scored.
    """
    fake, fake_y, real, real_y = _split_by_class(fake_features, fake_labels, real_features, real_labels)
    rng = np.random.default_rng(seed)
    per_class, skipped = {}, []
    for c in sorted(set(fake_y.tolist()) | set(real_y.tolist())):
        f, r = fake[fake_y == c], real[real_y == c]
        if min(len(f), len(r)) < 2:
            skipped.append(c)
            continue
        real_spread = pdist(_subsample(r, max_per_class, rng)).mean()
        if real_spread <= 0:
            skipped.append(c)
            continue
        per_class[c] = float(pdist(_subsample(f, max_per_class, rng)).mean() / real_spread)
    if not per_class:
        raise ValueError(
            "within-class diversity: no class has 2 or more generated and 2 or more (distinct) real items; "
            "give labelled samples of the classes the real data holds."
        )
    entry = {"value": float(np.mean(list(per_class.values()))), "per_class": per_class}
    if skipped:
        entry["skipped"] = skipped
    return entry


def per_class_recall(
    fake_features,
    fake_labels,
    real_features,
    real_labels,
    neighborhood: int = 3,
    max_per_class: int = MAX_ITEMS_PER_CLASS,
    seed: int = 0,
) -> dict:
    """Improved recall (Kynkaanniemi et al. 2019, by torch-fidelity) within each class: the share of a class's
    real items inside some generated item's ball to its ``neighborhood``-th nearest generated neighbour.

    Returns ``{"value": mean over the classes scored, "per_class": {label: recall}, "skipped": [labels]}``; a
    class needs more than ``neighborhood`` items in both sets.
    """
    from lightning_gen.metrics.image import precision_recall_from_features

    if neighborhood < 1:
        raise ValueError(f"neighborhood must be >= 1, got {neighborhood}.")
    fake, fake_y, real, real_y = _split_by_class(fake_features, fake_labels, real_features, real_labels)
    rng = np.random.default_rng(seed)
    per_class, skipped = {}, []
    for c in sorted(set(fake_y.tolist()) | set(real_y.tolist())):
        f = torch.from_numpy(_subsample(fake[fake_y == c], max_per_class, rng))
        r = torch.from_numpy(_subsample(real[real_y == c], max_per_class, rng))
        if min(len(f), len(r)) <= neighborhood:
            skipped.append(c)
            continue
        per_class[c] = precision_recall_from_features(r, f, neighborhood)["recall"]
    if not per_class:
        raise ValueError(f"per-class recall: no class has more than {neighborhood} generated and real items.")
    entry = {"value": float(np.mean(list(per_class.values()))), "per_class": per_class}
    if skipped:
        entry["skipped"] = skipped
    return entry
