"""Does a generative model copy its training data? Three nearest-neighbour tests on features (any (N, D) arrays:
an image extractor's features, or sequences' post-hoc features), each against the training split ("seen") and a
real split the model never saw ("unseen").

- :func:`meehan_ct`: the three-sample test C_T of Meehan, Chaudhuri & Dasgupta 2020, "A Non-Parametric Test to
  Detect Data-Copying in Generative Models" (AISTATS). The training set is cut into cells by k-means; in each cell
  the distances of generated items to their nearest training item are compared with those of unseen real items by
  a Mann-Whitney U test (scipy), and the cells' Z scores are averaged with the unseen items' cell shares as weights.
  C_T well below 0 (about -3 or lower): samples lie closer to the training data than new data does (copying);
  near 0: no evidence; well above 0: samples lie further away (underfitting). Cells holding too few generated
  items are left out (the paper's threshold tau), and their share is reported.
- :func:`copy_share`: the authenticity idea of Alaa et al. 2022, "How Faithful is your Synthetic Data?" (ICML) as a
  share: the fraction of generated items closer to their nearest training item than all but ``quantile`` of the
  unseen real items are. A model that does not copy gives about ``quantile`` (5%); noisy copies give far more.
- :func:`seen_unseen`: the samples' distances to equal numbers of seen and unseen real items (the training split
  dealt into sets as large as the unseen one): how often is the unseen set the nearest? As often as any seen set
  for a model that does not copy; almost never for copies, which lie nearest the set holding their original.
  Blurry, averaged samples lie close to everything and make C_T negative, but they move towards seen and unseen
  items alike, so this share stays where it should: read C_T together with it.

:func:`copying_tests` runs all three and says, in words, what they show. For images the evaluate job runs them on
pixels (:func:`pixel_space`), as Meehan et al. do: a classifier trained on the training split (the domain FID's
extractor) maps its own training items differently from unseen ones, which would bias any seen / unseen comparison.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: C_T (a weighted Z score) at or below this reads as copying (Meehan et al. 2020 test at Z's usual levels)
CT_COPYING = -3.0
#: the seen / unseen test's one-sided p value below which it reads as copying on its own (about Z = 3) ...
SEEN_P_ALONE = 1e-3
#: ... and with C_T at or below ``CT_COPYING`` (C_T says "nearer the training data", this test "not blur")
SEEN_P_WITH_CT = 0.01


def _array(x) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = np.asarray(arr, dtype=np.float64).reshape(len(arr), -1)
    return arr


def nearest_distances(query, base) -> np.ndarray:
    """Euclidean distance of each ``query`` row to its nearest ``base`` row (scikit-learn NearestNeighbors)."""
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=1).fit(_array(base)).kneighbors(_array(query))[0][:, 0]


def pixel_space(train, unseen, fake, dims: int = 64, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Flattened pixels of the three image sets, projected on the training items' first ``dims`` principal
    components (scikit-learn PCA; none when the images have ``dims`` pixels or fewer): nearest neighbours stay
    affordable for 50,000 training images while Euclidean distances change little."""
    from sklearn.decomposition import PCA

    train, unseen, fake = _array(train), _array(unseen), _array(fake)
    if train.shape[1] <= dims:
        return train, unseen, fake
    pca = PCA(n_components=min(dims, len(train)), random_state=seed).fit(train)
    return pca.transform(train), pca.transform(unseen), pca.transform(fake)


