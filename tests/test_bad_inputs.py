"""Bad arguments and files for every job: `error: <what and what to do>`, exit status 2, nothing lost.

Rows of docs/bad_inputs.md from 31 on.
"""

import contextlib
import os
import signal

import numpy as np
import pytest
import torch

from lightning_gen.checkpoints import CheckpointError, load_model
from lightning_gen.cli import main
from lightning_gen.jobs import evaluate, sample
from tests.conftest import REPO, config_args
from tests.robust_helpers import family_args, fit_family, last_ckpt
from tests.shared_checkpoints import tiny_gan_ckpt  # noqa: F401  (a session fixture: one fit for both modules)

DIGITS = os.path.join(REPO, "configs/gan/digits.yaml")


@pytest.fixture(scope="module")
def ckpt(request):
    return request.getfixturevalue("tiny_gan_ckpt")


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail instead of hanging (finding 4: a batch size of 0 looped forever)."""

    def too_long(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _edited(ckpt, tmp_path, name: str, edit) -> str:
    state = torch.load(ckpt, weights_only=True)
    edit(state)
    path = tmp_path / name
    torch.save(state, path)
    return str(path)


# -- finding 4: batch size 0 ------------------------------------------------------------------------------
def test_sample_batch_size_zero_is_refused_not_a_hang(ckpt, tmp_path, capsys):
    with deadline(60):
        assert sample.main([ckpt, "--batch-size", "0", "--output", str(tmp_path / "s.npz")]) == 2
    assert "--batch-size must be an integer >= 1, got 0" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_evaluate_batch_size_zero_is_refused_not_a_hang(ckpt, tmp_path, capsys):
    with deadline(60):
        assert evaluate.main([ckpt, "--batch-size", "0", "--no-cache", "--num-samples", "4"]) == 2
    assert "--batch-size must be an integer >= 1, got 0" in capsys.readouterr().err


def test_draw_refuses_an_empty_batch():
    from lightning_gen.jobs.sample import draw

    with deadline(10), pytest.raises(ValueError, match="batch-size must be >= 1"):
        draw(None, 5, 0)


# -- finding 5: outputs are never destroyed before the job can fail ----------------------------------------
def test_grid_size_zero_keeps_the_earlier_output(ckpt, tmp_path, capsys):
    out = tmp_path / "samples.npz"
    assert sample.main([ckpt, "--num-samples", "4", "--output", str(out)]) == 0
    before = out.read_bytes(), (tmp_path / "samples.png").read_bytes()
    assert sample.main([ckpt, "--num-samples", "4", "--output", str(out), "--grid-size", "0", "--seed", "3"]) == 2
    assert "--grid-size must be an integer >= 1, got 0" in capsys.readouterr().err
    assert (out.read_bytes(), (tmp_path / "samples.png").read_bytes()) == before


def test_a_job_that_fails_while_writing_leaves_the_earlier_files(ckpt, tmp_path, monkeypatch):
    import torchvision.utils

    out = tmp_path / "samples.npz"
    assert sample.main([ckpt, "--num-samples", "4", "--output", str(out)]) == 0
    before = out.read_bytes(), (tmp_path / "samples.png").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torchvision.utils, "save_image", disk_full)  # the grid fails after the samples were written
    assert sample.main([ckpt, "--num-samples", "4", "--output", str(out), "--seed", "5"]) == 2
    assert (out.read_bytes(), (tmp_path / "samples.png").read_bytes()) == before
    assert sorted(os.listdir(tmp_path)) == ["samples.npz", "samples.png"]  # no temporary files left


def test_evaluate_report_is_replaced_only_when_complete(tmp_path, monkeypatch):
    import json

    from lightning_gen.io import atomic_write

    report = tmp_path / "report.json"
    report.write_text('{"old": 1}')
    with pytest.raises(RuntimeError), atomic_write(report) as f:
        f.write('{"new":')
        raise RuntimeError("crash while writing")
    assert json.loads(report.read_text()) == {"old": 1} and os.listdir(tmp_path) == ["report.json"]


# -- checkpoints: NaN weights, wrong shapes, another family --------------------------------------------------
def test_nan_weights_are_refused_not_sampled(ckpt, tmp_path, capsys):
    def poison(state):
        next(v for k, v in state["state_dict"].items() if k.startswith("generator.")).fill_(float("nan"))

    path = _edited(ckpt, tmp_path, "nan.ckpt", poison)
    assert sample.main([path, "--output", str(tmp_path / "s.npz")]) == 2
    assert "non-finite (NaN or infinite) weights" in capsys.readouterr().err
    assert not (tmp_path / "s.npz").exists()


def test_weights_that_do_not_fit_the_config(ckpt, tmp_path, capsys):
    def widen(state):
        key = next(k for k in state["state_dict"] if k.startswith("generator.") and k.endswith("weight"))
        w = state["state_dict"][key]
        state["state_dict"][key] = torch.zeros(w.shape[0] + 1, *w.shape[1:])

    path = _edited(ckpt, tmp_path, "wide.ckpt", widen)
    with pytest.raises(CheckpointError, match="the weights do not fit the model its config builds .*shapes differ"):
        load_model(path)
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path / "run", f"--ckpt_path={path}"))
    assert exit_.value.code == 2 and "shapes differ" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # no run folder left behind


def test_checkpoint_of_another_family_is_refused(ckpt, tmp_path, capsys):
    path = _edited(
        ckpt, tmp_path, "vae.ckpt", lambda s: s["hyper_parameters"].update(_class_path="lightning_gen.models.VAE")
    )
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path / "run", f"--ckpt_path={path}"))
    assert exit_.value.code == 2
    assert (
        "holds a lightning_gen.models.VAE, but the config builds a lightning_gen.models.GAN" in capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()


# -- numeric arguments: ranges before anything loads -----------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["--num-samples", "0"], "--num-samples must be an integer >= 1, got 0"),
        (["--num-samples", "-3"], "--num-samples must be an integer >= 1, got -3"),
        (["--length", "0"], "--length must be an integer >= 1, got 0"),
        (["--seed", "-1"], "--seed must be an integer in 0..9223372036854775807, got -1"),
        (["--device", "cuda:7"], "--device cuda:7"),
        (["--device", "gpu0"], "is not a device name"),
    ],
)
def test_sample_argument_ranges(tmp_path, capsys, args, message):
    # the checkpoint does not exist: the arguments are checked first
    assert sample.main([str(tmp_path / "none.ckpt"), "--output", str(tmp_path / "s.npz"), *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num-reference", "-5"], "--num-reference must be an integer >= 1, got -5"),
        (["--num-reference", "0"], "--num-reference must be an integer >= 1, got 0"),
        (["--threads", "-1"], "--threads must be an integer in 0..4096, got -1"),
        (["--repeats", "0"], "--repeats must be an integer >= 1, got 0"),
        (["--disc-iterations", "0"], "--disc-iterations must be an integer >= 1"),
        (["--split", "training"], "--split must be "),  # the choices listed, then "got 'training'"
    ],
)
def test_evaluate_argument_ranges(ckpt, capsys, args, message):
    assert evaluate.main([ckpt, *args]) == 2
    assert message in capsys.readouterr().err


def test_output_paths_that_are_folders_or_under_files(ckpt, tmp_path, capsys):
    folder = tmp_path / "out.npz"
    folder.mkdir()
    assert sample.main([ckpt, "--output", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert sample.main([ckpt, "--output", str(tmp_path / "file" / "s.npz")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert evaluate.main([ckpt, "--output", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_no_traceback_through_the_cli_and_one_with_the_variable(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_:
        main(["sample", str(tmp_path / "none.ckpt"), "--output", str(tmp_path / "s.npz"), "--batch-size", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --batch-size") and "Traceback" not in err
    monkeypatch.setenv("LIGHTNING_GEN_TRACEBACK", "1")
    with pytest.raises(ValueError, match="--batch-size"):
        main(["sample", str(tmp_path / "none.ckpt"), "--output", str(tmp_path / "s.npz"), "--batch-size", "0"])


def test_sweep_argument_ranges(tmp_path, capsys):
    from lightning_gen.jobs.sweep import main as sweep_main
    from tests.test_sweeps import write_sweep

    path = write_sweep(tmp_path)
    assert sweep_main([path, "--count", "0", "--dir", str(tmp_path / "o")]) == 2
    assert "--count must be an integer >= 1, got 0" in capsys.readouterr().err
    assert sweep_main([path, "--count", "1", "--trial-timeout", "0", "--dir", str(tmp_path / "o")]) == 2
    assert "--trial-timeout must be a number > 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# -- fit: a run that would train nothing ------------------------------------------------------------------------
@pytest.mark.parametrize("arg", ["--trainer.max_steps=0", "--trainer.max_epochs=0", "--trainer.limit_train_batches=0"])
def test_fit_that_trains_nothing_is_refused(tmp_path, capsys, arg):
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path, arg))
    assert exit_.value.code == 2
    assert "trains nothing" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "lightning_logs")


def test_empty_yaml_config(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(empty), f"--trainer.default_root_dir={tmp_path / 'run'}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "model" in err
    assert not (tmp_path / "run").exists()


# -- files: samples, arrays, CSVs, images ---------------------------------------------------------------------
def test_empty_and_garbage_samples_files(tmp_path, capsys):
    empty = tmp_path / "empty.npz"
    np.savez(empty, samples=np.zeros((0, 1, 8, 8), np.float32))
    assert evaluate.main([str(empty), "--data", DIGITS, "--no-cache"]) == 2
    assert "holds no samples" in capsys.readouterr().err
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    assert evaluate.main([str(garbage), "--data", DIGITS, "--no-cache"]) == 2
    assert "is not a readable samples .npz" in capsys.readouterr().err
    text = tmp_path / "text.npz"
    np.savez(text, samples=np.array(["a", "b"]))
    assert evaluate.main([str(text), "--data", DIGITS, "--no-cache"]) == 2
    assert "must hold real numbers" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, message",
    [
        ("date,value\n2020-01-01,1.0\n2020-01-02,2.0\n", "column 1 holds '2020-01-01', not a number"),
        ("1;2;3\n4;5;6\n", "columns must be separated by commas"),
        ("a,b\n1,2\n3\n", "data row 2 has 1 columns, the first row 2"),
        ("", "holds no rows"),
    ],
)
def test_malformed_csv_says_what_is_wrong(tmp_path, content, message):
    from lightning_gen.data import ArraySequenceDataModule

    path = tmp_path / "series.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        ArraySequenceDataModule(str(path), window_length=2).read()


def test_csv_with_header_is_read(tmp_path):
    from lightning_gen.data import ArraySequenceDataModule

    path = tmp_path / "series.csv"
    path.write_text("x,y\n1,2\n3,4\n5,6\n")
    assert ArraySequenceDataModule(str(path), window_length=2).read().tolist() == [[1, 2], [3, 4], [5, 6]]


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_garbage_array_files_are_named(tmp_path, suffix):
    from lightning_gen.data import ArrayImageDataModule, ArraySequenceDataModule

    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"\x93NUMPY garbage" if suffix == ".npy" else b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match=f"is not a readable {suffix} file"):
        ArrayImageDataModule(str(path)).load()
    with pytest.raises(ValueError, match=f"is not a readable {suffix} file"):
        ArraySequenceDataModule(str(path), window_length=2).read()


def test_decompression_bomb_image_is_refused(tmp_path, monkeypatch):
    from PIL import Image

    from lightning_gen.data import ImageFolderDataModule

    Image.new("L", (64, 64)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels: over twice the limit, PIL's error
    with pytest.raises(ValueError, match=r"bomb.png: it is larger than PIL's limit"):
        ImageFolderDataModule(str(tmp_path), img_size=8).load()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # between 1x and 2x the limit: PIL only warns
    with pytest.raises(ValueError, match="decompression bomb"):
        ImageFolderDataModule(str(tmp_path), img_size=8).load()


def test_two_fits_at_once_get_two_run_folders(tmp_path, monkeypatch):
    """Both fits list the folder before either made version_0; the second must not write into the first's."""
    from pytorch_lightning.loggers import CSVLogger

    (tmp_path / "lightning_logs" / "version_0").mkdir(parents=True)  # the other fit's, made a moment ago
    monkeypatch.setattr(CSVLogger, "_get_next_version", lambda self: 0)  # what both fits saw
    fit_family("gan", tmp_path, "--trainer.max_steps=1", "--loss_curves.enabled=false")  # no picture: faster
    assert os.listdir(tmp_path / "lightning_logs" / "version_0") == []
    assert os.path.isfile(last_ckpt(tmp_path, version=1))


