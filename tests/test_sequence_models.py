"""Sequence networks and models: shapes, causality, sub-steps, long samples, the sample job's output."""

import functools
import os

import numpy as np
import pytest
import torch

from lightning_gen.data import SinesDataModule
from lightning_gen.models import LSTMGAN, RVAE, RVAEGAN
from lightning_gen.nets import LSTMGenerator, RecurrentDecoder, RecurrentDiscriminator, RecurrentEncoder
from tests.conftest import fit_config, tiny_trainer

D, T, Z, H = 3, 8, 4, 8


def test_network_shapes():
    x = torch.rand(4, T, D)
    assert LSTMGenerator(Z, D, H)(torch.randn(4, T, Z)).shape == (4, T, D)
    assert LSTMGenerator(Z, D, H, feed_previous=False, cell="gru")(torch.randn(4, T, Z)).shape == (4, T, D)
    assert RecurrentDiscriminator(D, H)(x).shape == (4, T)
    assert RecurrentDiscriminator(D, H, per_step=False)(x).shape == (4,)
    assert RecurrentDiscriminator(D, H, bidirectional=False, per_step=False, cell="rnn")(x).shape == (4,)
    assert RecurrentDiscriminator(D, H).features(x).shape == (4, T, 2 * H)
    mu, logvar = RecurrentEncoder(D, Z, H, num_layers=2, cell="lstm")(x)
    assert mu.shape == logvar.shape == (4, Z)
    dec = RecurrentDecoder(Z, D, H, num_layers=2, cell="lstm")
    assert dec(mu, 13).shape == (4, 13, D)
    assert dec(mu, T, target=x, teacher_forcing=1.0).shape == (4, T, D)
    with pytest.raises(ValueError, match="Unknown cell type 'transformer'"):
        RecurrentEncoder(D, Z, H, cell="transformer")
    with pytest.raises(ValueError, match=r"wants noise \(B, T, 4\)"):
        LSTMGenerator(Z, D, H)(torch.randn(4, T, Z + 1))


def test_causality_masks():
    """Generator and decoder never look ahead; the bidirectional discriminator does."""
    torch.manual_seed(0)
    g, z = LSTMGenerator(Z, D, H), torch.randn(2, T, Z)
    z2 = z.clone()
    z2[:, 5:] = torch.randn(2, T - 5, Z)
    a, b = g(z), g(z2)
    assert torch.equal(a[:, :5], b[:, :5]) and not torch.allclose(a[:, 5:], b[:, 5:])
    dec, x = RecurrentDecoder(Z, D, H), torch.rand(2, T, D)
    x2 = x.clone()
    x2[:, 5:] = torch.rand(2, T - 5, D)
    zz = torch.randn(2, Z)
    a, b = dec(zz, T, target=x, teacher_forcing=1.0), dec(zz, T, target=x2, teacher_forcing=1.0)
    assert torch.allclose(a[:, :6], b[:, :6]) and not torch.allclose(a[:, 6:], b[:, 6:])  # step t reads x_{t-1}
    d = RecurrentDiscriminator(D, H)
    assert not torch.allclose(d(x)[:, :5], d(x2)[:, :5])  # the backward direction sees the future


def make_models():
    adam = functools.partial(torch.optim.Adam, lr=1e-2)
    torch.manual_seed(0)
    return {
        "lstm_gan": (
            LSTMGAN(LSTMGenerator(Z, D, H), RecurrentDiscriminator(D, H), adam, adam, feature_matching=1.0),
            [{"discriminator"}, {"generator"}],
        ),
        "rvae": (RVAE(RecurrentEncoder(D, Z, H), RecurrentDecoder(Z, D, H), adam), [{"encoder", "decoder"}]),
        "rvae_gan": (
            RVAEGAN(
                RecurrentEncoder(D, Z, H), RecurrentDecoder(Z, D, H), RecurrentDiscriminator(D, H), adam, adam, adam
            ),
            [{"encoder"}, {"decoder"}, {"discriminator"}],
        ),
    }


def record_steps(model) -> list[set[str]]:
    """Make every optimizer step record which of the model's networks changed."""
    nets = {n: m for n, m in model.named_children() if n != "data_info" and any(True for _ in m.parameters())}
    log: list[set[str]] = []
    configure = model.configure_optimizers

    def configure_and_wrap():
        opts = configure()
        for opt in opts if isinstance(opts, list) else [opts]:

            def step(*args, _step=opt.step, **kwargs):
                before = {n: [p.detach().clone() for p in m.parameters()] for n, m in nets.items()}
                out = _step(*args, **kwargs)
                log.append(
                    {
                        n
                        for n, m in nets.items()
                        if any(not torch.equal(b, p) for b, p in zip(before[n], m.parameters()))
                    }
                )
                return out

            opt.step = step
        return opts

    model.configure_optimizers = configure_and_wrap
    return log


