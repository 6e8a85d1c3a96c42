"""The evaluate job (samples file, checkpoint, image folder; provenance; bad input) and the training-time
metric callback (val/fid as the ModelCheckpoint monitor, extractor weights kept out of checkpoints)."""

import json
import os
import re

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from lightning_gen.jobs import evaluate
from lightning_gen.metrics import TrainingMetric
from tests.conftest import REPO, fit_config, tiny_trainer

DIGITS = os.path.join(REPO, "configs/gan/digits.yaml")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def classifier_ckpt(digits_classifier_ckpt):
    """A tiny classifier trained with the shipped config (16 features: FID needs >= 16 samples), shared."""
    return digits_classifier_ckpt


@pytest.fixture(scope="module")
def gan_ckpt(tmp_path_factory):
    return fit_config(
        "configs/gan/digits.yaml",
        tmp_path_factory.mktemp("gan"),
        "--model.init_args.generator.init_args.base_channels=8",
        "--model.init_args.discriminator.init_args.base_channels=8",
    )


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    """Real digits (as a perfect generator would give) and the same digits with heavy noise."""
    from sklearn.datasets import load_digits

    images = load_digits().images[:200, None].astype(np.float32) / 16.0  # (200, 1, 8, 8) in [0, 1]
    noisy = np.clip(images + np.random.default_rng(0).normal(0, 0.4, images.shape), 0, 1).astype(np.float32)
    root = tmp_path_factory.mktemp("samples")
    np.savez(root / "real.npz", samples=images)
    np.savez(root / "noisy.npz", samples=noisy)
    return str(root / "real.npz"), str(root / "noisy.npz")


def run(args, capsys=None):
    return evaluate.evaluate(evaluate.build_parser().parse_args(args))


def test_samples_file_report_has_provenance(classifier_ckpt, digits_npz, tmp_path):
    real, noisy = digits_npz
    common = ["--data", DIGITS, "--classifier", classifier_ckpt, "--cache-dir", str(tmp_path / "cache")]
    out = tmp_path / "report.json"
    report = run([noisy, *common, "--metrics", "fid,kid,is,precision_recall", "--output", str(out)])
    saved = json.loads(out.read_text())
    assert saved["metrics"]["fid"]["value"] == pytest.approx(report["metrics"]["fid"]["value"])
    extractor = saved["feature_extractor"]
    assert extractor["name"] == "classifier" and len(extractor["weights_sha256"]) == 64
    assert extractor["resize_rule"].startswith("none") and "NOT comparable" in extractor["note"]
    assert saved["comparable_with_published"] is False
    assert (saved["num_real"], saved["num_generated"], saved["split"], saved["seed"]) == (180, 200, "test", 0)
    assert saved["dataset"]["class_path"] == "lightning_gen.data.DigitsDataModule"
    assert {"torch", "torchmetrics", "torch_fidelity", "pytorch_lightning", "numpy"} <= set(saved["versions"])
    assert saved["source"]["kind"] == "samples file" and len(saved["source"]["sha256"]) == 64
    assert set(saved["metrics"]) == {"fid", "kid", "is", "precision_recall"}
    assert saved["reference_cache"]["hit"] is False and os.path.isfile(saved["reference_cache"]["path"])
    # real digits score better than noisy ones; the second run reads the cached reference features
    clean = run([real, *common, "--metrics", "fid"])
    assert clean["reference_cache"]["hit"] is True
    assert clean["metrics"]["fid"]["value"] < report["metrics"]["fid"]["value"]
    # a different split is a different cache entry
    other = run([real, *common, "--metrics", "fid", "--split", "val"])
    assert other["reference_cache"]["hit"] is False and other["num_real"] == 162