def test_a_fit_that_fails_on_its_data_leaves_no_run_folder(tmp_path, capsys):
    args = family_args("gan", tmp_path / "run", "--data.init_args.batch_size=100000")
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2 and "batch_size" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_callback_count_of_zero_is_refused_before_training(tmp_path, capsys):
    grid = '[{"class_path": "lightning_gen.callbacks.ImageSampleGrid", "init_args": {"num_samples": 0}}]'
    args = family_args("gan", tmp_path / "run", "--trainer.max_steps=2", f"--trainer.callbacks={grid}")
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert "ImageSampleGrid(num_samples=0): num_samples must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_staged_outputs_replace_files_and_folders_only_at_the_end(tmp_path):
    """What sample's piano-roll writer leaves (npz, PNG, a *_midi/ folder) moves into place only when complete."""
    from lightning_gen.io import staged_outputs

    (tmp_path / "seq_midi").mkdir()
    (tmp_path / "seq_midi" / "old.mid").write_text("old")
    (tmp_path / "seq.npz").write_text("old")
    with pytest.raises(OSError), staged_outputs(tmp_path / "seq.npz") as out:
        with open(out, "w") as f:
            f.write("new")
        os.mkdir(os.path.join(os.path.dirname(out), "seq_midi"))
        raise OSError(28, "No space left on device")
    assert (tmp_path / "seq.npz").read_text() == "old" and os.listdir(tmp_path / "seq_midi") == ["old.mid"]
    assert sorted(os.listdir(tmp_path)) == ["seq.npz", "seq_midi"]
    with staged_outputs(tmp_path / "seq.npz") as out:
        with open(out, "w") as f:
            f.write("new")
        os.mkdir(os.path.join(os.path.dirname(out), "seq_midi"))
        with open(os.path.join(os.path.dirname(out), "seq_midi", "sample_000.mid"), "w") as f:
            f.write("new")
    assert (tmp_path / "seq.npz").read_text() == "new" and os.listdir(tmp_path / "seq_midi") == ["sample_000.mid"]
    assert sorted(os.listdir(tmp_path)) == ["seq.npz", "seq_midi"]


