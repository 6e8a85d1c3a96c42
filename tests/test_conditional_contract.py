"""The class-condition contract on the image side: what the DataModules say about their labels, and
the clear errors for wrong labels, missing labels, labels given to an unconditional model and data without
labels."""

import functools

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_gen.data import ArrayImageDataModule, DigitsDataModule, ImageFolderDataModule
from lightning_gen.models import GAN, VAE
from lightning_gen.nets import ConvEncoder, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from tests.conftest import tiny_trainer

pytestmark = pytest.mark.usefixtures("one_thread")
ADAM = functools.partial(torch.optim.Adam, lr=1e-3)


@pytest.fixture
def labelled_npz(tmp_path):
    """24 random 8x8 images with labels 0, 1, 2 (12, 8, 4 of them)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "labelled.npz"
    labels = np.array([0] * 12 + [1] * 8 + [2] * 4, dtype=np.int64)
    np.savez(path, images=rng.integers(0, 256, size=(24, 8, 8), dtype=np.uint8), labels=labels)
    return str(path)


def cond_gan(num_classes=3, **kwargs):
    torch.manual_seed(0)
    g = MLPGenerator(latent_dim=8, img_size=8, hidden=16, num_classes=num_classes)
    d = MLPDiscriminator(8, 1, hidden=16, num_classes=num_classes, **kwargs)
    return GAN(g, d, optimizer_g=ADAM, optimizer_d=ADAM)


# -- DataModules ---------------------------------------------------------------------------------------------
def test_digits_has_ten_classes_and_counts_its_training_split():
    dm = DigitsDataModule(batch_size=8)
    assert dm.num_classes == 10
    counts = dm.label_counts()
    assert counts.shape == (10,) and int(counts.sum()) == len(dm.train_set)
    assert torch.equal(counts, torch.bincount(torch.stack([y for _, y in dm.train_set]), minlength=10))


def test_array_labels_give_num_classes_and_counts(labelled_npz):
    dm = ArrayImageDataModule(labelled_npz, labels_key="labels", batch_size=4, val_fraction=0.0, test_fraction=0.0)
    assert dm.num_classes == 3
    assert dm.label_counts().tolist() == [12, 8, 4]
    assert ArrayImageDataModule(labelled_npz, batch_size=4).num_classes is None  # labels not asked for
    assert ArrayImageDataModule(labelled_npz, batch_size=4).label_counts().numel() == 0


def test_array_labels_must_be_integers_one_per_image(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((4, 8, 8), np.uint8), labels=np.array([0.5, 1, 2, 0]))
    with pytest.raises(ValueError, match="must be integers, one per image"):
        ArrayImageDataModule(str(path), labels_key="labels").prepare_data()
    np.savez(path, images=np.zeros((4, 8, 8), np.uint8), labels=np.array([0, 1, -3, 0]))
    with pytest.raises(ValueError, match="found -3"):
        ArrayImageDataModule(str(path), labels_key="labels").prepare_data()


def test_folder_classes_are_its_sub_folders(tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / "with" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), 40 * i).save(tmp_path / "with" / cls / f"{i}.png")
    (tmp_path / "flat").mkdir()
    for i in range(3):
        Image.new("L", (8, 8), 40 * i).save(tmp_path / "flat" / f"{i}.png")
    folder = ImageFolderDataModule(str(tmp_path / "with"), channels=1, img_size=8, batch_size=2, val_fraction=0.0)
    assert folder.num_classes == 2
    assert ImageFolderDataModule(str(tmp_path / "flat"), channels=1, img_size=8).num_classes is None


# -- models ----------------------------------------------------------------------------------------------------
def test_model_stores_the_training_label_distribution(tmp_path, labelled_npz):
    model = cond_gan()
    dm = ArrayImageDataModule(labelled_npz, labels_key="labels", batch_size=4, val_fraction=0.0, test_fraction=0.0)
    tiny_trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(model, dm)
    assert model.label_counts.tolist() == [12.0, 8.0, 4.0]
    assert "label_counts" in model.state_dict()  # in every checkpoint
    torch.manual_seed(0)
    assert model.labels_for(4000).bincount().tolist() == pytest.approx([2000, 1333, 667], abs=80)


def test_data_without_labels_is_refused(tmp_path, image_npz):
    with pytest.raises(ValueError, match="is conditional .* gives no labels"):
        tiny_trainer(tmp_path, max_steps=1).fit(cond_gan(), ArrayImageDataModule(image_npz, batch_size=4))


def test_data_with_another_number_of_classes_is_refused(tmp_path, labelled_npz):
    dm = ArrayImageDataModule(labelled_npz, labels_key="labels", batch_size=4)
    with pytest.raises(ValueError, match="The data has 3 classes but .* num_classes=5"):
        tiny_trainer(tmp_path, max_steps=1).fit(cond_gan(num_classes=5), dm)


def test_unlabelled_items_in_a_batch_are_refused(tmp_path):
    path = tmp_path / "partly.npz"
    np.savez(path, images=np.zeros((8, 8, 8), np.uint8), labels=np.array([0, 1, -1, 0, 1, 1, 0, -1]))
    dm = ArrayImageDataModule(str(path), labels_key="labels", batch_size=8, val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(ValueError, match="a -1 label means the source had none"):
        tiny_trainer(tmp_path, max_steps=1).fit(cond_gan(num_classes=2), dm)


def test_bad_labels_at_sampling_are_refused():
    model = cond_gan()
    with pytest.raises(ValueError, match=r"Labels must be in \[0, 3\)"):
        model.sample(2, labels=[0, 3])
    with pytest.raises(ValueError, match="Got 3 labels for 2 samples"):
        model.sample(2, labels=[0, 1, 2])
    with pytest.raises(ValueError, match="must be integers"):
        model.sample(2, labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="stores no label distribution"):
        model.sample(2)  # never fitted: no label_counts to draw from
    assert model.sample(2, labels=1).shape == (2, 1, 8, 8)  # one label for all


def test_labels_asked_of_an_unconditional_model_are_refused(tiny_nets):
    g, d = tiny_nets
    gan = GAN(g, d, optimizer_g=ADAM, optimizer_d=ADAM)
    with pytest.raises(ValueError, match="this model is unconditional"):
        gan.sample(2, labels=[0, 1])
    vae = VAE(ConvEncoder(8, 8, base_channels=4, min_size=2), DCGANGenerator(8, 8, base_channels=4, min_size=2))
    with pytest.raises(ValueError, match="unconditional"):
        vae.sample(2, labels=[0, 1])


def test_networks_that_disagree_on_num_classes_are_refused():
    g = DCGANGenerator(8, 8, base_channels=4, min_size=2, num_classes=3)
    with pytest.raises(ValueError, match="disagree on num_classes"):
        GAN(g, DCGANDiscriminator(8, base_channels=4, min_size=2))
    with pytest.raises(ValueError, match="int >= 2"):
        DCGANGenerator(8, 8, num_classes=1)


def test_networks_check_their_labels():
    z = torch.randn(2, 8)
    with pytest.raises(ValueError, match="unconditional .* was given labels"):
        DCGANGenerator(8, 8, base_channels=4, min_size=2)(z, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="give `labels`"):
        DCGANGenerator(8, 8, base_channels=4, min_size=2, num_classes=3)(z)
    with pytest.raises(ValueError, match="int64 tensor of shape"):
        ConvEncoder(8, 8, base_channels=4, min_size=2, num_classes=3)(torch.randn(2, 1, 8, 8), labels=torch.zeros(2))
    with pytest.raises(ValueError, match="conditioning='both'"):
        DCGANDiscriminator(8, base_channels=4, min_size=2, num_classes=3, conditioning="both")