def test_checkpoint_is_sampled_and_dataset_read_from_it(gan_ckpt, classifier_ckpt, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = evaluate.main(
        [gan_ckpt, "--classifier", classifier_ckpt, "--num-samples", "40", "--no-cache", "--output", str(out)]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["source"]["kind"] == "checkpoint" and report["source"]["model"] == "GAN"
    assert report["num_generated"] == 40 and report["dataset"]["class_path"].endswith("DigitsDataModule")
    assert np.isfinite(report["metrics"]["fid"]["value"])
    printed = capsys.readouterr().out
    assert "fid" in printed and "NOT comparable" in printed


def test_image_folder(classifier_ckpt, tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(load_digits().images[:20]):
        Image.fromarray((image * 255 / 16).astype(np.uint8)).save(folder / f"{i}.png")
    run_folder = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(classifier_ckpt))))
    # --classifier as the README and the sweeps give it: the classifier config's run folder, not its .ckpt
    report = run([str(folder), "--data", DIGITS, "--classifier", run_folder, "--no-cache"])
    assert report["source"]["kind"] == "image folder" and report["num_generated"] == 20
    assert np.isfinite(report["metrics"]["fid"]["value"])


@pytest.mark.parametrize(
    "samples, extra, message",
    [
        (np.zeros((40, 3, 8, 8), np.float32), [], r"\(C, H, W\) = \(3, 8, 8\).*have \(1, 8, 8\)"),
        (np.full((40, 1, 8, 8), np.nan, np.float32), [], "NaN"),
        (np.full((40, 1, 8, 8), -1.0, np.float32), [], r"must be in \[0, 1\]"),
        (np.zeros((10, 1, 8, 8), np.float32), [], "needs at least 16 samples per set; got 10 generated"),
        (np.zeros((40, 1, 8, 8), np.float32), ["--metrics", "fid,fdi"], r"Unknown metric\(s\) \['fdi'\]"),
        (np.zeros((40, 1, 8, 8), np.float32), ["--metrics", "elbo"], "needs a checkpoint"),
        (np.zeros((40, 1, 8, 8), np.float32), ["--num-samples", "50"], "holds only 40 samples"),
    ],
)
def test_bad_samples_get_clear_errors(samples, extra, message, classifier_ckpt, tmp_path, capsys):
    path = tmp_path / "bad.npz"
    np.savez(path, samples=samples)
    args = [str(path), "--data", DIGITS, "--classifier", classifier_ckpt, "--no-cache", *extra]
    assert evaluate.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:")
    import re

    assert re.search(message, err), err


def test_missing_dataset_and_wrong_model_kind(digits_npz, classifier_ckpt, capsys):
    assert evaluate.main([digits_npz[0], "--classifier", classifier_ckpt]) == 2
    assert "Which dataset? Give --data" in capsys.readouterr().err
    assert evaluate.main([classifier_ckpt, "--classifier", classifier_ckpt]) == 2
    assert "does not generate image data" in capsys.readouterr().err


def test_inception_offline_from_the_cli(digits_npz, monkeypatch, tmp_path, capsys):
    import urllib.error

    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert evaluate.main([digits_npz[0], "--data", DIGITS, "--features", "inception"]) == 2
    err = capsys.readouterr().err
    assert "weights-inception-2015-12-05-6726825d.pth" in err and str(tmp_path / "hub" / "checkpoints") in err


SINES = os.path.join(REPO, "configs/rvae/sines.yaml")
SMALL_SINES = ["--data-arg", "num_sequences=400", "--data-arg", "seq_len=8"]
FAST_SCORES = ["--disc-iterations", "10", "--pred-iterations", "10", "--repeats", "1"]


def test_sequence_samples_file(tmp_path):
    from lightning_gen.data.sines import make_sines

    good, noise = tmp_path / "sines.npz", tmp_path / "noise.npz"
    np.savez(good, samples=make_sines(40, 8, 5, seed=7))  # original scale, as the sample job writes them
    np.savez(noise, samples=np.random.default_rng(0).uniform(0, 1, (40, 8, 5)).astype(np.float32))
    common = ["--data", SINES, *SMALL_SINES, *FAST_SCORES]
    report = run([str(good), *common, "--metrics", "discriminative,predictive,mmd"])
    assert report["num_real"] == 40 and report["num_generated"] == 40 and report["feature_extractor"] is None
    metrics = report["metrics"]
    # the job scores the samples file against the test split, both as they are (sines lie in [0, 1]), with its flags
    from lightning_gen.metrics.mmd import mmd_rbf
    from lightning_gen.metrics.timegan import discriminative_score

    raw, generated = _raw_test_sines(), make_sines(40, 8, 5, seed=7)
    direct, _ = discriminative_score(raw, generated, iterations=10, batch_size=128, repeats=1, seed=0)
    assert metrics["discriminative"]["value"] == pytest.approx(direct, abs=1e-6)
    assert metrics["discriminative"]["repeats"] == 1 and metrics["discriminative"]["iterations"] == 10
    assert metrics["mmd"]["value"] == pytest.approx(mmd_rbf(raw, generated), rel=1e-5)
    assert metrics["predictive"]["value"] > 0 and metrics["predictive"]["reference_value"] > 0
    assert run([str(noise), *common, "--metrics", "mmd"])["metrics"]["mmd"]["value"] > metrics["mmd"]["value"]
    with pytest.raises(ValueError, match=r"Unknown metric\(s\) \['fid'\] for sequence data"):
        run([str(good), *common, "--metrics", "fid"])


