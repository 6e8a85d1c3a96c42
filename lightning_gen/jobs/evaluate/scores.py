"""The evaluate job's dispatch: image metrics (on cached reference features), sequence metrics (TimeGAN's scores,
MMD, music statistics) and a checkpoint's own ELBO terms. Each returns ``{metric: {"value": ...}}``."""

from __future__ import annotations

import numpy as np
import torch

from lightning_gen.jobs.evaluate.cache import reference_features
from lightning_gen.jobs.evaluate.conditional import CONDITIONAL_METRICS
from lightning_gen.jobs.evaluate.options import EvaluateError, FeatureCache, TimeGANSettings
from lightning_gen.jobs.evaluate.trust import attach_floor, copying_entry, floor_count, safe_scores, subset
from lightning_gen.metrics.image import check_images


def feature_extractor(features: str, classifier: str | None = None, inception_weights: str | None = None):
    """The image feature extractor ``features`` (``inception`` or ``classifier``). A ``classifier`` checkpoint is
    read by the audited loader (:func:`lightning_gen.checkpoints.load_model`), the one path that loads one."""
    from lightning_gen.metrics.image import build_extractor

    model = None
    if classifier is not None and features == "classifier":
        from lightning_gen.checkpoints import load_model

        model = load_model(classifier)
    return build_extractor(features, model, inception_weights, source=classifier)


def image_metrics(
    metrics: list[str],
    reference: torch.Tensor,
    fake: torch.Tensor,
    spec: dict,
    *,
    features: str | None,
    classifier: str | None,
    inception_weights: str | None,
    split: str,
    seed: int,
    cache: FeatureCache,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    fake_labels: torch.Tensor | None = None,
    reference_labels: torch.Tensor | None = None,
    num_classes: int | None = None,
    train: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    extractor=None,
) -> tuple[dict, dict]:
    """FID / FID-infinity / KID / IS / precision-recall / density-coverage of ``fake`` against ``reference`` on
    ``features`` (default: classifier when a ``classifier`` checkpoint is given, else inception), with the
    reference features from ``cache``; for conditional samples (``fake_labels``) the class scores
    (:mod:`lightning_gen.jobs.evaluate.conditional`). With ``train`` (the training split's images and labels): the
    real data's own scores beside each, and the copying test (``memorization``) (:mod:`~.trust`)."""
    from lightning_gen.jobs.evaluate.conditional import image_class_scores
    from lightning_gen.metrics.image import IMAGE_METRICS, extract_features, image_metrics_from_features

    fake = check_images(fake, "generated samples", dims=tuple(reference.shape[1:]))
    plain = [m for m in metrics if m in IMAGE_METRICS]
    if plain == [] and metrics == ["class_accuracy"]:  # the classifier alone: no features, no reference
        scores = image_class_scores(metrics, fake_labels, None, None, None, None, classifier, num_classes, fake,
                                    batch_size, device)  # fmt: skip
        return scores, {"feature_extractor": None}
    features = features or ("classifier" if classifier else "inception")
    extractor = extractor or feature_extractor(features, classifier, inception_weights)
    provenance = _provenance(extractor, classifier, features, metrics, len(fake), len(reference))
    real_feats, cache_info = reference_features(
        extractor, reference, spec, provenance, split, seed, cache, batch_size, device
    )
    fake_feats = extract_features(extractor, fake, batch_size, device)

    def class_scores(fake_f, fake_y, images):
        return image_class_scores(metrics, fake_y, reference_labels, fake_f, real_feats, extractor, classifier,
                                  num_classes, images, batch_size, device)  # fmt: skip

    values = safe_scores(lambda names: image_metrics_from_features(real_feats, fake_feats, names), plain)
    conditional = fake_labels is not None and len(plain) < len(metrics)
    if conditional:
        values.update(class_scores(fake_feats, fake_labels, fake))
    extra = {"feature_extractor": provenance, "reference_cache": cache_info}
    if train is None:
        if "memorization" in metrics:
            values["memorization"] = {"value": None, "not_computed": "no training split to compare with"}
        return values, extra
    n = floor_count(len(fake), len(train[0]))  # the real data's own scores: as many training items as samples
    train_feats, _ = reference_features(extractor, train[0][:n], spec, provenance, "train", seed, cache, batch_size,
                                        device)  # fmt: skip
    scored = [m for m in plain if "not_computed" not in values[m] and m != "is"]
    real, matched = _floors(scored, real_feats, train_feats, fake_feats, n)
    if conditional and train[1] is not None and reference_labels is not None:
        real.update(_class_floor(metrics, class_scores, train, train_feats, n))
        if matched is not None:
            matched.update(_class_floor(metrics, class_scores, (fake, fake_labels), fake_feats, n))
    attach_floor(values, real, matched, n, "the training split's first items")
    if "memorization" in metrics:
        values["memorization"] = copying_entry(train[0], reference, fake, seed, split)
    extra["real_floor"] = {"items": "the training split", "n": n, "against": split}
    return values, extra


def _provenance(extractor, classifier, features: str, metrics, num_fake: int, num_real: int) -> dict:
    """What the report records about the extractor; FID with fewer samples than features is refused."""
    provenance = extractor.provenance()
    if classifier:
        from lightning_gen.checkpoints import resolve_checkpoint  # a run folder names its newest last.ckpt

        provenance["checkpoint"] = str(resolve_checkpoint(classifier))
    dim = provenance["num_features"]
    if "fid" in metrics and min(num_fake, num_real) < dim:
        raise EvaluateError(
            f"FID with {dim}-dimensional {features} features needs at least {dim} samples per set; got "
            f"{num_fake} generated and {num_real} reference. Use more samples (or another split)."
        )
    return provenance


