"""The evaluate job's class scores of conditional samples: which to compute, the labelled reference, and
the scores themselves (:mod:`lightning_gen.metrics.conditional`).

Images: ``class_accuracy`` (the domain classifier of ``--classifier`` classifies each generated sample; the share
classified as its requested class) and ``class_fid`` (per-class FID on the FID's features, the mean over classes
as the value), ``class_recall`` (improved recall within each class) and ``class_diversity`` (within each class, the
samples' mean pairwise feature distance over the real items', 1.0 = as varied as the data;
:mod:`lightning_gen.metrics.diversity`): a model that draws one image per class has perfect class accuracy and
both near 0. Sequences: ``class_accuracy`` under a post-hoc classifier fit on the labelled training split. A
conditional source (a conditional checkpoint, or a samples file with ``labels``) gets them by default when the
data is labelled (images: and a classifier is given); unconditional sources are scored as before.
"""

from __future__ import annotations

import numpy as np
import torch

from lightning_gen.jobs.evaluate.options import EvaluateError

CONDITIONAL_METRICS = {
    "image": ("class_accuracy", "class_fid", "class_recall", "class_diversity"),
    "sequence": ("class_accuracy",),
}


def source_has_labels(source: str, model) -> bool:
    """Whether the samples scored carry class labels: a conditional checkpoint, or a samples file with ``labels``."""
    if model is not None:
        from lightning_gen.jobs.sample import is_conditional

        return is_conditional(model)
    if source.endswith(".npz"):
        try:
            with np.load(source, allow_pickle=False) as f:
                return "labels" in f.files
        except Exception:  # noqa: BLE001  (an unreadable file is reported where the samples are read)
            return False
    return False


def default_class_metrics(kind: str, labelled_source: bool, datamodule, classifier: str | None) -> tuple[list, str]:
    """The class scores a conditional source gets without ``--metrics``, and a note when some cannot be computed."""
    if not labelled_source:
        return [], ""
    if getattr(datamodule, "num_classes", None) is None:
        return [], "the samples carry labels but the dataset has none: no class scores (give a labelled --data)"
    if kind == "image" and not classifier:
        return [], "class_accuracy and class_fid need the domain classifier: give --classifier CKPT"
    return list(CONDITIONAL_METRICS[kind]), ""


def check_class_request(metrics: list[str], kind: str, labelled_source: bool, datamodule, classifier) -> None:
    """Class scores asked of unlabelled samples, unlabelled data, or images without a classifier: a clear error."""
    asked = [m for m in metrics if m in CONDITIONAL_METRICS[kind]]
    if not asked:
        return
    if not labelled_source:
        raise EvaluateError(
            f"{asked} score conditional samples, but these carry no class labels: evaluate a conditional checkpoint "
            "or a samples .npz that `lightning-gen sample` wrote from one (it holds `labels`)."
        )
    if getattr(datamodule, "num_classes", None) is None:
        raise EvaluateError(
            f"{asked} compare with the dataset's labels, but {type(datamodule).__name__} yields none: give --data "
            "with the labelled dataset the model was trained on (for sequences, its `condition` option)."
        )
    if kind == "image" and not classifier:
        raise EvaluateError(
            f"{asked} need the domain classifier: give --classifier CKPT (trained with `lightning-gen fit --config "
            "configs/classifier/<dataset>.yaml`)."
        )


def class_distribution(labels: torch.Tensor, num_classes: int | None) -> dict:
    """What the report records about the generated labels: the number of classes and the samples of each."""
    k = num_classes or int(labels.max()) + 1
    return {"num_classes": k, "samples_per_class": torch.bincount(labels, minlength=k).tolist()}


def _load_classifier(path: str, allow=()):
    from lightning_gen.checkpoints import load_model
    from lightning_gen.metrics.image import ClassifierFeatures

    return ClassifierFeatures(load_model(path, allow_modules=allow), path)


