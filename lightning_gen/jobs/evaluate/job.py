"""The evaluate job itself: options in, report out (and ``main``, the command line around it)."""

from __future__ import annotations

import json
import os
import sys
import time

import torch

from lightning_gen.errors import run_job
from lightning_gen.io import atomic_write
from lightning_gen.jobs.evaluate.conditional import (
    CONDITIONAL_METRICS,
    check_class_request,
    class_distribution,
    default_class_metrics,
    sequence_class_scores,
    source_has_labels,
)
from lightning_gen.jobs.evaluate.dataset import build_datamodule, data_kind_of, resolve_data_spec
from lightning_gen.jobs.evaluate.options import (
    DEFAULT_METRICS,
    MODEL_METRICS,
    SEQUENCE_METRICS,
    EvaluateError,
    EvaluateOptions,
    build_parser,
    check_args,
)
from lightning_gen.jobs.evaluate.protocol import mark_protocol
from lightning_gen.jobs.evaluate.report import package_versions, print_table
from lightning_gen.jobs.evaluate.samples import labelled_samples
from lightning_gen.jobs.evaluate.scores import image_metrics, model_metrics, sequence_metrics
from lightning_gen.jobs.evaluate.trust import (
    MAX_TRAIN_ITEMS,
    SEQUENCE_TRUST_METRICS,
    flags,
    problems,
    sequence_mmd_floor,
    sequence_trust,
)
from lightning_gen.metrics.image import IMAGE_METRICS


def evaluate(args) -> dict:
    """Run the job; returns the report (also written to ``args.output`` when given). ``args``:
    :class:`EvaluateOptions`, or the namespace of :func:`build_parser`."""
    from lightning_gen.lightning_cli import apply_threads  # the one rule of `fit --threads`

    options = EvaluateOptions.of(args)
    threads_before = torch.get_num_threads()
    try:
        apply_threads(options.threads)
        return _evaluate(options)
    finally:  # the Python API (`api.evaluate`) leaves the caller's thread setting as it was
        torch.set_num_threads(threads_before)


def _chosen_metrics(options: EvaluateOptions, datamodule, kind: str) -> list[str]:
    default = DEFAULT_METRICS["piano_roll" if getattr(datamodule, "pitch_low", None) is not None else kind]
    metrics = list(options.metrics or default)
    own = (*IMAGE_METRICS, "memorization") if kind == "image" else (*SEQUENCE_METRICS, *SEQUENCE_TRUST_METRICS)
    allowed = own + CONDITIONAL_METRICS[kind] + MODEL_METRICS
    unknown = [m for m in metrics if m not in allowed]
    if unknown:
        raise EvaluateError(f"Unknown metric(s) {unknown} for {kind} data; choose from {list(allowed)}.")
    return metrics


def _load_generator(options: EvaluateOptions, kind: str, spec: dict):
    from lightning_gen.checkpoints import load_model

    model = load_model(options.source, map_location=options.device, allow_modules=options.allow)
    if getattr(model, "data_kind", None) != kind:
        raise EvaluateError(
            f"{options.source} holds a {type(model).__name__} (data kind {getattr(model, 'data_kind', None)!r}), "
            f"which does not generate {kind} data like {spec['class_path']}."
        )
    return model


def _class_metrics(options: EvaluateOptions, metrics, kind, datamodule, model) -> tuple[list[str], str]:
    """The metrics with the class scores a conditional source gets by default (none without ``--metrics`` for an
    unconditional one); explicit class scores that cannot be computed are refused. Also a note for the report."""
    labelled = source_has_labels(options.source, model)
    note = ""
    if options.metrics is None:
        extra, note = default_class_metrics(kind, labelled, datamodule, options.classifier)
        metrics = metrics + [m for m in extra if m not in metrics]
    check_class_request(metrics, kind, labelled, datamodule, options.classifier)
    return metrics, note


