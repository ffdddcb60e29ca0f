"""Image data for the deep-network experiments: CIFAR-10 from a user's folder, digits offline.

Nothing is downloaded. Two sources, one container (`ImageData`):

* `load_cifar10(data_dir)`: the standard python-pickle batch folder (``data_batch_1`` ..
  ``data_batch_5``, ``test_batch``), each a pickled dict with ``b'data'`` (uint8, N x 3072,
  channel-major R then G then B, rows of 32) and ``b'labels'`` (N ints in 0..9).
* `load_digits_images()`: scikit-learn's bundled 8 x 8 digits (values 0..16), upsampled to
  32 x 32 by repeating each pixel 4 x 4 (exact, so uint8 storage loses nothing), copied to
  three channels, with a fixed stratified 80/20 train/validation split (``random_state=0``).

Pixels stay uint8 in memory (CIFAR-10 is 150 MB that way, 600 MB as float32); `ImageData.batch`
turns selected rows into normalised float tensors on the fly, after the paper's augmentation
(`augment`: RandomCrop(32, padding=4) with zero fill, then a horizontal flip with
probability 1/2, applied to ``[0, 1]`` pixels as torchvision does before ``Normalize``).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import NdgmError

__all__ = ["ImageData", "CIFAR10_MEAN", "CIFAR10_STD", "HALF", "load_cifar10", "load_digits_images",
           "load_images", "augment", "write_cifar_batch"]

# Spec section 2 (paper appendix A.2): per-channel normalisation of the Fig. 2 runs.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
# Paper appendix C (Fig. 3 / Table 2 code): Normalize((0.5,)*3, (0.5,)*3).
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"


@dataclass
class ImageData:
    """Train and validation images as uint8 ``(N, 3, H, W)`` with integer labels.

    ``x_float = uint8 * pixel_scale`` lies in ``[0, 1]``; `batch` returns
    ``(augment(x_float) - mean) / std`` per channel.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    pixel_scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_classes: int = 10
    # (device, dtype) -> (mean, std) as (1, C, 1, 1) tensors, see `_normaliser`.
    _normalisers: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n_train(self) -> int:
        return int(self.train_x.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.val_x.shape[0])

    def to(self, device: torch.device | str) -> "ImageData":
        """A copy with the uint8 pixels and labels on ``device`` (one transfer, not per batch)."""
        return ImageData(self.name, self.train_x.to(device), self.train_y.to(device), self.val_x.to(device),
                         self.val_y.to(device), self.pixel_scale, self.mean, self.std, self.num_classes)

    def subset(self, n_train: int | None = None, n_val: int | None = None) -> "ImageData":
        """The first ``n_train`` / ``n_val`` images (``None`` or 0: all)."""
        a = self.n_train if not n_train else min(n_train, self.n_train)
        b = self.n_val if not n_val else min(n_val, self.n_val)
        return ImageData(self.name, self.train_x[:a], self.train_y[:a], self.val_x[:b], self.val_y[:b],
                         self.pixel_scale, self.mean, self.std, self.num_classes)

    def subsample(self, stride: int) -> "ImageData":
        """Every ``stride``-th pixel along each axis (``x[:, :, ::stride, ::stride]``). On the digits,
        whose 8 x 8 pixels are stored as 4 x 4 blocks, ``stride = 4`` gives back the 8 x 8 images exactly."""
        if stride == 1:
            return self
        cut = lambda x: x[:, :, ::stride, ::stride].contiguous()  # noqa: E731
        return ImageData(self.name, cut(self.train_x), self.train_y, cut(self.val_x), self.val_y, self.pixel_scale,
                         self.mean, self.std, self.num_classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        return tuple(int(v) for v in self.train_x.shape[1:])

    def batch(self, index: torch.Tensor | slice, train: bool = True, augment_with: torch.Generator | None = None,
              dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images and labels of rows ``index``; augmented when ``augment_with`` is given."""
        xs, ys = (self.train_x, self.train_y) if train else (self.val_x, self.val_y)
        x = xs[index].to(dtype) * self.pixel_scale
        if augment_with is not None:
            x = augment(x, augment_with)
        mean, std = self._normaliser(x.device, dtype)
        return (x - mean) / std, ys[index]

    def _normaliser(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean`` and ``std`` as ``(1, C, 1, 1)`` tensors, built once per device and dtype: a
        tensor made from Python numbers on a GPU is a blocking host-to-device copy per batch."""
        key = (device, dtype)
        if key not in self._normalisers:
            self._normalisers[key] = tuple(torch.tensor(v, dtype=dtype, device=device).view(1, -1, 1, 1)
                                           for v in (self.mean, self.std))
        return self._normalisers[key]


def augment(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """RandomCrop(H, padding) with zero fill + RandomHorizontalFlip(0.5), batched and seeded.

    For each image independent offsets ``(i, j)`` uniform in ``0..2*padding`` select
    ``pad(x)[:, i:i+H, j:j+W]``; then the image is mirrored left-right with probability 1/2.
    All draws come from ``generator`` (which lives on the CPU), so a seed fixes them on any
    device.
    """
    n, c, h, w = x.shape
    offs = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    # One host-to-device copy for both draws: columns (row offset, column offset, flip).
    draws = torch.cat([offs, flip[:, None].to(offs.dtype)], dim=1).to(x.device)
    offs, flip = draws[:, :2], draws[:, 2].bool()
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    rows = offs[:, 0:1] + torch.arange(h, device=x.device)  # (n, h)
    cols = offs[:, 1:2] + torch.arange(w, device=x.device)  # (n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip reads the columns backwards
    nidx = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[nidx, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    expected = "a pickled dict with b'data' (uint8, N x 3072) and b'labels' (N ints in 0..9)"
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        raise NdgmError(f"--data-dir: {str(path)!r} is not a CIFAR-10 python batch ({type(e).__name__}); "
                        f"expected {expected}") from None
    if not isinstance(d, dict):
        raise NdgmError(f"--data-dir: {str(path)!r} holds a {type(d).__name__}; expected {expected}")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise NdgmError(f"--data-dir: {str(path)!r} lacks b'data' or b'labels'; expected {expected}")
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise NdgmError(f"--data-dir: {str(path)!r} has data of dtype {data.dtype} and shape {list(data.shape)}; "
                        f"expected {expected}")
    if labels.shape != (data.shape[0],) or labels.size and (labels.min() < 0 or labels.max() > 9):
        raise NdgmError(f"--data-dir: {str(path)!r} has {labels.size} labels for {data.shape[0]} images "
                        f"(range {labels.min() if labels.size else '-'}..{labels.max() if labels.size else '-'}); "
                        f"expected {expected}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(data_dir: str | Path, mean=CIFAR10_MEAN, std=CIFAR10_STD) -> ImageData:
    """Read the CIFAR-10 python batches in ``data_dir`` (train: batches 1..5, validation: test_batch)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise NdgmError(f"--data-dir {str(root)!r} is not a directory; expected the CIFAR-10 python folder "
                        f"(cifar-10-batches-py) with {', '.join(CIFAR_TRAIN_FILES)} and {CIFAR_TEST_FILE}")
    missing = [f for f in CIFAR_TRAIN_FILES + (CIFAR_TEST_FILE,) if not (root / f).is_file()]
    if missing:
        raise NdgmError(f"--data-dir {str(root)!r} lacks {', '.join(missing)}; expected the CIFAR-10 python "
                        f"folder (cifar-10-batches-py) with {', '.join(CIFAR_TRAIN_FILES)} and {CIFAR_TEST_FILE}")
    parts = [_read_cifar_batch(root / f) for f in CIFAR_TRAIN_FILES]
    tx = np.concatenate([p[0] for p in parts])
    ty = np.concatenate([p[1] for p in parts])
    vx, vy = _read_cifar_batch(root / CIFAR_TEST_FILE)
    return ImageData("cifar10", torch.from_numpy(tx), torch.from_numpy(ty), torch.from_numpy(vx),
                     torch.from_numpy(vy), 1.0 / 255.0, tuple(mean), tuple(std))


def write_cifar_batch(path: str | Path, data: np.ndarray, labels) -> None:
    """Write a CIFAR-10-format python batch (for tests and for packing one's own images)."""
    data = np.asarray(data, dtype=np.uint8).reshape(len(labels), 3072)
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"generated", b"data": data, b"labels": [int(v) for v in labels],
                     b"filenames": [b"img%d.png" % i for i in range(len(labels))]}, f)


def load_digits_images(mean=None, std=None, val_fraction: float = 0.2) -> ImageData:
    """scikit-learn's digits as 3 x 32 x 32 images, fixed stratified split (``random_state=0``).

    Normalisation defaults to the training split's pixel mean and standard deviation
    (one value, all three channels equal).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    imgs = d.images.astype(np.uint8)  # values 0..16
    imgs = np.kron(imgs, np.ones((1, 4, 4), dtype=np.uint8))  # 8x8 -> 32x32, each pixel a 4x4 block
    imgs = np.repeat(imgs[:, None], 3, axis=1)  # three identical channels
    tr, va = train_test_split(np.arange(len(imgs)), test_size=val_fraction, random_state=0, stratify=d.target)
    scale = 1.0 / 16.0
    if mean is None or std is None:
        px = imgs[tr].astype(np.float64) * scale
        m, s = float(px.mean()), float(px.std())
        mean, std = (m, m, m), (s, s, s)
    return ImageData("digits", torch.from_numpy(imgs[tr]), torch.from_numpy(d.target[tr].astype(np.int64)),
                     torch.from_numpy(imgs[va]), torch.from_numpy(d.target[va].astype(np.int64)),
                     scale, tuple(mean), tuple(std))


def load_images(data_dir: str | None, normalisation: str = "cifar") -> ImageData:
    """CIFAR-10 from ``data_dir`` when given, else the offline digits.

    ``normalisation``: ``'cifar'`` (Fig. 2 constants; for the digits, whose strokes those
    constants do not describe, the training split's own statistics) or ``'half'``
    (appendix C: 0.5 / 0.5).
    """
    if normalisation not in ("cifar", "half"):
        raise NdgmError(f"normalisation must be cifar or half, got {normalisation!r}")
    if data_dir:
        return load_cifar10(data_dir, *HALF) if normalisation == "half" else load_cifar10(data_dir)
    return load_digits_images(*HALF) if normalisation == "half" else load_digits_images()