def test_evaluate_data_config_that_is_not_yaml(tmp_path, capsys):
    samples = tmp_path / "s.npz"
    np.savez(samples, samples=np.zeros((4, 1, 8, 8), np.float32))
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n  class_path: x\n")
    assert evaluate.main([str(samples), "--data", str(bad), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.yaml" in err and "Traceback" not in err


# -- class labels ------------------------------------------------------------------------------------------------------
def test_a_conditional_fit_on_data_without_labels_is_refused_through_the_cli(tmp_path, capsys):
    """`lightning-gen fit` of a conditional config whose data yields no labels (the sines without `condition`): the
    message says what to change, status 2, no run folder."""
    args = [
        "fit", *config_args("configs/lstm_gan/sines_cond.yaml"), "--data.init_args.condition=null",
        "--data.init_args.num_sequences=64", "--data.init_args.seq_len=8", "--data.init_args.batch_size=8",
        "--trainer.max_steps=1", "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "This model is conditional (num_classes=3) but SinesDataModule gives no labels" in err
    assert "`condition`" in err  # what to change
    # nothing trained or saved: the model's data check runs in its setup, after Lightning's SaveConfigCallback wrote
    # version_0/config.yaml; the run folder holding only that is removed, as row 54's
    assert not (tmp_path / "run").exists()


def test_evaluate_refuses_labels_outside_the_classifiers_classes(tmp_path, capsys, digits_classifier_ckpt):
    """A samples file whose labels name a class the domain classifier does not have (10 of digits' 0..9)."""
    classifier = digits_classifier_ckpt
    labels = np.arange(100) % 10
    labels[7] = 10
    np.savez(tmp_path / "s.npz", samples=np.random.default_rng(0).random((100, 1, 8, 8), np.float32), labels=labels)
    argv = [str(tmp_path / "s.npz"), "--data", os.path.join(REPO, "configs/gan/digits.yaml"), "--no-cache"]
    argv += ["--features", "classifier", "--classifier", classifier, "--output", str(tmp_path / "r.json")]
    assert evaluate.main([*argv, "--metrics", "class_accuracy"]) == 2  # the class score alone: no features needed
    err = capsys.readouterr().err
    assert "outside [0, 10)" in err and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


# -- the last raw messages ------------------------------------------------------------------------------------------
def _digits_samples(tmp_path) -> str:
    path = tmp_path / "s.npz"
    np.savez(path, samples=np.zeros((4, 1, 8, 8), np.float32))
    return str(path)


def test_evaluate_unknown_data_arg_is_named_with_a_close_match(tmp_path, capsys):
    """``--data-arg batch_sise=3``: was a TypeError traceback from the DataModule's constructor."""
    argv = [_digits_samples(tmp_path), "--data", DIGITS, "--data-arg", "batch_sise=3", "--no-cache"]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err
    assert "DigitsDataModule has no argument 'batch_sise' (did you mean 'batch_size'?)" in err
    assert "Its arguments: data_dir, batch_size" in err and "Traceback" not in err


def test_the_data_argument_check_accepts_every_shipped_config():
    """No false refusals: every ``data:`` section of configs/ passes :func:`check_init_args` (arguments reached
    through ``**kwargs`` of a parent class included)."""
    import glob
    import importlib

    import yaml

    from lightning_gen.errors import check_init_args

    checked = 0
    for path in sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True)):
        with open(path) as f:
            data = (yaml.safe_load(f) or {}).get("data")
        if isinstance(data, dict) and "class_path" in data:
            module, _, name = data["class_path"].rpartition(".")
            check_init_args(path, getattr(importlib.import_module(module), name), data.get("init_args") or {})
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("value", [[1, 2], "abc"], ids=["list", "string"])
def test_checkpoint_hyperparameters_that_are_not_a_mapping(ckpt, tmp_path, capsys, value):
    """Was ``TypeError: cannot convert dictionary update sequence element #0`` (a traceback) or a bare ValueError."""
    bad = _edited(ckpt, tmp_path, "bad.ckpt", lambda s: s.__setitem__("hyper_parameters", value))
    with pytest.raises(CheckpointError, match=f"its 'hyper_parameters' is a {type(value).__name__}, not a mapping"):
        load_model(bad)
    assert sample.main([bad, "--num-samples", "4", "--output", str(tmp_path / "s.npz")]) == 2
    assert "not a mapping of argument names to values" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path / "run", f"--ckpt_path={bad}"))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--ckpt_path: " in err and "not a mapping" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize("content", ["- a\n- b\n", "3\n"], ids=["list", "scalar"])