def _floors(names, real_feats, train_feats, fake_feats, n) -> tuple[dict, dict | None]:
    """The real data's own scores (``n`` training items against the reference) and the samples' at that count
    (None when they are that many already)."""
    from lightning_gen.metrics.image import image_metrics_from_features

    train_n = subset(train_feats, n)
    real = safe_scores(lambda names: image_metrics_from_features(real_feats, train_n, names), names, ())
    if n >= len(fake_feats["features"]):
        return real, None
    fake_n = subset(fake_feats, n)
    return real, safe_scores(lambda names: image_metrics_from_features(real_feats, fake_n, names), names, ())


def _class_floor(metrics, class_scores, items, feats, n) -> dict:
    """The class scores of the first ``n`` of ``items`` (images and their labels)."""
    asked = [m for m in metrics if m in CONDITIONAL_METRICS["image"]]
    if not asked:
        return {}
    images, labels = items
    try:
        scores = class_scores(subset(feats, n), labels[:n], images[:n])
    except ValueError:  # too few items of some class at this count: no floor for the class scores
        return {}
    return {k: v for k, v in scores.items() if k in asked}


def sequence_metrics(
    metrics: list[str],
    reference: torch.Tensor,
    fake: torch.Tensor,
    datamodule,
    timegan: TimeGANSettings,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[dict, dict]:
    """TimeGAN's scores (trained as ``timegan`` says, seeded with ``seed``), MMD and, for piano rolls, the music
    statistics of ``fake`` against ``reference``."""
    from lightning_gen.metrics import music as M
    from lightning_gen.metrics import timegan as S

    reference = S.check_sequences(reference, "reference")
    fake = S.check_sequences(fake, "generated samples", dim=reference.shape[2])
    from lightning_gen.metrics.timegan import original_scale_with_lengths

    # both sets in the data's original scale (and, for sequences of different lengths, their lengths)
    reference, fake, lengths = original_scale_with_lengths(reference, fake, datamodule)
    if fake.shape[1] != reference.shape[1]:
        raise EvaluateError(
            f"Generated sequences have length {fake.shape[1]}, the reference split {reference.shape[1]}: sample "
            f"with --length {reference.shape[1]}."
        )
    # One code path with benchmarks/bench_sines.py: both sets in the data's original scale, scored as they are
    # when that lies in [0, 1] (TimeGAN's sines), else min-max scaled with the training split's range.
    from lightning_gen.metrics.sequence_scores import EXTRA_SEQUENCE_METRICS, extra_sequence_scores

    scores = [m for m in metrics if m != "music" and m not in EXTRA_SEQUENCE_METRICS]
    out, info = S.sequence_scores(
        reference, fake, scores, timegan.disc_iterations, timegan.pred_iterations, timegan.repeats, seed, device,
        datamodule.data_min, datamodule.data_max, **lengths,
    )  # fmt: skip
    extra = [m for m in metrics if m in EXTRA_SEQUENCE_METRICS]
    if extra:  # in the same space, each with the real data's own score (one half of the reference against the other)
        real_s, fake_s, _ = S.scoring_space(reference, fake, datamodule.data_min, datamodule.data_max)
        out.update(extra_sequence_scores(real_s, fake_s, extra, timegan.repeats, seed))
    info["scaling"] = getattr(datamodule, "scaling_note", None) or info["scaling"]  # e.g. TimeGAN's stocks / energy
    if timegan.repeats == 1:  # one run has no spread: a std of 0 would read as a certain score
        for entry in out.values():
            entry.pop("std", None)
            entry.pop("reference_std", None)
    if "music" in metrics:
        pitch_low = getattr(datamodule, "pitch_low", None)
        if pitch_low is None:
            raise EvaluateError("The `music` metric needs piano-roll data (e.g. ChoralesDataModule).")
        to_rolls = getattr(datamodule, "to_rolls", np.asarray)  # chorales as voices: the four pitches as a roll
        rolls = [to_rolls(np.asarray(x)) for x in (reference, fake)]
        for stat, pair in M.compare_music_statistics(*rolls, int(pitch_low)).items():
            out[f"music/{stat}"] = {"value": pair["generated"], "reference_value": pair["real"]}
    if "discriminative" in out and getattr(datamodule, "pitch_low", None) is not None and len(reference) >= 10:
        from lightning_gen.metrics.music import real_halves  # piano rolls: the real windows' own score beside it

        halves = real_halves(reference, seed)  # binary windows
        floor = S.discriminative_score(*halves, timegan.disc_iterations, 128, timegan.repeats, seed, device)[0]
        out["discriminative"]["reference_value"] = floor
    return out, {"feature_extractor": None, **info}


def model_metrics(model, datamodule, split: str, device: str | torch.device = "cpu") -> dict:
    """The model's own ``split`` terms (``test/elbo`` ...), from Lightning's test / validate loop."""
    if model is None:
        raise EvaluateError("`elbo` needs a checkpoint (the model's own likelihood terms), not a samples file.")
    if split == "train":
        raise EvaluateError("`elbo` is computed on the val or test split.")
    import pytorch_lightning as pl

    trainer = pl.Trainer(
        accelerator="cpu" if str(device) == "cpu" else "auto",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    run = trainer.test if split == "test" else trainer.validate
    results = run(model, datamodule=datamodule, verbose=False)[0]
    terms = {k: float(v) for k, v in results.items() if k.endswith(("elbo", "nll", "kl", "recon"))}
    if not terms:
        raise EvaluateError(f"{type(model).__name__} logs no ELBO / NLL terms on the {split} split.")
    return {k: {"value": v} for k, v in sorted(terms.items())}
