"""``lightning-gen sample CKPT --num-samples N --output FILE.npz``: samples from any checkpoint of the project.

Images: ``samples`` float32 (N, C, H, W) in [0, 1], and a PNG grid beside FILE (FILE with ``.png``). Sequences:
``samples`` (N, T, D) in the data's scale and a line plot beside FILE; piano rolls: binary rolls, MIDI files and a
piano-roll PNG with pitch and time axes.
Each model family says what it makes through its ``data_kind`` attribute; ``WRITERS`` maps that kind to
the function that writes the files.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from pathlib import Path

import numpy as np
import torch

from lightning_gen.checkpoints import CheckpointError, add_allow_module_argument, load_model
from lightning_gen.errors import UserError, check_device, check_int, check_output, run_job
from lightning_gen.io import final_path, staged_outputs
from lightning_gen.plotting import save_sequences


def draw(model, num_samples: int, batch_size: int, **kwargs) -> torch.Tensor:
    """Call ``model.sample`` in batches and concatenate on the CPU; non-finite samples are refused."""
    if batch_size < 1 or num_samples < 1:  # a batch of 0 would loop forever
        raise UserError(f"--num-samples and --batch-size must be >= 1, got {num_samples} and {batch_size}.")
    chunks, left = [], num_samples
    while left > 0:
        n = min(batch_size, left)
        chunks.append(model.sample(n, **kwargs).float().cpu())
        left -= n
    out = torch.cat(chunks)
    if not bool(torch.isfinite(out).all()):
        raise UserError(
            f"The model generated {int((~torch.isfinite(out)).sum())} non-finite (NaN or infinite) values; nothing "
            "was written. Use an earlier checkpoint of the run."
        )
    return out


def write_image_samples(model, args) -> dict[str, str]:
    from torchvision.utils import save_image

    from lightning_gen.callbacks import image_grid

    raw = draw(model, args.num_samples, args.batch_size, **prior_kwargs(model, args)).clamp(-1, 1)  # (N, C, H, W)
    images = ((raw + 1) / 2).contiguous()  # in [0, 1]
    np.savez_compressed(args.output, samples=images.numpy().astype(np.float32))
    png = str(Path(args.output).with_suffix(".png"))
    shown = raw[: args.grid_size]
    # small images (8x8 digits) enlarged with nearest neighbour, as in the training grids
    save_image(image_grid(shown, nrow=max(1, int(math.sqrt(len(shown))))), png)
    return {"samples": args.output, "grid": png}


def write_sequence_samples(model, args) -> dict[str, str]:
    """Sequences: ``samples`` float32 (N, T, D) in the data's original scale (``--length`` steps, default the
    training length) and a line plot of the first sequences (FILE with ``.png``); for piano rolls (chorales)
    binary rolls, MIDI files (music21) and a piano-roll PNG with pitch and time axes."""
    length = model.sample_length(args.length)
    scaled = draw(model, args.num_samples, args.batch_size, length=length, **prior_kwargs(model, args))  # (N, T, D)
    info = model.data_info
    png = str(Path(args.output).with_suffix(".png"))
    shown = min(args.grid_size, 8)  # panels of the picture: a few sequences stay readable
    if info.is_piano_roll:
        from lightning_gen.music import write_roll_samples

        pitch_low, step = int(info.pitch_low), float(info.step)
        return write_roll_samples(scaled.numpy(), args.output, pitch_low, step, args.grid_size)
    original = model.to_original(scaled).cpu().numpy().astype(np.float32)  # (N, T, D)
    np.savez_compressed(args.output, samples=original)
    # a line per feature, one panel per sequence, as the SequencePlot callback draws them (here in the data's scale)
    return {"samples": args.output, "plot": save_sequences(original[:shown], png)}


def accepts_prior(model) -> bool:
    """Whether ``model.sample`` takes ``prior=`` (the VAE-type models with a fitted latent density)."""
    return "prior" in inspect.signature(model.sample).parameters


def prior_kwargs(model, args) -> dict:
    """``{"prior": ...}`` when ``--prior`` was given, else nothing (the model samples from its own prior)."""
    return {} if getattr(args, "prior", None) is None else {"prior": args.prior}


WRITERS = {"image": write_image_samples, "sequence": write_sequence_samples}


def writer_of(model, checkpoint: str):
    """The function that writes ``model``'s samples; a model that generates nothing (a classifier) is refused."""
    kind = getattr(model, "data_kind", "image")
    if kind not in WRITERS:
        raise UserError(
            f"{checkpoint} holds a {type(model).__name__} (data kind {kind!r}), which does not generate samples; "
            "sample the checkpoint of a generative model (GAN, VAE, VAE-GAN, R-VAE, R-VAE-GAN, LSTM-GAN). A "
            "classifier's checkpoint serves `lightning-gen evaluate --classifier CKPT`."
        )
    return WRITERS[kind]


def check_args(args) -> None:
    """Every argument's range, before anything is loaded or written (the allowed range is in the message)."""
    check_int("--num-samples", args.num_samples, 1)
    check_int("--batch-size", args.batch_size, 1)
    check_int("--grid-size", args.grid_size, 1)
    check_int("--length", args.length, 1)
    check_int("--seed", args.seed, 0, 2**63 - 1)
    check_output("--output", args.output, ".npz")
    check_device("--device", args.device)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightning-gen sample", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a .ckpt written by `lightning-gen fit` (e.g. .../checkpoints/last.ckpt)")
    p.add_argument("--num-samples", type=int, default=64)
    p.add_argument("--output", required=True, help="output .npz file")
    p.add_argument("--seed", type=int, default=0)
    add_allow_module_argument(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--grid-size", type=int, default=64, help="how many samples the PNG grid shows")
    p.add_argument("--length", type=int, default=None, help="sequence models: length of generated sequences")
    p.add_argument(
        "--prior",
        choices=("gmm", "gaussian", "standard"),
        default=None,
        help="VAE-type models: sample z from the latent density fitted to the training codes (gmm / gaussian) "
        "or from N(0, I) (standard); default: the model's own (its `prior` argument)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    return run_job(lambda: _run(argv))


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    try:
        model = load_model(args.checkpoint, map_location=args.device, allow_modules=args.allow_module)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.prior is not None and not accepts_prior(model):
        print(f"error: --prior: {type(model).__name__} has no latent prior to choose (a VAE-type model has)",
              file=sys.stderr)  # fmt: skip
        return 2
    write = writer_of(model, args.checkpoint)
    torch.manual_seed(args.seed)
    output = args.output
    with staged_outputs(output) as args.output:  # every file is written aside and moved into place at the end
        written = write(model, args)
    for what, path in written.items():
        print(f"wrote {what}: {final_path(path, output)}")
    return 0
