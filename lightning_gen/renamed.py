"""Options of the VAE-type models (VAE, VAE-GAN, R-VAE, R-VAE-GAN) that were renamed or grouped when the family got
one vocabulary: a config, a command line or a checkpoint that still uses an old name is refused with the new one, and
a checkpoint can be converted with ``python -m lightning_gen.renamed OLD.ckpt NEW.ckpt``.

The new names: the network after the encoder is the ``decoder`` (its weight average ``decoder_ema``), the loss
weights are ``feature_recon_weight`` / ``data_recon_weight``, the data-space likelihood is ``likelihood``, the latent
density's options are one ``latent_density:`` mapping
(:class:`~lightning_gen.models.latent_density.LatentDensityConfig`), the VAE-GAN's equilibrium gating one
``gating:`` mapping (:class:`~lightning_gen.models.vae_gan_parts.EquilibriumGating`) and the two VAE-GANs'
adversarial options one ``adversarial:`` mapping (:class:`~lightning_gen.models.vae_gan_parts.AdversarialConfig`).

This module imports nothing of the package: the command-line parser and the checkpoint loader read it before any
model is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

_DENSITY = {
    "prior": "latent_density.kind",
    "prior_components": "latent_density.components",
    "prior_max_codes": "latent_density.max_codes",
    "prior_train_components": "latent_density.train_components",
    "prior_train_codes": "latent_density.train_codes",
}

#: the two VAE-GANs' adversarial options, grouped in one ``adversarial:`` mapping
_ADVERSARIAL = {
    "loss": "adversarial.loss",
    "gp_weight": "adversarial.gp_weight",
    "spectral_norm": "adversarial.spectral_norm",
    "adversarial_start": "adversarial.start",
    "adversarial_weight": "adversarial.weight",
    "discriminate_reconstructions": "adversarial.reconstructions",
    "gan_prior": "adversarial.prior",
    "prior_samples": "adversarial.prior_samples",
}

#: model class -> {old option: new option (a dotted name is a key of a nested mapping)}
RENAMED_OPTIONS: dict[str, dict[str, str]] = {
    "VAE": _DENSITY,
    "RVAE": _DENSITY,
    "RVAEGAN": {**_DENSITY, **_ADVERSARIAL},
    "VAEGAN": {
        "generator": "decoder",
        "pixel_weight": "data_recon_weight",
        "feature_weight": "feature_recon_weight",
        "pixel_likelihood": "likelihood",
        "equilibrium_gating": "gating.enabled",
        "equilibrium": "gating.equilibrium",
        "equilibrium_margin": "gating.margin",
        **_DENSITY,
        **_ADVERSARIAL,
    },
}

#: model class -> {old state_dict prefix: new prefix}
RENAMED_STATE: dict[str, dict[str, str]] = {
    "VAEGAN": {"generator.": "decoder.", "generator_ema.": "decoder_ema.", "gan_density.": "training_density."},
    "RVAEGAN": {"training_prior.": "training_density."},
}

#: a buffer the renamed state gained: the epoch of the training density's copy (-1: copied at the next batch)
_TRAINING_DENSITY_EPOCH = "training_density.epoch"


def class_name(class_path: Any) -> str | None:
    """``lightning_gen.models.vae_gan.VAEGAN`` -> ``VAEGAN`` (None for anything but a string)."""
    return class_path.rsplit(".", 1)[-1] if isinstance(class_path, str) else None


def old_options(class_path: Any, init_args: Mapping | None) -> dict[str, str]:
    """{old name: new name} of the options in ``init_args`` that the model ``class_path`` no longer takes."""
    renamed = RENAMED_OPTIONS.get(class_name(class_path) or "", {})
    return {k: renamed[k] for k in (init_args or {}) if k in renamed}


def describe(found: Mapping[str, str]) -> str:
    """``pixel_weight`` is now ``data_recon_weight``, ... (one clause per renamed option)."""
    return "; ".join(f"`{old}` is now `{new}`" for old, new in found.items())


def refusal(class_path: str, found: Mapping[str, str], where: str) -> str:
    """The message that refuses old option names: what they are called now and where to rename them."""
    name = class_name(class_path)
    nested = any("." in new for new in found.values())
    how = " (a dotted name is a key of a nested mapping: `latent_density: {kind: gmm}`)" if nested else ""
    return (
        f"{where} gives {name} options under their old names: {describe(found)}{how}. The VAE-type models share one "
        "vocabulary (docs/models.md): rename them."
    )


def check_arguments(args: list[str], configs: list[Mapping]) -> str | None:
    """The refusal message for old option names in the model's config files (``configs``, in order) and dotted
    ``--model.*`` arguments of a command line, or None when there is none."""
    class_path, found = None, {}
    for config in configs:
        model = config.get("model") if isinstance(config, Mapping) else None
        if isinstance(model, Mapping):
            class_path = model.get("class_path", class_path)
            init_args = model.get("init_args")
            found.update(old_options(class_path, init_args if isinstance(init_args, Mapping) else None))
    for arg in args:
        if arg.startswith("--model.class_path="):
            class_path = arg.split("=", 1)[1]
        elif arg.startswith("--model=") and "." in arg and "{" not in arg and "/" not in arg:
            class_path = arg.split("=", 1)[1]
    for arg in args:
        key = arg.split("=", 1)[0]
        for prefix in ("--model.init_args.", "--model."):
            if key.startswith(prefix):
                found.update(old_options(class_path, {key.removeprefix(prefix).split(".")[0]: None}))
                break
    return refusal(class_path, found, "The config or command line") if found else None


def upgrade(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint written with the old option names, with its hyperparameters and weights renamed (in place)."""
    hparams = ckpt.get("hyper_parameters") or {}
    name = class_name(hparams.get("_class_path"))
    for old, new in old_options(name, hparams).items():
        value = hparams.pop(old)
        if "." in new:
            group, key = new.split(".")
            hparams.setdefault(group, {})[key] = value
        else:
            hparams[new] = value
    prefixes = RENAMED_STATE.get(name or "", {})
    state = ckpt.get("state_dict") or {}
    renamed = {}
    for key, value in state.items():
        old = next((p for p in prefixes if key.startswith(p)), None)
        renamed[key if old is None else prefixes[old] + key.removeprefix(old)] = value
    if prefixes and any(k.startswith("training_density.") for k in renamed):
        import torch  # only the conversion needs it

        renamed.setdefault(_TRAINING_DENSITY_EPOCH, torch.tensor(-1))
    ckpt["state_dict"] = renamed
    return ckpt


def needs_upgrade(ckpt: Mapping[str, Any]) -> dict[str, str]:
    """{old: new} of the renamed options and weights a checkpoint still has (empty: nothing to convert)."""
    hparams = ckpt.get("hyper_parameters") or {}
    name = class_name(hparams.get("_class_path"))
    found = old_options(name, hparams)
    for old, new in RENAMED_STATE.get(name or "", {}).items():
        if any(k.startswith(old) for k in ckpt.get("state_dict") or {}):
            found[old.rstrip(".")] = new.rstrip(".")
    return found


def main(argv: list[str] | None = None) -> int:
    """``python -m lightning_gen.renamed OLD.ckpt NEW.ckpt``: write a copy of a checkpoint with the new names."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] in ("-h", "--help"):
        print("usage: python -m lightning_gen.renamed OLD.ckpt NEW.ckpt", file=sys.stderr)
        return 2
    import torch

    src, dst = argv
    if not os.path.isfile(src):
        print(f"error: {src} does not exist", file=sys.stderr)
        return 2
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    found = needs_upgrade(ckpt)
    torch.save(upgrade(ckpt), dst)
    print(f"{dst}: {describe(found) if found else 'nothing was renamed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
