"""Reference image features cached in ``data/metric_cache/``, keyed by everything that changes them (dataset and
its arguments, split, number of items, seed, extractor and the SHA-256 of its weights, resize rule, torch)."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch

from lightning_gen.io import atomic_write
from lightning_gen.jobs.evaluate.options import FeatureCache

NO_EFFECT_DATA_ARGS = ("batch_size", "num_workers", "progress", "_instantiator")  # do not change the data


def reference_features(
    extractor,
    reference: torch.Tensor,
    spec: dict,
    provenance: dict,
    split: str,
    seed: int,
    cache: FeatureCache,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> tuple[dict, dict]:
    """Features of the reference images (of ``split`` of the dataset ``spec``), from ``cache`` when the same key
    was computed before; else extracted in batches of ``batch_size`` on ``device`` (and cached)."""
    from lightning_gen.metrics.image import extract_features

    key_fields = {
        "dataset": spec["class_path"],
        "init_args": {k: v for k, v in sorted(spec["init_args"].items()) if k not in NO_EFFECT_DATA_ARGS},
        "split": split,
        "num_reference": len(reference),
        "seed": seed if split == "train" else None,  # only the shuffled train loader depends on it
        "extractor": provenance["name"],
        "weights_sha256": provenance["weights_sha256"],
        "resize_rule": provenance["resize_rule"],
        "torch": torch.__version__,
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = cache.directory / f"reference_{provenance['name']}_{key}.npz"
    info = {"path": str(path), "key": key_fields, "hit": False}
    if cache.enabled and path.is_file():
        with np.load(path) as f:
            info["hit"] = True
            return {"features": torch.from_numpy(f["features"]), "logits": torch.from_numpy(f["logits"])}, info
    feats = extract_features(extractor, reference, batch_size, device)
    if cache.enabled:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
        np.savez(tmp, features=feats["features"].numpy(), logits=feats["logits"].numpy())
        with atomic_write(path.with_suffix(".json")) as f:
            json.dump(key_fields, f, indent=2, default=str)
        os.replace(tmp, path)  # atomic: a half-written cache is never read
    return feats, info