def _raw_test_sines():
    """The test split of SMALL_SINES in the data's original scale ([0.5, 1]), as the sample job writes it."""
    spec = evaluate.resolve_data_spec(SINES, None, ["num_sequences=400", "seq_len=8"])
    dm = evaluate.build_datamodule(spec)
    dm.setup()
    return dm.inverse_scale(dm.splits["test"]).astype(np.float32)


def test_real_sines_are_scored_in_their_own_space(tmp_path):
    """TimeGAN scores sines as generated (in [0.5, 1]): the job's predictive score of the real test split
    equals the same score computed directly on the raw sequences, not on min-max rescaled ones."""
    from lightning_gen.metrics.timegan import predictive_score

    raw = _raw_test_sines()
    np.savez(tmp_path / "real.npz", samples=raw)
    args = ["--data", SINES, *SMALL_SINES, "--pred-iterations", "30", "--repeats", "1", "--metrics", "predictive"]
    report = run([str(tmp_path / "real.npz"), *args])
    direct, _ = predictive_score(raw, raw, iterations=30, repeats=1, seed=0)
    assert report["metrics"]["predictive"]["value"] == pytest.approx(direct, abs=1e-4)
    assert report["metrics"]["predictive"]["reference_value"] == pytest.approx(direct, abs=1e-4)
    assert report["scaling"].startswith("none") and report["out_of_range_share"] == 0.0


def test_samples_outside_the_real_range_are_scored_not_refused(tmp_path):
    raw = _raw_test_sines()
    noisy = raw + np.random.default_rng(0).normal(0, 0.1, raw.shape).astype(np.float32)  # some below .5, above 1
    np.savez(tmp_path / "noisy.npz", samples=noisy)
    report = run([str(tmp_path / "noisy.npz"), "--data", SINES, *SMALL_SINES, *FAST_SCORES])
    assert {"discriminative", "predictive", "mmd"} <= set(report["metrics"])
    assert 0.1 < report["out_of_range_share"] < 1.0


def test_piano_rolls_get_music_statistics(tmp_path):
    import yaml

    from lightning_gen.data import ChoralesDataModule

    init = {"data_dir": str(tmp_path), "max_chorales": 4, "window_length": 16, "stride": 8, "batch_size": 4}
    dm = ChoralesDataModule(**init, progress=False)
    dm.setup()
    np.savez(tmp_path / "rolls.npz", samples=np.roll(dm.splits["test"], 1, axis=2))  # all a semitone up
    config = tmp_path / "chorales.yaml"
    config.write_text(
        yaml.safe_dump({"data": {"class_path": "lightning_gen.data.ChoralesDataModule", "init_args": init}})
    )
    report = run([str(tmp_path / "rolls.npz"), "--data", str(config), *FAST_SCORES])
    metrics = report["metrics"]
    assert {"discriminative", "mmd", "music/polyphony", "music/pitch_histogram_distance"} <= set(metrics)
    # transposition keeps scale consistency and tone span, and moves the pitch histogram
    for stat in ("scale_consistency", "tone_span", "notes_per_step"):
        assert metrics[f"music/{stat}"]["value"] == pytest.approx(metrics[f"music/{stat}"]["reference_value"])
    assert metrics["music/pitch_histogram_distance"]["value"] > 0.1