def _reference(options: EvaluateOptions, datamodule, kind, metrics, feature_dim: int | None):
    """The reference split (first ``--num-reference`` items), its size, its labels when a class score needs them
    (per-class scores; the sequence classifier's held-out accuracy), and what the report says about it: which split
    and why (``--split auto``: :func:`~lightning_gen.metrics.reference.choose_reference`)."""
    from lightning_gen.metrics.conditional import labelled_split
    from lightning_gen.metrics.reference import MIN_ITEMS_PER_FEATURE, choose_reference, split_items

    split, why = options.split, f"the {options.split} split, as asked (--split {options.split})"
    if split == "auto":
        split, why = choose_reference(datamodule, feature_dim if kind == "image" else None)
    labels = None
    class_scores = [m for m in metrics if m in CONDITIONAL_METRICS["image"] and m != "class_accuracy"]
    if kind == "sequence" and "class_accuracy" in metrics:
        reference, labels = labelled_split(datamodule, split, options.seed)
    else:
        reference, labels = split_items(datamodule, split)
        if class_scores and labels is None:
            raise EvaluateError(f"{class_scores} need the reference's labels, but the {split} split has none.")
    split_size, n = len(reference), options.num_reference
    if n:
        reference, labels = reference[:n], None if labels is None else labels[:n]
    info = {"split": split, "why": why, "items": len(reference), "trained_on": split == "train"}
    if kind == "image" and feature_dim and len(reference) < MIN_ITEMS_PER_FEATURE * feature_dim:
        info["warning"] = (
            f"SMALL REFERENCE: {len(reference):,} items for {feature_dim}-dimensional features (under "
            f"{MIN_ITEMS_PER_FEATURE} per dimension): FID is biased and can favour samples with too little variety; "
            "read KID, fid_inf, recall / coverage and the real data's own scores"
        )
    return reference, labels, split_size, info


def _train_items(datamodule, split: str, kind: str, metrics) -> tuple | None:
    """The training split (images and labels; its first ``MAX_TRAIN_ITEMS``) for the real data's own scores and the
    copying test; None when the reference is the training split itself or the data has none."""
    from lightning_gen.metrics.reference import split_items

    if kind != "image" or split == "train":
        return None
    try:  # the split's order is a random draw already: its first items are a random subset
        return split_items(datamodule, "train", MAX_TRAIN_ITEMS)
    except EvaluateError:
        return None


def _sample_metrics(options: EvaluateOptions, metrics, model, datamodule, kind, reference, spec, reference_labels,
                    reference_info, extractor=None):  # fmt: skip
    """The metrics of generated samples: their values, what the report says beside them, the samples, their labels
    (None when unconditional) and their source."""
    fake, labels, source_info = labelled_samples(
        options.source, model, datamodule, kind, reference, options.num_samples, options.batch_size, options.seed
    )
    num_classes = getattr(model, "num_classes", None) if model is not None else datamodule.num_classes
    if kind == "image":
        split = reference_info["split"]
        values, extra = image_metrics(
            metrics, reference, fake, spec,
            features=options.features, classifier=options.classifier, inception_weights=options.inception_weights,
            split=split, seed=options.seed, cache=options.cache, batch_size=options.batch_size,
            device=options.device, fake_labels=labels, reference_labels=reference_labels, num_classes=num_classes,
            train=_train_items(datamodule, split, kind, metrics), extractor=extractor,
        )  # fmt: skip
        return values, extra, fake, labels, source_info
    plain = [m for m in metrics if m not in CONDITIONAL_METRICS[kind] and m not in SEQUENCE_TRUST_METRICS]
    values, extra = {}, {"feature_extractor": None}
    if plain:
        values, extra = sequence_metrics(
            plain, reference, fake, datamodule, options.timegan, options.seed, options.device
        )
    sequence_mmd_floor(values, datamodule, reference, fake, reference_info["split"])
    values.update(sequence_trust(metrics, datamodule, reference, fake, reference_info["split"], options.seed))
    if "class_accuracy" in metrics:
        values.update(sequence_class_scores(datamodule, reference, reference_labels, fake, labels, options.seed))
    return values, extra, fake, labels, source_info