@pytest.mark.parametrize("name", ["lstm_gan", "rvae", "rvae_gan"])
def test_only_the_intended_network_changes_and_long_samples(name, tmp_path):
    model, expected = make_models()[name]
    log = record_steps(model)
    dm = SinesDataModule(num_sequences=40, seq_len=T, dim=D, batch_size=4)
    tiny_trainer(tmp_path, max_steps=2 * len(expected), limit_val_batches=1).fit(model, dm)
    assert log == expected * 2
    assert model.data_kind == "sequence" and model.latent_dim == Z
    assert int(model.data_info.seq_len) == T
    np.testing.assert_allclose(model.data_info.data_min.numpy(), dm.data_min, rtol=1e-6)
    long = model.sample(3, length=3 * T)  # longer than the training windows
    assert long.shape == (3, 3 * T, D) and torch.isfinite(long).all()
    assert long.min() >= 0 and long.max() <= 1
    assert model.sample(2).shape == (2, T, D)
    assert (model.to_original(long) >= 0.5 - 1e-4).all()  # sines live in [0.5, 1]


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="must match"):
        RVAE(RecurrentEncoder(D, Z, H), RecurrentDecoder(Z + 1, D, H))
    with pytest.raises(ValueError, match="output='sigmoid'"):
        RVAE(RecurrentEncoder(D, Z, H), RecurrentDecoder(Z, D, H, output="identity"), likelihood="bernoulli")
    with pytest.raises(ValueError, match="discriminator reads"):
        LSTMGAN(LSTMGenerator(Z, D, H), RecurrentDiscriminator(D + 1, H))
    with pytest.raises(ValueError, match="no default length"):
        RVAE(RecurrentEncoder(D, Z, H), RecurrentDecoder(Z, D, H)).sample(2)


SMALL_VAE = [f"--model.init_args.{net}.init_args.{k}={v}" for net in ("encoder", "decoder") for k, v in
             (("hidden_size", 8), ("latent_dim", 4))]  # fmt: skip


def test_sample_job_sines(tmp_path, capsys):
    from lightning_gen.jobs.sample import main

    ckpt = fit_config(
        "configs/rvae/sines.yaml", tmp_path / "run", "--data.init_args.num_sequences=64", "--data.init_args.seq_len=8",
        "--data.init_args.batch_size=4", *SMALL_VAE,
    )  # fmt: skip
    out = tmp_path / "s.npz"
    assert main([ckpt, "--num-samples", "5", "--output", str(out), "--length", "12"]) == 0
    samples = np.load(out)["samples"]
    assert samples.shape == (5, 12, 5) and samples.dtype == np.float32
    assert samples.min() >= 0.5 - 1e-4 and samples.max() <= 1.0 + 1e-4  # the sines' original scale, not [0, 1]


def midi_to_notes(path) -> np.ndarray:
    """Read the notes of a MIDI file (M, 3) with music21's MIDI reader (``music21.midi``), from the note-on /
    note-off events themselves. (``converter.parse`` also reads the file, but re-quantises dense polyphony
    into voices and can move notes; the events are what was written.)"""
    from music21 import midi

    f = midi.MidiFile()
    f.open(str(path))
    f.read()
    f.close()
    rows = []
    for track in f.tracks:
        now, sounding = 0, {}
        for event in track.events:
            if event.isDeltaTime():
                now += event.time
            elif event.isNoteOn():
                sounding.setdefault(event.pitch, []).append(now)
            elif event.isNoteOff() and sounding.get(event.pitch):
                start = sounding[event.pitch].pop(0)
                rows.append((event.pitch, start / f.ticksPerQuarterNote, (now - start) / f.ticksPerQuarterNote))
    notes = np.asarray(rows, dtype=np.float32).reshape(-1, 3)
    return notes[np.lexsort((notes[:, 0], notes[:, 1]))]


def test_roll_writer_midi_round_trip(tmp_path):
    """The sample job's piano-roll files, without training: npz, PNG and MIDI that music21 reads back."""
    from music21 import converter

    from lightning_gen.music import roll_to_notes, write_roll_samples

    probabilities = np.random.default_rng(0).random((3, 24, 53)).astype(np.float32) ** 3  # (N, T, P)
    written = write_roll_samples(probabilities, str(tmp_path / "r.npz"), pitch_low=36, step=0.5, max_files=2)
    f = np.load(written["samples"])
    np.testing.assert_array_equal(f["samples"], (probabilities > 0.5).astype(np.float32))
    assert sorted(os.listdir(written["midi"])) == ["sample_000.mid", "sample_001.mid"]
    assert os.path.exists(written["piano roll"])
    midi = os.path.join(written["midi"], "sample_001.mid")
    assert len(converter.parse(midi).flatten().notes) > 0
    np.testing.assert_array_equal(midi_to_notes(midi), roll_to_notes(f["samples"][1], 36, 0.5))


