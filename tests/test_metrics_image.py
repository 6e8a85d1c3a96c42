"""Image metrics: FID against the closed form, KID / IS / precision-recall, feature extractors, bad input."""

import urllib.error

import numpy as np
import pytest
import scipy.linalg
import torch

from lightning_gen.metrics import image as M
from lightning_gen.models import ImageClassifier, SmallCNN


def closed_form_fid(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) with scipy (Heusel et al. 2017, eq. 6)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def feats():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 16))
    fake = rng.normal(size=(300, 16)) @ rng.normal(scale=0.4, size=(16, 16)) + 0.3
    return real, fake


def test_fid_matches_scipy_closed_form(feats):
    real, fake = feats
    value = M.fid_from_features(torch.from_numpy(real), torch.from_numpy(fake))
    assert value == pytest.approx(closed_form_fid(real, fake), abs=1e-3)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise(feats):
    real = torch.from_numpy(feats[0])
    assert M.fid_from_features(real, real) == pytest.approx(0.0, abs=1e-6)
    gen = torch.Generator().manual_seed(1)
    values = [
        M.fid_from_features(real, real + s * torch.randn(real.shape, generator=gen, dtype=real.dtype))
        for s in (0.1, 0.5, 1.0)
    ]
    assert 0 < values[0] < values[1] < values[2]


def test_fid_needs_as_many_samples_as_feature_dimensions(feats):
    real = torch.from_numpy(feats[0])
    with pytest.raises(ValueError, match="at least 16 generated samples"):
        M.fid_from_features(real, real[:10])


def test_kid_is_and_precision_recall(feats):
    real, fake = (torch.from_numpy(a) for a in feats)
    kid_same, _, _ = M.kid_from_features(real, real, subsets=5, subset_size=100)
    kid_diff, kid_std, size = M.kid_from_features(real, fake, subsets=5, subset_size=100)
    # the same items can fall in both subsets (k(x, x) = 1 in the cross term): a set against itself reads about -0.05
    assert abs(kid_same) < 0.1 < 1.0 < kid_diff and kid_std >= 0 and size == 100
    assert M.kid_from_features(real, fake, subsets=5, subset_size=100)[0] == kid_diff  # seeded: the same subsets
    pr = M.precision_recall_from_features(real, real)
    assert pr["precision"] == 1.0 and pr["recall"] == 1.0
    confident = torch.zeros(50, 10)
    confident[torch.arange(50), torch.arange(50) % 10] = 30.0  # sure of one class each, all classes used
    mean, _ = M.inception_score_from_logits(confident, splits=1)
    assert mean == pytest.approx(10.0, rel=1e-3)  # IS = exp(H(y)) = number of classes
    assert M.inception_score_from_logits(torch.zeros(50, 10), splits=5)[0] == pytest.approx(1.0)


def test_unknown_metric_name(feats):
    real = {"features": torch.from_numpy(feats[0]), "logits": torch.zeros(400, 3)}
    with pytest.raises(ValueError, match="Unknown image metric.*'fdi'.*fid"):
        M.image_metrics_from_features(real, real, ["fdi"])


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((4, 2, 8, 8), np.float32), r"\(N, C, H, W\) with C = 1 or 3"),
        (np.full((4, 1, 8, 8), 2.0, np.float32), r"must be in \[0, 1\].*\(x \+ 1\) / 2"),
        (np.full((4, 1, 8, 8), np.nan, np.float32), "4 of 4 images contain NaN"),
        (
            np.zeros((4, 1, 16, 16), np.float32),
            r"\(1, 16, 16\), but the reference images of the dataset have \(1, 8, 8\)",
        ),
        (np.zeros((4, 1, 8, 8), np.int32), "dtype"),
    ],
)
def test_check_images_rejects_bad_samples(images, match):
    with pytest.raises(ValueError, match=match):
        M.check_images(images, dims=(1, 8, 8))


def test_check_images_accepts_uint8_and_grey_without_channel():
    x = M.check_images(np.full((2, 8, 8), 255, np.uint8))
    assert x.shape == (2, 1, 8, 8) and x.dtype == torch.float32 and float(x.max()) == 1.0