def test_config_file_that_is_not_a_yaml_mapping_is_named(tmp_path, capsys, content):
    """Was ``Unexpected config: - a - b``: the file's text without its name."""
    bad = tmp_path / "list.yaml"
    bad.write_text(content)
    for argv in (["fit", "--config", str(bad)], ["fit", "--config", DIGITS, f"--config={bad}"]):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, f"--trainer.default_root_dir={tmp_path / 'run'}"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and f"--config {bad}: the file holds a " in err
        assert "not a YAML mapping" in err and "configs/gan/digits.yaml" in err
    assert not (tmp_path / "run").exists()


def test_inline_config_that_is_not_a_mapping_says_so():
    from lightning_gen.lightning_cli.parser import _lead

    assert "not a YAML mapping of keys; it reads: '[1, 2]'" in _lead("Unexpected config: [1, 2]")


def test_cache_dir_through_a_file_is_refused_before_any_work(tmp_path, capsys):
    """Was ``[Errno 20] Not a directory`` after the samples were drawn and their features extracted."""
    blocker = tmp_path / "afile"
    blocker.write_text("")
    argv = [_digits_samples(tmp_path), "--data", DIGITS, "--cache-dir", str(blocker / "cache")]
    assert evaluate.main([*argv, "--output", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert f"--cache-dir {blocker / 'cache'} runs through the file {blocker}, not a folder" in err
    assert not (tmp_path / "r.json").exists()


def test_chorales_data_dir_through_a_file_is_refused_before_parsing(tmp_path, monkeypatch):
    """The chorales were parsed (tens of seconds) before their cache folder failed to be made."""
    from lightning_gen.data import chorales
    from lightning_gen.errors import UserError

    monkeypatch.setattr(chorales, "load_chorale_notes", lambda *a, **k: pytest.fail("parsed before the path check"))
    blocker = tmp_path / "afile"
    blocker.write_text("")
    with pytest.raises(UserError, match=r"data_dir .*afile/x runs through the file .*afile, not a folder"):
        chorales.ChoralesDataModule(data_dir=str(blocker / "x"))
    with pytest.raises(UserError, match=r"data_dir .*afile is a file, not a folder"):
        chorales.ChoralesDataModule(data_dir=str(blocker))


def test_a_folder_that_cannot_be_made_below_a_file_is_said_in_words(tmp_path, capsys):
    """Any job's ``mkdir`` below a file (a data_dir of a download, an output folder): the file is named."""
    from lightning_gen.errors import report

    blocker = tmp_path / "afile"
    blocker.write_text("")
    for err in (
        NotADirectoryError(20, "Not a directory", str(blocker / "x")),
        FileExistsError(17, "exists", str(blocker)),
    ):
        assert report(err) == 2
        assert f"{blocker} is a file, so no folder can be made there" in capsys.readouterr().err


@pytest.mark.parametrize(
    "arg, reason, key",
    [
        ("--model.init_args.n_critic=0", "n_critic must be >= 1", "model.init_args.n_critic"),
        ("--data.init_args.batch_size=0", "batch_size must be >= 1, got 0", "data.init_args.batch_size"),
    ],
    ids=["n_critic", "batch_size"],
)
def test_validation_errors_show_the_reason_and_the_key(tmp_path, capsys, arg, reason, key):
    """Were buried under jsonargparse's "Does not validate against any of the Union subtypes" and a namespace dump."""
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path / "run", arg))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(f"error: {reason}")
    assert f"Config key: {key} (change it in the config file, or on the command line: --{key}=VALUE)" in err
    assert "Union subtypes" not in err and "Namespace(" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_with_an_invalid_recorded_value_names_the_checkpoint_key(ckpt, tmp_path, capsys):
    bad = _edited(ckpt, tmp_path, "bad.ckpt", lambda s: s["hyper_parameters"].__setitem__("n_critic", 0))
    assert sample.main([bad, "--num-samples", "4", "--output", str(tmp_path / "s.npz")]) == 2
    err = capsys.readouterr().err
    assert "n_critic must be >= 1 (D steps per G step), got 0. [checkpoint key hyper_parameters.n_critic]" in err
    assert "Union subtypes" not in err and "Namespace(" not in err
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path / "run", f"--ckpt_path={bad}"))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: n_critic must be >= 1")
    assert f"The value comes from --ckpt_path {bad} (checkpoint key hyper_parameters.n_critic)" in err
    assert "Union subtypes" not in err and not (tmp_path / "run").exists()