def test_sequence_checkpoint_with_elbo(tmp_path):
    ckpt = fit_config(
        "configs/rvae/sines.yaml",
        tmp_path,
        "--data.init_args.num_sequences=200",
        "--data.init_args.seq_len=8",
        "--data.init_args.batch_size=16",
    )
    report = run([ckpt, "--metrics", "mmd,elbo", "--num-samples", "30", *FAST_SCORES])
    assert report["source"]["model"] == "RVAE" and report["num_generated"] == 30
    terms = {k: v["value"] for k, v in report["metrics"].items() if k.startswith("test/")}
    assert {"test/elbo", "test/recon", "test/kl"} <= set(terms) and "mmd" in report["metrics"]
    assert np.isfinite(terms["test/elbo"]) and terms["test/kl"] >= 0
    assert terms["test/elbo"] == pytest.approx(-(terms["test/recon"] + terms["test/kl"]), rel=1e-5)  # the ELBO's terms


def test_cli_lists_the_job():
    from lightning_gen.cli import JOBS, _usage

    assert JOBS["evaluate"][0] == "lightning_gen.jobs.evaluate" and "evaluate" in _usage()


# -- the training-time callback ---------------------------------------------------------------------
def test_fid_callback_is_a_checkpoint_monitor(classifier_ckpt, tiny_nets, adam, tmp_path):
    from lightning_gen.data import DigitsDataModule
    from lightning_gen.models import GAN

    generator, discriminator = tiny_nets
    model = GAN(generator, discriminator, optimizer_g=adam, optimizer_d=adam)
    metric = TrainingMetric("fid", every_n_epochs=1, num_samples=32, classifier=classifier_ckpt, batch_size=16)
    best = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/fid", mode="min", save_top_k=1)
    trainer = tiny_trainer(
        tmp_path,
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        callbacks=[metric, best],
        enable_checkpointing=True,
    )
    trainer.fit(model, DigitsDataModule(batch_size=16))
    value = float(trainer.callback_metrics["val/fid"])
    assert np.isfinite(value) and value > 0 and value == pytest.approx(metric.last_value)
    assert best.best_model_score is not None and float(best.best_model_score) <= value + 1e-6
    ckpt = torch.load(best.best_model_path, weights_only=True)
    assert set(ckpt["state_dict"]) == set(model.state_dict())  # no classifier weights in the model checkpoint
    assert all(v == {} for k, v in ckpt["callbacks"].items() if k.startswith("TrainingMetric"))


def test_fid_callback_every_n_epochs_and_fixed_samples(classifier_ckpt, tiny_nets, adam, tmp_path):
    from lightning_gen.data import DigitsDataModule
    from lightning_gen.models import GAN

    model = GAN(*tiny_nets, optimizer_g=adam, optimizer_d=adam)
    run_folder = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(classifier_ckpt))))
    # the classifier named by its run folder, as the sweeps and configs/gan/digits_fid.yaml name it
    metric = TrainingMetric("fid", every_n_epochs=2, num_samples=32, classifier=run_folder)
    calls = []
    original = metric.compute_fid
    metric.compute_fid = lambda trainer, module: calls.append(trainer.current_epoch) or original(trainer, module)
    trainer = tiny_trainer(tmp_path, max_epochs=3, limit_train_batches=1, limit_val_batches=1, callbacks=[metric])
    trainer.fit(model, DigitsDataModule(batch_size=16))
    assert calls == [1]  # epochs 0, 1, 2: only the second
    assert metric.extractor.source == classifier_ckpt  # the run folder's last.ckpt, named as the source
    first = metric._draw(trainer, model)
    assert torch.equal(first, metric._draw(trainer, model))  # the same noise every time


class SineSequences(pl.LightningDataModule):
    """Tiny sines (B, 8, 4) in [0, 1]; ``data_min`` marks sequence data."""

    data_min = np.zeros(4)

    def __init__(self):
        super().__init__()
        t = torch.arange(8.0)[None, :, None]
        freq = torch.rand(160, 1, 4, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.2
        self.x = (torch.sin(freq * t) + 1) / 2  # (160, 8, 4)

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x), batch_size=16)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x[:80]), batch_size=16)