def image_class_scores(
    metrics: list[str],
    fake_labels: torch.Tensor,
    reference_labels: torch.Tensor | None,
    fake_feats: dict | None,
    real_feats: dict | None,
    extractor,
    classifier: str,
    num_classes: int | None,
    fake: torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> dict:
    """``class_accuracy`` from the domain classifier's logits (those of the FID's extractor when that is the
    classifier, else the classifier is run on ``fake``) and ``class_fid`` on the FID's features."""
    from lightning_gen.metrics import conditional as C
    from lightning_gen.metrics.image import ClassifierFeatures, extract_features

    out: dict[str, dict] = {}
    if "class_accuracy" in metrics:
        domain = extractor if isinstance(extractor, ClassifierFeatures) else _load_classifier(classifier)
        known = int(domain.network.num_classes)
        if num_classes is not None and known != num_classes:
            raise EvaluateError(
                f"The classifier {classifier} knows {known} classes but the samples' model has {num_classes}: give "
                "the classifier of the dataset the model was trained on."
            )
        if domain is extractor:
            logits = fake_feats["logits"]
        else:
            logits = extract_features(domain, fake, batch_size, device)["logits"]
        entry = C.class_accuracy_from_logits(logits, fake_labels)
        provenance = domain.provenance()
        from lightning_gen.checkpoints import resolve_checkpoint  # a run folder names its newest last.ckpt

        where = str(resolve_checkpoint(classifier))
        entry["classifier"] = {"checkpoint": where, "weights_sha256": provenance["weights_sha256"]}
        out["class_accuracy"] = entry
    if "class_fid" in metrics:
        k = num_classes or int(max(fake_labels.max(), reference_labels.max())) + 1
        entry = C.per_class_fid(real_feats["features"], reference_labels, fake_feats["features"], fake_labels, k)
        entry["features"] = extractor.name
        out["class_fid"] = entry
    out.update(_class_variety(metrics, fake_labels, reference_labels, fake_feats, real_feats, extractor))
    return out


def _class_variety(metrics, fake_labels, reference_labels, fake_feats, real_feats, extractor) -> dict:
    """``class_recall`` and ``class_diversity`` on the FID's features (:mod:`lightning_gen.metrics.diversity`)."""
    from lightning_gen.metrics.diversity import per_class_recall, within_class_diversity

    out = {}
    for name, score in (("class_recall", per_class_recall), ("class_diversity", within_class_diversity)):
        if name in metrics:
            entry = score(fake_feats["features"], fake_labels, real_feats["features"], reference_labels)
            entry["per_class"] = {str(c): round(v, 4) for c, v in entry["per_class"].items()}
            out[name] = {**entry, "features": extractor.name}
    return out


def sequence_class_scores(
    datamodule, reference: torch.Tensor, reference_labels: torch.Tensor, fake, fake_labels, seed: int = 0
) -> dict:
    """``class_accuracy`` of generated sequences (in the data's original scale) under a post-hoc classifier fit on
    the labelled training split; the real ``reference`` split's accuracy is its ``reference_value``."""
    from lightning_gen.metrics.conditional import labelled_split, sequence_class_accuracy

    train_x, train_y = labelled_split(datamodule, "train", seed)
    train_x, reference = train_x.numpy(), reference.numpy()
    if getattr(datamodule, "scale_data", True):  # fake is in the data's scale (see scores.sequence_metrics)
        train_x, reference = datamodule.inverse_scale(train_x), datamodule.inverse_scale(reference)
    fake = fake.numpy() if torch.is_tensor(fake) else np.asarray(fake)
    if fake.ndim != 3 or fake.shape[1:] != train_x.shape[1:]:
        raise EvaluateError(
            f"class_accuracy: generated sequences have shape (T, D) = {tuple(fake.shape[1:])}, the training "
            f"sequences {tuple(train_x.shape[1:])}; sample at the training length (--length {train_x.shape[1]})."
        )
    entry = sequence_class_accuracy(train_x, train_y, fake, fake_labels, reference, reference_labels, seed)
    entry["train_sequences"] = len(train_x)
    return {"class_accuracy": entry}