def test_config_reason_finds_a_nested_key_and_keeps_other_errors_whole():
    from lightning_gen.errors import _message, config_reason

    text = (
        "Does not validate against any of the Union subtypes\nSubtypes: [<class 'pytorch_lightning.core.module."
        "LightningModule'>, <class 'NoneType'>]\nErrors:\n  - base_channels must be >= 1, got 0.\n  - Expected a "
        "<class 'NoneType'>\nGiven value type: <class 'jsonargparse._namespace.Namespace'>\nGiven value: Namespace("
        "class_path='m.GAN', init_args=Namespace(generator=Namespace(class_path='m.G', init_args=Namespace("
        "base_channels=0, betas=(0.5, 0.9))), n_critic=1))"
    )
    key, reason = config_reason(ValueError(text))
    assert (key, reason) == ("model.init_args.generator.init_args.base_channels", "base_channels must be >= 1, got 0.")
    assert config_reason(ValueError("n_critic must be >= 1")) is None
    both = text.replace("n_critic=1", "discriminator=Namespace(init_args=Namespace(base_channels=0))")
    assert config_reason(ValueError(both))[0] == (
        "model.init_args.generator.init_args.base_channels or model.init_args.discriminator.init_args.base_channels"
    )
    assert "Config key: one of model.init_args.generator.init_args.base_channels, model." in _message(ValueError(both))


