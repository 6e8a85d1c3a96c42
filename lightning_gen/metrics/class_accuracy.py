"""A training-time class score of a conditional model: ``val/class_accuracy``, every N epochs.

The share of generated samples of requested classes that a classifier assigns to the requested class, as in
AC-GAN's evaluation (Odena et al. 2017) and the Classification Accuracy Score idea (Ravuri & Vinyals 2019): does
a generated 7 look like a 7? The classes are asked in equal shares (sample i is of class ``i mod K``), so every
class counts alike whatever the training label distribution. The classifier is the one ``lightning-gen
evaluate`` uses (:mod:`lightning_gen.metrics.conditional`):

- images: the domain classifier (``configs/classifier/<dataset>.yaml``; its checkpoint or run folder, read by
  the audited loader), as :class:`~lightning_gen.metrics.TrainingMetric`'s FID,
- sequences: the post-hoc logistic regression on DFT magnitudes, fitted once on the labelled training split.

So a sweep can rank conditional runs by it (``metric: {name: val/class_accuracy, goal: maximize}``), or log it
beside ``val/fid`` / ``val/discriminative_score`` to see which trials lose the class. Under DDP every rank
scores its share of the samples and the counts are summed; every rank logs the same value.

Class accuracy cannot see a generator that draws one item per class (AC-GAN's known failure: Shu 2017; Gong
et al. 2019), so for image models the same samples also give, in the classifier's penultimate features against
the labelled items of a split (``split``, the validation one by default), ``val/class_diversity``: the
within-class diversity of :func:`lightning_gen.metrics.diversity.within_class_diversity` (1.0: each class's
samples as spread as its real items; a collapsed class near 0), and ``val/class_recall``: improved recall
within each class (Kynkaanniemi et al. 2019), the share of a class's real items its samples cover. Both are
means over classes; a mean pairwise distance needs no more items than a few per class, unlike a per-class FID.
"""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn

NAME = "val/class_accuracy"
SPREAD_NAMES = {"diversity": "val/class_diversity", "recall": "val/class_recall"}


