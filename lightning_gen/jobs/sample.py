"""``lightning-gen sample CKPT --num-samples N --output FILE.npz``: samples from any checkpoint of the project.

Images: ``samples`` float32 (N, C, H, W) in [0, 1], and a PNG grid beside FILE (FILE with ``.png``). Sequences:
``samples`` (N, T, D) in the data's scale and a line plot beside FILE; piano rolls: binary rolls, MIDI files and a
piano-roll PNG with pitch and time axes (chorales written as voices become rolls of their four pitches), and with
``--wav N`` WAV files of the first N.

Conditional models (:mod:`lightning_gen.models.conditional`) sample the classes asked with ``--labels
0,1,2`` or ``--labels-file FILE`` (.npy, .txt or .csv of integers), ``--per-class K`` of each, else labels drawn
from the training label distribution stored in the checkpoint. The labels are written into FILE (``labels``,
int64 (N,), beside ``samples``) and the picture has one row per class, labelled on the side.
Each model family says what it makes through its ``data_kind`` attribute; ``WRITERS`` maps that kind to
the function that writes the files.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

from lightning_gen.checkpoints import CheckpointError, add_allow_module_argument, load_model
from lightning_gen.errors import UserError, check_device, check_int, check_output, run_job
from lightning_gen.io import final_path, staged_outputs
from lightning_gen.plotting import save_sequences


def draw(
    model, num_samples: int, batch_size: int, labels: torch.Tensor | None = None, lengths=None, **kwargs
) -> torch.Tensor:
    """Call ``model.sample`` in batches and concatenate on the CPU; non-finite samples are refused. ``labels``
    (int64 (num_samples,), conditional models) go to each batch's ``model.sample(n, labels=...)``, and so do
    ``lengths`` (sequences of different lengths; each batch zero-padded to the longest of all)."""
    if batch_size < 1 or num_samples < 1:  # a batch of 0 would loop forever
        raise UserError(f"--num-samples and --batch-size must be >= 1, got {num_samples} and {batch_size}.")
    if labels is not None and len(labels) != num_samples:
        raise UserError(f"{len(labels)} labels for {num_samples} samples: give one label per sample.")
    chunks, done = [], 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        extra = {} if labels is None else {"labels": labels[done : done + n]}
        if lengths is not None:
            extra["lengths"] = lengths[done : done + n]
        chunks.append(model.sample(n, **kwargs, **extra).float().cpu())
        done += n
    if lengths is not None:  # (n, max of the batch's lengths, D) each: padded to the longest of all
        steps = int(lengths.max())
        chunks = [torch.nn.functional.pad(c, (0, 0, 0, steps - c.shape[1])) for c in chunks]
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
    from lightning_gen.plotting import class_rows, save_labelled_grid

    labels = getattr(args, "sample_labels", None)  # set by the job (sample_labels); None: unconditional
    raw = draw(model, args.num_samples, args.batch_size, labels, **prior_kwargs(model, args)).clamp(-1, 1)
    images = ((raw + 1) / 2).contiguous()  # (N, C, H, W) in [0, 1]
    save_samples(args.output, images.numpy().astype(np.float32), labels)
    png = str(Path(args.output).with_suffix(".png"))
    if labels is None:
        shown = raw[: args.grid_size]
        # small images (8x8 digits) enlarged with nearest neighbour, as in the training grids
        save_image(image_grid(shown, nrow=max(1, int(math.sqrt(len(shown))))), png)
        return {"samples": args.output, "grid": png}
    # one row per class (sorted), the first samples of that class, blank cells where a class has fewer
    classes, index = class_rows(labels.numpy(), grid_columns(labels, args))
    flat = torch.from_numpy(index.reshape(-1))
    cells = torch.full((len(flat), *raw.shape[1:]), 1.0)  # white
    cells[flat >= 0] = raw[flat[flat >= 0]]
    save_labelled_grid(image_grid(cells, nrow=index.shape[1]), [str(c) for c in classes], png)
    return {"samples": args.output, "grid": png}


def grid_columns(labels: torch.Tensor, args) -> int:
    """Samples per class row: as many as the largest class has, within ``--grid-size`` samples in all (one row
    per class, at least one column), so ``--per-class 200`` still draws a readable picture; the samples file
    holds every sample."""
    rows = len(torch.unique(labels))
    return max(1, min(int(torch.bincount(labels).max()), args.grid_size // rows))


def save_samples(path: str, samples: np.ndarray, labels: torch.Tensor | None, **arrays) -> None:
    """The samples file: ``samples``, and ``labels`` (int64 (N,)) for a conditional model."""
    if labels is not None:
        arrays["labels"] = labels.cpu().numpy().astype(np.int64)
    np.savez_compressed(path, samples=samples, **arrays)


def write_sequence_samples(model, args) -> dict[str, str]:
    """Sequences: ``samples`` float32 (N, T, D) in the data's original scale (``--length`` steps, default the
    training length) and a line plot of the first sequences (FILE with ``.png``); for piano rolls (chorales)
    binary rolls, MIDI files (music21) and a piano-roll PNG with pitch and time axes."""
    length = model.sample_length(args.length)
    labels = getattr(args, "sample_labels", None)  # set by the job (sample_labels); None: unconditional
    lengths = None  # a model trained on sequences of different lengths draws them (per class); --length forces one
    if args.length is None and getattr(model, "variable_length", False):
        lengths, length = model.sample_lengths(args.num_samples, labels).cpu(), None
    scaled = draw(model, args.num_samples, args.batch_size, labels, lengths, length=length, **prior_kwargs(model, args))
    info = model.data_info
    png = str(Path(args.output).with_suffix(".png"))
    shown = min(args.grid_size, 8)  # panels of the picture: a few sequences stay readable
    if info.is_piano_roll:
        from lightning_gen.music import voices_to_rolls, write_roll_samples

        pitch_low, step = int(info.pitch_low), float(info.step)
        voices = voice_count(model)  # chorales as voices: one-hot pitches per voice, written as rolls
        rolls = voices_to_rolls(scaled.numpy(), voices) if voices else scaled.numpy()
        written = write_roll_samples(rolls, args.output, pitch_low, step, args.grid_size, args.wav)
        if labels is not None:  # the labels beside the rolls, and the picture redrawn with one row per class
            with np.load(args.output) as f:
                arrays = {k: f[k] for k in f.files if k != "samples"}
                rolls = f["samples"]
            save_samples(args.output, rolls, labels, **arrays)
            save_class_sequences(rolls, labels, args, written["piano roll"], roll=True, pitch_low=pitch_low, step=step)
        return written
    original = model.to_original(scaled).cpu().numpy().astype(np.float32)  # (N, T, D)
    if lengths is None:
        save_samples(args.output, original, labels)
    else:  # zero-padded sequences and their lengths (int64 (N,)); the plots show the real steps only
        from lightning_gen.plotting import trim

        original[~(np.arange(original.shape[1])[None] < lengths.numpy()[:, None])] = 0.0
        save_samples(args.output, original, labels, lengths=lengths.numpy().astype(np.int64))
        original = trim(original, lengths.numpy())
    if labels is not None:
        return {"samples": args.output, "plot": save_class_sequences(original, labels, args, png)}
    # a line per feature, one panel per sequence, as the SequencePlot callback draws them (here in the data's scale)
    return {"samples": args.output, "plot": save_sequences(original[:shown], png)}


def voice_count(model) -> int:
    """Voices per step of a model whose networks write one-hot voices (``lightning_gen.nets.voices``), 0 for one
    that writes piano rolls."""
    return next((int(m.voices) for m in model.modules() if isinstance(getattr(m, "voices", None), int)), 0)


def save_class_sequences(samples: np.ndarray, labels: torch.Tensor, args, png: str, **how) -> str:
    """One row of panels per class (sorted), at most 4 sequences a row, titled with the class."""
    from lightning_gen.plotting import class_rows, save_figure, sequence_figure

    classes, index = class_rows(labels.numpy(), min(4, grid_columns(labels, args)))
    rows = [(samples[i[i >= 0]], f"class {c}, sample") for c, i in zip(classes, index, strict=True)]
    return save_figure(sequence_figure(rows, max_cols=index.shape[1], **how), png)


def accepts_prior(model) -> bool:
    """Whether ``model.sample`` takes ``prior=`` (the VAE-type models with a fitted latent density)."""
    return "prior" in inspect.signature(model.sample).parameters


def prior_kwargs(model, args) -> dict:
    """``{"prior": ...}`` when ``--prior`` was given, else nothing (the model samples from its own prior)."""
    return {} if getattr(args, "prior", None) is None else {"prior": args.prior}


WRITERS = {"image": write_image_samples, "sequence": write_sequence_samples}
DEFAULT_NUM_SAMPLES = 64


# -- labels ---------------------------------------------------------------------------------------------------
def parse_labels(text: str, where: str = "--labels") -> list[int]:
    """``"0,1,2"`` (commas and / or white space) -> ``[0, 1, 2]``; anything but whole numbers is refused."""
    tokens = [t for t in text.replace(",", " ").split() if t]
    if not tokens:
        raise UserError(f"{where}: no labels given; write them as integers, e.g. --labels 0,1,2.")
    bad = [t for t in tokens if not t.lstrip("+-").isdigit()]
    if bad:
        raise UserError(f"{where}: labels must be whole numbers (class indices), got {bad[:5]}; e.g. --labels 0,1,2.")
    return [int(t) for t in tokens]


def read_labels_file(path: str) -> list[int]:
    """The labels of ``--labels-file``: a .npy array of integers, or a .txt / .csv of integers separated by commas,
    spaces or new lines."""
    from lightning_gen.io import read_numpy

    if not os.path.isfile(path):
        raise UserError(f"--labels-file {path}: no such file.")
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        array = read_numpy(Path(path), lambda p: np.load(p, allow_pickle=False))
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.integer):
            raise UserError(
                f"--labels-file {path}: expected an array of integers (class indices), got dtype "
                f"{getattr(array, 'dtype', type(array).__name__)}; save it with np.save(path, labels.astype(int))."
            )
        if array.ndim > 1 and sum(d > 1 for d in array.shape) > 1:
            raise UserError(f"--labels-file {path}: expected one label per sample (a 1-D array), got {array.shape}.")
        return [int(v) for v in array.reshape(-1)]
    if suffix not in (".txt", ".csv"):
        raise UserError(f"--labels-file {path}: give a .npy, .txt or .csv file of integer labels, not {suffix!r}.")
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError:
        raise UserError(f"--labels-file {path}: not a text file; write one integer label per line.") from None
    return parse_labels(text, f"--labels-file {path}")


def requested_labels(args) -> list[int] | None:
    """The labels of ``--labels`` or ``--labels-file`` (None: neither given)."""
    if args.labels is not None and args.labels_file is not None:
        raise UserError("Give --labels or --labels-file, not both.")
    if args.labels is not None:
        return parse_labels(args.labels)
    return None if args.labels_file is None else read_labels_file(args.labels_file)


def is_conditional(model) -> bool:
    return getattr(model, "num_classes", None) is not None and hasattr(model, "labels_for")


def sample_labels(model, args) -> tuple[int, torch.Tensor | None]:
    """How many samples, and their labels (None for an unconditional model): ``--per-class K`` of each asked
    label (of every class when none is asked), else the asked labels (one is repeated ``--num-samples`` times),
    else ``--num-samples`` labels drawn from the training label distribution the checkpoint stores."""
    given = requested_labels(args)
    if not is_conditional(model):
        if given is not None or args.per_class:
            raise UserError(
                f"Labels were asked ({'--per-class' if given is None else '--labels'}) but {type(model).__name__} is "
                "unconditional (its networks have no num_classes): drop them, or sample a conditional model's "
                "checkpoint (a config with `num_classes`)."
            )
        return args.num_samples or DEFAULT_NUM_SAMPLES, None
    if args.per_class:
        if args.num_samples is not None:
            raise UserError("Give --per-class K (K samples of each class) or --num-samples N, not both.")
        classes = sorted(set(given)) if given is not None else list(range(model.num_classes))
        given = [c for c in classes for _ in range(args.per_class)]
    if given is None:
        n = args.num_samples or DEFAULT_NUM_SAMPLES
        return n, model.labels_for(n).cpu()  # drawn from the stored distribution (a clear error when none is)
    n = args.num_samples or len(given)
    if len(given) not in (1, n):
        raise UserError(
            f"{len(given)} labels for --num-samples {n}: give one label per sample, a single label for all, or "
            "--per-class K for K samples of each label given."
        )
    return n, model.labels_for(n, torch.tensor(given)).cpu()  # checked against [0, num_classes)


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
    check_int("--per-class", args.per_class, 1)
    check_int("--batch-size", args.batch_size, 1)
    check_int("--grid-size", args.grid_size, 1)
    check_int("--length", args.length, 1)
    check_int("--wav", args.wav, 0)
    check_int("--seed", args.seed, 0, 2**63 - 1)
    check_output("--output", args.output, ".npz")
    check_device("--device", args.device)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightning-gen sample", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a .ckpt written by `lightning-gen fit` (e.g. .../checkpoints/last.ckpt)")
    p.add_argument(
        "--num-samples",
        type=int,
        default=None,
        help=f"how many samples (default {DEFAULT_NUM_SAMPLES}; with --labels / --labels-file: one per label)",
    )
    p.add_argument("--output", required=True, help="output .npz file")
    p.add_argument("--seed", type=int, default=0)
    add_allow_module_argument(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--grid-size",
        type=int,
        default=64,
        help="how many samples the PNG grid shows at most (conditional models: one row per class, "
        "grid-size // classes columns, at least 1)",
    )
    p.add_argument("--length", type=int, default=None, help="sequence models: length of generated sequences")
    p.add_argument(
        "--wav",
        type=int,
        default=0,
        metavar="N",
        help="piano-roll models (chorales): also write WAV files of the first N samples beside their MIDI files "
        "(a simple additive synthesizer; default 0: none)",
    )
    p.add_argument(
        "--labels",
        default=None,
        help="conditional models: the class of each sample, comma-separated (e.g. 0,1,2; a single label is "
        "repeated --num-samples times); default: drawn from the training label distribution",
    )
    p.add_argument("--labels-file", default=None, help="conditional models: the labels in a .npy, .txt or .csv file")
    p.add_argument(
        "--per-class",
        type=int,
        default=None,
        metavar="K",
        help="conditional models: K samples of each class given (of every class without --labels); the grid "
        "shows one row per class, at most --grid-size samples in all",
    )
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
    args.num_samples, args.sample_labels = sample_labels(model, args)
    output = args.output
    with staged_outputs(output) as args.output:  # every file is written aside and moved into place at the end
        written = write(model, args)
    for what, path in written.items():
        print(f"wrote {what}: {final_path(path, output)}")
    return 0
