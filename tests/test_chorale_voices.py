"""Chorales as four voices: parsing the parts, frames and one-hot voices, the data module's layout and skips, the
voice networks (one pitch per voice, the per-voice likelihood) and the roll the sample job writes from voices."""

import numpy as np
import pytest
import torch

from lightning_gen.data import ChoralesDataModule
from lightning_gen.data import chorales as C
from lightning_gen.music import notes_to_roll, voices_to_rolls
from lightning_gen.nets.voices import VoiceDecoder, VoiceGenerator, VoiceHead


def four_part_score(parts=("Soprano", "Alto", "Tenor", "Bass")):
    """A two-bar music21 score: each part a stepwise line of quarter notes (the bass starts with a quarter rest)."""
    from music21 import note, stream

    score = stream.Score()
    for i, name in enumerate(parts):
        part = stream.Part(id=name)
        base = 72 - 7 * i
        for q in range(8):
            element = note.Rest() if (i == 3 and q == 0) else note.Note(base + q % 3)
            element.quarterLength = 1.0
            part.append(element)
        score.insert(0, part)
    return score


@pytest.fixture(scope="module")
def two_chorales_voices(tmp_path_factory):
    root = tmp_path_factory.mktemp("voices")
    names, notes = C.load_chorale_voices(root, max_chorales=2, progress=False)
    return root, names, notes


def test_score_voices_and_frames_hold_rests():
    notes = C.score_voices(four_part_score())
    assert notes.shape[1] == 4 and set(notes[:, 3].astype(int)) == {0, 1, 2, 3}
    frames = C.voice_frames(notes, step=0.5)  # (16, 4): eighth-note frames of eight quarter notes
    assert frames.shape == (16, 4)
    assert frames[:2, 0].tolist() == [72, 72] and frames[2:4, 0].tolist() == [73, 73]  # a quarter is two frames
    assert frames[0, 3] == frames[2, 3] == 72 - 21 + 1  # the bass's opening rest takes its first pitch


def test_voice_frames_rest_holds_the_previous_pitch():
    notes = np.array([[60, 0, 1, 0], [62, 2, 1, 0], [48, 0, 3, 1], [50, 0, 3, 2], [40, 0, 3, 3]], np.float32)
    frames = C.voice_frames(notes, step=1.0)
    assert frames[:, 0].tolist() == [60, 60, 62]  # the rest at frame 1 holds 60


def test_one_hot_voices_back_to_the_roll_of_their_notes():
    notes = C.score_voices(four_part_score())
    frames = C.voice_frames(notes, step=0.5)
    one_hot = C.voices_to_one_hot(frames, 36, 88)
    k = 88 - 36 + 1
    assert one_hot.shape == (16, 4 * k) and (one_hot.reshape(16, 4, k).sum(-1) == 1).all()
    sounding = notes_to_roll(notes[notes[:, 1] >= 1][:, :3], 36, 88, 0.5)  # every note from the first beat on
    assert np.array_equal(voices_to_rolls(one_hot)[2:], sounding[2:])  # same pitches where no voice rests


def test_one_hot_voices_outside_the_range_is_an_error():
    with pytest.raises(ValueError, match=r"outside \[60, 72\]: widen"):
        C.voices_to_one_hot(np.array([[59, 60, 61, 62]]), 60, 72, "bwv1")


def test_satb_parts_by_name_or_four_parts():
    named = C.satb_parts(four_part_score(("Horn", "Soprano", "Alto", "Tenor", "Bass", "Continuo")))
    assert [p.id for p in named] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert len(C.satb_parts(four_part_score(("spine_3", "spine_2", "spine_1", "spine_0")))) == 4
    assert C.satb_parts(four_part_score(("Violin", "Alto", "Tenor"))) is None
    assert C.score_voices(four_part_score(("Violin", "Alto", "Tenor"))).shape == (0, 4)


def test_voice_cache_is_read_again(two_chorales_voices, monkeypatch):
    root, names, notes = two_chorales_voices
    assert (root / "chorales" / "voices_2.npz").exists()
    monkeypatch.setattr(C, "score_voices", lambda *a: pytest.fail("the cache was not used"))
    names2, notes2 = C.load_chorale_voices(root, max_chorales=2, progress=False)
    assert names2 == names and all(np.array_equal(a, b) for a, b in zip(notes, notes2))


def test_datamodule_voices_layout_and_rolls(two_chorales_voices):
    root, _, _ = two_chorales_voices
    dm = ChoralesDataModule(data_dir=str(root), max_chorales=2, window_length=16, batch_size=2, val_fraction=0.0,
                            test_fraction=0.5, progress=False, representation="voices")  # fmt: skip
    dm.setup()
    k = 88 - 36 + 1
    x = dm.splits["train"]
    assert dm.data_dim == 4 * k and dm.voice_count == 4
    assert (x.reshape(*x.shape[:2], 4, k).sum(-1) == 1).all()  # one pitch per voice and frame
    rolls = dm.to_rolls(x)
    assert rolls.shape == (*x.shape[:2], k) and set(np.unique(rolls.sum(-1))) <= {1.0, 2.0, 3.0, 4.0}
    soprano, bass = x[..., :k].argmax(-1), x[..., 3 * k :].argmax(-1)
    assert (soprano > bass).all()  # the soprano sings above the bass


