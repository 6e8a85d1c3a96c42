"""Class-conditional sequence data, networks and models: labels that mean what they say, networks that
read them, models that train, sample and resume with them, and clear errors for every wrong use."""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest
import torch

from lightning_gen import music
from lightning_gen.data import ArraySequenceDataModule, ChoralesDataModule, SinesDataModule
from lightning_gen.data.sines import make_band_sines
from lightning_gen.models import LSTMGAN, RVAE, RVAEGAN
from lightning_gen.models.latent_density import LatentDensityConfig
from lightning_gen.nets import LSTMGenerator, RecurrentDecoder, RecurrentDiscriminator, RecurrentEncoder
from tests.conftest import tiny_trainer
from tests.robust_helpers import FAMILIES
from tests.test_resume import test_stop_and_resume_is_exact as stop_and_resume_is_exact

pytestmark = pytest.mark.usefixtures("one_thread")
D, T, Z, H, K = 2, 8, 4, 8, 3
adam = functools.partial(torch.optim.Adam, lr=1e-2)


def sines(**kwargs) -> SinesDataModule:
    args = dict(num_sequences=96, seq_len=T, dim=D, condition="frequency_band", num_bands=K, batch_size=16)
    return SinesDataModule(**{**args, **kwargs})


def frequencies(x: np.ndarray) -> np.ndarray:
    """Each feature's frequency (N, D) from sines (N, T, D) in [0.5, 1]: the step of arcsin(2x - 1) over the first
    steps, where f t + phase stays below pi / 2."""
    angle = np.arcsin(2 * x[:, :4].astype(np.float64) - 1)
    return np.diff(angle, axis=1).mean(1)


