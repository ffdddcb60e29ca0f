"""compact(model): dead channels and neurons removed, the same outputs on any input, folded constants."""

import pytest
import torch
from torch import nn

from ndgm.errors import NdgmError
from ndgm.nets import count_parameters
from ndgm.nets.vgg import SmallVGG
from ndgm.sparse import GroupL2Penalty, ProxSGD, penalised_groups
from ndgm.sparse.compact import FoldedConv, compact, measure_compaction

D = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randomise_norms(model, seed=0):
    """BatchNorm with non-trivial running statistics and affine parameters (eval mode uses them)."""
    g = gen(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=D))
                m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=D) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g, dtype=D))
                m.bias.copy_(torch.randn(m.num_features, generator=g, dtype=D))


def kill(layer, rows, bias=None):
    """Zero the weights of output channels ``rows`` (their bias set to ``bias`` when given)."""
    with torch.no_grad():
        layer.weight[rows] = 0
        if bias is not None and layer.bias is not None:
            layer.bias[rows] = bias


def assert_same_outputs(model, small, inputs, rtol=1e-12):
    model.eval()
    with torch.no_grad():
        for x in inputs:
            a, b = model(x), small(x)
            assert a.shape == b.shape
            scale = float(a.abs().max())
            assert float((a - b).abs().max()) <= rtol * max(scale, 1.0), float((a - b).abs().max())


@pytest.mark.parametrize("batch_norm", [False, True])
def test_small_vgg_loses_its_dead_channels_and_keeps_its_outputs(batch_norm):
    torch.manual_seed(0)
    model = SmallVGG("vgg11", batch_norm=batch_norm, width=0.5).to(D)
    randomise_norms(model)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    kill(convs[0], [1, 5], bias=0.3)        # ReLU(0.3 ...): a nonzero constant, folded through a padded conv
    kill(convs[2], [0, 2, 3], bias=-1.0)     # ReLU(-1) = 0 without BN: nothing to fold
    kill(convs[-1], [4, 7], bias=0.5)        # the last conv: folded into the classifier's bias
    with torch.no_grad():
        convs[3].weight[:, 6] = 0            # conv 3 reads nothing of conv 2's channel 6: removable too
    small = compact(model)
    assert type(small) is SmallVGG
    recs = {r.name: r for r in small.compaction_}
    assert len(recs) == len(convs)  # every conv feeds one conv or the classifier: all reachable
    i0 = [k for k, m in enumerate(model.features) if m is convs[0]][0]
    assert recs[f"features.{i0}"].removed == [1, 5] and recs[f"features.{i0}"].after == convs[0].out_channels - 2
    i2 = [k for k, m in enumerate(model.features) if m is convs[2]][0]
    assert recs[f"features.{i2}"].removed == [0, 2, 3, 6]
    assert sum(r.before - r.after for r in small.compaction_) == 2 + 4 + 2
    assert count_parameters(small) < count_parameters(model)
    x = [torch.randn(n, 3, 32, 32, generator=gen(n), dtype=D) for n in (1, 4)]
    assert_same_outputs(model, small, x)
    assert any(isinstance(m, FoldedConv) for m in small.modules())  # the padded fold


def test_folded_constants_hold_on_any_input_size():
    net = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.GELU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 5, 3, padding=2, dilation=2), nn.ReLU(), nn.Conv2d(5, 4, 1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).to(D)
    randomise_norms(net, 1)
    kill(net[0], [0, 3])  # GELU(BN(bias)): a nonzero constant, padded (dilated) conv next
    kill(net[4], [2], bias=0.7)  # into the 1x1 conv (no padding): folded into its bias
    small = compact(net)
    assert small[0].out_channels == 4 and small[1].num_features == 4 and isinstance(small[4], FoldedConv)
    assert small[4].conv.out_channels == 4 and small[6].in_channels == 4
    x = [torch.randn(2, 2, h, w, generator=gen(h), dtype=D) for h, w in ((8, 8), (13, 22), (4, 6))]
    assert_same_outputs(net, small, x)


def test_mlp_neurons_with_norms_and_functions():
    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.bn, self.b, self.c = nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Linear(8, 7), nn.Linear(7, 3)

        def forward(self, x):
            h = torch.relu(self.bn(self.a(x)))
            return self.c(torch.nn.functional.gelu(self.b(h)))

    net = MLP().to(D)
    randomise_norms(net, 2)
    kill(net.a, [0, 6])
    kill(net.b, [1], bias=2.0)
    kill(net.b, [4], bias=-3.0)
    with torch.no_grad():
        net.c.weight[:, 5] = 0  # neuron 5 of b is read by nobody
    small = compact(net)
    assert (small.a.out_features, small.bn.num_features, small.b.in_features) == (6, 6, 6)
    assert (small.b.out_features, small.c.in_features) == (4, 4)
    assert count_parameters(small) == count_parameters(net) - 2 * 5 - 2 - 2 * 2 - 2 * 7 - 3 * 7 - 3 * 3
    assert_same_outputs(net, small, [torch.randn(9, 5, generator=gen(3), dtype=D)])
    assert not any(p.requires_grad is False for p in small.parameters())


def test_unreachable_layers_are_left_alone():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.head = nn.Conv2d(3, 3, 3, padding=1), nn.Linear(3, 2)

        def forward(self, x):
            y = x + self.conv(x)  # a residual: the conv's channels are tied to the input's
            return self.head(y.mean((2, 3)))

    net = Residual().to(D)
    kill(net.conv, [1])
    small = compact(net)
    assert small.conv.out_channels == 3 and small.compaction_ == []
    assert_same_outputs(net, small, [torch.randn(2, 3, 5, 5, generator=gen(4), dtype=D)])
    # the last layer's outputs are the model's: never removed
    lin = nn.Sequential(nn.Linear(3, 4)).to(D)
    kill(lin[0], [2])
    assert compact(lin)[0].out_features == 4


def test_untraceable_model_and_bad_input_are_refused():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x) if x.sum() > 0 else x  # data-dependent control flow

    with pytest.raises(NdgmError, match="torch.fx can trace"):
        compact(Branchy())
    with pytest.raises(NdgmError, match="nn.Module"):
        compact({"weight": torch.zeros(2)})


def test_group_lasso_training_then_compact_then_measure():
    from ndgm.data.digits import load_digits_split

    d = load_digits_split(n_train=400, dtype=torch.float32)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, 10))
    opt = ProxSGD(penalised_groups(net, GroupL2Penalty(0.1)), lr=0.2, momentum=0.9)
    g = gen(0)
    for _ in range(200):
        idx = torch.randint(0, 400, (32,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net(d.X_train[idx]), d.y_train[idx]).backward()
        opt.step()
    small = compact(net)
    rep = measure_compaction(net, small, d.X_val, repeats=3)
    assert rep.max_abs_diff < 1e-5 and rep.params_after < 0.8 * rep.params_before
    assert rep.bytes_after < rep.bytes_before and rep.channels_before == 96
    assert 0.2 < rep.removed_fraction < 1 and rep.speedup > 0
    with torch.no_grad():
        assert torch.equal(net(d.X_val).argmax(1), small(d.X_val).argmax(1))
    assert "speed-up" in rep.table() and rep.as_dict()["removed_fraction"] == rep.removed_fraction