def test_inception_offline_message_names_the_file(monkeypatch, tmp_path):
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(M.InceptionWeightsError) as err:
        M.build_extractor("inception")
    text = str(err.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in text
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints" / M.INCEPTION_FILE) in text
    assert M.INCEPTION_URL in text and "--inception-weights" in text and "--features classifier" in text
    with pytest.raises(M.InceptionWeightsError, match="does not exist"):
        M.InceptionFeatures(str(tmp_path / "missing.pth"))


def test_inception_refuses_pickled_weights_file(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"x": object()}, path)
    with pytest.raises(M.InceptionWeightsError, match="not a plain tensor checkpoint"):
        M.InceptionFeatures(str(path))


@pytest.mark.slow
def test_inception_extractor_with_local_weights(monkeypatch, tmp_path):
    """Random weights in the right layout stand in for the real file (not downloadable here)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with monkeypatch.context() as m:
        m.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state_dict: None)
        m.setattr("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", lambda *a, **k: {})
        state = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).state_dict()
    path = tmp_path / M.INCEPTION_FILE
    torch.save(state, path)
    extractor = M.build_extractor("inception", inception_weights=str(path))
    out = M.extract_features(extractor, torch.rand(3, 1, 8, 8), batch_size=2)  # grey 8x8 -> RGB 299x299
    assert out["features"].shape == (3, 2048) and out["logits"].shape == (3, 1008)
    assert torch.isfinite(out["features"]).all()
    info = extractor.provenance()
    assert info["name"] == "inception" and info["comparable_with_published"] is True
    assert len(info["weights_sha256"]) == 64 and "299x299" in info["resize_rule"]


def test_classifier_features_and_provenance():
    torch.manual_seed(0)
    model = ImageClassifier(SmallCNN(img_size=8, channels=1, num_classes=10, width=4, feature_dim=12))
    extractor = M.build_extractor("classifier", classifier=model)
    out = M.extract_features(extractor, torch.rand(5, 1, 8, 8), batch_size=2)
    assert out["features"].shape == (5, 12) and out["logits"].shape == (5, 10)
    info = extractor.provenance()
    assert info["comparable_with_published"] is False and "NOT comparable" in info["note"]
    assert info["weights_sha256"] == M.state_dict_sha256(model.network)
    with pytest.raises(ValueError, match=r"takes images of shape \(C, H, W\) = \(1, 8, 8\)"):
        extractor(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="needs a trained classifier checkpoint"):
        M.build_extractor("classifier")
    with pytest.raises(ValueError, match="Unknown feature extractor 'vgg'"):
        M.build_extractor("vgg")


def test_classifier_learns_digits(tmp_path):
    import functools

    from lightning_gen.data import DigitsDataModule
    from tests.conftest import tiny_trainer

    torch.manual_seed(0)
    network = SmallCNN(img_size=8, channels=1, width=16, feature_dim=16, dropout=0.0)
    model = ImageClassifier(network, optimizer=functools.partial(torch.optim.Adam, lr=3e-3))
    trainer = tiny_trainer(tmp_path, max_epochs=1)
    trainer.fit(model, DigitsDataModule(batch_size=32))
    assert float(trainer.callback_metrics["val/accuracy"]) > 0.5  # chance is 0.1


def test_classifier_refuses_unlabelled_data():
    model = ImageClassifier(SmallCNN(img_size=8, channels=1, width=4, feature_dim=8))
    with pytest.raises(ValueError, match="needs labelled images"):
        model.training_step((torch.zeros(2, 1, 8, 8), torch.tensor([-1, -1])), 0)


def test_small_cnn_downsample_stages():
    net = SmallCNN(img_size=28, channels=1, width=4, feature_dim=8, downsample=3)
    strided = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 3 and net.features(torch.zeros(2, 1, 28, 28)).shape == (2, 8)
    with pytest.raises(ValueError, match="downsample >= 1"):
        SmallCNN(downsample=0)