def _extractor(options: EvaluateOptions, kind: str, metrics) -> tuple[object | None, int | None]:
    """The image feature extractor when it is a classifier (loaded once: its dimension chooses the reference), and
    the feature dimension; Inception's is known without loading its weights (loaded where the features are)."""
    if kind != "image" or metrics == ["class_accuracy"]:  # the classifier alone: no features
        return None, None
    from lightning_gen.metrics.image import InceptionFeatures

    features = options.features or ("classifier" if options.classifier else "inception")
    if features == "inception":
        return None, InceptionFeatures.num_features
    from lightning_gen.jobs.evaluate.scores import feature_extractor

    extractor = feature_extractor(features, options.classifier, options.inception_weights)
    return extractor, extractor.num_features


def _evaluate(options: EvaluateOptions) -> dict:
    start = time.perf_counter()
    is_ckpt = options.source.endswith(".ckpt")
    if not is_ckpt and not os.path.exists(options.source):
        raise EvaluateError(f"{options.source} does not exist.")
    spec = resolve_data_spec(options.data, options.source if is_ckpt else None, options.data_arg, options.allow)
    datamodule = build_datamodule(spec)
    kind = data_kind_of(datamodule)
    metrics = _chosen_metrics(options, datamodule, kind)
    model = _load_generator(options, kind, spec) if is_ckpt else None
    metrics, class_note = _class_metrics(options, metrics, kind, datamodule, model)
    sample_metrics = [m for m in metrics if m not in MODEL_METRICS]
    extractor, dim = _extractor(options, kind, sample_metrics) if sample_metrics else (None, None)
    reference, reference_labels, split_size, reference_info = _reference(options, datamodule, kind, metrics, dim)
    values: dict[str, dict] = {}
    extra: dict = {"feature_extractor": None}
    fake = labels = None
    source_info = {"kind": "checkpoint", "path": options.source}
    if sample_metrics:
        values, extra, fake, labels, source_info = _sample_metrics(
            options, sample_metrics, model, datamodule, kind, reference, spec, reference_labels, reference_info,
            extractor,
        )  # fmt: skip
    if "elbo" in metrics:
        values.update(model_metrics(model, datamodule, _model_split(reference_info["split"]), options.device))
    deviations = mark_protocol(
        values, options.timegan, extra.get("feature_extractor"), len(reference), split_size, fake
    )
    questions = flags(values)
    if reference_info.get("warning"):
        questions.insert(0, {"kind": "small_reference", "message": reference_info["warning"]})
    if reference_info["trained_on"]:
        questions.insert(0, {"kind": "trained_on_reference", "message": f"the reference is {reference_info['why']}"})
    report = {
        "source": source_info,
        "dataset": {"class_path": spec["class_path"], "init_args": spec["init_args"]},
        "split": reference_info["split"],
        "reference": reference_info,
        "num_real": len(reference),
        "num_generated": 0 if fake is None else len(fake),
        "seed": options.seed,
        "metrics": values,
        **extra,
        "flags": questions,
        "problems": problems({"flags": questions}),
        # True only when some metric has a published protocol and every such metric followed it
        "comparable_with_published": deviations is not None and not deviations,
        "not_comparable_reasons": deviations or [],
        "versions": package_versions(),
        "device": str(options.device),
        "time_s": round(time.perf_counter() - start, 2),
    }
    if labels is not None:  # conditional samples: which labels were scored (unconditional reports are unchanged)
        report["conditional"] = {**class_distribution(labels, getattr(datamodule, "num_classes", None))}
        if class_note:
            report["conditional"]["note"] = class_note
    if options.output:
        with atomic_write(options.output) as f:  # an earlier report survives a failed run
            json.dump(report, f, indent=2, default=str)
    return report


def _model_split(split: str) -> str:
    """The split of a checkpoint's own ELBO terms: the test split for the reference ``held_out``."""
    return "test" if split == "held_out" else split


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _run(argv))


def _run(argv: list[str] | None) -> int:
    options = EvaluateOptions.of(build_parser().parse_args(argv))
    check_args(options)
    from lightning_gen.checkpoints import CheckpointError
    from lightning_gen.metrics.image import InceptionWeightsError

    try:
        report = evaluate(options)
    except (EvaluateError, CheckpointError, InceptionWeightsError, ValueError, FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_table(report)
    if options.output:
        print(f"wrote report: {options.output}")
    return 0