# -- data -----------------------------------------------------------------------------------------------------------
def test_band_labels_match_the_generated_frequencies():
    x, bands = make_band_sines(600, T, D, num_bands=K, seed=3)
    f = frequencies(x)  # (N, D)
    width = 0.1 / K
    assert np.all(f >= bands[:, None] * width - 1e-4) and np.all(f <= (bands[:, None] + 1) * width + 1e-4)
    assert set(bands.tolist()) == set(range(K))
    dm = sines()  # the DataModule's labels travel with their own sequences through split and scaling
    dm.setup()
    f_train, y = frequencies(dm.inverse_scale(dm.splits["train"])), dm.labels["train"]
    assert np.all((f_train.mean(1) // width).clip(0, K - 1) == y)
    assert dm.num_classes == K and dm.label_counts().tolist() == np.bincount(y, minlength=K).tolist()
    batch = next(iter(dm.train_dataloader()))
    assert len(batch) == 2 and batch[1].dtype == torch.int64 and batch[1].shape == (16,)
    assert len(next(iter(SinesDataModule(num_sequences=64, seq_len=T, dim=D, batch_size=16).train_dataloader()))) == 1


def test_chorale_mode_and_key_are_music21s_and_cached(tmp_path, monkeypatch):
    from music21 import corpus

    dm = ChoralesDataModule(data_dir=str(tmp_path), max_chorales=3, progress=False, condition="key", batch_size=2)
    names = music.chorale_names(3)
    keys = [corpus.parse(name).analyze("key") for name in names]
    expected = [k.tonic.pitchClass + 12 * (k.mode == "minor") for k in keys]
    dm.setup()
    every_label = set(np.concatenate(list(dm.labels.values())).tolist())  # one label per window
    assert dm.num_classes == 24 and every_label == set(expected)
    monkeypatch.setattr(music, "parse_chorales", lambda *a, **k: pytest.fail("the cached keys were not used"))
    mode = ChoralesDataModule(data_dir=str(tmp_path), max_chorales=3, progress=False, condition="mode", batch_size=2)
    mode.setup()
    every_mode = set(np.concatenate(list(mode.labels.values())).tolist())
    assert every_mode == {int(k.mode == "minor") for k in keys} and mode.num_classes == 2


def test_a_notes_cache_without_keys_is_parsed_again_for_them(tmp_path, monkeypatch):
    names, notes = music.load_chorale_notes(tmp_path, max_chorales=1, progress=False)
    path = tmp_path / "chorales" / "notes_1.npz"
    with np.load(path) as f:
        old = {k: f[k] for k in f.files if k != "keys"}
    np.savez_compressed(path, **old)  # a cache written before keys were cached
    parsed = []
    real_parse = music.parse_chorales
    monkeypatch.setattr(music, "parse_chorales", lambda *a, **k: parsed.append(1) or real_parse(*a, **k))
    assert len(music.load_chorale_notes(tmp_path, max_chorales=1, progress=False)[1]) == 1  # notes: cache
    assert parsed == []
    _, _, keys = music.load_chorale_notes(tmp_path, max_chorales=1, progress=False, keys=True)
    assert parsed == [1] and keys.shape == (1, 2)


def test_array_labels_from_a_column_or_a_second_file(tmp_path):
    rng = np.random.default_rng(0)
    series = rng.random((120, 3))
    series[:, 2] = np.repeat([0, 1, 2, 1], 30)  # a label column, constant over runs of 30 steps
    np.save(tmp_path / "series.npy", series)
    dm = ArraySequenceDataModule(
        str(tmp_path / "series.npy"), window_length=10, stride=5, label_column=-1, batch_size=4
    )
    dm.setup()
    assert dm.data_dim == 2 and dm.num_classes == 3
    x = dm.inverse_scale(np.concatenate([dm.splits[s] for s in ("train", "val", "test")]))
    y = np.concatenate([dm.labels[s] for s in ("train", "val", "test")])
    assert len(y) == 4 * 5  # 23 windows, the 3 across a change of label left out
    for window, label in zip(x, y):  # each window is a piece of the series under its own label
        start = int(np.flatnonzero(np.isclose(series[:, 0], window[0, 0]))[0])
        assert np.allclose(series[start : start + 10, :2], window, atol=1e-5) and series[start, 2] == label
    seqs, labels = rng.random((40, 6, 2)), np.arange(40) % 2
    np.save(tmp_path / "seqs.npy", seqs)
    np.savez(tmp_path / "labels.npz", y=labels)
    dm = ArraySequenceDataModule(str(tmp_path / "seqs.npy"), labels_path=str(tmp_path / "labels.npz"), batch_size=4)
    dm.setup()
    restored = dm.inverse_scale(dm.splits["train"])
    idx = [int(np.flatnonzero(np.isclose(seqs[:, 0, 0], s[0, 0]))[0]) for s in restored]
    assert dm.labels["train"].tolist() == labels[idx].tolist() and dm.label_counts().sum() == len(idx)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: SinesDataModule(condition="mode"), "cannot condition on 'mode'"),
        (lambda p: ChoralesDataModule(condition="frequency_band"), "cannot condition on 'frequency_band'"),
        (lambda p: ArraySequenceDataModule(p["seqs"], labels_path=p["floats"]).setup(), "must be integers"),
        (lambda p: ArraySequenceDataModule(p["seqs"], labels_path=p["short"]).setup(), "needs 12 labels"),
        (lambda p: ArraySequenceDataModule(p["seqs"], label_column=1, batch_size=2).setup(), "changes within"),
        (lambda p: ArraySequenceDataModule(p["seqs"], label_column=5).setup(), "label_column=5"),
        (lambda p: ArraySequenceDataModule(p["seqs"], label_column=0, labels_path=p["short"]), "one way"),
        (lambda p: SinesDataModule().label_counts(), "yields no labels"),
    ],
)
def test_bad_conditions_and_labels_are_refused(make, match, tmp_path):
    seqs = np.random.default_rng(0).random((12, 4, 2))
    seqs[:, :, 1] = np.arange(4) % 2  # integer labels that change within each sequence
    paths = {"seqs": tmp_path / "seqs.npy", "floats": tmp_path / "floats.npy", "short": tmp_path / "short.npy"}
    np.save(paths["seqs"], seqs)
    np.save(paths["floats"], np.linspace(0, 1, 12))
    np.save(paths["short"], np.arange(5))
    with pytest.raises(ValueError, match=match):
        make({k: str(v) for k, v in paths.items()})


