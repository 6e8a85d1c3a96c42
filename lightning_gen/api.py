"""The Python entry points: load a checkpoint, sample, reconstruct, evaluate.

```python
from lightning_gen import api
model = api.load("runs/rvae/sines/lightning_logs/version_0/checkpoints/last.ckpt")
x = api.sample(model, 16)                       # (16, T, D) sequences / (16, C, H, W) images in [-1, 1]
x, y = api.sample(cond_model, 8, labels=[7] * 8, return_labels=True)   # a conditional model: eight 7s
report = api.evaluate("runs/.../last.ckpt", metrics=["mmd"], num_samples=200)
report["metrics"]["mmd"]["value"]
```

Everything goes through the same code as the CLI: :func:`load` is the audited checkpoint loader
(:func:`lightning_gen.checkpoints.load_model`), :func:`evaluate` the ``lightning-gen evaluate`` job with the same
options as keyword arguments. Training is the CLI's (``lightning_gen.cli.run_lightning_cli([...])``, see
``examples/``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch


def load(path: str | Path, device: str | torch.device = "cpu", allow_modules: Iterable[str] = ()):
    """The model of a ``lightning-gen fit`` checkpoint, in eval mode on ``device``.

    Args:
        path: a ``.ckpt`` (e.g. ``.../checkpoints/last.ckpt``).
        device: where the model goes.
        allow_modules: your own network modules the checkpoint may import (also ``LIGHTNING_GEN_ALLOW_MODULES``);
            only for checkpoints you trust, as importing a module runs its code.
    """
    from lightning_gen.checkpoints import load_model

    return load_model(path, map_location=device, allow_modules=tuple(allow_modules))


@torch.no_grad()
def sample(model, n: int, batch_size: int = 256, labels=None, return_labels: bool = False, **kwargs):
    """``model.sample`` in batches, concatenated on the CPU, in the model's own scale: images in [-1, 1] (the
    ``sample`` job maps them to [0, 1]), sequences scaled as in training (``model.to_original(x)`` gives the
    data's scale). ``kwargs`` go to ``model.sample`` (``length=`` for sequences, ``prior=`` for VAE types).

    Conditional models: ``labels`` (n ints in ``[0, num_classes)``, or one for all), default drawn from the
    training label distribution stored in the checkpoint; ``return_labels=True`` returns ``(samples, labels)``
    (labels None for an unconditional model). Labels given to an unconditional model raise ``ValueError``."""
    from lightning_gen.jobs.sample import draw

    if hasattr(model, "labels_for"):
        labels = model.labels_for(n, labels)
        labels = None if labels is None else labels.cpu()
    elif labels is not None:
        raise ValueError(f"Labels were given but {type(model).__name__} is unconditional: drop the labels.")
    x = draw(model, n, batch_size, labels, **kwargs)
    return (x, labels) if return_labels else x


@torch.no_grad()
def reconstruct(model, x: torch.Tensor) -> torch.Tensor:
    """Decode the posterior mean of ``x`` (VAE, VAE-GAN, R-VAE, R-VAE-GAN), in the model's scale."""
    if not hasattr(model, "reconstruct"):
        raise TypeError(f"{type(model).__name__} has no encoder: only the VAE-type models reconstruct.")
    return model.reconstruct(x.to(model.device)).cpu()


def evaluate(source: str | Path, **options) -> dict:
    """Run ``lightning-gen evaluate`` on ``source`` (a ``.ckpt``, a samples ``.npz`` or an image folder) and return
    its report (the dict that ``--output`` writes as JSON).

    Options are the job's flags with ``_`` for ``-``: ``metrics=["mmd"]``, ``num_samples=200``,
    ``data="configs/gan/digits.yaml"``, ``data_arg=["num_sequences=64"]``, ``no_cache=True``, ... (see
    ``lightning-gen evaluate --help``). Bad options raise :class:`lightning_gen.errors.UserError`.
    """
    from lightning_gen.jobs.evaluate import build_parser, check_args
    from lightning_gen.jobs.evaluate import evaluate as run

    argv = [str(source)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif key == "metrics" and not isinstance(value, str):
            argv += [flag, ",".join(value)]
        elif isinstance(value, (list, tuple)):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    args = _parse(build_parser(), argv)
    check_args(args)
    return run(args)


def _parse(parser, argv: list[str]):
    from lightning_gen.errors import UserError

    parser.exit_on_error = False
    try:
        args, unknown = parser.parse_known_args(argv)
    except Exception as err:  # noqa: BLE001  (argparse's ArgumentError, or SystemExit on a bad value)
        raise UserError(f"evaluate: {err}") from None
    except SystemExit:
        raise UserError(f"evaluate: bad options {argv[1:]} (see `lightning-gen evaluate --help`)") from None
    if unknown:
        raise UserError(f"evaluate: unknown option(s) {unknown} (see `lightning-gen evaluate --help`)")
    return args
