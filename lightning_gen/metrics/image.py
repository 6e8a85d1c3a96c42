"""Image metrics: FID, KID and Inception Score through torchmetrics, improved precision / recall through
torch-fidelity, on features from one of two extractors.

- ``inception``: the standard FID Inception-v3 (torch-fidelity's port of the TensorFlow graph of Heusel
  et al. 2017, weights ``weights-inception-2015-12-05-6726825d.pth``), with its TensorFlow-1-compatible
  bilinear resize to 299x299. Numbers are comparable with published FID when the sample counts and
  reference split match too.
- ``classifier``: the penultimate features of a small CNN trained on the dataset with this framework
  (:class:`lightning_gen.models.ImageClassifier`). Works offline, ranks models of one dataset, and is NOT
  comparable with published Inception FID.

Images enter as float (N, C, H, W) in [0, 1]. Features are extracted once per set; every metric is then
computed from the same feature arrays (torchmetrics' metrics take the features through an identity
"extractor"), so real-set features can be cached and reused.

Metrics: ``fid`` (Heusel et al. 2017), ``kid`` (Binkowski et al. 2018; mean and std over subsets), ``is``
(Salimans et al. 2016; from the extractor's class logits: Inception's 1008 ImageNet logits, or the
classifier's own labels), ``precision_recall`` (Kynkaanniemi et al. 2019, k = 3 nearest neighbours), and from
:mod:`lightning_gen.metrics.fidelity`: ``fid_inf`` (FID extrapolated to infinitely many samples, Chong & Forsyth
2020) and ``density_coverage`` (Naeem et al. 2020, k = 5).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import warnings

import numpy as np
import torch
from torch import nn

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
IMAGE_METRICS = ("fid", "fid_inf", "kid", "is", "precision_recall", "density_coverage")
NOT_COMPARABLE = (
    "classifier features: a domain FID for ranking models of this dataset; NOT comparable with published "
    "(Inception) FID / KID / IS"
)


class InceptionWeightsError(FileNotFoundError):
    """The FID Inception weights are neither cached nor downloadable (a machine without network)."""


def inception_weights_cache_path() -> str:
    """Where torch hub (hence torch-fidelity) keeps the downloaded Inception weights."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_FILE)


def inception_missing_message(reason: str) -> str:
    return (
        f"The FID Inception-v3 weights could not be loaded ({reason}). They are torch-fidelity's "
        f"{INCEPTION_FILE} (92 MB). On a machine with network access, download\n  {INCEPTION_URL}\nand put the "
        f"file at\n  {inception_weights_cache_path()}\n(torch hub's cache; set TORCH_HOME to move it), or give "
        f"its path with --inception-weights PATH. Offline, `--features classifier` computes a domain FID with a "
        f"classifier trained by `lightning-gen fit --config configs/classifier/<dataset>.yaml` (not comparable "
        f"with published FID)."
    )


