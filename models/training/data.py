"""Fashion-MNIST from Debian's dataset-fashion-mnist package, read directly
from the idx .gz files with gzip + numpy (no downloads)."""
import gzip
import os

import numpy as np

DATA_DIR = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


class DatasetMissing(RuntimeError):
    pass


def _read_idx(path, magic, ndim):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    got = int.from_bytes(raw[0:4], "big")
    if got != magic:
        raise DatasetMissing(f"{path}: bad idx magic {got:#x}, expected {magic:#x}")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetMissing(f"{path}: expected {dims} values, file holds {data.size}")
    return data.reshape(dims)


def load(data_dir=DATA_DIR):
    """Returns dict of uint8 arrays: train_images [60000,28,28], train_labels
    [60000], test_images [10000,28,28], test_labels [10000]."""
    missing = [n for n in FILES.values() if not os.path.isfile(os.path.join(data_dir, n))]
    if missing:
        raise DatasetMissing(
            f"Fashion-MNIST not found in {data_dir} (missing: {', '.join(missing)}).\n"
            "Install it with:  sudo apt-get install dataset-fashion-mnist\n"
            "(or point FASHION_MNIST_DIR at a folder holding the four idx .gz files)")
    out = {}
    for key, name in FILES.items():
        path = os.path.join(data_dir, name)
        if key.endswith("images"):
            out[key] = _read_idx(path, 0x00000803, 3)
        else:
            out[key] = _read_idx(path, 0x00000801, 1)
    assert out["train_images"].shape == (60000, 28, 28), out["train_images"].shape
    assert out["test_images"].shape == (10000, 28, 28), out["test_images"].shape
    return out