def test_datamodule_voices_transposed_like_the_rolls(two_chorales_voices):
    root, _, _ = two_chorales_voices
    kwargs = dict(data_dir=str(root), max_chorales=2, window_length=16, batch_size=1, val_fraction=0.0,
                  test_fraction=0.5, progress=False, transpose=True, pitch_low=31)  # fmt: skip
    voices, roll = ChoralesDataModule(representation="voices", **kwargs), ChoralesDataModule(**kwargs)
    voices.setup()
    roll.setup()
    assert voices.shifts == roll.shifts  # the same key analysis moves both
    assert voices.to_written_keys(voices.to_rolls(voices.splits["train"])).shape[-1] == 88 - 31 + 1


def test_chorales_without_four_voices_are_skipped_with_a_count(two_chorales_voices, monkeypatch):
    root, names, notes = two_chorales_voices
    monkeypatch.setattr(C, "load_chorale_voices", lambda *a: (names, [notes[0], np.zeros((0, 4), np.float32)]))
    dm = ChoralesDataModule(data_dir=str(root), max_chorales=2, window_length=16, batch_size=1, val_fraction=0.0,
                            test_fraction=0.0, progress=False, representation="voices")  # fmt: skip
    with pytest.warns(UserWarning, match="1 of 2 chorales have no soprano, alto, tenor and bass"):
        dm.setup()
    assert dm.skipped == [names[1]] and dm.names["train"] == [names[0]]
    monkeypatch.setattr(C, "load_chorale_voices", lambda *a: (names, [np.zeros((0, 4), np.float32)] * 2))
    with pytest.raises(ValueError, match="None of the 2 chorales has four voices: use representation: roll"):
        ChoralesDataModule(data_dir=str(root), max_chorales=2, progress=False, representation="voices").setup()


def test_unknown_representation_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"representation='notes': choose one of \['roll', 'voices'\]"):
        ChoralesDataModule(data_dir=str(tmp_path), representation="notes")


def test_voices_to_rolls_checks_the_width():
    with pytest.raises(ValueError, match="10 features per step cannot be 4 voices"):
        voices_to_rolls(np.zeros((2, 3, 10)), 4)


@pytest.mark.parametrize("chord_size", [0, 5])
def test_voice_head_is_a_softmax_per_voice_and_its_samples_one_hot(chord_size):
    torch.manual_seed(0)
    head = VoiceHead(8, voices=4, pitches=6, chord_size=chord_size)
    h = torch.randn(3, 5, 8)
    raw, hard = head.sample(h)  # (3, 5, 24) each
    assert torch.allclose(torch.sigmoid(raw).view(3, 5, 4, 6).sum(-1), torch.ones(3, 5, 4), atol=1e-5)
    assert torch.allclose(raw, head(h, hard.detach()), atol=1e-5)  # drawn from what the likelihood scores
    assert set(hard.detach().unique().tolist()) == {0.0, 1.0} and (hard.detach().view(3, 5, 4, 6).sum(-1) == 1).all()
    hard.sum().backward()  # straight-through: one-hot values, gradients of the probabilities
    assert head.direct.weight.grad is not None


def test_voice_head_reads_only_the_voices_above():
    torch.manual_seed(0)
    head = VoiceHead(8, voices=4, pitches=6, chord_size=5)
    h, x = torch.randn(2, 8), torch.eye(6)[torch.randint(0, 6, (2, 4))].flatten(-2)  # (2, 24) one-hot voices
    changed = x.clone()
    changed[:, 12:18] = torch.eye(6)[(x[:, 12:18].argmax(-1) + 1) % 6]  # another pitch for voice 2 (the tenor)
    before, after = head(h, x).view(2, 4, 6), head(h, changed).view(2, 4, 6)
    assert torch.equal(before[:, :3], after[:, :3])  # soprano, alto and tenor do not read the tenor
    assert not torch.allclose(before[:, 3], after[:, 3])  # the bass does


def test_voice_likelihood_prefers_the_true_distribution():
    """The Bernoulli likelihood on the head's logits is minimal at the true pitch distribution (a proper score)."""
    q = torch.tensor([0.7, 0.2, 0.1])
    target = torch.eye(3)  # each pitch once, weighted by q

    head = VoiceHead(1, voices=1, pitches=3, chord_size=0)
    torch.nn.init.zeros_(head.direct.weight)

    def expected_loss(logits):
        with torch.no_grad():
            head.direct.bias.copy_(logits)
            raw = head(torch.zeros(1, 1)).expand(3, 3)  # the same prediction for each of the three targets
        per = torch.nn.functional.binary_cross_entropy_with_logits(raw, target, reduction="none").sum(1)
        return (q * per).sum()

    best = expected_loss(q.log())
    for other in ([0.6, 0.3, 0.1], [0.8, 0.1, 0.1], [1 / 3, 1 / 3, 1 / 3]):
        assert expected_loss(torch.tensor(other).log()) > best


