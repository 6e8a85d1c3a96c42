"""``lightning-gen evaluate SOURCE``: metrics of generated samples against a dataset's reference split.

SOURCE is a checkpoint of any model family (it is sampled), a samples ``.npz`` written by ``lightning-gen
sample``, or a folder of images. The dataset comes from ``--data CONFIG.yaml`` (the ``data:`` section of a
training config), else from the checkpoint (Lightning stores the DataModule's arguments) or the
``config.yaml`` LightningCLI wrote beside it.

Images: ``fid`` (default), ``kid``, ``is``, ``precision_recall`` on ``inception`` or ``classifier`` features
(:mod:`lightning_gen.metrics.image`); reference features are cached in ``data/metric_cache/``, keyed by
everything that changes them. Sequences: ``discriminative``, ``predictive`` (TimeGAN), ``mmd``, ``music``
(piano rolls) (:mod:`lightning_gen.metrics.sequence`). Both: ``elbo`` (a checkpoint's own test-split terms,
for VAE-type models).

The JSON report (``--output``) records beside each value the feature extractor and the SHA-256 of its
weights, the resize rule, the numbers of real and generated samples, the split, the seed and the package
versions; a table is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from lightning_gen.checkpoints import add_allow_module_argument
from lightning_gen.errors import UserError, check_device, check_int, check_output, run_job
from lightning_gen.io import atomic_write
from lightning_gen.metrics.image import IMAGE_METRICS, check_images

SEQUENCE_METRICS = ("discriminative", "predictive", "mmd", "music")
MODEL_METRICS = ("elbo",)
DEFAULT_METRICS = {
    "image": ["fid"],
    "sequence": ["discriminative", "predictive", "mmd"],
    "piano_roll": ["discriminative", "mmd", "music"],
}
NO_EFFECT_DATA_ARGS = ("batch_size", "num_workers", "progress", "_instantiator")  # do not change the data

# -- the published protocols (issue 16: a short evaluation must not look like a published score) ---------------
#: TimeGAN's reference code (Yoon et al. 2019, ``metrics/`` and ``main_timegan.py``): the post-hoc GRU trains for
#: 2,000 (discriminative) / 5,000 (predictive) iterations of batch 128, the mean of 10 runs (``metric_iteration``)
#: is reported, and as many sequences are generated as there are real ones.
TIMEGAN_ITERATIONS = {"discriminative": 2000, "predictive": 5000}
TIMEGAN_REPEATS = 10
#: Inception-feature image metrics: the fewest samples per set (generated and real) of the published numbers. FID
#: and KID are biased upward by small sets (Heusel et al. 2017 ask for 10,000 or more); the Inception Score is
#: published on 50,000 samples in 10 splits (Salimans et al. 2016); precision / recall as FID here.
IMAGE_MIN_SAMPLES = {"fid": 10000, "kid": 10000, "precision_recall": 10000, "is": 50000}
NOT_COMPARABLE = "not comparable with published scores"


class EvaluateError(UserError):
    """Bad input to the evaluate job: the message says what was wrong and what to do."""


# -- the dataset ------------------------------------------------------------------------------------
def _data_section(config: dict, where: str) -> dict:
    section = config.get("data", config) if isinstance(config, dict) else None
    if not isinstance(section, dict) or not isinstance(section.get("class_path"), str):
        raise EvaluateError(f"{where} names no dataset (expected a `data:` section with `class_path`).")
    return {"class_path": section["class_path"], "init_args": dict(section.get("init_args") or {})}


def resolve_data_spec(data: str | None, checkpoint: str | None, data_args: list[str], allow=()) -> dict:
    """``{"class_path", "init_args"}`` of the reference dataset, with ``--data-arg KEY=VALUE`` applied."""
    if data is not None:
        if not os.path.isfile(data):
            raise EvaluateError(f"--data {data}: no such file (give a YAML config with a `data:` section).")
        with open(data) as f:
            spec = _data_section(yaml.safe_load(f), data)
    elif checkpoint is not None:
        spec = _spec_from_checkpoint(checkpoint, allow)
    else:
        raise EvaluateError(
            "Which dataset? Give --data CONFIG.yaml (e.g. configs/gan/digits.yaml: its `data:` section names the "
            "dataset and split settings)."
        )
    for item in data_args:
        key, sep, value = item.partition("=")
        if not sep:
            raise EvaluateError(f"--data-arg {item!r}: expected KEY=VALUE (e.g. data_dir=data).")
        spec["init_args"][key] = yaml.safe_load(value)
    return spec


def _spec_from_checkpoint(checkpoint: str, allow=()) -> dict:
    from lightning_gen.checkpoints import load_checkpoint

    ckpt = load_checkpoint(checkpoint, allow)  # audited: nothing it names is imported unless allowed
    hp = dict(ckpt.get("datamodule_hyper_parameters") or {})
    if isinstance(hp.get("_class_path"), str):
        class_path = hp.pop("_class_path")
        hp.pop("_instantiator", None)
        return {"class_path": class_path, "init_args": hp}
    config = Path(checkpoint).resolve().parent.parent / "config.yaml"  # version_N/checkpoints/x.ckpt
    if config.is_file():
        with open(config) as f:
            return _data_section(yaml.safe_load(f), str(config))
    raise EvaluateError(
        f"{checkpoint} does not record its dataset and no config.yaml lies beside its run; give --data CONFIG.yaml."
    )


def build_datamodule(spec: dict):
    class_path = spec["class_path"]
    if not class_path.startswith("lightning_gen."):
        raise EvaluateError(f"Dataset class {class_path!r} is outside lightning_gen; refused.")
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise EvaluateError(f"Unknown dataset class {class_path!r} ({err}).") from err
    return cls(**spec["init_args"])


def reference_split(datamodule, split: str, limit: int | None, seed: int) -> torch.Tensor:
    """Every item of a split, as the model sees it: images mapped to [0, 1], sequences in [0, 1]."""
    if split not in ("train", "val", "test"):
        raise EvaluateError(f"--split must be train, val or test, got {split!r}.")
    datamodule.prepare_data()
    datamodule.setup("fit" if split in ("train", "val") else "test")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        batches = [datamodule.on_after_batch_transfer(b, 0)[0] for b in getattr(datamodule, f"{split}_dataloader")()]
    if not batches:
        raise EvaluateError(f"The {split} split of {type(datamodule).__name__} is empty; choose another --split.")
    x = torch.cat(batches).float()
    if x.dim() == 4:  # images come in [-1, 1]
        x = (x + 1) / 2
    return x[:limit] if limit else x


def data_kind_of(datamodule) -> str:
    return "sequence" if hasattr(datamodule, "data_min") else "image"


# -- the generated samples --------------------------------------------------------------------------
def generated_samples(args, model, datamodule, kind: str, reference: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Generated samples in the reference's space, and how they were obtained."""
    source = args.source
    if model is not None:
        from lightning_gen.sample import draw

        n = args.num_samples or (10000 if kind == "image" else len(reference))
        torch.manual_seed(args.seed)
        if kind == "image":
            x = (draw(model, n, args.batch_size).clamp(-1, 1) + 1) / 2
        else:
            x = draw(model, n, args.batch_size, length=reference.shape[1])
            if getattr(datamodule, "pitch_low", None) is not None:
                x = (x > 0.5).float()  # binary rolls like the reference (and the sample job's files)
            else:  # the data's original scale, like a samples file (see sequence_metrics)
                x = model.to_original(x)
        return x, {"kind": "checkpoint", "path": source, "model": type(model).__name__, "drawn": n}
    if os.path.isdir(source):
        if kind != "image":
            raise EvaluateError(f"{source} is a folder: folders hold images, but the dataset holds sequences.")
        from lightning_gen.data.images import ImageFolderDataModule

        c, h, _ = reference.shape[1:]
        images, _, _ = ImageFolderDataModule(source, channels=c, img_size=h).load()
        x = images.float() / 255.0
        info = {"kind": "image folder", "path": source, "resize": f"PIL bicubic to {h}x{h}, {c} channel(s)"}
    elif source.endswith(".npz"):
        x, info = _from_npz(source, kind, datamodule)
    else:
        raise EvaluateError(f"{source}: give a .ckpt, a samples .npz from `lightning-gen sample`, or an image folder.")
    if args.num_samples:
        if args.num_samples > len(x):
            raise EvaluateError(f"--num-samples {args.num_samples}, but {source} holds only {len(x)} samples.")
        x = x[: args.num_samples]
    return x, info


