import pickle

import pytest
import torch
from torch import nn

from ndgm.errors import NdgmError
from ndgm.nets import count_parameters
from ndgm.nets.vgg import (SmallVGG, TorchvisionVGG16, load_vgg16_weights, make_activation, replace_head,
                           vgg16_state_shapes)


# Small convolutions on a shared 2-core machine: extra OpenMP threads only spin (10x slower).
pytestmark = pytest.mark.usefixtures("one_thread")

# Spec section 2, typed again here so that the model's table is checked, not copied.
SPEC = {
    "vgg11": [16, "M", 32, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"],
    "vgg13": [16, 16, "M", 32, 32, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"],
    "vgg16": [16, 16, "M", 32, 32, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M"],
    "vgg19": [16, 16, "M", 32, 32, "M", 32, 32, 32, 32, "M", 64, 64, 64, 64, "M", 64, 64, 64, 64, "M"],
}


def expected_count(cfg, bn):
    n, c_in = 0, 3
    for v in cfg:
        if v == "M":
            continue
        n += c_in * v * 9 + v + (2 * v if bn else 0)  # conv weight + bias (+ BN gamma, beta)
        c_in = v
    return n + 64 * 10 + 10


@pytest.mark.parametrize("depth", list(SPEC))
@pytest.mark.parametrize("bn", [False, True])
def test_small_vgg_parameter_count_and_shapes(depth, bn):
    m = SmallVGG(depth, "relu", bn)
    assert count_parameters(m) == expected_count(SPEC[depth], bn)
    convs = [mod for mod in m.features if isinstance(mod, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [v for v in SPEC[depth] if v != "M"]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    pools = [mod for mod in m.features if isinstance(mod, nn.AvgPool2d)]
    assert len(pools) == SPEC[depth].count("M") + 1  # + the final AvgPool(1)
    assert not any(isinstance(mod, nn.MaxPool2d) for mod in m.modules())
    assert sum(isinstance(mod, nn.BatchNorm2d) for mod in m.modules()) == (len(convs) if bn else 0)
    x = torch.randn(2, 3, 32, 32)
    assert m.features(x).shape == (2, 64, 1, 1)
    assert m(x).shape == (2, 10)


def test_known_counts():
    # by hand: 448 + 4640 + 2 * 9248 + 18496 + 3 * 36928 + 650
    assert count_parameters(SmallVGG("vgg11")) == 153_514
    assert count_parameters(SmallVGG("vgg19", batch_norm=True)) == 332_762
    m = SmallVGG("vgg11").requires_grad_(False)
    m.classifier.requires_grad_(True)
    assert count_parameters(m) == 153_514 and count_parameters(m, trainable_only=True) == 64 * 10 + 10


@pytest.mark.parametrize("name,cls,beta", [("relu", nn.ReLU, None), ("gelu", nn.GELU, None),
                                           ("softplus100", nn.Softplus, 100.0), ("softplus1000", nn.Softplus, 1000.0)])
def test_activations(name, cls, beta):
    m = SmallVGG("vgg11", name)
    acts = [mod for mod in m.features if isinstance(mod, cls)]
    assert len(acts) == 8
    if beta is not None:
        assert all(a.beta == beta for a in acts)
        x = torch.linspace(-1, 1, 101, dtype=torch.float64)
        assert torch.allclose(make_activation(name)(x), torch.nn.functional.softplus(x, beta=beta))


@pytest.mark.parametrize("kwargs,needle", [({"depth": "vgg12"}, "unknown VGG depth 'vgg12'"),
                                           ({"activation": "swish"}, "unknown activation 'swish'"),
                                           ({"activation": "softplus-3"}, "beta must be")])
def test_bad_model_arguments(kwargs, needle):
    with pytest.raises(NdgmError, match=needle):
        SmallVGG(**kwargs)


def test_small_vgg_state_dict_round_trip(tmp_path):
    torch.manual_seed(1)
    a = SmallVGG("vgg13", "gelu", batch_norm=True)
    a.train()(torch.randn(4, 3, 32, 32))  # move BN running statistics off their defaults
    torch.save(a.state_dict(), tmp_path / "m.pt")
    torch.manual_seed(2)
    b = SmallVGG("vgg13", "gelu", batch_norm=True)
    b.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(a.eval()(x), b.eval()(x))


# torchvision.models.vgg16 layout, from its source: conv indices, pools at 4, 9, 16, 23, 30.
TV_CONV = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
TV_CH = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def test_torchvision_layout_names_and_shapes():
    with torch.device("meta"):
        m = TorchvisionVGG16()
    sd = m.state_dict()
    expected = {}
    c_in = 3
    for i, c in zip(TV_CONV, TV_CH):
        expected[f"features.{i}.weight"] = (c, c_in, 3, 3)
        expected[f"features.{i}.bias"] = (c,)
        c_in = c
    expected.update({"classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
                     "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
                     "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)})
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected == vgg16_state_shapes()
    assert list(sd) == list(expected)  # same order as torchvision
    assert count_parameters(m) == 138_357_544
    assert len(m.features) == 31 and all(isinstance(m.features[i], nn.MaxPool2d) for i in (4, 9, 16, 23, 30))
    assert isinstance(m.avgpool, nn.AdaptiveAvgPool2d) and m.avgpool.output_size == (7, 7)
    assert [type(c).__name__ for c in m.classifier] == ["Linear", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert m(torch.empty(2, 3, 32, 32, device="meta")).shape == (2, 1000)


def fake_vgg16_state(num_classes=1000):
    # Each tensor is a stride-0 view of one number: the full layout at a few bytes per key.
    return {k: torch.full((1,), float(i + 1)).expand(shape)
            for i, (k, shape) in enumerate(vgg16_state_shapes(num_classes).items())}


def test_load_fake_torchvision_state_dict_and_replace_head(tmp_path):
    sd = fake_vgg16_state()
    path = tmp_path / "vgg16.pt"
    torch.save(sd, path)
    m = load_vgg16_weights(path)
    got = m.state_dict()
    assert list(got) == list(sd)
    for i, (k, v) in enumerate(got.items()):
        assert v.shape == sd[k].shape and float(v.flatten()[0]) == float(i + 1) and float(v.flatten()[-1]) == i + 1
    assert all(p.requires_grad for p in m.parameters())
    replace_head(m, 10, seed=0)
    assert m.classifier[6].weight.shape == (10, 4096) and m.classifier[6].bias.shape == (10,)
    assert float(m.classifier[6].bias.detach().abs().sum()) == 0.0
    assert 0.005 < float(m.classifier[6].weight.detach().std()) < 0.015
    # a state dict wrapped as {"state_dict": ...} with DataParallel's "module." prefix loads too
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "wrapped.pt")
    assert load_vgg16_weights(tmp_path / "wrapped.pt").classifier[6].weight.shape == (1000, 4096)


def test_load_with_ten_class_head_in_file(tmp_path):
    torch.save(fake_vgg16_state(10), tmp_path / "v10.pt")
    m = load_vgg16_weights(tmp_path / "v10.pt")
    assert m.classifier[6].out_features == 10


def test_load_errors(tmp_path):
    with pytest.raises(NdgmError, match="no such file"):
        load_vgg16_weights(tmp_path / "missing.pt")
    sd = fake_vgg16_state()
    sd["features.5.weight"] = torch.zeros(1).expand(128, 64, 5, 5)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(NdgmError) as e:
        load_vgg16_weights(tmp_path / "bad.pt")
    msg = str(e.value)
    assert "'features.5.weight'" in msg and "[128, 64, 5, 5]" in msg and "[128, 64, 3, 3]" in msg
    sd = fake_vgg16_state()
    del sd["classifier.3.bias"]
    torch.save(sd, tmp_path / "missing_key.pt")
    with pytest.raises(NdgmError, match="missing key 'classifier.3.bias'"):
        load_vgg16_weights(tmp_path / "missing_key.pt")
    sd = fake_vgg16_state()
    sd["features.1.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "extra.pt")
    with pytest.raises(NdgmError, match="unexpected key 'features.1.weight'"):
        load_vgg16_weights(tmp_path / "extra.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(NdgmError, match="not a readable torch state dict"):
        load_vgg16_weights(tmp_path / "junk.pt")
    (tmp_path / "list.pt").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(NdgmError):
        load_vgg16_weights(tmp_path / "list.pt")
