import numpy as np
import pytest
import torch
from PIL import Image

from lightning_gen.data import ArrayImageDataModule, DigitsDataModule, ImageFolderDataModule, MNISTDataModule
from tests.conftest import write_fake_mnist


def _first_batch(dm):
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    return dm.on_after_batch_transfer(batch, 0)


def test_digits_splits_and_range():
    dm = DigitsDataModule(batch_size=16, val_fraction=0.1, test_fraction=0.1, seed=3)
    x, y = _first_batch(dm)
    assert x.shape == (16, 1, 8, 8) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1  # background is 0 -> -1
    assert dm.dims == (1, 8, 8)
    sizes = len(dm.train_set), len(dm.val_set), len(dm.test_set)
    assert sum(sizes) == 1797 and sizes[2] == 180
    again = DigitsDataModule(batch_size=16, seed=3)
    again.setup("fit")
    assert list(again.val_set.indices) == list(dm.val_set.indices)  # same split for the same seed
    assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) <= 9


def test_resize_option():
    dm = DigitsDataModule(batch_size=4, img_size=16)
    assert _first_batch(dm)[0].shape == (4, 1, 16, 16)


@pytest.mark.parametrize("layout, channels", [("NHW-uint8", 1), ("NCHW-float", 3), ("npy", 1)])
def test_array_file_layouts(tmp_path, layout, channels):
    rng = np.random.default_rng(0)
    if layout == "NHW-uint8":
        path = tmp_path / "a.npz"
        data = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8)
        np.savez(path, x=data)
        scaled = data[:, None] / 127.5 - 1  # (N, 1, H, W): a grey channel added
    elif layout == "NCHW-float":
        path = tmp_path / "a.npz"
        data = rng.random((20, 3, 8, 8), dtype=np.float32)
        np.savez(path, images=data, labels=np.arange(20))
        scaled = data * 2 - 1
    else:
        path = tmp_path / "a.npy"
        data = rng.integers(0, 256, (20, 1, 8, 8), dtype=np.uint8)
        np.save(path, data)
        scaled = data / 127.5 - 1
    dm = ArrayImageDataModule(str(path), batch_size=4, labels_key=None)
    x, _ = _first_batch(dm)
    assert x.shape == (4, channels, 8, 8) and dm.dims == (channels, 8, 8)  # the channels the file holds
    # every image of the batch is one of the file's, scaled to [-1, 1] (none mixed up across channels)
    flat = torch.as_tensor(scaled, dtype=torch.float32).flatten(1)
    assert all(torch.isclose(flat, image.flatten()[None], atol=1e-5).all(1).any() for image in x)


def test_array_file_wrong_shape_says_expected(tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros((10, 8, 8, 3), dtype=np.uint8))  # channels last
    with pytest.raises(ValueError, match=r"expected \(N, H, W\) or \(N, C, H, W\)"):
        ArrayImageDataModule(str(path)).prepare_data()


def test_array_float_out_of_range(tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.full((10, 8, 8), 255.0, dtype=np.float32))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        ArrayImageDataModule(str(path)).prepare_data()


def test_array_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ArrayImageDataModule(str(tmp_path / "nope.npz")).prepare_data()


def test_image_folder_with_classes(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), 40 * i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    dm = ImageFolderDataModule(str(tmp_path), channels=1, img_size=8, batch_size=2, val_fraction=0.0, test_fraction=0.0)
    x, y = _first_batch(dm)
    assert x.shape == (2, 1, 8, 8)
    assert sorted(dm._data()[1].tolist()) == [0, 0, 0, 1, 1, 1]


def test_image_folder_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="No image files"):
        ImageFolderDataModule(str(tmp_path)).prepare_data()


def test_image_folder_corrupt_file_is_named(tmp_path):
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="broken.png"):
        ImageFolderDataModule(str(tmp_path), img_size=8).prepare_data()


def test_mnist_without_files_or_network(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=true") as err:
        MNISTDataModule(data_dir=str(tmp_path), download=False).prepare_data()
    assert "raw" in str(err.value)  # says where the files go


def test_mnist_from_local_files(tmp_path):
    write_fake_mnist(tmp_path, "MNIST", n=16)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False, batch_size=4, img_size=32)
    x, y = _first_batch(dm)
    assert x.shape == (4, 1, 32, 32)
    assert len(dm.test_set) == 16  # the official test split, not a held-out share


def test_batch_larger_than_data(tmp_path, image_npz):
    dm = ArrayImageDataModule(image_npz, batch_size=64)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        dm.setup("fit")