# -- networks -------------------------------------------------------------------------------------------------------
def conditional_nets():
    torch.manual_seed(0)
    x, z, zs = torch.rand(4, T, D), torch.randn(4, Z), torch.randn(4, T, Z)
    return {
        "generator": (LSTMGenerator(Z, D, H, num_classes=K), lambda n, y: n(zs, y)),
        "generator_fed_back": (LSTMGenerator(Z, D, H, feed_previous=True, num_classes=K), lambda n, y: n(zs, y)),
        "discriminator": (RecurrentDiscriminator(D, H, num_classes=K), lambda n, y: n(x, y)),
        "encoder": (RecurrentEncoder(D, Z, H, num_classes=K), lambda n, y: n(x, y)[0]),
        "decoder": (RecurrentDecoder(Z, D, H, feed_previous=False, num_classes=K), lambda n, y: n(z, T, labels=y)),
    }


@pytest.mark.parametrize("name", list(conditional_nets()))
def test_the_label_embedding_changes_the_outputs(name):
    net, run = conditional_nets()[name]
    a, b = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 0])
    out_a, out_b = run(net, a), run(net, b)
    differ = (out_a - out_b).flatten(1).abs().amax(1) > 1e-6
    assert differ.tolist() == [True, False, True, False]  # only the sequences whose label changed
    with pytest.raises(ValueError, match="built with num_classes=3: give `labels`"):
        run(net, None)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        run(net, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match=r"needs labels as an int64 tensor of shape \(4,\)"):
        run(net, torch.tensor([0.0, 1.0, 2.0, 0.0]))


def test_unconditional_networks_refuse_labels():
    x, y = torch.rand(4, T, D), torch.tensor([0, 1, 2, 0])
    calls = [
        lambda: LSTMGenerator(Z, D, H)(torch.randn(4, T, Z), y),
        lambda: RecurrentDiscriminator(D, H)(x, y),
        lambda: RecurrentEncoder(D, Z, H)(x, y),
        lambda: RecurrentDecoder(Z, D, H)(torch.randn(4, Z), T, labels=y),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="is unconditional"):
            call()


# -- models ---------------------------------------------------------------------------------------------------------
def conditional_models():
    torch.manual_seed(0)
    enc, dec = RecurrentEncoder(D, Z, H, num_classes=K), RecurrentDecoder(Z, D, H, num_classes=K)
    return {
        "lstm_gan": LSTMGAN(
            LSTMGenerator(Z, D, H, num_classes=K),
            RecurrentDiscriminator(D, H, num_classes=K),
            adam,
            adam,
            feature_matching=1.0,
            moment_matching=1.0,
            supervised=1.0,
        ),  # fmt: skip
        "rvae": RVAE(enc, dec, adam, latent_density=LatentDensityConfig(max_codes=50)),
        "rvae_gan": RVAEGAN(
            RecurrentEncoder(D, Z, H, num_classes=K),
            RecurrentDecoder(Z, D, H, num_classes=K),
            RecurrentDiscriminator(D, H, num_classes=K),
            adam,
            adam,
            adam,
            latent_density=LatentDensityConfig(max_codes=50),
            kl_warmup_steps=0,
        ),  # fmt: skip
    }


def spy_on_labels(model, nets, monkeypatch) -> tuple[list, list]:
    """Record the labels of every training batch, and the labels every network call of a training step gets."""
    batches, seen, active = [], [], [False]

    def wrap(real):
        signature = inspect.signature(real)

        def call(*args, **kwargs):
            if active[0]:
                seen.append(signature.bind(*args, **kwargs).arguments.get("labels"))
            return real(*args, **kwargs)

        return call

    for net in nets:
        for method in ("forward", "features", "generate", "next_step_loss"):
            if hasattr(net, method):
                monkeypatch.setattr(net, method, wrap(getattr(net, method)))

    def step(batch, batch_idx, real=model.training_step):
        batches.append(batch[1])
        active[0] = True
        real(batch, batch_idx)
        active[0] = False

    monkeypatch.setattr(model, "training_step", step)
    return batches, seen