def _from_npz(path: str, kind: str, datamodule) -> tuple[torch.Tensor, dict]:
    if not os.path.isfile(path):
        raise EvaluateError(f"{path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "samples" not in f:
                raise EvaluateError(
                    f"{path} has no `samples` array (it holds {list(f.keys())}); write it with `lightning-gen sample`."
                )
            samples = f["samples"]
    except EvaluateError:
        raise
    except Exception as err:  # noqa: BLE001  (a truncated zip, pickled objects, garbage: many exception types)
        raise EvaluateError(f"{path} is not a readable samples .npz ({type(err).__name__}: {err}).") from None
    if samples.ndim == 0 or len(samples) == 0:
        raise EvaluateError(f"{path} holds no samples (`samples` has shape {samples.shape}).")
    if not np.issubdtype(samples.dtype, np.number) or np.issubdtype(samples.dtype, np.complexfloating):
        raise EvaluateError(f"{path}: `samples` must hold real numbers, not {samples.dtype}.")
    info = {"kind": "samples file", "path": path, "sha256": _file_sha256(path)}
    if kind == "image":
        return torch.from_numpy(samples), info
    if samples.ndim != 3:
        raise EvaluateError(f"{path}: sequences must be shaped (N, T, D), got {samples.shape}.")
    if not np.isfinite(samples).all():
        raise EvaluateError(f"{path}: the samples contain NaN or infinite values.")
    # the sample job writes sequences in the data's original scale: kept so (see sequence_metrics)
    return torch.from_numpy(np.asarray(samples, dtype=np.float32)), info


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- image metrics with cached reference features ---------------------------------------------------
def reference_features(args, extractor, reference: torch.Tensor, spec: dict, provenance: dict) -> tuple[dict, dict]:
    """Features of the reference images, from ``data/metric_cache`` when the same key was computed before."""
    from lightning_gen.metrics.image import extract_features

    key_fields = {
        "dataset": spec["class_path"],
        "init_args": {k: v for k, v in sorted(spec["init_args"].items()) if k not in NO_EFFECT_DATA_ARGS},
        "split": args.split,
        "num_reference": len(reference),
        "seed": args.seed if args.split == "train" else None,  # only the shuffled train loader depends on it
        "extractor": provenance["name"],
        "weights_sha256": provenance["weights_sha256"],
        "resize_rule": provenance["resize_rule"],
        "torch": torch.__version__,
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = Path(args.cache_dir) / f"reference_{provenance['name']}_{key}.npz"
    cache = {"path": str(path), "key": key_fields, "hit": False}
    if not args.no_cache and path.is_file():
        with np.load(path) as f:
            cache["hit"] = True
            return {"features": torch.from_numpy(f["features"]), "logits": torch.from_numpy(f["logits"])}, cache
    feats = extract_features(extractor, reference, args.batch_size, args.device)
    if not args.no_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
        np.savez(tmp, features=feats["features"].numpy(), logits=feats["logits"].numpy())
        with atomic_write(path.with_suffix(".json")) as f:
            json.dump(key_fields, f, indent=2, default=str)
        os.replace(tmp, path)  # atomic: a half-written cache is never read
    return feats, cache


def image_metrics(args, metrics, reference, fake, spec) -> tuple[dict, dict]:
    from lightning_gen.metrics.image import build_extractor, extract_features, image_metrics_from_features

    fake = check_images(fake, "generated samples", dims=tuple(reference.shape[1:]))
    features = args.features or ("classifier" if args.classifier else "inception")
    extractor = build_extractor(features, args.classifier, args.inception_weights)
    provenance = extractor.provenance()
    if args.classifier:
        provenance["checkpoint"] = args.classifier
    dim = provenance["num_features"]
    if "fid" in metrics and min(len(fake), len(reference)) < dim:
        raise EvaluateError(
            f"FID with {dim}-dimensional {features} features needs at least {dim} samples per set; got "
            f"{len(fake)} generated and {len(reference)} reference. Use more samples (or another split)."
        )
    real_feats, cache = reference_features(args, extractor, reference, spec, provenance)
    fake_feats = extract_features(extractor, fake, args.batch_size, args.device)
    values = image_metrics_from_features(real_feats, fake_feats, metrics)
    return values, {"feature_extractor": provenance, "reference_cache": cache}


# -- sequence metrics -------------------------------------------------------------------------------
def sequence_metrics(args, metrics, reference, fake, datamodule) -> tuple[dict, dict]:
    from lightning_gen.metrics import sequence as S

    reference = S.check_sequences(reference, "reference")
    fake = S.check_sequences(fake, "generated samples", dim=reference.shape[2])
    if fake.shape[1] != reference.shape[1]:
        raise EvaluateError(
            f"Generated sequences have length {fake.shape[1]}, the reference split {reference.shape[1]}: sample "
            f"with --length {reference.shape[1]}."
        )
    # One code path with benchmarks/bench_sines.py: both sets in the data's original scale, scored as they are
    # when that lies in [0, 1] (TimeGAN's sines), else min-max scaled with the training split's range.
    if getattr(datamodule, "scale_data", True):
        reference = datamodule.inverse_scale(reference)
    scores = [m for m in metrics if m != "music"]
    out, info = S.sequence_scores(
        reference, fake, scores, args.disc_iterations, args.pred_iterations, args.repeats, args.seed, args.device,
        datamodule.data_min, datamodule.data_max,
    )  # fmt: skip
    if args.repeats == 1:  # one run has no spread: a std of 0 would read as a certain score
        for entry in out.values():
            entry.pop("std", None)
            entry.pop("reference_std", None)
    if "music" in metrics:
        pitch_low = getattr(datamodule, "pitch_low", None)
        if pitch_low is None:
            raise EvaluateError("The `music` metric needs piano-roll data (e.g. ChoralesDataModule).")
        for stat, pair in S.compare_music_statistics(reference, fake, int(pitch_low)).items():
            out[f"music/{stat}"] = {"value": pair["generated"], "reference_value": pair["real"]}
    return out, {"feature_extractor": None, **info}


def model_metrics(args, model, datamodule) -> dict:
    """The model's own test-split terms (``test/elbo`` ...), from Lightning's test / validate loop."""
    if model is None:
        raise EvaluateError("`elbo` needs a checkpoint (the model's own likelihood terms), not a samples file.")
    if args.split == "train":
        raise EvaluateError("`elbo` is computed on the val or test split.")
    import pytorch_lightning as pl

    trainer = pl.Trainer(
        accelerator="cpu" if str(args.device) == "cpu" else "auto",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    run = trainer.test if args.split == "test" else trainer.validate
    results = run(model, datamodule=datamodule, verbose=False)[0]
    terms = {k: float(v) for k, v in results.items() if k.endswith(("elbo", "nll", "kl", "recon"))}
    if not terms:
        raise EvaluateError(f"{type(model).__name__} logs no ELBO / NLL terms on the {args.split} split.")
    return {k: {"value": v} for k, v in sorted(terms.items())}


# -- report -----------------------------------------------------------------------------------------
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("lightning_gen", "torch", "torchvision", "pytorch_lightning", "torchmetrics", "torch_fidelity"):
        try:
            out[name] = importlib.import_module(name).__version__
        except (ImportError, AttributeError):
            out[name] = "not installed" if name != "lightning_gen" else _own_version()
    for name in ("numpy", "scipy", "sklearn"):
        out[name] = importlib.import_module(name).__version__
    return out


def _own_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lightning-gen")
    except PackageNotFoundError:
        return "unknown"


def _spread(entry: dict) -> tuple[str, str]:
    """The table's ``± std`` cell and the number of runs behind it: no spread for a single run (``n=1``)."""
    runs = entry.get("repeats")
    if runs == 1:
        return "", "n=1 (no spread)"
    std = f"{entry['std']:.4g}" if entry.get("std") is not None else ""
    return std, (f"n={runs}" if runs else "")


def _row(name: str, entry: dict) -> tuple[str, str, str, str]:
    """One table row: metric, value (``*`` when not comparable with published scores), ± std, note."""
    mark = " *" if entry.get("not_comparable") else ""
    if name == "precision_recall":
        return name, f"P {entry['precision']:.4f}  R {entry['recall']:.4f}{mark}", "", f"k={entry['k']}"
    std, runs = _spread(entry)
    shown = ("value", "std", "reference_value", "reference_std", "repeats", "comparable_with_published")
    extras = {k: v for k, v in entry.items() if k not in (*shown, "not_comparable")}
    notes = [f"reference {entry['reference_value']:.4g}"] if "reference_value" in entry else []
    notes += [runs] if runs else []
    if extras and "reference_value" not in entry:
        notes.append(", ".join(f"{k}={v}" for k, v in extras.items()))
    return name, f"{entry['value']:.6g}{mark}", std, "; ".join(notes)


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    extractor = report.get("feature_extractor") or {}
    table = Table(title=f"lightning-gen evaluate: {report['source']['path']}")
    for column in ("metric", "value", "± std", "reference / note"):
        table.add_column(column)
    for name, entry in report["metrics"].items():
        table.add_row(*_row(name, entry))
    console = Console()
    console.print(table)
    lines = [
        f"dataset {report['dataset']['class_path']} split={report['split']}  real n={report['num_real']}  "
        f"generated n={report['num_generated']}  seed={report['seed']}"
    ]
    if extractor:
        lines.append(
            f"features {extractor['name']} (sha256 {extractor['weights_sha256'][:16]}...)  {extractor['note']}"
        )
        lines.append(f"resize: {extractor['resize_rule']}")
    if "scaling" in report:
        lines.append(f"scaling: {report['scaling']}")
        share = report["out_of_range_share"]
        lines.append(f"generated values outside the real range: {share:.2%} (scored as they are)")
    reasons = report.get("not_comparable_reasons") or []
    if reasons:
        lines.append(f"* {NOT_COMPARABLE.upper()}: " + "; ".join(reasons) + ".")
    elif report.get("comparable_with_published"):
        lines.append("settings of the published protocol (compare only on the same dataset and split)")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


def timegan_deviations(name: str, args, num_real: int, num_generated: int) -> list[str]:
    """How the settings of TimeGAN score ``name`` differ from TimeGAN's protocol (empty: they do not)."""
    reasons = []
    flag = "--disc-iterations" if name == "discriminative" else "--pred-iterations"
    iterations = args.disc_iterations if name == "discriminative" else args.pred_iterations
    if iterations != TIMEGAN_ITERATIONS[name]:
        reasons.append(f"{flag} {iterations:,} (TimeGAN: {TIMEGAN_ITERATIONS[name]:,})")
    if args.repeats != TIMEGAN_REPEATS:
        reasons.append(f"--repeats {args.repeats} (TimeGAN: the mean of {TIMEGAN_REPEATS})")
    if num_generated != num_real:
        reasons.append(f"{num_generated:,} generated vs {num_real:,} real sequences (TimeGAN: as many of each)")
    return reasons


def image_deviations(name: str, extractor: dict, num_real: int, num_generated: int) -> list[str]:
    """How an image metric's features and sample counts differ from the published protocol (empty: they do not)."""
    reasons = []
    if not extractor.get("comparable_with_published"):
        reasons.append(f"{extractor.get('name')} features, not the standard FID Inception-v3")
    need = IMAGE_MIN_SAMPLES[name]
    if min(num_real, num_generated) < need:
        reasons.append(f"{num_generated:,} generated / {num_real:,} real samples (published: {need:,} or more each)")
    return reasons


def mark_protocol(values: dict, args, extractor: dict | None, num_real: int, split_size: int, fake) -> list[str] | None:
    """Mark every metric that has a published protocol with ``comparable_with_published`` and, where a setting
    differs, ``not_comparable`` (the reasons). Returns all reasons, or None when no metric has a protocol (MMD, the
    music statistics and the ELBO are this project's own)."""
    num_generated = 0 if fake is None else len(fake)
    subset = [f"--num-reference {num_real:,} of the split's {split_size:,} items"] if num_real < split_size else []
    found, checked = [], False
    for name, entry in values.items():
        if name in TIMEGAN_ITERATIONS:
            reasons = timegan_deviations(name, args, num_real, num_generated)
        elif name in IMAGE_MIN_SAMPLES and extractor:
            reasons = image_deviations(name, extractor, num_real, num_generated)
        else:
            continue
        reasons += subset
        checked = True
        entry["comparable_with_published"] = not reasons
        if reasons:
            entry["not_comparable"] = reasons
            found += [r for r in reasons if r not in found]
    return found if checked else None


def evaluate(args) -> dict:
    """Run the job; returns the report (also written to ``args.output`` when given)."""
    from lightning_gen.lightning_cli import apply_threads  # the one rule of `fit --threads`

    threads_before = torch.get_num_threads()
    try:
        apply_threads(args.threads)
        return _evaluate(args)
    finally:  # the Python API (`api.evaluate`) leaves the caller's thread setting as it was
        torch.set_num_threads(threads_before)


def _evaluate(args) -> dict:
    start = time.perf_counter()
    is_ckpt = args.source.endswith(".ckpt")
    if not is_ckpt and not os.path.exists(args.source):
        raise EvaluateError(f"{args.source} does not exist.")
    allow = tuple(getattr(args, "allow_module", ()) or ())
    spec = resolve_data_spec(args.data, args.source if is_ckpt else None, args.data_arg, allow)
    datamodule = build_datamodule(spec)
    kind = data_kind_of(datamodule)
    default = DEFAULT_METRICS["piano_roll" if getattr(datamodule, "pitch_low", None) is not None else kind]
    metrics = list(args.metrics or default)
    allowed = (IMAGE_METRICS if kind == "image" else SEQUENCE_METRICS) + MODEL_METRICS
    unknown = [m for m in metrics if m not in allowed]
    if unknown:
        raise EvaluateError(f"Unknown metric(s) {unknown} for {kind} data; choose from {list(allowed)}.")
    model = None
    if is_ckpt:
        from lightning_gen.checkpoints import load_model

        model = load_model(args.source, map_location=args.device, allow_modules=allow)
        if getattr(model, "data_kind", None) != kind:
            raise EvaluateError(
                f"{args.source} holds a {type(model).__name__} (data kind {getattr(model, 'data_kind', None)!r}), "
                f"which does not generate {kind} data like {spec['class_path']}."
            )
    reference = reference_split(datamodule, args.split, None, args.seed)
    split_size = len(reference)
    reference = reference[: args.num_reference] if args.num_reference else reference
    sample_metrics = [m for m in metrics if m not in MODEL_METRICS]
    values: dict[str, dict] = {}
    extra: dict = {"feature_extractor": None}
    fake = None
    if sample_metrics:
        fake, source_info = generated_samples(args, model, datamodule, kind, reference)
        if kind == "image":
            values, extra = image_metrics(args, sample_metrics, reference, fake, spec)
        else:
            values, extra = sequence_metrics(args, sample_metrics, reference, fake, datamodule)
    else:
        source_info = {"kind": "checkpoint", "path": args.source}
    if "elbo" in metrics:
        values.update(model_metrics(args, model, datamodule))
    deviations = mark_protocol(values, args, extra.get("feature_extractor"), len(reference), split_size, fake)
    report = {
        "source": source_info,
        "dataset": {"class_path": spec["class_path"], "init_args": spec["init_args"]},
        "split": args.split,
        "num_real": len(reference),
        "num_generated": 0 if fake is None else len(fake),
        "seed": args.seed,
        "metrics": values,
        **extra,
        # True only when some metric has a published protocol and every such metric followed it
        "comparable_with_published": deviations is not None and not deviations,
        "not_comparable_reasons": deviations or [],
        "versions": package_versions(),
        "device": str(args.device),
        "time_s": round(time.perf_counter() - start, 2),
    }
    if args.output:
        with atomic_write(args.output) as f:  # an earlier report survives a failed run
            json.dump(report, f, indent=2, default=str)
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightning-gen evaluate", description=__doc__.split("\n")[0])
    p.add_argument("source", help="a .ckpt (sampled), a samples .npz from `lightning-gen sample`, or an image folder")
    p.add_argument("--data", help="YAML config whose `data:` section names the reference dataset")
    p.add_argument("--data-arg", action="append", default=[], metavar="KEY=VALUE", help="override a data init arg")
    p.add_argument(
        "--metrics",
        type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
        default=None,
        help=f"comma-separated; images: {','.join(IMAGE_METRICS)} (default fid); sequences: "
        f"{','.join(SEQUENCE_METRICS)} (default discriminative,predictive,mmd; piano rolls: "
        "discriminative,mmd,music); both: elbo",
    )
    p.add_argument("--split", default="test", help="reference split: train, val or test (default test)")
    p.add_argument(
        "--num-samples",
        type=int,
        default=None,
        help="generated samples (checkpoint default: 10000 images / as many sequences as the reference)",
    )
    p.add_argument("--num-reference", type=int, default=None, help="use the first N reference items (default all)")
    p.add_argument(
        "--features",
        choices=("inception", "classifier"),
        default=None,
        help="image feature extractor (default: classifier if --classifier is given, else inception)",
    )
    p.add_argument("--classifier", help="checkpoint of a classifier from configs/classifier/<dataset>.yaml")
    p.add_argument("--inception-weights", help="local path of weights-inception-2015-12-05-6726825d.pth")
    p.add_argument("--seed", type=int, default=0)
    add_allow_module_argument(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads; default: OMP_NUM_THREADS when it is set, else 1 (as `fit`); 0: torch's default",
    )
    timegan = "; another value is reported as not comparable with published scores"
    p.add_argument(
        "--disc-iterations",
        type=int,
        default=TIMEGAN_ITERATIONS["discriminative"],
        help=f"discriminative score iterations (TimeGAN: {TIMEGAN_ITERATIONS['discriminative']}{timegan})",
    )
    p.add_argument(
        "--pred-iterations",
        type=int,
        default=TIMEGAN_ITERATIONS["predictive"],
        help=f"predictive score iterations (TimeGAN: {TIMEGAN_ITERATIONS['predictive']}{timegan})",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=TIMEGAN_REPEATS,
        help=f"repeats of the TimeGAN scores, mean and std (TimeGAN: {TIMEGAN_REPEATS}{timegan})",
    )
    p.add_argument("--cache-dir", default=os.path.join("data", "metric_cache"), help="reference feature cache")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the reference feature cache")
    p.add_argument("--output", help="write the JSON report here")
    return p


def check_args(args) -> None:
    """Every argument's range, before anything is loaded or written (the allowed range is in the message)."""
    check_int("--num-samples", args.num_samples, 1)
    check_int("--num-reference", args.num_reference, 1)
    check_int("--batch-size", args.batch_size, 1)
    check_int("--threads", args.threads, 0, 4096)
    check_int("--disc-iterations", args.disc_iterations, 1)
    check_int("--pred-iterations", args.pred_iterations, 1)
    check_int("--repeats", args.repeats, 1)
    check_int("--seed", args.seed, 0, 2**32 - 1)
    if args.split not in ("train", "val", "test"):
        raise EvaluateError(f"--split must be train, val or test, got {args.split!r}.")
    if args.output:
        check_output("--output", args.output)
    check_device("--device", args.device)
    if not os.path.exists(args.source):
        raise EvaluateError(f"{args.source} does not exist.")


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _run(argv))


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    from lightning_gen.checkpoints import CheckpointError
    from lightning_gen.metrics.image import InceptionWeightsError

    try:
        report = evaluate(args)
    except (EvaluateError, CheckpointError, InceptionWeightsError, ValueError, FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_table(report)
    if args.output:
        print(f"wrote report: {args.output}")
    return 0
