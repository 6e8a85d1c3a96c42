"""Small pieces every model family uses: plain hyperparameters, generator EMA, one optimizer step with its
gradient norm and clipping, and logging only on the steps the logger writes."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel

from lightning_gen import lightning_internals as li
from lightning_gen.losses import AdversarialLoss, d_loss_with_gp, mean_d_output

_PLAIN = (str, int, float, bool, type(None))


def _is_plain(value) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def save_plain_hyperparameters(model, frame=None) -> None:
    """``save_hyperparameters`` that keeps only plain data, so checkpoints load with ``weights_only=True``.

    Under LightningCLI the hparams are the model's config (``_class_path`` plus init args, networks and
    optimizers as nested ``class_path`` dicts, option groups such as ``latent_density`` as nested mappings):
    plain, and enough to rebuild the model from the checkpoint alone. A model built in Python gets the same
    call, with its option groups (dataclasses) saved as plain mappings, minus arguments that are objects
    (networks, optimizer factories), which a ``weights_only`` load could not unpickle.
    """
    frame = frame or inspect.currentframe().f_back
    given = li.given_hyperparameters()  # set by LightningCLI while it builds the model: the plain config
    if given is not None:
        model.save_hyperparameters(frame=frame)
        return
    code = frame.f_code  # the constructor's own arguments, in order
    names = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]
    args = {k: frame.f_locals[k] for k in names}
    plain = {k: dataclasses.asdict(v) if _is_group(v) else v for k, v in args.items()}
    model.save_hyperparameters({k: v for k, v in plain.items() if _is_plain(v)})


def _is_group(value) -> bool:
    """An option group (a dataclass instance such as ``LatentDensityConfig``)."""
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


class GeneratorEMA(nn.Module):
    """Exponential moving average of a generator's weights and buffers (Karras et al. 2018, sec. 4;
    Yazici et al. 2019). Built on ``torch.optim.swa_utils.AveragedModel``; the averaged copy is a
    submodule, so it is saved in (and restored from) every checkpoint.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after n updates (the schedule of TensorFlow's
    ``ExponentialMovingAverage(num_updates=...)``), so short runs are not dominated by the initial weights.
    """

    def __init__(self, generator: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}.")
        self.decay = decay

        def ema(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
            n = float(num_averaged)  # one host sync per update, not one per tensor
            weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
            for a, c in zip(averaged, current):
                if a.is_floating_point():
                    a.lerp_(c, weight)
                else:  # integer buffers such as BatchNorm's num_batches_tracked
                    a.copy_(c)

        self.averaged = AveragedModel(generator, multi_avg_fn=ema, use_buffers=True)
        self.averaged.requires_grad_(False)  # never trained: keeps DDP and optimizers away from it

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        self.averaged.update_parameters(generator)

    @torch.no_grad()
    def track_statistics(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """One train-mode forward of the averaged generator on ``z`` (and ``labels``), no gradient: its batch
        norms' running statistics move towards those of its own averaged weights (BigGAN's "standing statistics",
        Brock et al. 2019) instead of being the average of the trained generator's."""
        g = self.module
        mode = g.training
        g.train()
        g(z) if labels is None else g(z, labels=labels)
        g.train(mode)

    @property
    def module(self) -> nn.Module:
        return self.averaged.module


@contextmanager
def eval_mode(*modules: nn.Module):
    """Put modules in eval mode (batch norm uses running statistics) and restore their modes after."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def logs_this_step(module) -> bool:
    """Whether the logger will write this training step's ``on_step`` metrics.

    ``self.log`` costs about a millisecond per call in Lightning 2.x, and for ``on_step`` metrics only the
    value of every ``log_every_n_steps``-th batch is written: computing and logging the others is pure
    overhead, a visible share of a small model's step (benchmarks/README.md, "Lightning overhead").
    """
    trainer = li.attached_trainer(module)
    return True if trainer is None else li.logger_writes_this_step(trainer)


def attached_datamodule(module):
    """The datamodule of the trainer the module is attached to (None outside a fit or without one)."""
    return getattr(li.attached_trainer(module), "datamodule", None)


def batches_done(module) -> int:
    """Training batches completed before the current one (0 outside a fit), restored on resume.

    Use this, not ``global_step``, for schedules in batches (KL warm-up, ...): ``global_step`` counts optimizer
    steps in a plain Lightning Trainer (two or three per batch here) and batches under ``lightning-gen fit``
    (its ``ExactResume`` callback), while this is the same number in both.
    """
    trainer = li.attached_trainer(module)
    return 0 if trainer is None else li.batches_completed(trainer)


def clip_grad_norm_before_step(optimizer: torch.optim.Optimizer, max_norm: float | None = None) -> torch.Tensor:
    """Global gradient norm of an optimizer's parameters, clipped to ``max_norm`` when given.

    Call it from ``LightningModule.on_before_optimizer_step(optimizer)``: Lightning runs that hook inside
    ``opt.step()`` after unscaling fp16 gradients, in every precision. Clipping in ``training_step`` before
    ``opt.step()`` (or with ``self.clip_gradients``) clips the still-scaled gradients under fp16 (Lightning
    #18089), and unscaling by hand there breaks the step.
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not params:
        return torch.zeros(())
    return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm is not None else float("inf"))