@pytest.mark.parametrize("name", ["lstm_gan", "rvae", "rvae_gan"])
def test_conditional_models_train_on_the_batch_labels_and_sample_what_is_asked(name, tmp_path, monkeypatch):
    """Every network call of a training step (real data and fakes, G and D, feature terms) gets the real
    batch's labels; the training label counts are stored; sample makes the classes asked for."""
    model, dm = conditional_models()[name], sines()
    nets = [getattr(model, a) for a in ("generator", "discriminator", "encoder", "decoder") if hasattr(model, a)]
    batches, seen = spy_on_labels(model, nets, monkeypatch)
    tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=0).fit(model, dm)
    assert len(batches) == 2 and len(seen) >= 2 * len(nets)
    for y in seen:  # (B,) or the batch's labels repeated for a concatenated pass
        assert y is not None and any(all(torch.equal(r, b) for r in y.reshape(-1, 16)) for b in batches)
    monkeypatch.undo()
    assert model.label_counts.tolist() == dm.label_counts().tolist()
    if name != "lstm_gan":
        assert bool(model.latent_density.fitted)  # fitted at the end on codes encoded with their labels
    torch.manual_seed(0)
    assert model.sample(6, labels=[0, 1, 2, 0, 1, 2]).shape == (6, T, D)
    torch.manual_seed(0)
    same, other = model.sample(3, labels=[0, 0, 0]), model.sample(3, labels=2)
    assert not torch.allclose(same, other)
    drawn = torch.bincount(model.labels_for(3000), minlength=K) / 3000.0
    torch.testing.assert_close(drawn, model.label_counts / model.label_counts.sum(), atol=0.04, rtol=0)
    with pytest.raises(ValueError, match=r"Labels must be in \[0, 3\)"):
        model.sample(2, labels=[0, 3])


def test_a_conditional_model_refuses_unlabelled_data_and_an_unconditional_one_refuses_labels(tmp_path):
    model = conditional_models()["rvae"]
    unlabelled = SinesDataModule(num_sequences=64, seq_len=T, dim=D, batch_size=16)
    with pytest.raises(ValueError, match="gives no labels"):
        tiny_trainer(tmp_path, max_steps=1).fit(model, unlabelled)
    with pytest.raises(ValueError, match="stores no label distribution"):
        model.sample(2)
    plain = RVAE(RecurrentEncoder(D, Z, H), RecurrentDecoder(Z, D, H), adam)
    with pytest.raises(ValueError, match="unconditional"):
        plain.sample(2, length=T, labels=[0, 1])
    with pytest.raises(ValueError, match="disagree on num_classes"):
        RVAE(RecurrentEncoder(D, Z, H), RecurrentDecoder(Z, D, H, num_classes=K), adam)


def test_rvae_gan_objectives_are_what_each_network_descends():
    """``e_loss`` gives the encoder the gradient the backward of ``loss`` gives it, ``g_loss`` the decoder."""
    model = conditional_models()["rvae_gan"]
    x, y = torch.rand(4, T, D), torch.tensor([0, 1, 2, 1])

    def grads(key, net):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        model.encoder_decoder_loss(x, labels=y)[key].backward()
        return [p.grad.clone() for p in getattr(model, net).parameters() if p.grad is not None]

    for key, net in (("e_loss", "encoder"), ("g_loss", "decoder")):
        ours, total = grads(key, net), grads("loss", net)
        assert ours and len(ours) == len(total)
        for a, b in zip(ours, total):
            torch.testing.assert_close(a, b)


@pytest.mark.slow  # two tiny fits through the CLI: about 2 minutes on a loaded 2-core machine
def test_a_conditional_rvae_gan_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setitem(FAMILIES, "rvae_gan_cond", ("configs/rvae_gan/sines_cond.yaml", []))
    stop_and_resume_is_exact("rvae_gan_cond", tmp_path)