class NoiseSequenceModel(pl.LightningModule):
    """A stand-in generator of uniform noise sequences (B, T, 4)."""

    data_kind = "sequence"

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def sample(self, n, length):
        return torch.rand(n, length, 4, device=self.device)

    def training_step(self, batch, batch_idx):
        return (self.w - 1).pow(2).sum()

    def validation_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_discriminative_callback_logs_the_sweep_metric(tmp_path):
    metric = TrainingMetric("discriminative", every_n_epochs=1, num_samples=80, iterations=60, batch_size=32)
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=1, callbacks=[metric])
    trainer.fit(NoiseSequenceModel(), SineSequences())
    score = float(trainer.callback_metrics["val/discriminative_score"])
    assert score == metric.last_value
    # the score of the callback's own draws against its reference (the val split), with its settings
    from lightning_gen.metrics.timegan import discriminative_score

    fake = metric._draw(trainer, trainer.lightning_module, length=metric.reference.shape[1])  # the same seeded draws
    assert metric.reference.shape == (80, 8, 4) and fake.shape == (80, 8, 4)
    direct, _ = discriminative_score(metric.reference.numpy(), fake.numpy(), iterations=60, repeats=1, seed=0)
    assert score == pytest.approx(direct, abs=1e-6)


def test_generator_test_metrics_cover_the_vae_gan(tmp_path):
    """``lightning-gen test`` of a VAE-GAN reports G's adversarial score too (found by attributes, no model import)."""
    from lightning_gen.metrics.callback import GeneratorTestMetrics
    from lightning_gen.models import VAEGAN
    from lightning_gen.nets import ConvEncoder, DCGANDiscriminator, DCGANGenerator

    torch.manual_seed(0)
    nets = (
        ConvEncoder(latent_dim=4, img_size=8, channels=1, base_channels=4, min_size=2),
        DCGANGenerator(latent_dim=4, img_size=8, channels=1, base_channels=4, min_size=2),
        DCGANDiscriminator(img_size=8, channels=1, base_channels=4, min_size=2),
    )
    model = VAEGAN(*nets, optimizer_e=torch.optim.Adam, optimizer_g=torch.optim.Adam, optimizer_d=torch.optim.Adam)
    assert GeneratorTestMetrics.applies(model)
    images = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    trainer = tiny_trainer(tmp_path, callbacks=[GeneratorTestMetrics()])
    metrics = trainer.test(model, DataLoader(TensorDataset(images, torch.zeros(8)), batch_size=4), verbose=False)[0]
    assert np.isfinite(metrics["test/g_adversarial"]) and metrics["test/g_adversarial"] > 0  # -log D(G(z)), ns


@pytest.mark.parametrize("conditioning", ["projection", "auxiliary"])
def test_generator_test_metrics_give_a_conditional_gan_the_batch_labels(conditioning, tmp_path):
    """A conditional D refuses images without labels: the callback samples and judges with the test batch's."""
    from lightning_gen.metrics.callback import GeneratorTestMetrics
    from lightning_gen.models import GAN
    from lightning_gen.nets import DCGANDiscriminator, DCGANGenerator

    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=4, img_size=8, channels=1, base_channels=4, min_size=2, num_classes=3)
    d = DCGANDiscriminator(
        img_size=8, channels=1, base_channels=4, min_size=2, num_classes=3, conditioning=conditioning
    )
    model = GAN(g, d, optimizer_g=torch.optim.Adam, optimizer_d=torch.optim.Adam)
    images = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loader = DataLoader(TensorDataset(images, torch.arange(8) % 3), batch_size=4)
    metrics = tiny_trainer(tmp_path, callbacks=[GeneratorTestMetrics()]).test(model, loader, verbose=False)[0]
    assert np.isfinite(metrics["test/g_adversarial"]) and metrics["test/g_adversarial"] > 0


def test_callback_bad_arguments():
    with pytest.raises(ValueError, match="Unknown training metric 'fd'"):
        TrainingMetric("fd")
    with pytest.raises(ValueError, match="needs `classifier`"):
        TrainingMetric("fid")


