"""Sequences of different lengths in the networks and the three sequence models: packed recurrences that never read
padding, losses over real steps, lengths drawn from the training length distribution (per class), kept in the
checkpoint, written by the sample job."""

import json

import numpy as np
import pytest
import torch

from lightning_gen.checkpoints import load_model
from lightning_gen.data.arrays import ArraySequenceDataModule
from lightning_gen.data.sequence_base import pad_sequences
from lightning_gen.models import LSTMGAN, RVAE, RVAEGAN
from lightning_gen.models.latent_density import LatentDensityConfig
from lightning_gen.models.sequence_common import LengthDistribution, batch_lengths, moment_gap
from lightning_gen.nets import LSTMGenerator, RecurrentDecoder, RecurrentDiscriminator, RecurrentEncoder
from tests.conftest import fit_config, tiny_trainer
from tests.variable_length_helpers import write_fake_vowels

D = 3


def garbage_padding(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    pad = torch.arange(x.shape[1])[None] >= lengths[:, None]
    return torch.where(pad[..., None], torch.randn_like(x) * 100, x)


def test_packed_networks_never_read_padding():
    torch.manual_seed(0)
    x, lengths = torch.rand(4, 7, D), torch.tensor([7, 3, 5, 1])
    other = garbage_padding(x, lengths)
    enc = RecurrentEncoder(data_dim=D, latent_dim=4, hidden_size=8, bidirectional=True)
    torch.testing.assert_close(enc(x, lengths=lengths)[0], enc(other, lengths=lengths)[0])
    assert not torch.allclose(enc(x)[0], enc(other)[0])  # unpacked, the padding counts
    for per_step in (True, False):
        d = RecurrentDiscriminator(data_dim=D, hidden_size=8, num_layers=1, cell="gru", per_step=per_step)
        a, b = d(x, lengths=lengths), d(other, lengths=lengths)
        if per_step:
            mask = torch.arange(7)[None] < lengths[:, None]
            a, b = a[mask], b[mask]
        torch.testing.assert_close(a, b)
    # a sequence alone scores as it does padded in a batch (its final state is its last real step's)
    d = RecurrentDiscriminator(data_dim=D, hidden_size=8, num_layers=1, cell="lstm", per_step=False)
    torch.testing.assert_close(d(x[1:2, :3]), d(x, lengths=lengths)[1:2])


def test_length_distribution_samples_per_class_and_bins_long_data():
    dist = LengthDistribution(rows=2, capacity=16)
    assert not dist.variable
    counts = torch.zeros(2, 8)
    counts[0, 3], counts[1, 6], counts[1, 7] = 5, 1, 1
    dist.set(counts)
    drawn = dist.sample(200, torch.tensor([0, 1] * 100))
    assert set(drawn[::2].tolist()) == {3} and set(drawn[1::2].tolist()) == {6, 7}
    fresh = LengthDistribution(rows=2, capacity=16)
    fresh.load_state_dict(dist.state_dict())
    assert fresh.variable and torch.equal(fresh.sample(5, torch.zeros(5, dtype=torch.long)), torch.full((5,), 3))
    old = LengthDistribution()
    old.load_state_dict({})  # a checkpoint written before lengths were kept: fixed-length
    assert not old.variable
    long = LengthDistribution(capacity=4)  # 40 steps in 4 bins of 10: lengths drawn inside the bin of 33-39
    long.set(torch.nn.functional.one_hot(torch.tensor(35), 40).float())
    assert int(long.bin_width) == 10 and set(long.sample(100).tolist()) <= set(range(30, 40))


def test_batch_lengths_and_masked_moment_gap():
    x = torch.rand(3, 5, 2)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    assert batch_lengths((x, mask)).tolist() == [3, 5, 2]
    assert batch_lengths((x, torch.tensor([0, 1, 2]))) is None  # labels are no mask
    lengths = mask.sum(1)
    assert float(moment_gap(x, garbage_padding(x, lengths), lengths)) < 1e-6
    with pytest.raises(ValueError, match="empty sequence"):
        batch_lengths((x, torch.zeros(3, 5, dtype=torch.bool)))


def variable_data(tmp_path, labelled: bool = False):
    """24 sequences, class 0 of lengths 2-3, class 1 of lengths 5-6 (per-class lengths tell the classes apart)."""
    rng = np.random.default_rng(0)
    seqs = [rng.random((int(t), D)) for t in [2, 3, 5, 6] * 6]
    x, lengths = pad_sequences(seqs)
    extra = {}
    if labelled:
        np.save(tmp_path / "y.npy", (lengths > 4).astype(np.int64))
        extra["labels_path"] = str(tmp_path / "y.npy")
    np.savez(tmp_path / "v.npz", data=x, lengths=lengths)
    return ArraySequenceDataModule(str(tmp_path / "v.npz"), batch_size=4, val_fraction=0.2, test_fraction=0, **extra)


def make(name: str, num_classes=None):
    c = {"num_classes": num_classes, "label_dim": 2}
    if name == "lstm_gan":
        g = LSTMGenerator(latent_dim=2, sequence_latent_dim=2, data_dim=D, hidden_size=8, num_layers=1,
                          feed_previous=True, output="identity", **c)  # fmt: skip
        d = RecurrentDiscriminator(data_dim=D, hidden_size=8, num_layers=1, cell="gru", **c)
        return LSTMGAN(g, d, moment_matching=1.0, feature_matching=1.0, supervised=1.0, loss="wasserstein")
    enc = RecurrentEncoder(data_dim=D, latent_dim=2, hidden_size=8, **c)
    dec = RecurrentDecoder(latent_dim=2, data_dim=D, hidden_size=8, feed_previous=True, **c)
    if name == "rvae":
        return RVAE(enc, dec, latent_density=LatentDensityConfig(components=2))
    d = RecurrentDiscriminator(data_dim=D, hidden_size=8, num_layers=1, cell="gru", **c)
    return RVAEGAN(enc, dec, d, latent_density=LatentDensityConfig(components=2), kl_warmup_steps=0)


@pytest.mark.parametrize("name", ["lstm_gan", "rvae", "rvae_gan"])
def test_models_train_on_masked_batches_and_sample_training_lengths(name, tmp_path):
    torch.manual_seed(0)
    dm, model = variable_data(tmp_path), make(name)
    trainer = tiny_trainer(tmp_path, max_steps=2 if name != "rvae_gan" else 6, limit_val_batches=1)
    trainer.fit(model, dm)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.variable_length and set(model.sample_lengths(100).tolist()) <= {2, 3, 5, 6}
    x = model.sample(8)
    lengths = model.sample_lengths(8)
    assert x.shape[1] <= dm.seq_len and torch.isfinite(x).all()
    y = model.sample(8, lengths=lengths)
    assert y.shape == (8, int(lengths.max()), D)
    assert (y[torch.arange(y.shape[1])[None] >= lengths[:, None]] == 0).all()  # padding zeroed
    assert model.sample(3, length=9).shape == (3, 9, D)  # one length forced
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = type(model).load_from_checkpoint(path, **{k: getattr(model, k) for k in nets(model)})
    assert torch.equal(loaded.length_distribution.counts, model.length_distribution.counts)


def nets(model):
    return [k for k in ("generator", "discriminator", "encoder", "decoder") if hasattr(model, k)]


def test_padding_does_not_change_a_loss(tmp_path):
    """The R-VAE's loss of a batch is the same whatever its padding holds (the encoder packs, the NLL masks)."""
    torch.manual_seed(0)
    model = make("rvae")
    x, lengths = torch.rand(4, 6, D), torch.tensor([6, 2, 4, 3])
    x = torch.where((torch.arange(6)[None] < lengths[:, None])[..., None], x, 0)  # zero padding
    other = garbage_padding(x, lengths)
    torch.manual_seed(1)
    a = model.elbo_terms(x, 1.0, None, lengths)[:2]
    torch.manual_seed(1)
    b = model.elbo_terms(other, 1.0, None, lengths)[:2]
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)