@pytest.mark.slow
def test_sample_job_chorales_writes_midi(tmp_path):
    from music21 import converter

    from lightning_gen.jobs.sample import main
    from lightning_gen.music import notes_to_roll, roll_to_notes

    ckpt = fit_config(
        "configs/rvae/chorales.yaml", tmp_path / "run", f"--data.init_args.data_dir={tmp_path / 'data'}",
        "--data.init_args.max_chorales=2", "--data.init_args.val_fraction=0.5", "--data.init_args.test_fraction=0",
        "--data.init_args.batch_size=4", "--data.init_args.progress=false", *SMALL_VAE,
    )  # fmt: skip
    out = tmp_path / "c.npz"
    assert main([ckpt, "--num-samples", "3", "--output", str(out), "--length", "40"]) == 0
    f = np.load(out)
    assert f["samples"].shape == (3, 40, 53) and set(np.unique(f["samples"])) <= {0.0, 1.0}
    assert int(f["pitch_low"]) == 36 and (tmp_path / "c.png").exists()
    midi = tmp_path / "c_midi" / "sample_000.mid"
    assert midi.exists()
    assert len(converter.parse(str(midi)).flatten().notes) > 0  # the MIDI file opens again with music21
    notes, roll = midi_to_notes(midi), f["samples"][0]  # its note events, read with music21.midi
    np.testing.assert_array_equal(notes, roll_to_notes(roll, 36, 0.5))
    back = notes_to_roll(notes, 36, 88, 0.5)  # (T', 53): the same frames sound
    np.testing.assert_array_equal(back, roll[: len(back)])
    assert not roll[len(back) :].any()


def test_rvae_gan_samples_from_its_decoder_average(tmp_path):
    """ema_decay: the average follows the decoder's steps, is saved with the model, and ``sample`` uses it."""
    adam = functools.partial(torch.optim.Adam, lr=1e-2)
    torch.manual_seed(0)
    enc, dec, disc = RecurrentEncoder(D, Z, H), RecurrentDecoder(Z, D, H), RecurrentDiscriminator(D, H)
    model = RVAEGAN(enc, dec, disc, adam, adam, adam, ema_decay=0.9)
    before = [p.detach().clone() for p in model.decoder_ema.module.parameters()]
    dm = SinesDataModule(num_sequences=40, seq_len=T, dim=D, batch_size=4)
    tiny_trainer(tmp_path, max_steps=3 * 3, limit_val_batches=1).fit(model, dm)  # 3 batches of 3 optimizers
    averaged = list(model.decoder_ema.module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, averaged))  # it moved with the decoder's steps
    assert any(not torch.equal(a, p) for a, p in zip(averaged, model.decoder.parameters()))  # but is not it
    assert any(k.startswith("decoder_ema.") for k in model.state_dict())  # saved in every checkpoint
    with torch.no_grad():
        for p in model.decoder_ema.module.parameters():
            p.zero_()
    assert torch.equal(model.sample(3), torch.full((3, T, D), 0.5))  # sigmoid(0): the average was sampled


def test_rvae_gan_warm_start_trains_no_discriminator_until_adversarial_start(tmp_path):
    """adversarial.start=2: the first two batches are R-VAE steps (encoder and decoder only, no D step);
    from the third on each batch steps encoder, decoder and D."""
    adam = functools.partial(torch.optim.Adam, lr=1e-2)
    torch.manual_seed(0)
    enc, dec, disc = RecurrentEncoder(D, Z, H), RecurrentDecoder(Z, D, H), RecurrentDiscriminator(D, H)
    model = RVAEGAN(enc, dec, disc, adam, adam, adam, adversarial={"start": 2})
    log = record_steps(model)
    dm = SinesDataModule(num_sequences=40, seq_len=T, dim=D, batch_size=4)
    tiny_trainer(tmp_path, max_steps=2 * 2 + 3, limit_val_batches=1).fit(model, dm)
    assert log == [{"encoder"}, {"decoder"}] * 2 + [{"encoder"}, {"decoder"}, {"discriminator"}]
    warm = model.encoder_decoder_loss(torch.rand(4, T, D), adversarial=False)
    assert warm["prior"] is None and "adversarial" not in warm and "feature_nll" not in warm  # nothing to log
    with pytest.raises(ValueError, match="adversarial.start"):
        RVAEGAN(enc, dec, disc, adam, adam, adam, adversarial={"start": -1})
    with pytest.raises(ValueError, match=r"RVAEGAN has no adversarial.reconstructions=True, adversarial.prior="):
        RVAEGAN(enc, dec, disc, adam, adam, adam, adversarial={"reconstructions": True, "prior": "standard"})