DDP_SCRIPT = """
import sys, torch, functools, pytorch_lightning as pl
from lightning_gen.data import DigitsDataModule
from lightning_gen.metrics import TrainingMetric
from lightning_gen.models import GAN
from lightning_gen.nets import MLPDiscriminator, MLPGenerator
torch.manual_seed(0)
adam = functools.partial(torch.optim.Adam, lr=1e-3)
model = GAN(MLPGenerator(8, 8, 1, hidden=16), MLPDiscriminator(8, 1, hidden=16), optimizer_g=adam, optimizer_d=adam)
metric = TrainingMetric("fid", every_n_epochs=1, num_samples=64, classifier=sys.argv[1])
trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true", max_epochs=1,
                     limit_train_batches=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, callbacks=[metric])
trainer.fit(model, DigitsDataModule(batch_size=16))
print(f"RANK {trainer.global_rank} FID {metric.last_value:.10f}", flush=True)
"""


@pytest.mark.slow
def test_fid_callback_under_ddp_gives_one_value(classifier_ckpt, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "ddp_fid.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run(  # the package importable from the repository too, installed or not
        [sys.executable, str(script), classifier_ckpt],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # the two ranks share one pipe, so their lines may interleave: find each rank's value anywhere in the output
    values = dict(re.findall(r"RANK (\d) FID (\d+\.\d{10})", out.stdout))
    assert sorted(values) == ["0", "1"], out.stdout + out.stderr
    assert values["0"] == values["1"]  # both ranks log the same synced value


# -- scores a researcher can trust: the real floor, fidelity and diversity apart, copying ---------------------------
@pytest.fixture(scope="module")
def three_models(tmp_path_factory):
    """Samples of three 'models' of the digits, scored against the validation split (never trained on):
    varied (the test split's real digits: as varied as the data, never seen), collapsed (one training digit per
    class repeated, with tiny noise) and copying (random training digits with small noise)."""
    from lightning_gen.data import DigitsDataModule
    from lightning_gen.metrics.reference import split_items

    dm = DigitsDataModule(batch_size=16)
    train, train_y = split_items(dm, "train")
    varied = split_items(dm, "test")[0]
    rng = np.random.default_rng(0)
    n = len(varied)
    first = [int(np.flatnonzero(train_y.numpy() == c)[0]) for c in range(10)]
    collapsed = train[np.repeat(first, n // 10 + 1)[:n]].numpy() + rng.normal(0, 0.01, (n, 1, 8, 8))
    copies = train[rng.integers(0, len(train), n)].numpy() + rng.normal(0, 0.03, (n, 1, 8, 8))
    root = tmp_path_factory.mktemp("three")
    paths = {}
    for name, x in (("varied", varied.numpy()), ("collapsed", collapsed), ("copying", copies)):
        paths[name] = str(root / f"{name}.npz")
        np.savez(paths[name], samples=np.clip(x, 0, 1).astype(np.float32))
    return paths


def test_collapsed_and_copying_models_are_flagged_and_ranked_below_a_varied_one(three_models, classifier_ckpt):
    from lightning_gen.jobs.evaluate.trust import rank_key

    reports = {
        name: run([path, "--data", DIGITS, "--classifier", classifier_ckpt, "--no-cache", "--split", "val"])
        for name, path in three_models.items()
    }
    varied, collapsed, copying = reports["varied"], reports["collapsed"], reports["copying"]
    for report in reports.values():  # every default score, each beside the real data's own on the same protocol
        assert {"fid", "fid_inf", "kid", "precision_recall", "density_coverage", "memorization"} <= set(
            report["metrics"]
        )
        assert report["metrics"]["kid"]["real"]["n"] == 180 and "reference_value" in report["metrics"]["fid"]
        assert report["real_floor"] == {"items": "the training split", "n": 180, "against": "val"}
    assert varied["problems"] == [] and varied["metrics"]["memorization"]["copying"] is False
    assert "low_diversity" in collapsed["problems"]
    for key in ("recall", "coverage"):
        part = "precision_recall" if key == "recall" else "density_coverage"
        assert collapsed["metrics"][part][key] < 0.5 * varied["metrics"][part][key]
    assert "copying" in copying["problems"] and copying["metrics"]["memorization"]["copying"] is True
    assert copying["metrics"]["memorization"]["copy_share"]["value"] > 0.5  # 5% expected without copying
    assert "COPYING SUSPECTED" in copying["metrics"]["memorization"]["verdict"]
    ranked = sorted(reports, key=lambda name: rank_key(reports[name]))
    assert ranked[0] == "varied", {n: rank_key(r) for n, r in reports.items()}


def test_reference_is_never_the_training_split_by_default(classifier_ckpt, digits_npz, tmp_path, capsys):
    """--split auto takes the test split when it holds 4 items per feature dimension (the 16-d test classifier),
    else validation + test (64-d features: 'held_out'); --split train is labelled as trained on, with no copying
    test; a small reference is flagged."""
    from lightning_gen.data import DigitsDataModule
    from lightning_gen.metrics.reference import choose_reference

    real, _ = digits_npz
    auto = run([real, "--data", DIGITS, "--classifier", classifier_ckpt, "--no-cache", "--metrics", "fid"])
    assert auto["reference"]["split"] == "test" and not auto["reference"]["trained_on"]
    split, why = choose_reference(DigitsDataModule(batch_size=16), 64)
    assert split == "held_out" and "180" in why
    args = [real, "--data", DIGITS, "--classifier", classifier_ckpt, "--no-cache", "--split", "train"]
    trained = run([*args, "--metrics", "fid,memorization"])
    assert trained["reference"]["trained_on"] and trained["flags"][0]["kind"] == "trained_on_reference"
    assert "not_computed" in trained["metrics"]["memorization"] and "real_floor" not in trained
    small = run([real, "--data", DIGITS, "--classifier", classifier_ckpt, "--no-cache", "--num-reference", "36"])
    assert [f["kind"] for f in small["flags"]][:1] == ["small_reference"]
    assert small["metrics"]["fid_inf"]["value"] is None and "twice" in small["metrics"]["fid_inf"]["not_computed"]
    assert evaluate.main([real, "--data", DIGITS, "--classifier", classifier_ckpt, "--no-cache"]) == 0
    printed = capsys.readouterr().out
    assert "real data fid" in printed and "reference: the test split" in printed and "memorization" in printed


def test_sequences_get_density_coverage_and_the_copying_test(tmp_path):
    """Sines: the real test split (unseen) passes; noisy copies of training windows are flagged as copying, one
    window repeated as lacking variety; both rank below the real sequences."""
    from lightning_gen.jobs.evaluate.trust import rank_key

    data = ["num_sequences=1000", "seq_len=8"]
    dm = evaluate.build_datamodule(evaluate.resolve_data_spec(SINES, None, data))
    dm.setup()
    train, rng = dm.inverse_scale(dm.splits["train"]), np.random.default_rng(0)
    unseen = dm.inverse_scale(dm.splits["test"])
    samples = {
        "unseen": unseen,
        "copies": train[rng.integers(0, len(train), len(unseen))] + rng.normal(0, 0.002, unseen.shape),
        "collapsed": np.repeat(train[:1], len(unseen), axis=0) + rng.normal(0, 0.002, unseen.shape),
    }
    reports = {}
    for name, x in samples.items():
        np.savez(tmp_path / f"{name}.npz", samples=x.astype(np.float32))
        reports[name] = run([str(tmp_path / f"{name}.npz"), "--data", SINES, "--data-arg", data[0], "--data-arg",
                             data[1], "--metrics", "mmd,precision_recall,density_coverage,memorization"])  # fmt: skip
    good = reports["unseen"]["metrics"]
    assert (
        good["density_coverage"]["real"]["n"] == len(unseen) and "flattened windows" in good["memorization"]["features"]
    )
    assert good["mmd"]["real"]["n"] == len(unseen) and good["mmd"]["reference_value"] >= 0  # the real data's MMD
    assert reports["collapsed"]["metrics"]["precision_recall"]["recall"] < 0.1 < good["precision_recall"]["recall"]
    assert reports["unseen"]["problems"] == [] and reports["copies"]["problems"] == ["copying"]
    assert "low_diversity" in reports["collapsed"]["problems"]
    assert sorted(reports, key=lambda n: rank_key(reports[n], "mmd"))[0] == "unseen"