def test_voice_decoder_generates_one_pitch_per_voice():
    dec = VoiceDecoder(latent_dim=4, voices=4, pitches=5, hidden_size=8).eval()
    with torch.no_grad():
        raw, values = dec.generate(torch.randn(2, 4), 6, binary=True)
    assert raw.shape == values.shape == (2, 6, 20) and (values.view(2, 6, 4, 5).sum(-1) == 1).all()
    z = torch.randn(2, 4)
    with torch.no_grad():  # teacher forcing in one call scores the real voices as the step-by-step loop does
        one_call = dec.generate(z, 6, values, teacher_forcing=1.0, binary=True)[0]
        looped = dec.generate(z, 6, values, teacher_forcing=1.0 - 1e-9, binary=True)[0]
    assert torch.allclose(one_call, looped, atol=1e-5)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        VoiceDecoder(temperature=0.0)


def test_voice_generator_samples_and_learns_next_steps():
    gen = VoiceGenerator(latent_dim=2, voices=4, pitches=5, hidden_size=8, num_layers=1, sequence_latent_dim=3)
    z = gen.noise(2, 6)
    with torch.no_grad():
        x = gen.eval()(z)
    assert x.shape == (2, 6, 20) and (x.view(2, 6, 4, 5).sum(-1) == 1).all()
    loss = gen.train().next_step_loss(z, x)
    loss.backward()
    assert torch.isfinite(loss) and gen.head.direct.weight.grad.abs().sum() > 0


def test_sample_job_writes_voice_samples_as_rolls():
    from lightning_gen.jobs.sample import voice_count

    class Model(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

    assert voice_count(Model(VoiceDecoder(latent_dim=2, voices=4, pitches=5, hidden_size=4))) == 4
    assert voice_count(Model(torch.nn.Linear(2, 2))) == 0


@pytest.mark.slow
def test_sample_job_writes_a_voice_checkpoint_as_rolls_midi_and_wav(two_chorales_voices, tmp_path):
    from lightning_gen.jobs.sample import main
    from tests.conftest import fit_config

    root, _, _ = two_chorales_voices
    small = [f"--model.init_args.{net}.init_args.{k}={v}" for net in ("encoder", "decoder")
             for k, v in (("hidden_size", 8), ("latent_dim", 4))]  # fmt: skip
    ckpt = fit_config(
        "configs/rvae/chorales_voices.yaml", tmp_path / "run", f"--data.init_args.data_dir={root}",
        "--data.init_args.max_chorales=2", "--data.init_args.val_fraction=0.5", "--data.init_args.test_fraction=0",
        "--data.init_args.batch_size=4", "--data.init_args.progress=false", "--trainer.max_steps=1", *small,
    )  # fmt: skip
    out = tmp_path / "v.npz"
    assert main([ckpt, "--num-samples", "3", "--output", str(out), "--length", "12", "--wav", "1"]) == 0
    rolls = np.load(out)["samples"]  # (3, 12, K): the four voices' pitches as a roll
    assert rolls.shape == (3, 12, 88 - 31 + 1) and set(np.unique(rolls.sum(-1))) <= {1.0, 2.0, 3.0, 4.0}
    assert (tmp_path / "v_midi" / "sample_002.mid").exists() and (tmp_path / "v_midi" / "sample_000.wav").exists()
    assert not (tmp_path / "v_midi" / "sample_001.wav").exists()


def test_evaluate_scores_voice_samples_as_rolls(two_chorales_voices, tmp_path):
    import yaml

    from lightning_gen.jobs import evaluate

    root, _, _ = two_chorales_voices
    init = {"data_dir": str(root), "max_chorales": 2, "window_length": 16, "stride": 8, "batch_size": 2,
            "val_fraction": 0.0, "test_fraction": 0.5, "progress": False, "representation": "voices"}  # fmt: skip
    dm = ChoralesDataModule(**init)
    dm.setup()
    np.savez(tmp_path / "voices.npz", samples=dm.splits["test"])  # the real voices as samples
    config = tmp_path / "voices.yaml"
    config.write_text(
        yaml.safe_dump({"data": {"class_path": "lightning_gen.data.ChoralesDataModule", "init_args": init}})
    )
    args = [str(tmp_path / "voices.npz"), "--data", str(config), "--metrics", "music"]
    metrics = evaluate.evaluate(evaluate.build_parser().parse_args(args))["metrics"]
    span, notes = metrics["music/tone_span"], metrics["music/notes_per_step"]
    assert span["value"] <= 88 - 36 and span["value"] == pytest.approx(span["reference_value"])  # pitches, not columns
    assert notes["value"] <= 4.0
