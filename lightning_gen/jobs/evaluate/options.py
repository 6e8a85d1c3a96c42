"""The evaluate job's options: one typed object (:class:`EvaluateOptions`), the command line that fills it and the
range checks run before anything is loaded or written."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from lightning_gen.checkpoints import add_allow_module_argument
from lightning_gen.errors import UserError, check_device, check_folder, check_int, check_output
from lightning_gen.metrics.image import IMAGE_METRICS
from lightning_gen.metrics.sequence_scores import EXTRA_SEQUENCE_METRICS

#: TimeGAN's scores, MMD, music statistics, and the scores that do not saturate (strong_discriminative,
#: context_fid, correlational: :mod:`lightning_gen.metrics.sequence_scores`)
SEQUENCE_METRICS = ("discriminative", "predictive", "mmd", "music", *EXTRA_SEQUENCE_METRICS)
MODEL_METRICS = ("elbo",)
DEFAULT_METRICS = {
    # a distance, its unbiased estimates, fidelity and diversity apart, and the copying test
    "image": ["fid", "fid_inf", "kid", "precision_recall", "density_coverage", "memorization"],
    "sequence": ["discriminative", "predictive", "mmd", "precision_recall", "density_coverage", "memorization"],
    "piano_roll": ["discriminative", "mmd", "music", "precision_recall", "density_coverage", "memorization"],
}

# -- the published protocols (a short evaluation must not look like a published score) -------------------------
#: TimeGAN's reference code (Yoon et al. 2019, ``metrics/`` and ``main_timegan.py``): the post-hoc GRU trains for
#: 2,000 (discriminative) / 5,000 (predictive) iterations of batch 128, the mean of 10 runs (``metric_iteration``)
#: is reported, and as many sequences are generated as there are real ones.
TIMEGAN_ITERATIONS = {"discriminative": 2000, "predictive": 5000}
TIMEGAN_REPEATS = 10


class EvaluateError(UserError):
    """Bad input to the evaluate job: the message says what was wrong and what to do."""


@dataclass(frozen=True)
class TimeGANSettings:
    """How TimeGAN's post-hoc scores are trained: iterations of the discriminator / predictor GRU, repeats."""

    disc_iterations: int = TIMEGAN_ITERATIONS["discriminative"]
    pred_iterations: int = TIMEGAN_ITERATIONS["predictive"]
    repeats: int = TIMEGAN_REPEATS

    def iterations(self, name: str) -> int:
        """The iterations of score ``name`` (``discriminative`` or ``predictive``)."""
        return self.disc_iterations if name == "discriminative" else self.pred_iterations


@dataclass(frozen=True)
class FeatureCache:
    """Where reference image features are cached, and whether the cache is read and written at all."""

    directory: Path
    enabled: bool = True


@dataclass
class EvaluateOptions:
    """Everything ``lightning-gen evaluate`` is told; the field names are the flags with ``_`` for ``-``."""

    source: str
    data: str | list[str] | None = None
    data_arg: list[str] = field(default_factory=list)
    metrics: list[str] | None = None
    split: str = "auto"
    num_samples: int | None = None
    num_reference: int | None = None
    features: str | None = None
    classifier: str | None = None
    inception_weights: str | None = None
    seed: int = 0
    allow_module: list[str] = field(default_factory=list)
    batch_size: int = 256
    device: str = "cpu"
    threads: int | None = None
    disc_iterations: int = TIMEGAN_ITERATIONS["discriminative"]
    pred_iterations: int = TIMEGAN_ITERATIONS["predictive"]
    repeats: int = TIMEGAN_REPEATS
    cache_dir: str = os.path.join("data", "metric_cache")
    no_cache: bool = False
    output: str | None = None

    @classmethod
    def of(cls, args) -> EvaluateOptions:
        """The options of ``args``: an :class:`EvaluateOptions` as it is, or the ``argparse.Namespace`` of
        :func:`build_parser` (a missing attribute takes its default)."""
        if isinstance(args, cls):
            return args
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})

    @property
    def allow(self) -> tuple[str, ...]:
        """The modules a checkpoint may import (``--allow-module``)."""
        return tuple(self.allow_module or ())

    @property
    def timegan(self) -> TimeGANSettings:
        return TimeGANSettings(self.disc_iterations, self.pred_iterations, self.repeats)

    @property
    def cache(self) -> FeatureCache:
        return FeatureCache(Path(self.cache_dir), enabled=not self.no_cache)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lightning-gen evaluate",
        description="``lightning-gen evaluate SOURCE``: metrics of generated samples against a dataset's reference "
        "split.",
    )
    p.add_argument("source", help="a .ckpt (sampled), a samples .npz from `lightning-gen sample`, or an image folder")
    p.add_argument(
        "--data",
        action="append",
        help="YAML config whose `data:` section names the reference dataset; repeat it to stack an overlay on its "
        "twin as `fit` does (--data configs/rvae/vowels.yaml --data configs/rvae/vowels_cond.yaml)",
    )
    p.add_argument("--data-arg", action="append", default=[], metavar="KEY=VALUE", help="override a data init arg")
    p.add_argument(
        "--metrics",
        type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
        default=None,
        help=f"comma-separated; images: {','.join(IMAGE_METRICS)},memorization (default "
        f"{','.join(DEFAULT_METRICS['image'])}); sequences: "
        f"{','.join(SEQUENCE_METRICS)} (default discriminative,predictive,mmd; piano rolls: "
        "discriminative,mmd,music); both: elbo; samples with class labels (a conditional checkpoint, or a samples "
        "file with `labels`) also get class_accuracy, and for images (with --classifier) class_fid, class_recall, "
        "class_diversity",
    )
    p.add_argument(
        "--split",
        default=EvaluateOptions.split,
        help="reference split: auto (default: the test split when it holds 4 items per feature dimension, else "
        "held_out), held_out (validation and test together: never trained on), test, val or train",
    )
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
    p.add_argument("--seed", type=int, default=EvaluateOptions.seed)
    add_allow_module_argument(p)
    p.add_argument("--batch-size", type=int, default=EvaluateOptions.batch_size)
    p.add_argument("--device", default=EvaluateOptions.device, help="cpu, cuda, cuda:1, ...")
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
    p.add_argument("--cache-dir", default=EvaluateOptions.cache_dir, help="reference feature cache")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the reference feature cache")
    p.add_argument("--output", help="write the JSON report here")
    return p


def check_args(args) -> None:
    """Every argument's range, before anything is loaded or written (the allowed range is in the message).
    ``args``: :class:`EvaluateOptions` or the parser's namespace."""
    check_int("--num-samples", args.num_samples, 1)
    check_int("--num-reference", args.num_reference, 1)
    check_int("--batch-size", args.batch_size, 1)
    check_int("--threads", args.threads, 0, 4096)
    check_int("--disc-iterations", args.disc_iterations, 1)
    check_int("--pred-iterations", args.pred_iterations, 1)
    check_int("--repeats", args.repeats, 1)
    check_int("--seed", args.seed, 0, 2**32 - 1)
    if args.split not in ("auto", "held_out", "train", "val", "test"):
        raise EvaluateError(f"--split must be auto, held_out, train, val or test, got {args.split!r}.")
    if args.output:
        check_output("--output", args.output)
    check_device("--device", args.device)
    if not args.no_cache:
        check_folder("--cache-dir", args.cache_dir)  # before the samples are drawn and their features extracted
    if not os.path.exists(args.source):
        raise EvaluateError(f"{args.source} does not exist.")