@pytest.mark.parametrize(
    "arg, message",
    [
        ("--model.init_args.generator.init_args.base_channels=0", "base_channels=0: a layer needs at least 1 unit"),
        ("--model.init_args.optimizer_g.init_args.lr=-0.001", "Invalid learning rate: -0.001 (an optimizer"),
    ],
    ids=["base_channels", "negative_lr"],
)
def test_network_width_and_optimizer_settings_are_named(tmp_path, capsys, arg, message):
    """Were an IndexError from an empty layer list and torch.optim's bare text."""
    with pytest.raises(SystemExit) as exit_:
        main(family_args("gan", tmp_path / "run", arg))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(f"error: {message}")
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_image_and_timegan_data_dir_through_a_file_is_refused_before_any_download(tmp_path):
    from lightning_gen.data.images import MNISTDataModule
    from lightning_gen.data.timegan_data import StocksDataModule
    from lightning_gen.errors import UserError

    blocker = tmp_path / "afile"
    blocker.write_text("")
    for make in (MNISTDataModule, StocksDataModule):
        with pytest.raises(UserError, match=r"data_dir .*afile/x runs through the file .*afile, not a folder"):
            make(data_dir=str(blocker / "x"))
    StocksDataModule(path=str(tmp_path / "stock.csv"), data_dir=str(blocker))  # a local path: data_dir unused