def test_conditional_models_draw_lengths_per_class(tmp_path):
    torch.manual_seed(0)
    dm, model = variable_data(tmp_path, labelled=True), make("lstm_gan", num_classes=2)
    tiny_trainer(tmp_path, max_steps=2, limit_val_batches=1).fit(model, dm)
    short = model.sample_lengths(50, torch.zeros(50, dtype=torch.long))
    long = model.sample_lengths(50, torch.ones(50, dtype=torch.long))
    assert set(short.tolist()) <= {2, 3} and set(long.tolist()) <= {5, 6}


@pytest.mark.slow  # a CLI fit and two sample jobs: about 10 s
def test_sample_job_writes_lengths_and_length_forces_one(tmp_path):
    from lightning_gen.jobs.sample import main

    write_fake_vowels(str(tmp_path / "jv"))  # lengths 3-9
    ckpt = fit_config(
        "configs/rvae/vowels_cond.yaml", tmp_path / "run", f"--data.init_args.data_dir={tmp_path / 'jv'}",
        "--data.init_args.download=false", "--data.init_args.check_files=false", "--data.init_args.batch_size=4",
        "--model.init_args.encoder.init_args.hidden_size=8", "--model.init_args.decoder.init_args.hidden_size=8",
    )  # fmt: skip
    out = tmp_path / "s.npz"
    assert main([ckpt, "--per-class", "2", "--batch-size", "5", "--output", str(out)]) == 0
    with np.load(out) as f:
        samples, lengths, labels = f["samples"], f["lengths"], f["labels"]
    assert samples.shape[0] == 18 and lengths.shape == (18,) and set(lengths.tolist()) <= set(range(3, 10))
    assert samples.shape[1] == lengths.max() and len(set(labels.tolist())) == 9
    assert (samples[np.arange(samples.shape[1])[None] >= lengths[:, None]] == 0).all()
    # evaluate scores the samples file and the checkpoint with their lengths, and reports the length match
    from lightning_gen.jobs import evaluate

    data = ["--data", "configs/rvae/vowels.yaml", "--data", "configs/rvae/vowels_cond.yaml", "--data-arg",
            f"data_dir={tmp_path / 'jv'}", "--data-arg", "download=false", "--data-arg", "check_files=false",
            "--data-arg", "batch_size=4"]  # fmt: skip
    for source, extra in ((str(out), data), (ckpt, [])):
        report = tmp_path / "r.json"
        args = [source, "--metrics", "discriminative,mmd", "--disc-iterations", "2", "--repeats", "1", "--split",
                "train", "--output", str(report), *extra]  # fmt: skip
        assert evaluate.main(args) == 0
        metrics = json.loads(report.read_text())["metrics"]
        assert 0 <= metrics["length_ks"]["value"] <= 1 and metrics["mmd"]["value"] >= 0
    assert main([ckpt, "--num-samples", "2", "--output", str(out), "--length", "4"]) == 0
    with np.load(out) as f:
        assert f["samples"].shape == (2, 4, 12) and "lengths" not in f.files
    # a checkpoint written before lengths were kept loads as a fixed-length model
    ckpt_dict = torch.load(ckpt, weights_only=False)
    for key in ("counts", "bin_width"):
        del ckpt_dict["state_dict"][f"length_distribution.{key}"]
    torch.save(ckpt_dict, tmp_path / "old.ckpt")
    assert not load_model(tmp_path / "old.ckpt").variable_length
