"""``lightning-gen sample CKPT --num-samples N --output FILE.npz``: samples from any checkpoint of the project.

Images: ``samples`` float32 (N, C, H, W) in [0, 1], and a PNG grid beside FILE (FILE with ``.png``).
Each model family says what it makes through its ``data_kind`` attribute; ``WRITERS`` maps that kind to
the function that writes the files.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

from lightning_gen.checkpoints import CheckpointError, load_model


def draw(model, num_samples: int, batch_size: int, **kwargs) -> torch.Tensor:
    """Call ``model.sample`` in batches and concatenate on the CPU."""
    chunks, left = [], num_samples
    while left > 0:
        n = min(batch_size, left)
        chunks.append(model.sample(n, **kwargs).float().cpu())
        left -= n
    return torch.cat(chunks)


def write_image_samples(model, args) -> dict[str, str]:
    from torchvision.utils import save_image

    images = ((draw(model, args.num_samples, args.batch_size).clamp(-1, 1) + 1) / 2).contiguous()  # (N, C, H, W)
    np.savez_compressed(args.output, samples=images.numpy().astype(np.float32))
    png = str(Path(args.output).with_suffix(".png"))
    shown = images[: args.grid_size]
    save_image(shown, png, nrow=max(1, int(math.sqrt(len(shown)))), padding=1, pad_value=1.0)
    return {"samples": args.output, "grid": png}


def write_sequence_samples(model, args) -> dict[str, str]:
    """Sequences: ``samples`` float32 (N, T, D) in the data's original scale (``--length`` steps, default the
    training length); for piano rolls (chorales) binary rolls, MIDI files (music21) and a piano-roll PNG."""
    length = model.sample_length(args.length)
    scaled = draw(model, args.num_samples, args.batch_size, length=length)  # (N, T, D) in [0, 1]
    info = model.data_info
    if info.is_piano_roll:
        from lightning_gen.music import write_roll_samples

        return write_roll_samples(scaled.numpy(), args.output, int(info.pitch_low), float(info.step), args.grid_size)
    np.savez_compressed(args.output, samples=model.to_original(scaled).cpu().numpy().astype(np.float32))
    return {"samples": args.output}


WRITERS = {"image": write_image_samples, "sequence": write_sequence_samples}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightning-gen sample", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a .ckpt written by `lightning-gen fit` (e.g. .../checkpoints/last.ckpt)")
    p.add_argument("--num-samples", type=int, default=64)
    p.add_argument("--output", required=True, help="output .npz file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--grid-size", type=int, default=64, help="how many samples the PNG grid shows")
    p.add_argument("--length", type=int, default=None, help="sequence models: length of generated sequences")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.num_samples < 1:
        print(f"error: --num-samples must be >= 1, got {args.num_samples}", file=sys.stderr)
        return 2
    if not args.output.endswith(".npz"):
        print(f"error: --output must end in .npz, got {args.output}", file=sys.stderr)
        return 2
    try:
        model = load_model(args.checkpoint, map_location=args.device)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    kind = getattr(model, "data_kind", "image")
    torch.manual_seed(args.seed)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    written = WRITERS[kind](model, args)
    for what, path in written.items():
        print(f"wrote {what}: {path}")
    return 0