class ClassAccuracyMetric(pl.Callback):
    """Log ``val/class_accuracy`` (and ``test/class_accuracy`` in ``lightning-gen test``) of a conditional model.

    Args:
        every_n_epochs: how often (epochs ``N - 1, 2N - 1, ...``, as :class:`~lightning_gen.metrics.TrainingMetric`).
        num_samples: generated samples per evaluation, split over the ranks (at least one per class).
        classifier: image models: the domain classifier's checkpoint or run folder (``runs/classifier/digits``:
            its newest ``last.ckpt``). Sequence models: leave unset (the post-hoc classifier is fitted on the
            training split).
        seed: seed of the generated samples (rank r uses ``seed + r``) and of the post-hoc classifier.
        batch_size: batch size of sampling and classification.
        diversity: image models: also log ``val/class_diversity`` and ``val/class_recall`` (see the module's
            docstring) against the labelled items of ``split``; ignored for sequence models.
        split: the datamodule's split whose labelled items the diversity and recall compare with.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        num_samples: int = 1000,
        classifier: str | None = None,
        seed: int = 0,
        batch_size: int = 256,
        diversity: bool = True,
        split: Literal["train", "val", "test"] = "val",
    ) -> None:
        super().__init__()
        if every_n_epochs < 1 or num_samples < 1 or batch_size < 1:
            raise ValueError(
                "every_n_epochs, num_samples and batch_size must be >= 1; got "
                f"{every_n_epochs}, {num_samples}, {batch_size}."
            )
        self.every_n_epochs, self.num_samples, self.classifier = every_n_epochs, num_samples, classifier
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}.")
        self.seed, self.batch_size, self.diversity, self.split = seed, batch_size, diversity, split
        self.reference: tuple[torch.Tensor, torch.Tensor] | None = None  # features and labels of `split`
        self.last_spread: dict[str, float] = {}
        self.extractor = None  # images: never a submodule of the LightningModule, so out of its checkpoints
        self.sequence_classifier, self.length = None, None  # sequences: fitted at the first evaluation
        self.last_value: float | None = None

    # -- setup ----------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in ("fit", "test"):
            return
        if not getattr(pl_module, "conditional", False):
            raise ValueError(
                f"ClassAccuracyMetric scores conditional models; this {type(pl_module).__name__} is unconditional "
                "(its networks have no num_classes). Use a *_cond config, or drop the callback."
            )
        if pl_module.num_classes > self.num_samples:
            raise ValueError(
                f"num_samples={self.num_samples} is fewer than the model's {pl_module.num_classes} classes; give "
                f"ClassAccuracyMetric num_samples >= {pl_module.num_classes}."
            )
        sequences = getattr(pl_module, "data_kind", "image") == "sequence"
        if sequences and self.classifier is not None:
            raise ValueError(
                "ClassAccuracyMetric: `classifier` is for image models; a sequence model is scored by the post-hoc "
                "classifier fitted on its training split. Leave `classifier` unset."
            )
        if not sequences and self.classifier is None:
            raise ValueError(
                "ClassAccuracyMetric on images needs `classifier`: the run folder or checkpoint of a classifier "
                "trained with `lightning-gen fit --config configs/classifier/<dataset>.yaml`."
            )
        if not sequences and self.extractor is None:
            from lightning_gen.checkpoints import load_model, resolve_checkpoint
            from lightning_gen.metrics.image import ClassifierFeatures

            path = str(resolve_checkpoint(self.classifier))  # the audited loader, as every checkpoint read
            self.extractor = ClassifierFeatures(load_model(path), source=path)

    # -- the score --------------------------------------------------------------------------------------
    def requested_labels(self, trainer: pl.Trainer, num_classes: int) -> torch.Tensor:
        """This rank's share of ``0, 1, ..., K-1, 0, 1, ...`` (every class in equal shares over the ranks)."""
        every = torch.arange(self.num_samples) % num_classes
        return every[trainer.global_rank :: trainer.world_size]

    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, labels: torch.Tensor, **kwargs):
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        chunks = []
        with torch.random.fork_rng(devices=devices):  # fixed samples, training RNG untouched
            torch.manual_seed(self.seed + trainer.global_rank)
            for part in labels.split(self.batch_size):
                chunks.append(pl_module.sample(len(part), labels=part, **kwargs).float())
        return torch.cat(chunks)

    def _predict_images(self, trainer: pl.Trainer, pl_module: pl.LightningModule, labels: torch.Tensor):
        fake = (self._draw(trainer, pl_module, labels).clamp(-1, 1) + 1) / 2  # (n, C, H, W) in [0, 1]
        self.extractor.to(pl_module.device)
        out = [self.extractor(c) for c in fake.split(self.batch_size)]
        if self.diversity:
            features = torch.cat([o["features"].double().cpu() for o in out])  # (n, F)
            self.last_spread = self._spread(trainer, pl_module, features, labels)
        return torch.cat([o["logits"].argmax(1).cpu() for o in out])

    def _reference_features(self, trainer: pl.Trainer) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.reference is None and trainer.datamodule is not None:
            from lightning_gen.metrics.conditional import labelled_split

            x, y = labelled_split(trainer.datamodule, self.split, self.seed)  # (M, C, H, W) in [0, 1], (M,)
            device = next(self.extractor.parameters()).device
            feats = [self.extractor(c.to(device))["features"].double().cpu() for c in x.split(self.batch_size)]
            self.reference = (torch.cat(feats), y)
        return self.reference

    def _gather(self, trainer, pl_module, features: torch.Tensor, labels: torch.Tensor):
        """Every rank's features and labels (shares padded to one length for all_gather, label -1 = padding)."""
        if trainer.world_size == 1:
            return features, labels
        n = -(-self.num_samples // trainer.world_size)
        padded = torch.zeros(n, features.shape[1], dtype=features.dtype)
        padded_labels = torch.full((n,), -1, dtype=torch.long)
        padded[: len(features)], padded_labels[: len(labels)] = features, labels
        feats = pl_module.all_gather(padded.to(pl_module.device)).reshape(-1, features.shape[1]).cpu()
        gathered = pl_module.all_gather(padded_labels.to(pl_module.device)).reshape(-1).cpu()
        return feats[gathered >= 0], gathered[gathered >= 0]

    def _spread(self, trainer, pl_module, features: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Within-class diversity and per-class recall of the samples against the split's labelled items."""
        from lightning_gen.metrics.diversity import per_class_recall, within_class_diversity

        features, labels = self._gather(trainer, pl_module, features, labels)
        reference = self._reference_features(trainer)
        if reference is None:
            rank_zero_warn("ClassAccuracyMetric: no LightningDataModule, so no class diversity / recall logged.")
            return {}
        out = {}
        for name, fn in (("diversity", within_class_diversity), ("recall", per_class_recall)):
            try:
                out[name] = fn(features, labels, *reference)["value"]
            except ValueError as err:  # e.g. a split with too few items of every class: say so, keep training
                rank_zero_warn(f"ClassAccuracyMetric: {SPREAD_NAMES[name]} not computed: {err}")
        return out

    def _predict_sequences(self, trainer: pl.Trainer, pl_module: pl.LightningModule, labels: torch.Tensor):
        from lightning_gen.metrics.conditional import fit_sequence_classifier, labelled_split, sequence_features

        if self.sequence_classifier is None:
            if trainer.datamodule is None:
                raise ValueError("ClassAccuracyMetric on sequences needs a LightningDataModule with labels.")
            x, y = labelled_split(trainer.datamodule, "train", self.seed)  # as the model sees them
            self.sequence_classifier = fit_sequence_classifier(x, y, self.seed)
            self.length = x.shape[1]
        fake = self._draw(trainer, pl_module, labels, length=self.length)  # (n, T, D), the model's scale
        return torch.as_tensor(self.sequence_classifier.predict(sequence_features(fake)))

    @torch.no_grad()
    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
        """The share of this evaluation's samples classified as their requested class, over all ranks (image
        models: the within-class diversity and recall of the same samples land in ``last_spread``)."""
        self.last_spread = {}
        labels = self.requested_labels(trainer, pl_module.num_classes)
        if getattr(pl_module, "data_kind", "image") == "sequence":
            predicted = self._predict_sequences(trainer, pl_module, labels)
        else:
            predicted = self._predict_images(trainer, pl_module, labels)
        counts = torch.tensor([(predicted.long() == labels).sum(), len(labels)], dtype=torch.float64)
        counts = trainer.strategy.reduce(counts.to(pl_module.device), reduce_op="sum")
        return float(counts[0] / counts[1])

    # -- hooks --------------------------------------------------------------------------------------------
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0 and not trainer.fast_dev_run:
            return
        self.last_value = self.compute(trainer, pl_module)
        pl_module.log(NAME, self.last_value, prog_bar=True, sync_dist=False, rank_zero_only=False)
        for key, value in self.last_spread.items():  # identical on every rank (gathered samples)
            pl_module.log(SPREAD_NAMES[key], value, sync_dist=False, rank_zero_only=False)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        kept = (self.split, self.reference)
        self.split, self.reference = "test", None
        try:
            value = self.compute(trainer, pl_module)
        finally:
            self.split, self.reference = kept
        pl_module.log(NAME.replace("val/", "test/", 1), value, sync_dist=False, rank_zero_only=False)
        for key, spread in self.last_spread.items():
            pl_module.log(SPREAD_NAMES[key].replace("val/", "test/", 1), spread, sync_dist=False, rank_zero_only=False)

    def state_dict(self) -> dict:
        return {}  # nothing to resume; the classifiers are rebuilt