def meehan_ct(train, unseen, fake, cells: int | None = None, seed: int = 0, tau: int = 20) -> dict:
    """C_T of Meehan et al. 2020 (see the module docstring). ``cells``: k-means cells of the training features
    (default: one per 20 unseen items, 2 to 50); a cell is scored when it holds at least ``tau`` generated items (the
    paper's threshold, as a count here) and 2 unseen ones.

    Returns ``{"value": C_T, "cells", "cells_scored", "fake_share_unscored": share of generated items in cells left
    out}``; ``value`` is None when no cell can be scored."""
    from scipy.stats import mannwhitneyu
    from sklearn.cluster import KMeans

    train, unseen, fake = _array(train), _array(unseen), _array(fake)
    k = cells or int(np.clip(len(unseen) // 20, 2, 50))
    k = min(k, len(train))
    kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(train)
    cell_t, cell_q = kmeans.predict(unseen), kmeans.predict(fake)
    d_t, d_q = nearest_distances(unseen, train), nearest_distances(fake, train)
    zs, weights, unscored = [], [], 0
    for c in range(k):
        t, q = d_t[cell_t == c], d_q[cell_q == c]
        if len(q) < min(tau, max(2, len(fake) // (4 * k))) or len(t) < 2:
            unscored += len(q)
            continue
        u = mannwhitneyu(q, t, alternative="two-sided").statistic  # pairs with the generated item further away
        m, n = len(q), len(t)
        zs.append((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))
        weights.append(len(t) / len(unseen))
    value = float(np.average(zs, weights=weights)) if zs else None
    return {"value": value, "cells": k, "cells_scored": len(zs), "fake_share_unscored": unscored / len(fake)}


def copy_share(train, unseen, fake, quantile: float = 0.05) -> dict:
    """Share of generated items nearer a training item than the ``quantile`` of the unseen real items' distances to
    the training set (authenticity, Alaa et al. 2022); ``expected``: the share of a model that does not copy."""
    d_t = nearest_distances(unseen, train)
    threshold = float(np.quantile(d_t, quantile))
    d_q = nearest_distances(fake, train)
    return {"value": float((d_q < threshold).mean()), "expected": quantile, "threshold": threshold}


def seen_unseen(train, unseen, fake, seed: int = 0) -> dict:
    """Seen against unseen at equal numbers: the training items are dealt at random into K sets as large as the
    unseen set (K = training items // unseen items, at least 1); for each generated item, is the unseen set's
    nearest item nearer than that of every seen set? For a model that does not copy the K + 1 sets are alike, so
    about 1 / (K + 1) of the samples are (``expected``); a copy lies nearest the set that holds its original, so
    copies make the share drop towards 0, while blur moves a sample alike towards all sets and leaves it.

    Samples that share their nearest item (a collapsed or averaged model's) count once: the share is over the
    distinct nearest items. Returns ``{"value": share, "expected", "z": (expected - share) / its binomial std
    (positive: nearer the seen items, copying), "p_value": the exact one-sided binomial test's (scipy), "seen_sets":
    K, "per_set", "distinct_nearest"}``."""
    train, unseen, fake = _array(train), _array(unseen), _array(fake)
    m = min(len(unseen), len(train))
    k = max(1, len(train) // m)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    sets = [train[order[i * m : (i + 1) * m]] for i in range(k)] + [unseen[rng.permutation(len(unseen))[:m]]]
    pool = np.concatenate(sets)  # (K + 1) * m items; the last m are the unseen ones
    from scipy.stats import binomtest
    from sklearn.neighbors import NearestNeighbors

    winner = NearestNeighbors(n_neighbors=1).fit(pool).kneighbors(fake)[1][:, 0]
    # samples with the same nearest item (collapsed or averaged samples) are one observation, not many: the test
    # counts distinct nearest items
    distinct = np.unique(winner)
    share = float((distinct >= k * m).mean())
    expected = 1.0 / (k + 1)
    z = (expected - share) / math.sqrt(expected * (1 - expected) / len(distinct))
    nearest_unseen = int((distinct >= k * m).sum())
    p_value = binomtest(nearest_unseen, len(distinct), expected, alternative="less").pvalue
    return {
        "value": share,
        "expected": expected,
        "z": float(z),
        "p_value": float(p_value),
        "seen_sets": k,
        "per_set": m,
        "distinct_nearest": int(len(distinct)),
    }


def copying_tests(train, unseen, fake, seed: int = 0) -> dict:
    """All three tests, and ``verdict``: one sentence on whether the samples copy the training data."""
    ct = meehan_ct(train, unseen, fake, seed=seed)
    share = copy_share(train, unseen, fake)
    seen = seen_unseen(train, unseen, fake, seed)
    low_ct = ct["value"] is not None and ct["value"] <= CT_COPYING
    # copying: clearly nearer the seen sets, or nearer the training data (C_T) and not as near the unseen set
    copying = seen["p_value"] < SEEN_P_ALONE or (low_ct and seen["p_value"] < SEEN_P_WITH_CT)
    nearest = f"{seen['value']:.1%} of samples nearest the unseen set ({seen['expected']:.1%} expected)"
    if copying:
        verdict = (
            f"COPYING SUSPECTED: samples lie nearer the training items than equally many unseen ones: {nearest}, p "
            f"{seen['p_value']:.2g}; C_T {_fmt(ct['value'])}; {share['value']:.1%} nearer the training set than 95% of "
            "unseen data are (5% expected)"
        )
    elif low_ct:
        verdict = (
            f"C_T {_fmt(ct['value'])}: samples lie nearer the training data than unseen data does, but the unseen "
            f"set is as often their nearest as a seen one ({nearest}, p {seen['p_value']:.2g}): no sign of copying "
            "particular training items (averaged, blurry or collapsed samples lower C_T too)"
        )
    else:
        verdict = f"no sign of copying (C_T {_fmt(ct['value'])}; {nearest})"
    return {
        "value": ct["value"],
        "reference_value": 0.0,
        "ct": ct,
        "copy_share": share,
        "seen_unseen": seen,
        "copying": bool(copying),
        "verdict": verdict,
    }


def _fmt(value) -> str:
    return "not scored" if value is None else f"{value:.2f}"
