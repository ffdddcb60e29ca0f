"""The VGG family of the paper (spec section 2) and a torchvision-layout VGG16 (section 3.4).

Two model builders, no torchvision dependency:

* `SmallVGG`: the paper's reduced VGG11/13/16/19 (appendix A.2). Each number in the
  configuration is ``Conv2d(c_in, c, 3, padding=1)``, optionally ``BatchNorm2d(c)``, then
  the activation; ``'M'`` is ``AvgPool2d(2, 2)`` (average, not max, pooling); at the end
  ``AvgPool2d(1)``, flatten and ``Linear(64, 10)``. Input ``3 x 32 x 32``: five pools take
  32 to 1, so the flattened feature has exactly 64 entries.
* `TorchvisionVGG16`: the module names and shapes of ``torchvision.models.vgg16`` (features
  ``0..30`` with ReLU after every conv and MaxPool at 4, 9, 16, 23, 30; ``avgpool =
  AdaptiveAvgPool2d((7, 7))``; classifier ``0 / 3 / 6`` Linear 25088 -> 4096 -> 4096 -> 1000
  with ReLU and Dropout(0.5) between), so an ImageNet state dict saved from torchvision loads
  with `load_vgg16_weights`. On a 32 x 32 input the features end at 1 x 1 and the adaptive
  pool replicates that to 7 x 7, as in the paper's fine-tuning run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..errors import NdgmError

__all__ = [
    "VGG_CONFIGS", "PAPER_ACTIVATIONS", "SmallVGG", "make_activation", "TorchvisionVGG16",
    "TORCHVISION_VGG16_CONFIG", "vgg16_state_shapes", "load_vgg16_weights", "replace_head",
]

# Spec section 2 (paper appendix A.2): channels per conv, "M" = 2x2 average pool.
VGG_CONFIGS: dict[str, tuple] = {
    "vgg11": (16, "M", 32, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"),
    "vgg13": (16, 16, "M", 32, 32, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"),
    "vgg16": (16, 16, "M", 32, 32, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M"),
    "vgg19": (16, 16, "M", 32, 32, "M", 32, 32, 32, 32, "M", 64, 64, 64, 64, "M", 64, 64, 64, 64, "M"),
}

# The paper's four activations (Fig. 2), as names `make_activation` reads.
PAPER_ACTIVATIONS = ("relu", "gelu", "softplus100", "softplus1000")

# torchvision's configuration "D" (VGG16), max pooling.
TORCHVISION_VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                            512, 512, 512, "M")


def make_activation(name: str) -> nn.Module:
    """``'relu'``, ``'gelu'``, ``'softplus'`` (beta 1) or ``'softplusB'`` (``Softplus(beta=B)``).

    ``Softplus_beta(x) = log(1 + exp(beta x)) / beta`` tends to ``relu(x)`` as ``beta -> inf``:
    beta 100 and 1000 are smooth activations that look like ReLU from afar.
    """
    key = str(name).lower()
    if key == "relu":
        return nn.ReLU()
    if key == "gelu":
        return nn.GELU()
    if key.startswith("softplus"):
        rest = key[len("softplus"):]
        try:
            beta = float(rest) if rest else 1.0
        except ValueError:
            beta = float("nan")
        if not beta > 0 or beta == float("inf"):
            raise NdgmError(f"activation {name!r}: Softplus beta must be a finite number > 0")
        return nn.Softplus(beta=beta)
    raise NdgmError(f"unknown activation {name!r}; choose relu, gelu or softplusBETA (e.g. softplus100)")


class SmallVGG(nn.Module):
    """The paper's VGG11/13/16/19 (spec section 2): average pooling, optional BatchNorm.

    Parameters
    ----------
    depth : {'vgg11', 'vgg13', 'vgg16', 'vgg19'}
        Configuration from `VGG_CONFIGS`.
    activation : str
        ``'relu'``, ``'gelu'`` or ``'softplusB'`` (see `make_activation`).
    batch_norm : bool
        Insert ``BatchNorm2d`` between every conv and its activation.
    num_classes : int
        Outputs of the final ``Linear(64, num_classes)`` (paper: 10).
    width : float
        Multiplies every channel count (rounded, at least 1): 1 is the paper's network, 0.25 a
        quarter-width one for quick CPU runs; the classifier then takes the last width.
    """

    def __init__(self, depth: str = "vgg11", activation: str = "relu", batch_norm: bool = False,
                 num_classes: int = 10, width: float = 1.0):
        super().__init__()
        key = str(depth).lower()
        if key not in VGG_CONFIGS:
            raise NdgmError(f"unknown VGG depth {depth!r}; choose one of {', '.join(VGG_CONFIGS)}")
        if not (isinstance(width, (int, float)) and 0 < width < float("inf")):
            raise NdgmError(f"VGG width must be a finite number > 0, got {width!r}")
        self.depth, self.activation, self.batch_norm = key, str(activation).lower(), bool(batch_norm)
        make_activation(activation)  # validate early
        layers: list[nn.Module] = []
        c_in = 3
        for v in VGG_CONFIGS[key]:
            if v == "M":
                layers.append(nn.AvgPool2d(kernel_size=2, stride=2))
                continue
            v = max(1, int(round(v * width)))
            layers.append(nn.Conv2d(c_in, v, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(make_activation(activation))
            c_in = v
        layers.append(nn.AvgPool2d(kernel_size=1, stride=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


class TorchvisionVGG16(nn.Module):
    """VGG16 with the exact module layout of ``torchvision.models.vgg16`` (no BatchNorm).

    ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}`` are ``Conv2d(3x3, padding 1)``, each
    followed by ``ReLU(inplace=True)``; ``features.{4,9,16,23,30}`` are ``MaxPool2d(2, 2)``;
    ``avgpool = AdaptiveAvgPool2d((7, 7))``; ``classifier = [Linear(25088, 4096), ReLU,
    Dropout(0.5), Linear(4096, 4096), ReLU, Dropout(0.5), Linear(4096, num_classes)]``.
    138,357,544 parameters with 1000 classes. Initialisation as torchvision (Kaiming-normal
    fan-out convs, ``N(0, 0.01)`` linears, zero biases) -- normally overwritten by a state dict.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, init_weights: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for v in TORCHVISION_VGG16_CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c_in, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c_in = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def vgg16_state_shapes(num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of `TorchvisionVGG16` and its shape, computed without allocating."""
    shapes: dict[str, tuple[int, ...]] = {}
    idx, c_in = 0, 3
    for v in TORCHVISION_VGG16_CONFIG:
        if v == "M":
            idx += 1
            continue
        shapes[f"features.{idx}.weight"] = (v, c_in, 3, 3)
        shapes[f"features.{idx}.bias"] = (v,)
        idx, c_in = idx + 2, v
    for i, (n_in, n_out) in zip((0, 3, 6), ((25088, 4096), (4096, 4096), (4096, num_classes))):
        shapes[f"classifier.{i}.weight"] = (n_out, n_in)
        shapes[f"classifier.{i}.bias"] = (n_out,)
    return shapes


def _read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    if not path.is_file():
        raise NdgmError(f"--weights {str(path)!r}: no such file (expected a torchvision VGG16 state dict "
                        "saved with torch.save)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001
            raise NdgmError(f"--weights {str(path)!r}: not a readable torch state dict ({type(e).__name__})") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise NdgmError(f"--weights {str(path)!r}: expected a dict of tensors (a state dict)")
    # Weights saved from a DataParallel wrapper carry a "module." prefix.
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_vgg16_weights(path: str | Path, num_classes: int | None = None,
                       device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> TorchvisionVGG16:
    """Build a `TorchvisionVGG16` from a user-supplied state-dict file.

    The file's keys and shapes are checked against `vgg16_state_shapes` before anything is
    allocated; the first missing, unexpected or mismatched key is an `NdgmError` naming the
    key and both shapes. The head may have any number of classes (read from the file). The
    model is built on the ``meta`` device and the file's tensors are assigned, so no time is
    spent on an initialisation that would be overwritten. ``num_classes``, when given and
    different from the file's, replaces the head afterwards (`replace_head`).
    """
    path = Path(path)
    sd = _read_state_dict(path)
    head = sd.get("classifier.6.weight")
    file_classes = int(head.shape[0]) if isinstance(head, torch.Tensor) and head.ndim == 2 else 1000
    expected = vgg16_state_shapes(file_classes)
    for key, shape in expected.items():
        if key not in sd:
            raise NdgmError(f"--weights {str(path)!r}: missing key {key!r} (expected shape {list(shape)})")
        if tuple(sd[key].shape) != shape:
            raise NdgmError(f"--weights {str(path)!r}: key {key!r} has shape {list(sd[key].shape)}, "
                            f"the torchvision VGG16 layout needs {list(shape)}")
    extra = sorted(set(sd) - set(expected))
    if extra:
        raise NdgmError(f"--weights {str(path)!r}: unexpected key {extra[0]!r} ({len(extra)} in all); "
                        "expected the torchvision VGG16 layout (features.N / classifier.0,3,6)")
    with torch.device("meta"):
        model = TorchvisionVGG16(num_classes=file_classes, init_weights=False)
    model.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, assign=True)
    model = model.to(device=device)
    if num_classes is not None and num_classes != file_classes:
        replace_head(model, num_classes)  # on the model's device and dtype
    return model


def replace_head(model: TorchvisionVGG16, num_classes: int, seed: int | None = None) -> TorchvisionVGG16:
    """Replace ``classifier.6`` by a fresh ``Linear(4096, num_classes)`` (torchvision init).

    The new layer is created on the old one's device and dtype; ``seed`` makes its draw
    independent of the global RNG.
    """
    old = model.classifier[6]
    gen = torch.Generator(device="cpu")
    if seed is not None:
        gen.manual_seed(seed)
    else:
        gen.seed()
    new = nn.Linear(old.in_features, num_classes)
    with torch.no_grad():
        new.weight.copy_(torch.randn(new.weight.shape, generator=gen) * 0.01)
        new.bias.zero_()
    model.classifier[6] = new.to(device=old.weight.device, dtype=old.weight.dtype)
    return model
