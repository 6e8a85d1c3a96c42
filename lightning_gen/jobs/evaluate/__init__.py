"""``lightning-gen evaluate SOURCE``: metrics of generated samples against a dataset's reference split.

SOURCE is a checkpoint of any model family (it is sampled), a samples ``.npz`` written by ``lightning-gen
sample``, or a folder of images. The dataset comes from ``--data CONFIG.yaml`` (the ``data:`` section of a
training config), else from the checkpoint (Lightning stores the DataModule's arguments) or the
``config.yaml`` LightningCLI wrote beside it.

Images: ``fid``, ``fid_inf`` (FID extrapolated to infinite samples), ``kid``, ``precision_recall``,
``density_coverage`` and ``memorization`` (the copying test) by default, and ``is``, on ``inception`` or
``classifier`` features (:mod:`lightning_gen.metrics.image`, :mod:`lightning_gen.metrics.fidelity`,
:mod:`lightning_gen.metrics.memorization`); reference features are cached in ``data/metric_cache/``, keyed by
everything that changes them. The reference is a split the model never trained on (``--split auto``: the test
split when it holds 4 items per feature dimension, else validation and test together), and every image score
comes with the real data's own score on the same protocol (training items against the same reference, as many as
the samples) and the report's flags: a score at or past the real data's, a lack of variety, copying, a small
reference (:mod:`~.trust`). Sequences: ``discriminative``, ``predictive`` (TimeGAN), ``mmd``, ``music``
(piano rolls) (:mod:`lightning_gen.metrics.timegan`, :mod:`lightning_gen.metrics.mmd`,
:mod:`lightning_gen.metrics.music`), and ``density_coverage`` and ``memorization`` on the flattened min-max-scaled
windows. Both: ``elbo`` (a checkpoint's own test-split terms,
for VAE-type models). Samples with class labels (a conditional checkpoint, or a samples file with ``labels``):
``class_accuracy`` and, for images, ``class_fid``, ``class_recall`` and ``class_diversity`` (:mod:`~.conditional`,
:mod:`lightning_gen.metrics.conditional`, :mod:`lightning_gen.metrics.diversity`).

The JSON report (``--output``) records beside each value the feature extractor and the SHA-256 of its
weights, the resize rule, the numbers of real and generated samples, the split, the seed and the package
versions; a table is printed.

One module per job: :mod:`~.options` (the typed :class:`EvaluateOptions`, the command line, the range checks),
:mod:`~.dataset` (which dataset), :mod:`~.samples` (the generated samples), :mod:`~.cache` (cached reference
features), :mod:`~.scores` (image, sequence and model metrics), :mod:`~.conditional` (class scores of conditional
samples), :mod:`~.trust` (the real data's own scores, the copying test, the flags), :mod:`~.protocol`
(comparable with published scores?), :mod:`~.report` (versions, table) and :mod:`~.job`
(the job). The reference split is
:func:`lightning_gen.metrics.reference.reference_split`, shared with the training-time metric.
"""

from lightning_gen.jobs.evaluate.cache import NO_EFFECT_DATA_ARGS, reference_features
from lightning_gen.jobs.evaluate.conditional import CONDITIONAL_METRICS
from lightning_gen.jobs.evaluate.dataset import build_datamodule, data_kind_of, resolve_data_spec
from lightning_gen.jobs.evaluate.job import evaluate, main
from lightning_gen.jobs.evaluate.options import (
    DEFAULT_METRICS,
    MODEL_METRICS,
    SEQUENCE_METRICS,
    TIMEGAN_ITERATIONS,
    TIMEGAN_REPEATS,
    EvaluateError,
    EvaluateOptions,
    FeatureCache,
    TimeGANSettings,
    build_parser,
    check_args,
)
from lightning_gen.jobs.evaluate.protocol import (
    IMAGE_MIN_SAMPLES,
    NOT_COMPARABLE,
    image_deviations,
    mark_protocol,
    timegan_deviations,
)
from lightning_gen.jobs.evaluate.report import package_versions, print_table, table_row
from lightning_gen.jobs.evaluate.samples import file_sha256, labelled_samples
from lightning_gen.jobs.evaluate.scores import feature_extractor, image_metrics, model_metrics, sequence_metrics
from lightning_gen.metrics.image import IMAGE_METRICS
from lightning_gen.metrics.reference import reference_split

__all__ = [
    "CONDITIONAL_METRICS",
    "DEFAULT_METRICS",
    "IMAGE_METRICS",
    "IMAGE_MIN_SAMPLES",
    "MODEL_METRICS",
    "NOT_COMPARABLE",
    "NO_EFFECT_DATA_ARGS",
    "SEQUENCE_METRICS",
    "TIMEGAN_ITERATIONS",
    "TIMEGAN_REPEATS",
    "EvaluateError",
    "EvaluateOptions",
    "FeatureCache",
    "TimeGANSettings",
    "build_datamodule",
    "build_parser",
    "check_args",
    "data_kind_of",
    "evaluate",
    "feature_extractor",
    "file_sha256",
    "image_deviations",
    "image_metrics",
    "labelled_samples",
    "main",
    "mark_protocol",
    "model_metrics",
    "package_versions",
    "print_table",
    "reference_features",
    "reference_split",
    "resolve_data_spec",
    "sequence_metrics",
    "table_row",
    "timegan_deviations",
]
