"""A training-time metric: FID on classifier features, or TimeGAN's discriminative score, every N epochs.

It logs ``val/fid`` or ``val/discriminative_score`` at the end of every N-th validation epoch, so a
``ModelCheckpoint(monitor="val/fid", mode="min", every_n_epochs=N)`` keeps the best model by it and a sweep
can optimise it. Give ModelCheckpoint the same ``every_n_epochs``: on the other epochs the metric is not
computed.

Under DDP every rank draws its share of the samples (seeded by rank, so the set is fixed from one
evaluation to the next) and takes part in the computation: FID's feature sums live in a torchmetrics
metric whose ``compute`` sums them over ranks; for the discriminative score the samples are gathered, rank 0
trains the post-hoc GRU and broadcasts the score. Every rank logs the same value.

The feature extractor lives in the callback, not in the LightningModule, so its weights never enter the
model's checkpoints (and the callback's own checkpoint state is empty).
"""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch

METRIC_NAMES = {"fid": "val/fid", "discriminative": "val/discriminative_score"}


class TrainingMetric(pl.Callback):
    """Compute ``metric`` every ``every_n_epochs`` validation epochs on ``num_samples`` generated samples.

    Args:
        metric: ``fid`` (images; penultimate features of a classifier trained with
            ``configs/classifier/<dataset>.yaml``; not comparable with Inception FID) or ``discriminative``
            (sequences; TimeGAN's post-hoc GRU score, 0 best, 0.5 worst).
        every_n_epochs: how often (epochs ``N - 1, 2N - 1, ...``, as ModelCheckpoint's ``every_n_epochs``).
        num_samples: generated samples per evaluation, split over the ranks.
        classifier: checkpoint of the classifier (``metric="fid"``), or its run folder (``runs/classifier/digits``:
            the newest ``version_N/checkpoints/last.ckpt`` in it: :func:`lightning_gen.checkpoints.resolve_checkpoint`).
        split: the datamodule's split the samples are compared with (``val`` by default).
        num_reference: use at most this many reference items (None: the whole split).
        seed: seed of the generated samples (rank r uses ``seed + r``) and of the discriminative score.
        iterations: discriminative-score training iterations (TimeGAN: 2000).
        repeats: discriminative-score repeats averaged (TimeGAN: 10; 1 keeps training fast).
        batch_size: batch size of sampling and feature extraction.
    """

    def __init__(
        self,
        metric: Literal["fid", "discriminative"] = "fid",
        every_n_epochs: int = 5,
        num_samples: int = 1000,
        classifier: str | None = None,
        split: Literal["train", "val", "test"] = "val",
        num_reference: int | None = None,
        seed: int = 0,
        iterations: int = 2000,
        repeats: int = 1,
        batch_size: int = 256,
    ) -> None:
        super().__init__()
        if metric not in METRIC_NAMES:
            raise ValueError(f"Unknown training metric {metric!r}; choose from {list(METRIC_NAMES)}.")
        if every_n_epochs < 1 or num_samples < 2 or iterations < 1 or repeats < 1 or batch_size < 1:
            raise ValueError(
                "every_n_epochs, iterations, repeats and batch_size must be >= 1 and num_samples >= 2; got "
                f"{every_n_epochs}, {iterations}, {repeats}, {batch_size}, {num_samples}."
            )
        if metric == "fid" and classifier is None:
            raise ValueError(
                "metric=fid needs `classifier`: the checkpoint of a classifier trained with "
                "`lightning-gen fit --config configs/classifier/<dataset>.yaml`."
            )
        self.metric, self.every_n_epochs, self.num_samples = metric, every_n_epochs, num_samples
        self.classifier, self.split, self.num_reference, self.seed = classifier, split, num_reference, seed
        self.iterations, self.repeats, self.batch_size = iterations, repeats, batch_size
        self.name = METRIC_NAMES[metric]
        self.extractor = None  # never a submodule of the LightningModule: stays out of its checkpoints
        self.fid = None
        self.reference: torch.Tensor | None = None
        self.last_value: float | None = None

    # -- setup ----------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in ("fit", "test") or self.extractor is not None or self.reference is not None:
            return
        if self.metric == "fid":
            from lightning_gen.checkpoints import load_model, resolve_checkpoint
            from lightning_gen.metrics.image import ClassifierFeatures

            # the audited loader, as every checkpoint read: nothing the file names is imported unless allowed;
            # a run folder is resolved once, so the file read is the one named as the source
            path = str(resolve_checkpoint(self.classifier))
            self.extractor = ClassifierFeatures(load_model(path), source=path)
            if self.num_samples < self.extractor.num_features:
                raise ValueError(
                    f"FID with the classifier's {self.extractor.num_features}-dimensional features needs "
                    f"num_samples >= {self.extractor.num_features}, got {self.num_samples}."
                )

    def _reference(self, trainer: pl.Trainer) -> torch.Tensor:
        if self.reference is None:
            from lightning_gen.metrics.reference import reference_split

            datamodule = trainer.datamodule
            if datamodule is None:
                raise ValueError("TrainingMetric needs a LightningDataModule (its split is the reference).")
            self.reference = reference_split(datamodule, self.split, self.num_reference, self.seed)
        return self.reference

    def _fid_metric(self, trainer: pl.Trainer, pl_module: pl.LightningModule):
        """torchmetrics FID on precomputed features; the real features of this rank's shard are added once."""
        if self.fid is None:
            from torchmetrics.image.fid import FrechetInceptionDistance

            from lightning_gen.metrics.image import GivenFeatures, check_images

            reference = check_images(self._reference(trainer), "reference", dims=self.extractor.expected_dims)
            dim = self.extractor.num_features
            if len(reference) < dim:
                raise ValueError(
                    f"FID needs at least {dim} reference images; the {self.split} split has {len(reference)}."
                )
            self.extractor.to(pl_module.device)
            self.fid = FrechetInceptionDistance(feature=GivenFeatures(dim), reset_real_features=False)
            self.fid = self.fid.to(pl_module.device)
            shard = reference[trainer.global_rank :: trainer.world_size]  # each rank its share
            for chunk in shard.split(self.batch_size):
                self.fid.update(self.extractor(chunk.to(pl_module.device))["features"].double(), real=True)
        return self.fid

    # -- the metric -----------------------------------------------------------------------------------
    def _local_count(self, trainer: pl.Trainer) -> int:
        return -(-self.num_samples // trainer.world_size)  # ceil: equal shares so all_gather lines up

    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, **kwargs) -> torch.Tensor:
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        n, chunks = self._local_count(trainer), []
        with torch.random.fork_rng(devices=devices):  # fixed samples, training RNG untouched
            torch.manual_seed(self.seed + trainer.global_rank)
            while n > 0:
                chunks.append(pl_module.sample(min(n, self.batch_size), **kwargs).float())
                n -= chunks[-1].shape[0]
        return torch.cat(chunks)

    def compute_fid(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
        metric = self._fid_metric(trainer, pl_module)
        fake = (self._draw(trainer, pl_module).clamp(-1, 1) + 1) / 2  # (n, C, H, W) in [0, 1]
        for chunk in fake.split(self.batch_size):
            metric.update(self.extractor(chunk)["features"].double(), real=False)
        value = float(metric.compute())  # every rank: torchmetrics sums the states over ranks
        metric.reset()  # generated features only (reset_real_features=False)
        return value

    def compute_discriminative(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
        from lightning_gen.metrics.timegan import discriminative_score

        reference = self._reference(trainer)
        fake = self._draw(trainer, pl_module, length=reference.shape[1])  # (n, T, D) in [0, 1]
        gathered = pl_module.all_gather(fake)  # (world, n, T, D) under DDP, (n, T, D) otherwise
        fake_all = gathered.reshape(-1, *fake.shape[1:])[: self.num_samples]
        score = None
        if trainer.is_global_zero:
            score, _ = discriminative_score(
                reference.cpu().numpy(), fake_all.cpu().numpy(), self.iterations, 128, self.repeats, self.seed
            )
        return float(trainer.strategy.broadcast(score, src=0))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0 and not trainer.fast_dev_run:
            return
        if self.metric == "fid":
            value = self.compute_fid(trainer, pl_module)
        else:
            value = self.compute_discriminative(trainer, pl_module)
        self.last_value = value
        # identical on every rank already: no further reduction
        pl_module.log(self.name, value, prog_bar=True, sync_dist=False, rank_zero_only=False)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``lightning-gen test`` with this callback in the config: the same metric against the test split, logged
        as ``test/fid`` / ``test/discriminative_score`` (a generator-side number beside D's test metrics)."""
        kept = (self.split, self.reference, self.fid)
        self.split, self.reference, self.fid = "test", None, None
        try:
            self.setup(trainer, pl_module, "test")  # the extractor, when a test run built none yet
            value = (
                self.compute_fid(trainer, pl_module)
                if self.metric == "fid"
                else self.compute_discriminative(trainer, pl_module)
            )
        finally:
            self.split, self.reference, self.fid = kept
        pl_module.log(self.name.replace("val/", "test/", 1), value, sync_dist=False, rank_zero_only=False)

    def state_dict(self) -> dict:
        return {}  # nothing to resume; the extractor is rebuilt from `classifier`


class GeneratorTestMetrics(pl.Callback):
    """Generator-side numbers for ``lightning-gen test`` (added by the CLI to every test run), beside the model's own
    test metrics, which for the adversarial families are mostly about D (``test/d_loss``, ``test/D(x)``, ...).

    ``test/g_adversarial``: G's adversarial loss against the trained D on fresh samples, one per test item (the
    ``loss``'s G term: ``-log D(G(z))`` for ``ns``, ``-D(G(z))`` for ``hinge`` / ``wasserstein``), the number every
    family logs as ``train/g_adversarial`` (the VAE-GAN too, whose G trains through a gradient reversal on D's loss
    but logs this score beside it). For any model with ``adversarial.g`` and a ``discriminator`` module, found by
    those attributes (metrics never import the models); a conditional model (``conditional`` true) samples and is
    judged with the test batch's labels. A model without a discriminator logs nothing here.
    """

    def __init__(self) -> None:
        super().__init__()
        self.skipped: str | None = None

    @staticmethod
    def applies(pl_module: pl.LightningModule) -> bool:
        adversarial = getattr(pl_module, "adversarial", None)
        return hasattr(adversarial, "g") and isinstance(getattr(pl_module, "discriminator", None), torch.nn.Module)

    @torch.no_grad()
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not self.applies(pl_module):
            return
        real = batch[0]
        kwargs = {}
        if getattr(pl_module, "conditional", False):  # models.conditional.Conditional: labels of this batch
            kwargs["labels"] = pl_module.batch_labels(batch)
        if getattr(pl_module, "data_kind", "image") == "sequence":
            fake = pl_module.sample(real.shape[0], length=real.shape[1], **kwargs)  # (B, T, D)
        else:
            fake = pl_module.sample(real.shape[0], **kwargs)  # (B, C, H, W)
        logits = pl_module.discriminator(fake.to(real.dtype), **kwargs)
        g_loss = pl_module.adversarial.g(logits[0] if isinstance(logits, tuple) else logits)
        pl_module.log("test/g_adversarial", g_loss, sync_dist=True, batch_size=real.shape[0])