class ManualSteps:
    """One optimizer step for the manual-optimization models, written once: ``finish_step`` steps and zeroes
    and returns the gradient norm; clipping (``self.clip_grad_norm``) is the one ``on_before_optimizer_step``.

    The norm is measured inside ``opt.step()`` (the hook below), the only place where fp16 gradients are
    already unscaled (Lightning #18089), and handed back by ``finish_step``: training steps read it as a return
    value. Mix in before ``pl.LightningModule``.
    """

    clip_grad_norm: float | None

    def finish_step(self, optimizer, step: bool = True) -> torch.Tensor | None:
        """Step (unless ``step=False``: a gated update that only drops the gradients) and zero the gradients;
        return the gradient norm when it was measured (clipping, or a step whose metrics the logger writes)."""
        self._step_grad_norm = None
        if step:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return self._step_grad_norm

    def on_before_optimizer_step(self, optimizer) -> None:
        # Lightning calls this inside opt.step(), after fp16 gradients are unscaled and before the update, so
        # clipping here is right in every precision; clipping before opt.step() would clip scaled gradients.
        if self.clip_grad_norm is not None or logs_this_step(self):
            self._step_grad_norm = clip_grad_norm_before_step(optimizer, self.clip_grad_norm)


class AdversarialLogs:
    """What every adversarial model logs the same way: D's training step (loss, mean outputs, gradient norm,
    the gradient penalty when there is one), G's loss and norm, and D on real vs generated data at
    validation / test. Needs ``self.adversarial`` and ``self.loss_name``; call the ``log_*_step`` methods on
    the steps :func:`logs_this_step` writes."""

    adversarial: AdversarialLoss
    loss_name: str
    gp_weight: float

    def _d_output(self, logits: torch.Tensor) -> torch.Tensor:
        return mean_d_output(logits, self.loss_name)

    def discriminator_update(
        self,
        opt_d,
        real: torch.Tensor,
        fake: torch.Tensor,
        critic,
        penalty_critic=None,
        penalty_without_cudnn: bool = False,
        labels: torch.Tensor | None = None,
        class_weight: float = 1.0,
    ) -> None:
        """One D update on real vs generated data (``fake`` made without a graph through G): the adversarial
        loss plus ``self.gp_weight`` times the gradient penalty when the loss needs one, then the step and (on
        written steps) the logs. ``critic(x)`` gives the logits; ``penalty_critic(x)`` one value per sample for
        the penalty (default: ``critic``'s logits); ``penalty_without_cudnn`` for recurrent critics (cuDNN RNNs
        have no double backward).

        Conditional models bind the labels into ``critic`` (real and fakes share the real batch's labels, so the
        penalty's interpolates have them too). An auxiliary-classifier D (AC-GAN, Odena et al. 2017, sec. 3)
        makes ``critic(x)`` return ``(logits, class_logits)``: then ``labels`` (B,) are the classes of both real
        and fake, and D's loss gains ``class_weight`` x the cross-entropy of the class logits on real and on
        generated images (the paper's L_C, which D and G both maximise the log-likelihood of)."""
        with self.toggled_optimizer(opt_d):
            (real_logits, real_classes), (fake_logits, fake_classes) = _split(critic(real)), _split(critic(fake))
            penalty = penalty_critic or (lambda x: _split(critic(x))[0])
            with torch.backends.cudnn.flags(enabled=not penalty_without_cudnn):
                d_loss, gp = d_loss_with_gp(
                    self.adversarial, real_logits, fake_logits, penalty, real, fake, self.gp_weight
                )
            class_loss = None
            if real_classes is not None:
                if labels is None:
                    raise ValueError("An auxiliary-classifier discriminator needs the labels of real and fake.")
                class_loss = F.cross_entropy(real_classes, labels) + F.cross_entropy(fake_classes, labels)
                d_loss = d_loss + class_weight * class_loss
            self.manual_backward(d_loss)
            d_norm = self.finish_step(opt_d)
        if logs_this_step(self):  # Lightning keeps only the last on_step value: skip the others' cost
            self.log_d_step(d_loss, real_logits, fake_logits, d_norm, gp)
            if class_loss is not None:
                self.log("train/d_class_loss", class_loss.detach())

    def log_d_step(
        self,
        d_loss: torch.Tensor,
        real_logits: torch.Tensor,
        fake_logits: torch.Tensor,
        grad_norm: torch.Tensor | None,
        gp: torch.Tensor | None = None,
    ) -> None:
        if gp is not None:
            self.log("train/gradient_penalty", gp)
        self.log_dict(
            {
                "train/d_loss": d_loss.detach(),
                "train/D(x)": self._d_output(real_logits),
                "train/D(G(z))": self._d_output(fake_logits),
                "train/grad_norm_d": grad_norm,
            }
        )
        self.log("d_loss", d_loss.detach(), prog_bar=True, logger=False)

    def log_g_step(self, g_loss: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
        self.log_dict({"train/g_loss": g_loss.detach(), "train/grad_norm_g": grad_norm})
        self.log("g_loss", g_loss.detach(), prog_bar=True, logger=False)

    def d_metrics(self, prefix: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's loss and mean outputs on real vs generated data, for ``log_dict`` at validation / test."""
        return {
            f"{prefix}/d_loss": self.adversarial.d(real_logits, fake_logits),
            f"{prefix}/D(x)": self._d_output(real_logits),
            f"{prefix}/D(G(z))": self._d_output(fake_logits),
        }


def _split(out) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A critic's output as (logits, class logits or None)."""
    return (out[0], out[1]) if isinstance(out, tuple) else (out, None)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation on every conv and linear layer (Miyato et al. 2018)."""
    for name, child in module.named_children():
        if isinstance(child, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module


def has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@dataclasses.dataclass(frozen=True)
class OptionGroup:
    """Base of the dataclasses that group related model options (``latent_density: {...}``, ``gating: {...}``):
    LightningCLI reads them as nested mappings and checkpoints save them as plain dicts, so a model accepts either.
    A dataclass itself, so that jsonargparse reads its subclasses as plain nested mappings, not as classes."""

    key = "options"  #: the model argument's name, for messages

    @classmethod
    def of(cls, value):
        """The group itself, or one built from a mapping (hyperparameters saved as a plain dict); None: defaults."""
        if value is None:
            return cls()
        if isinstance(value, Mapping):
            return cls(**value)
        if not isinstance(value, cls):
            raise TypeError(f"{cls.key} must be a {cls.__name__} object or a mapping of its keys, got {value!r}.")
        return value


def check_image_shape(generator: nn.Module, dims) -> None:
    """Raise a clear error when the data's (C, H, W) differ from what the generator makes."""
    made = (getattr(generator, "channels", None), getattr(generator, "img_size", None))
    if dims is None or None in made:
        return
    c, h, w = dims
    if (c, h, w) != (made[0], made[1], made[1]):
        raise ValueError(
            f"The data gives images of shape (C, H, W) = {(c, h, w)} but the generator makes "
            f"{(made[0], made[1], made[1])}. Set the networks' `img_size` / `channels` to match the data "
            f"(e.g. --model.generator.init_args.img_size={h}), or resize the data with --data.img_size."
        )


def check_critic(generator: nn.Module, discriminator: nn.Module) -> None:
    """Raise a clear error when D reads another (channels, img_size) than G makes."""
    g_shape = (getattr(generator, "channels", None), getattr(generator, "img_size", None))
    d_shape = (getattr(discriminator, "channels", None), getattr(discriminator, "img_size", None))
    if None not in g_shape + d_shape and g_shape != d_shape:
        raise ValueError(
            f"The generator makes (channels, img_size) = {g_shape} but the discriminator expects {d_shape}."
        )


def check_penalty_norm(adversarial: AdversarialLoss, gp_weight: float, discriminator: nn.Module) -> None:
    """The gradient penalty is per sample: refuse a critic with batch norm (which mixes samples)."""
    if adversarial.needs_gradient_penalty and gp_weight > 0 and has_batch_norm(discriminator):
        raise ValueError(
            "The gradient penalty is per sample, and batch norm in the critic mixes samples (Gulrajani et "
            "al. 2017, sec. 4): give the discriminator norm='layer' or norm='none' with loss=wasserstein."
        )
