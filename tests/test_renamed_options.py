"""One vocabulary for the VAE-type models: option groups (``latent_density``, ``gating``, ``adversarial``) read
from YAML and saved as plain hyperparameters, and every old option name refused with the new one, in a config file,
on the command line and in a checkpoint (which ``python -m lightning_gen.renamed`` converts; the end-to-end
conversion of a trained VAE-GAN's checkpoint is in tests/test_vae_gan.py, on that file's trained run)."""

import os

import pytest
import torch
import yaml

from lightning_gen import renamed
from lightning_gen.cli import run_lightning_cli
from lightning_gen.errors import UserError
from lightning_gen.models import RVAE, VAEGAN
from lightning_gen.models.latent_density import LatentDensityConfig
from lightning_gen.models.vae_gan_parts import AdversarialConfig, EquilibriumGating
from lightning_gen.nets import ConvEncoder, DCGANDiscriminator, DCGANGenerator, RecurrentDecoder, RecurrentEncoder
from tests.conftest import REPO
from tests.robust_helpers import FAMILIES

pytestmark = pytest.mark.usefixtures("one_thread")

VAE_GAN = os.path.join(REPO, "configs/vae_gan/digits.yaml")


def _parse(*args: str):
    return run_lightning_cli(["--config", VAE_GAN, *FAMILIES["vae_gan"][1], *args], run=False)


@pytest.mark.parametrize(
    ("args", "old", "new"),
    [
        (["--model.init_args.pixel_weight=1.0"], "pixel_weight", "data_recon_weight"),
        (["--model.init_args.equilibrium_margin=0.3"], "equilibrium_margin", "gating.margin"),
        (["--model.init_args.generator.init_args.base_channels=4"], "generator", "decoder"),
        (["--model.prior_components=3"], "prior_components", "latent_density.components"),
        (["--model.init_args.adversarial_start=3"], "adversarial_start", "adversarial.start"),
        (["--model.init_args.loss=hinge"], "loss", "adversarial.loss"),
        (
            ["--model.init_args.discriminate_reconstructions=true"],
            "discriminate_reconstructions",
            "adversarial.reconstructions",
        ),
    ],
)
def test_an_old_option_on_the_command_line_is_refused_with_its_new_name(args, old, new):
    with pytest.raises(UserError, match=rf"`{old}` is now `{new}`"):
        _parse(*args)


def test_an_old_option_in_a_config_overlay_is_refused_with_its_new_name(tmp_path):
    overlay = tmp_path / "old.yaml"
    overlay.write_text(yaml.safe_dump({"model": {"init_args": {"feature_weight": 0.5, "prior": "gaussian"}}}))
    with pytest.raises(UserError) as err:
        _parse("--config", str(overlay))
    assert "`feature_weight` is now `feature_recon_weight`" in str(err.value)
    assert "`prior` is now `latent_density.kind`" in str(err.value) and "VAEGAN" in str(err.value)


def test_old_names_are_refused_only_for_the_models_that_renamed_them():
    gan = {"model": {"class_path": "lightning_gen.models.GAN", "init_args": {"generator": {}}}}
    assert renamed.check_arguments(["--model.init_args.generator.init_args.base_channels=4"], [gan]) is None
    rvae = {"model": {"class_path": "lightning_gen.models.RVAE"}}
    assert renamed.check_arguments(["--model.init_args.pixel_weight=1"], [rvae]) is None  # never an R-VAE option
    assert "latent_density.max_codes" in renamed.check_arguments(["--model.init_args.prior_max_codes=9"], [rvae])
    assert renamed.check_arguments(["--model.init_args.loss=hinge"], [gan]) is None  # the GAN keeps `loss`
    rvae_gan = {"model": {"class_path": "lightning_gen.models.RVAEGAN"}}
    assert "`adversarial_weight` is now `adversarial.weight`" in renamed.check_arguments(
        ["--model.init_args.adversarial_weight=2"], [rvae_gan]
    )


def test_option_groups_are_nested_mappings_of_the_config_and_sweeps_set_one_key():
    cli = _parse("--model.init_args.gating.margin=0.2", "--model.init_args.latent_density.kind=gaussian",
                 "--model.init_args.adversarial.start=5")  # fmt: skip
    assert cli.model.gating == EquilibriumGating(enabled=True, equilibrium=0.68, margin=0.2)  # the rest: defaults
    assert cli.model.latent_density_config == LatentDensityConfig(kind="gaussian")
    assert cli.model.game == AdversarialConfig(loss="ns", start=5)  # digits.yaml's loss, the rest defaults
    assert cli.model.hparams["gating"]["margin"] == 0.2  # what a checkpoint records: a plain mapping
    assert cli.model.hparams["adversarial"]["start"] == 5


def test_a_model_built_in_python_saves_its_option_groups_as_plain_mappings():
    small = dict(latent_dim=4, img_size=8, channels=1, base_channels=4, min_size=2)
    model = VAEGAN(
        ConvEncoder(**small), DCGANGenerator(**small), DCGANDiscriminator(img_size=8, base_channels=4, min_size=2),
        gating=EquilibriumGating(margin=0.2), latent_density={"kind": "gaussian", "max_codes": 50},
    )  # fmt: skip
    assert model.hparams["gating"] == {"enabled": True, "equilibrium": 0.68, "margin": 0.2}
    assert model.hparams["latent_density"] == {"kind": "gaussian", "max_codes": 50}  # given as a mapping
    assert model.latent_density_config == LatentDensityConfig("gaussian", max_codes=50)
    assert "encoder" not in model.hparams and model.hparams["data_recon_weight"] == 0.0
    seq = RVAE(RecurrentEncoder(3, 2, 8), RecurrentDecoder(2, 3, 8), latent_density=LatentDensityConfig(components=3))
    assert seq.hparams["latent_density"]["components"] == 3 and seq.sampling_decoder is seq.decoder


def test_the_sequence_vae_gans_old_training_prior_converts():
    ckpt = {
        "hyper_parameters": {"_class_path": "lightning_gen.models.RVAEGAN", "prior": "gmm", "prior_components": 5},
        "state_dict": {"training_prior.weights": torch.ones(5) / 5, "decoder.w": torch.zeros(1)},
    }
    assert renamed.needs_upgrade(ckpt) == {
        "prior": "latent_density.kind",
        "prior_components": "latent_density.components",
        "training_prior": "training_density",
    }
    new = renamed.upgrade(ckpt)
    assert new["hyper_parameters"] == {"_class_path": "lightning_gen.models.RVAEGAN",
                                       "latent_density": {"kind": "gmm", "components": 5}}  # fmt: skip
    assert set(new["state_dict"]) == {"training_density.weights", "training_density.epoch", "decoder.w"}
    assert renamed.needs_upgrade(new) == {}


def test_the_vae_gans_flat_adversarial_options_convert_into_their_group():
    ckpt = {
        "hyper_parameters": {"_class_path": "lightning_gen.models.VAEGAN", "loss": "ns", "gp_weight": 10.0,
                             "adversarial_start": 7, "discriminate_reconstructions": True, "gamma": 2.0},
        "state_dict": {"decoder.w": torch.zeros(1)},
    }  # fmt: skip
    new = renamed.upgrade(ckpt)["hyper_parameters"]
    assert new == {"_class_path": "lightning_gen.models.VAEGAN", "gamma": 2.0,
                   "adversarial": {"loss": "ns", "gp_weight": 10.0, "start": 7, "reconstructions": True}}  # fmt: skip
    assert AdversarialConfig.of(new["adversarial"]).start == 7  # what the model rebuilds from
