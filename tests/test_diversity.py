"""Within-class diversity and per-class recall: a generator that repeats one item per class scores near 0, one
that draws like the data near 1, and malformed inputs get a clear error."""

import numpy as np
import pytest
import torch

from lightning_gen.metrics.diversity import (
    per_class_recall,
    within_class_diversity,
)
from lightning_gen.models.conditional import batch_class_diversity

K, D = 3, 4


@pytest.fixture
def real():
    rng = np.random.default_rng(0)
    labels = np.arange(300) % K
    return rng.normal(size=(300, D)) + 5 * labels[:, None], labels  # three clusters, unit spread


def test_collapsed_classes_score_near_zero_and_varied_ones_near_one(real):
    features, labels = real
    rng = np.random.default_rng(1)
    varied = rng.normal(size=(300, D)) + 5 * labels[:, None]
    out = within_class_diversity(torch.as_tensor(varied), torch.as_tensor(labels), features, labels)
    assert set(out["per_class"]) == {0, 1, 2} and out["value"] == pytest.approx(1.0, abs=0.1)
    collapsed = features[:K][labels] + 0.01 * rng.normal(size=(300, D))  # one per class
    out = within_class_diversity(collapsed, labels, features, labels)
    assert out["value"] < 0.05 and "skipped" not in out
    half = varied.copy()
    half[labels == 0] = collapsed[labels == 0]  # one class collapsed: seen in its own entry and in the mean
    out = within_class_diversity(half, labels, features, labels)
    assert out["per_class"][0] < 0.05 < 0.9 < out["per_class"][1] and out["value"] == pytest.approx(2 / 3, abs=0.1)


def test_classes_missing_from_a_set_are_skipped_and_named(real):
    features, labels = real
    keep = labels != 2
    out = within_class_diversity(features[keep], labels[keep], features, labels)
    assert out["skipped"] == [2] and set(out["per_class"]) == {0, 1}
    assert out["value"] == pytest.approx(1.0, abs=1e-9)  # the real set against itself


@pytest.mark.parametrize(
    ("fake", "fake_labels", "match"),
    [
        (np.zeros((6, D + 1)), np.zeros(6, dtype=int), "dimensions"),
        (np.zeros((6, D)), np.zeros(5, dtype=int), "one label per sample"),
        (np.zeros((6, D)), np.zeros(6), "must be integers"),
        (np.full((6, D), np.nan), np.zeros(6, dtype=int), "NaN"),
        (np.zeros(6), np.zeros(6, dtype=int), r"\(N, D\)"),
        (np.zeros((1, D)), np.array([7]), "no class has 2 or more"),
    ],
)
def test_malformed_inputs_get_a_clear_error(real, fake, fake_labels, match):
    with pytest.raises(ValueError, match=match):
        within_class_diversity(fake, fake_labels, *real)


def test_per_class_recall_sees_collapse_within_a_class(real):
    features, labels = real
    rng = np.random.default_rng(2)
    varied = rng.normal(size=(300, D)) + 5 * labels[:, None]
    assert per_class_recall(varied, labels, features, labels)["value"] > 0.8
    collapsed = features[:K][labels] + 0.01 * rng.normal(size=(300, D))
    out = per_class_recall(collapsed, labels, features, labels)
    assert out["value"] < 0.2 and set(out["per_class"]) == {0, 1, 2}
    with pytest.raises(ValueError, match="neighborhood must be >= 1"):
        per_class_recall(varied, labels, features, labels, neighborhood=0)


def test_batch_class_diversity_in_pixels():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2])  # class 2 has one item: left out
    real = torch.randn(7, 1, 4, 4)
    assert batch_class_diversity(real.clone(), real, labels).item() == pytest.approx(1.0)
    collapsed = real[[0, 0, 0, 3, 3, 3, 6]]  # one image per class
    assert batch_class_diversity(collapsed, real, labels).item() == pytest.approx(0.0)
    assert batch_class_diversity(real, real, torch.arange(7)) is None  # no class with two items
