"""The generated samples the evaluate job scores, in the reference's space: drawn from a checkpoint, or read
from a samples ``.npz`` (``lightning-gen sample``) or an image folder."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import torch

from lightning_gen.jobs.evaluate.options import EvaluateError


def labelled_samples(
    source: str,
    model,
    datamodule,
    kind: str,
    reference: torch.Tensor,
    num_samples: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """Generated samples in the reference's space, their class labels, and how they were obtained.

    ``model`` (loaded from the checkpoint ``source``) is sampled, ``num_samples`` of them (default: 10,000 images,
    as many sequences as ``reference``) in batches of ``batch_size`` after seeding with ``seed``; without a model
    ``source`` is a samples file or an image folder, of which the first ``num_samples`` are kept. The labels are
    a conditional checkpoint's, drawn from its stored training label distribution, or a samples file's
    ``labels``; None for unconditional samples."""
    if model is not None:
        from lightning_gen.jobs.sample import draw, is_conditional

        n = num_samples or (10000 if kind == "image" else len(reference))
        torch.manual_seed(seed)
        labels = model.labels_for(n).cpu() if is_conditional(model) else None  # the training distribution
        if kind == "image":
            x = (draw(model, n, batch_size, labels).clamp(-1, 1) + 1) / 2
        else:
            x = _draw_sequences(model, datamodule, n, batch_size, labels, reference.shape[1])
        info = {"kind": "checkpoint", "path": source, "model": type(model).__name__, "drawn": n}
        if labels is not None:
            info["labels"] = "drawn from the training label distribution stored in the checkpoint"
        return x, labels, info
    labels = None
    if os.path.isdir(source):
        if kind != "image":
            raise EvaluateError(f"{source} is a folder: folders hold images, but the dataset holds sequences.")
        from lightning_gen.data.images import ImageFolderDataModule

        c, h, _ = reference.shape[1:]
        images, _, _ = ImageFolderDataModule(source, channels=c, img_size=h).load()
        x = images.float() / 255.0
        info = {"kind": "image folder", "path": source, "resize": f"PIL bicubic to {h}x{h}, {c} channel(s)"}
    elif source.endswith(".npz"):
        x, labels, info = _from_npz(source, kind)
    else:
        raise EvaluateError(f"{source}: give a .ckpt, a samples .npz from `lightning-gen sample`, or an image folder.")
    if num_samples:
        if num_samples > len(x):
            raise EvaluateError(f"--num-samples {num_samples}, but {source} holds only {len(x)} samples.")
        x = x[:num_samples]
        labels = None if labels is None else labels[:num_samples]
    return x, labels, info


def _draw_sequences(model, datamodule, n: int, batch_size: int, labels, steps: int) -> torch.Tensor:
    """``n`` generated sequences of ``steps`` steps as the reference holds them: binary rolls, or in the data's
    original scale (like a samples file, see scores.sequence_metrics); a model trained on sequences of different
    lengths draws them from its training lengths (per class) and pads them with zeros to ``steps``."""
    from lightning_gen.jobs.sample import draw

    if getattr(model, "variable_length", False):
        from lightning_gen.metrics.timegan import zero_padding

        lengths = model.sample_lengths(n, labels).cpu()
        x = draw(model, n, batch_size, labels, lengths)
        x = torch.nn.functional.pad(x, (0, 0, 0, max(0, steps - x.shape[1])))
        return torch.from_numpy(zero_padding(model.to_original(x).numpy(), lengths.numpy()))  # padding stays 0
    x = draw(model, n, batch_size, labels, length=steps)
    if getattr(datamodule, "pitch_low", None) is not None:
        return (x > 0.5).float()  # binary rolls like the reference (and the sample job's files)
    return model.to_original(x)


def _npz_labels(path: str, f, n: int) -> torch.Tensor | None:
    """The ``labels`` array of a samples file (conditional samples), checked: one integer >= 0 per sample."""
    if "labels" not in f:
        return None
    from lightning_gen.metrics.conditional import check_class_labels

    try:
        return check_class_labels(f["labels"], n, None, f"{path}: `labels`")
    except ValueError as err:
        raise EvaluateError(f"{err} Write the file with `lightning-gen sample`.") from None


def _read_npz(path: str) -> tuple[np.ndarray, torch.Tensor | None]:
    """``samples`` and (when the file has them) ``labels`` of a samples file; a clear error for anything else."""
    if not os.path.isfile(path):
        raise EvaluateError(f"{path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "samples" not in f:
                raise EvaluateError(
                    f"{path} has no `samples` array (it holds {list(f.keys())}); write it with `lightning-gen sample`."
                )
            samples = f["samples"]
            labels = _npz_labels(path, f, len(samples)) if samples.ndim > 0 else None
    except EvaluateError:
        raise
    except Exception as err:  # noqa: BLE001  (a truncated zip, pickled objects, garbage: many exception types)
        raise EvaluateError(f"{path} is not a readable samples .npz ({type(err).__name__}: {err}).") from None
    return samples, labels


def _from_npz(path: str, kind: str) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    samples, labels = _read_npz(path)
    if samples.ndim == 0 or len(samples) == 0:
        raise EvaluateError(f"{path} holds no samples (`samples` has shape {samples.shape}).")
    if not np.issubdtype(samples.dtype, np.number) or np.issubdtype(samples.dtype, np.complexfloating):
        raise EvaluateError(f"{path}: `samples` must hold real numbers, not {samples.dtype}.")
    info = {"kind": "samples file", "path": path, "sha256": file_sha256(path)}
    if labels is not None:
        info["labels"] = "the file's `labels`"
    if kind == "image":
        return torch.from_numpy(samples), labels, info
    if samples.ndim != 3:
        raise EvaluateError(f"{path}: sequences must be shaped (N, T, D), got {samples.shape}.")
    if not np.isfinite(samples).all():
        raise EvaluateError(f"{path}: the samples contain NaN or infinite values.")
    # the sample job writes sequences in the data's original scale: kept so (see scores.sequence_metrics)
    return torch.from_numpy(np.asarray(samples, dtype=np.float32)), labels, info


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