def state_dict_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's weights (every state-dict tensor, in key order): names the exact extractor."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# -- input checks -----------------------------------------------------------------------------------
def check_images(images, name: str = "samples", dims: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Return images as float32 (N, C, H, W) in [0, 1]; raise a clear ``ValueError`` otherwise.

    Accepts uint8 in [0, 255] or float in [0, 1], shaped (N, C, H, W) or (N, H, W). ``dims``: the (C, H, W)
    the reference data has.
    """
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    if x.dim() == 3:
        x = x.unsqueeze(1)  # (N, 1, H, W)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"{name}: expected images shaped (N, C, H, W) with C = 1 or 3 (channels first), got shape "
            f"{tuple(images.shape)}."
        )
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif x.is_floating_point():
        x = x.float()
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
            raise ValueError(f"{name}: {bad} of {len(x)} images contain NaN or infinite values.")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(
                f"{name}: float images must be in [0, 1] (as `lightning-gen sample` writes them), found "
                f"[{lo:.4g}, {hi:.4g}]. Map [-1, 1] outputs with (x + 1) / 2, or save uint8 in [0, 255]."
            )
        x = x.clamp(0, 1)
    else:
        raise ValueError(f"{name}: dtype {x.dtype} is not supported; use uint8 in [0, 255] or float in [0, 1].")
    if dims is not None and tuple(x.shape[1:]) != tuple(dims):
        raise ValueError(
            f"{name}: images have shape (C, H, W) = {tuple(x.shape[1:])}, but the reference images of the "
            f"dataset have {tuple(dims)}. Evaluate against the dataset the model was trained on."
        )
    return x


# -- feature extractors -----------------------------------------------------------------------------
class FeatureExtractor(nn.Module):
    """Maps float images (B, C, H, W) in [0, 1] to ``{"features": (B, D), "logits": (B, K)}``.

    Attributes: ``name``, ``num_features`` (D), ``resize_rule`` (how images reach the network),
    ``comparable`` (whether values compare with published numbers), ``note`` (said in every report).
    """

    name = "base"
    resize_rule = ""
    comparable = False
    note = ""
    num_features = 0

    def weights(self) -> nn.Module:
        """The network whose weights the report's hash names."""
        return self

    def provenance(self) -> dict:
        """What a report records about this extractor."""
        return {
            "name": self.name,
            "weights_sha256": state_dict_sha256(self.weights()),
            "num_features": self.num_features,
            "resize_rule": self.resize_rule,
            "comparable_with_published": self.comparable,
            "note": self.note,
        }


class InceptionFeatures(FeatureExtractor):
    """The standard FID Inception-v3 (torch-fidelity): 2048 pool features and 1008 unbiased logits.

    Args:
        weights_path: a local copy of ``weights-inception-2015-12-05-6726825d.pth``; None uses torch hub's
            cache, downloading the file there on first use.
    """

    name = "inception"
    resize_rule = (
        "grey repeated to 3 channels; quantised to uint8 by rounding; resized to 299x299 by torch-fidelity's "
        "TensorFlow-1-compatible bilinear interpolation (as the original TF FID code)"
    )
    comparable = True
    note = "standard FID Inception-v3 (pool3, 2048 features); comparable with published FID at equal sample counts"
    num_features = 2048

    def __init__(self, weights_path: str | None = None) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        if weights_path is not None:
            if not os.path.isfile(weights_path):
                raise InceptionWeightsError(inception_missing_message(f"{weights_path} does not exist"))
            try:  # refuse pickled code before torch-fidelity loads the file without weights_only
                torch.load(weights_path, map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001
                raise InceptionWeightsError(
                    inception_missing_message(f"{weights_path} is not a plain tensor checkpoint: {err}")
                ) from err
        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=weights_path
            )
        except (urllib.error.URLError, OSError, RuntimeError) as err:
            raise InceptionWeightsError(inception_missing_message(f"{type(err).__name__}: {err}")) from err
        self.net.requires_grad_(False).eval()

    def weights(self) -> nn.Module:
        return self.net

    def train(self, mode: bool = True) -> InceptionFeatures:
        return super().train(False)  # never leaves eval mode

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # (B, 3, H, W)
        u8 = (x * 255).round().clamp(0, 255).to(torch.uint8)  # what saving a PNG does
        features, logits = self.net(u8)
        return {"features": features.reshape(len(x), -1), "logits": logits.reshape(len(x), -1)}


class ClassifierFeatures(FeatureExtractor):
    """Penultimate features and class logits of a trained :class:`~lightning_gen.models.ImageClassifier`.

    Args:
        classifier: the LightningModule (or its network). A checkpoint is loaded by the caller, with the audited
            loader :func:`lightning_gen.checkpoints.load_model`: metrics never read checkpoints themselves.
        source: where the classifier came from (its checkpoint path), named in error messages.
    """

    name = "classifier"
    comparable = False
    note = NOT_COMPARABLE

    def __init__(self, classifier, source: str | os.PathLike | None = None) -> None:
        super().__init__()
        if isinstance(classifier, (str, os.PathLike)):
            raise TypeError(
                f"ClassifierFeatures takes the classifier model, not the path {os.fspath(classifier)!r}: load it "
                "first with lightning_gen.checkpoints.load_model (the audited checkpoint loader)."
            )
        self.source = None if source is None else os.fspath(source)
        network = getattr(classifier, "network", classifier)
        if not hasattr(network, "features") or not hasattr(network, "feature_dim"):
            raise ValueError(
                f"{self.source or type(classifier).__name__} is not an image classifier with penultimate "
                "features; train one with `lightning-gen fit --config configs/classifier/<dataset>.yaml`."
            )
        self.network = network.eval().requires_grad_(False)
        self.num_features = int(network.feature_dim)
        self.channels, self.img_size = getattr(network, "channels", None), getattr(network, "img_size", None)
        self.resize_rule = f"none: images must be the classifier's own size {self.expected_dims}; [0, 1] -> [-1, 1]"

    @property
    def expected_dims(self) -> tuple | None:
        return None if self.img_size is None else (self.channels, self.img_size, self.img_size)

    def weights(self) -> nn.Module:
        return self.network

    def train(self, mode: bool = True) -> ClassifierFeatures:
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        dims = self.expected_dims
        if dims is not None and tuple(x.shape[1:]) != dims:
            raise ValueError(
                f"The classifier takes images of shape (C, H, W) = {dims} but got {tuple(x.shape[1:])}; use a "
                "classifier trained on this dataset (configs/classifier/<dataset>.yaml)."
            )
        features = self.network.features(x * 2 - 1)  # (B, D): the model range of the data modules
        return {"features": features, "logits": self.network.head(features)}


def build_extractor(
    kind: str, classifier=None, inception_weights: str | None = None, source: str | None = None
) -> FeatureExtractor:
    """``inception`` or ``classifier`` (which needs ``classifier``: the loaded classifier model; ``source``, its
    checkpoint path, is named in error messages)."""
    if kind == "inception":
        return InceptionFeatures(inception_weights)
    if kind == "classifier":
        if classifier is None:
            raise ValueError(
                "features=classifier needs a trained classifier checkpoint (--classifier PATH); train one with "
                "`lightning-gen fit --config configs/classifier/<dataset>.yaml`."
            )
        return ClassifierFeatures(classifier, source)
    raise ValueError(f"Unknown feature extractor {kind!r}; choose 'inception' or 'classifier'.")


@torch.no_grad()
def extract_features(
    extractor: FeatureExtractor, images: torch.Tensor, batch_size: int = 256, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Features and logits of float images (N, C, H, W) in [0, 1], in batches; float64 on the CPU."""
    extractor = extractor.to(device).eval()
    parts: dict[str, list[torch.Tensor]] = {"features": [], "logits": []}
    for chunk in images.split(batch_size):
        out = extractor(chunk.to(device))
        for key in parts:
            parts[key].append(out[key].double().cpu())
    return {key: torch.cat(value) for key, value in parts.items()}


# -- metrics on features ----------------------------------------------------------------------------
class GivenFeatures(nn.Module):
    """An identity "feature extractor", so torchmetrics' metrics can run on precomputed features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def check_feature_count(real: torch.Tensor, fake: torch.Tensor) -> None:
    """FID's covariances need at least as many samples as feature dimensions."""
    dim = real.shape[1]
    for name, feats in (("reference (real)", real), ("generated", fake)):
        if len(feats) < dim:
            raise ValueError(
                f"FID needs at least {dim} {name} samples with {dim}-dimensional features (the covariance is "
                f"singular otherwise); got {len(feats)}. Use more samples (10,000 is the usual count)."
            )


def fid_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets, computed by torchmetrics."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    check_feature_count(real, fake)
    metric = FrechetInceptionDistance(feature=GivenFeatures(real.shape[1]))
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kid_from_features(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
):
    """Kernel Inception Distance (torchmetrics): (mean, std, subset size) over ``subsets`` random subsets of
    ``min(subset_size, len(real), len(fake))`` samples, drawn with ``seed`` (the same subsets every run; the
    caller's random state is left as it was)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(real)} real and {len(fake)} generated.")
    with warnings.catch_warnings():  # "will save all extracted features in buffer": that is the point here
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=GivenFeatures(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std), size


def inception_score_from_logits(logits: torch.Tensor, splits: int = 10):
    """Inception Score (torchmetrics) from class logits of generated images: (mean, std) over ``splits``."""
    from torchmetrics.image.inception import InceptionScore

    if len(logits) < splits:
        raise ValueError(
            f"The Inception Score with {splits} splits needs at least {splits} samples, got {len(logits)}."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        metric = InceptionScore(feature=GivenFeatures(logits.shape[1]), splits=splits)
    metric.update(logits.double())
    mean, std = metric.compute()
    return float(mean), float(std)


def precision_recall_from_features(real: torch.Tensor, fake: torch.Tensor, neighborhood: int = 3) -> dict:
    """Improved precision and recall (Kynkaanniemi et al. 2019) by torch-fidelity: k-NN balls in feature space."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    if min(len(real), len(fake)) <= neighborhood:
        raise ValueError(f"precision / recall with k={neighborhood} needs more than {neighborhood} samples per set.")
    out = prc_features_to_metric(
        fake.float(),
        real.float(),
        prc_neighborhood=neighborhood,
        prc_batch_size=10000,
        save_cpu_ram=True,
        verbose=False,
    )
    return {"precision": float(out["precision"]), "recall": float(out["recall"]), "f_score": float(out["f_score"])}


def check_image_metrics(metrics) -> list[str]:
    unknown = [m for m in metrics if m not in IMAGE_METRICS]
    if unknown:
        raise ValueError(f"Unknown image metric(s) {unknown}; choose from {list(IMAGE_METRICS)}.")
    return list(metrics)


def image_metrics_from_features(
    real: dict[str, torch.Tensor],
    fake: dict[str, torch.Tensor],
    metrics=("fid",),
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    is_splits: int = 10,
) -> dict[str, dict]:
    """Every asked metric from feature dicts (as :func:`extract_features` returns): ``{name: {...}}``."""
    out: dict[str, dict] = {}
    for name in check_image_metrics(metrics):
        if name == "fid":
            out["fid"] = {"value": fid_from_features(real["features"], fake["features"])}
        elif name == "kid":
            mean, std, size = kid_from_features(real["features"], fake["features"], kid_subsets, kid_subset_size)
            out["kid"] = {"value": mean, "std": std, "subsets": kid_subsets, "subset_size": size}
        elif name == "is":
            mean, std = inception_score_from_logits(fake["logits"], is_splits)
            ref_mean, _ = inception_score_from_logits(real["logits"], min(is_splits, len(real["logits"])))
            out["is"] = {"value": mean, "std": std, "splits": is_splits, "reference_value": ref_mean}
        elif name == "fid_inf":
            from lightning_gen.metrics.fidelity import fid_infinity

            out["fid_inf"] = fid_infinity(real["features"], fake["features"])
        elif name == "density_coverage":
            from lightning_gen.metrics.fidelity import density_coverage

            out["density_coverage"] = density_coverage(real["features"], fake["features"])
        else:
            out["precision_recall"] = {**precision_recall_from_features(real["features"], fake["features"]), "k": 3}
    return out
