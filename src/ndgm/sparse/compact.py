r"""A model that really shrinks: remove the output channels and neurons whose group is exactly zero.

`compact(model)` returns a copy of ``model`` (same class, same ``forward``, in eval mode) in which every
convolution or linear layer has lost the output channels (neurons) that are dead, together with the
matching entries of the BatchNorm that follows and the matching inputs of the next conv / linear layer.
A channel ``c`` of a layer is dead when

* its weights ``W[c]`` are exactly 0: its output is then the constant its bias, BatchNorm (running
  statistics) and activation make of 0 -- removed, and that constant's contribution to the next
  layer is folded into the next layer's bias (or, before a zero-padded conv, where the constant's
  contribution differs at the borders, added as a fixed map computed from the input's size by
  `FoldedConv`); or
* the next layer's weights on it, ``W_next[:, c]``, are exactly 0: nothing reads it.

The outputs are the same as the eval-mode model's on any input, to float rounding (the only change in
arithmetic is the order of a few sums). Which layers follow which is read from a ``torch.fx`` trace
of the model: a layer is compacted only when its output goes, through channel-wise operations alone
(BatchNorm, elementwise activations, dropout, pooling that maps constants to constants, a flatten
before a linear layer), to exactly one conv or linear layer; anything else (residual additions,
concatenations, grouped convolutions, a layer whose output is the model's) leaves it as it is.

`measure_compaction` reports parameter counts, size on disk (``torch.save`` of the state dict) and
inference time before and after, and the largest output difference on an input.
"""

from __future__ import annotations

import copy
import io
import operator
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import NdgmError
from ..nets import count_parameters

__all__ = ["compact", "measure_compaction", "CompactionReport", "LayerCompaction", "FoldedConv"]

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
PRODUCERS = (nn.Linear,) + CONVS
ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                      nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softsign,
                      nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.LogSigmoid)
IDENTITY_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
ACTIVATION_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish,
                        torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.softplus, F.hardtanh, F.hardswish,
                        F.hardsigmoid, F.softsign, F.logsigmoid}
ACTIVATION_METHODS = {"relu", "sigmoid", "tanh"}
IDENTITY_FUNCTIONS = {F.dropout}  # identity in eval mode (training=False is what compact assumes)


class FoldedConv(nn.Module):
    r"""A conv whose removed input channels were constant: ``conv(x) + conv_weights_removed * constants``.

    Before a zero-padded conv the contribution of a constant input channel is not a constant (the
    border taps see the padding), so it cannot go into the bias; it is the fixed map
    :math:`\sum_c a_c\,(W_{:,c} \star \mathbf 1)` that depends on the input's spatial size only,
    computed here from the input's shape with the conv's own stride, padding and dilation.

    Attributes
    ----------
    conv : the conv with the kept input channels
    folded_weight : Tensor ``(out, k, *kernel)``, the removed channels' weights
    folded_value : Tensor ``(k,)``, their constant values
    """

    def __init__(self, conv: nn.Module, folded_weight: Tensor, folded_value: Tensor):
        super().__init__()
        self.conv = conv
        self.register_buffer("folded_weight", folded_weight)
        self.register_buffer("folded_value", folded_value)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        shape = (1, self.folded_value.numel()) + (1,) * (x.ndim - 2)
        const = self.folded_value.reshape(shape).expand((1, self.folded_value.numel()) + tuple(x.shape[2:]))
        return y + self.conv._conv_forward(const.to(x.dtype), self.folded_weight.to(x.dtype), None)


@dataclass
class LayerCompaction:
    """What `compact` did to one layer it could reach (one whose output feeds one conv / linear layer through
    channel-wise steps; ``removed`` is empty when none was dead): ``name`` (its qualified name), ``kind``
    (class), output channels ``before`` / ``after``, the ``removed`` indices, how many of them were ``folded`` (a nonzero constant
    carried into ``consumer``, the next layer), and ``norm`` (the BatchNorm sliced with it, if any)."""

    name: str
    kind: str
    before: int
    after: int
    removed: list[int]
    folded: int
    consumer: str
    norm: str = ""


@dataclass
class CompactionReport:
    """Before / after numbers of `measure_compaction`.

    ``params`` (``count_parameters``), ``bytes`` (``torch.save`` of the state dict), ``seconds`` (median
    inference time of one forward on ``example_input``, no grad), ``speedup`` (before / after),
    ``channels`` (output channels of the layers `compact` could reach), ``removed_fraction`` of them,
    ``max_abs_diff`` (largest output difference on ``example_input``), ``layers`` (per-layer records).
    """

    params_before: int
    params_after: int
    bytes_before: int
    bytes_after: int
    seconds_before: float
    seconds_after: float
    channels_before: int
    channels_after: int
    max_abs_diff: float
    layers: list[LayerCompaction] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return self.seconds_before / self.seconds_after if self.seconds_after > 0 else float("nan")

    @property
    def removed_fraction(self) -> float:
        return 1 - self.channels_after / self.channels_before if self.channels_before else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(speedup=self.speedup, removed_fraction=self.removed_fraction)
        return d

    def table(self) -> str:
        rows = [("parameters", self.params_before, self.params_after),
                ("bytes on disk", self.bytes_before, self.bytes_after),
                ("inference (ms)", f"{1e3 * self.seconds_before:.3g}", f"{1e3 * self.seconds_after:.3g}"),
                ("channels", self.channels_before, self.channels_after)]
        lines = ["| | before | after |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
        lines.append(f"\nspeed-up {self.speedup:.3g}x with {100 * self.removed_fraction:.1f}% of the channels removed; "
                     f"largest output difference {self.max_abs_diff:.3g}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the trace


@dataclass
class _Chain:
    """From a producer to its consumer: the channel-wise steps between them."""

    consumer: str
    steps: list  # ("bn", name) | ("module", name) | ("function", target, args, kwargs)
    flattened: bool


def _calls(graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in graph.nodes:
        if n.op == "call_module":
            counts[n.target] = counts.get(n.target, 0) + 1
    return counts


def _only_this_node(args, node) -> bool:
    """``args`` holds ``node`` as its first entry and no other graph node."""
    from torch.fx import Node

    if not args or args[0] is not node:
        return False

    def has_node(a):
        if isinstance(a, Node):
            return True
        if isinstance(a, (list, tuple)):
            return any(has_node(x) for x in a)
        if isinstance(a, dict):
            return any(has_node(x) for x in a.values())
        return False
    return not any(has_node(a) for a in args[1:])


def _flatten_call(node, cur) -> bool:
    """``torch.flatten(cur, 1)`` / ``cur.flatten(1)`` (start dim 1, end dim -1)."""
    args, kw = node.args, node.kwargs
    if not args or args[0] is not cur:
        return False
    start = args[1] if len(args) > 1 else kw.get("start_dim", 0)
    end = args[2] if len(args) > 2 else kw.get("end_dim", -1)
    return start == 1 and end == -1


def _chain(node, modules: dict, calls: dict, producer) -> _Chain | None:
    """Follow ``node``'s output to the next conv / linear through channel-wise steps, or None."""
    cur, steps, flattened = node, [], False
    conv = isinstance(producer, CONVS) or isinstance(producer, FoldedConv)
    channels = _weight(producer).shape[0]
    while True:
        users = list(cur.users)
        if len(users) != 1:
            return None
        nxt = users[0]
        if nxt.op == "call_module":
            if calls.get(nxt.target, 0) != 1 or not _only_this_node(nxt.args, cur) or nxt.kwargs:
                return None
            m = modules[nxt.target]
            if isinstance(m, PRODUCERS + (FoldedConv,)):
                return _Chain(nxt.target, steps, flattened)
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not flattened and m.num_features == channels:
                steps.append(("bn", nxt.target))
            elif isinstance(m, ACTIVATION_MODULES):
                steps.append(("module", nxt.target))
            elif isinstance(m, IDENTITY_MODULES):
                pass
            elif conv and not flattened and _constant_preserving_pool(m):
                pass
            elif conv and isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1:
                flattened = True
            else:
                return None
        elif nxt.op == "call_function":
            if nxt.target in (torch.flatten,) and conv and _flatten_call(nxt, cur):
                flattened = True
            elif nxt.target in ACTIVATION_FUNCTIONS and _only_this_node(nxt.args, cur):
                steps.append(("function", nxt.target, nxt.args[1:], dict(nxt.kwargs)))
            elif nxt.target in IDENTITY_FUNCTIONS and _only_this_node(nxt.args, cur) and \
                    not nxt.kwargs.get("training", len(nxt.args) > 2 and nxt.args[2]):
                pass
            else:
                return None
        elif nxt.op == "call_method":
            if nxt.target == "flatten" and conv and _flatten_call(nxt, cur):
                flattened = True
            elif nxt.target in ACTIVATION_METHODS and len(nxt.args) == 1 and not nxt.kwargs:
                steps.append(("function", getattr(torch, nxt.target), (), {}))
            else:
                return None
        else:
            return None
        cur = nxt


def _constant_preserving_pool(m: nn.Module) -> bool:
    """Pooling that maps a constant map to the same constant (channel-wise, so a removed channel stays out)."""
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                      nn.AdaptiveMaxPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        return True
    if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        pad = m.padding if isinstance(m.padding, (tuple, list)) else (m.padding,)
        return all(p == 0 for p in pad) or not m.count_include_pad
    return False


# ----------------------------------------------------------------------------- slicing


def _inner(m: nn.Module) -> nn.Module:
    return m.conv if isinstance(m, FoldedConv) else m


def _weight(m: nn.Module) -> Tensor:
    return _inner(m).weight


def _slice_outputs(m: nn.Module, keep: Tensor) -> None:
    """Keep output channels ``keep`` of a conv / linear (or a `FoldedConv`), in place."""
    inner = _inner(m)
    inner.weight = nn.Parameter(inner.weight.detach()[keep].clone(), requires_grad=inner.weight.requires_grad)
    if inner.bias is not None:
        inner.bias = nn.Parameter(inner.bias.detach()[keep].clone(), requires_grad=inner.bias.requires_grad)
    if isinstance(inner, nn.Linear):
        inner.out_features = int(keep.numel())
    else:
        inner.out_channels = int(keep.numel())
    if isinstance(m, FoldedConv):
        m.folded_weight = m.folded_weight[keep].clone()


def _slice_norm(bn: nn.Module, keep: Tensor) -> None:
    for name in ("weight", "bias"):
        p = getattr(bn, name)
        if p is not None:
            setattr(bn, name, nn.Parameter(p.detach()[keep].clone(), requires_grad=p.requires_grad))
    for name in ("running_mean", "running_var"):
        b = getattr(bn, name)
        if b is not None:
            setattr(bn, name, b[keep].clone())
    bn.num_features = int(keep.numel())


def _zero_padded(conv: nn.Module) -> bool:
    """The conv pads with zeros somewhere (a constant input map is then not constant at the borders)."""
    if conv.padding_mode != "zeros":
        return False
    if isinstance(conv.padding, str):
        return conv.padding == "same" and any(k > 1 for k in conv.kernel_size)
    return any(p != 0 for p in conv.padding)


def _input_blocks(consumer: nn.Module, channels: int, flattened: bool) -> Tensor:
    """The consumer's weights as ``(out, channels, rest)``: the block each producer channel feeds."""
    W = _weight(consumer).detach()
    if flattened:
        return W.reshape(W.shape[0], channels, -1)
    return W.reshape(W.shape[0], W.shape[1], -1)


def _constants(producer: nn.Module, rows: Tensor, chain: _Chain, modules: dict) -> Tensor:
    """The values the channels ``rows`` (zero weights) take after the chain: bias -> BN -> activations."""
    inner = _inner(producer)
    W = inner.weight
    if inner.bias is not None:
        x = inner.bias.detach()[rows].clone()
    else:
        x = torch.zeros(int(rows.numel()), dtype=W.dtype, device=W.device)
    x = x.reshape(1, -1)
    for step in chain.steps:
        if step[0] == "bn":
            bn = modules[step[1]]
            mean = bn.running_mean[rows] if bn.running_mean is not None else torch.zeros_like(x[0])
            var = bn.running_var[rows] if bn.running_var is not None else torch.ones_like(x[0])
            x = (x - mean) / torch.sqrt(var + bn.eps)
            if bn.weight is not None:
                x = x * bn.weight.detach()[rows]
            if bn.bias is not None:
                x = x + bn.bias.detach()[rows]
        elif step[0] == "module":
            x = modules[step[1]](x)
        else:
            _, fn, args, kwargs = step
            x = fn(x, *args, **kwargs)
    return x.reshape(-1)


def _compact_pair(root: nn.Module, name: str, chain: _Chain, records: list) -> None:
    modules = dict(root.named_modules())
    producer, consumer = modules[name], modules[chain.consumer]
    W = _weight(producer).detach()
    C = W.shape[0]
    inner_c = _inner(consumer)
    if isinstance(inner_c, CONVS):
        if chain.flattened or inner_c.groups != 1 or inner_c.in_channels != C or \
                not isinstance(_inner(producer), CONVS) or type(inner_c) is not type(_inner(producer)):
            return
    elif isinstance(inner_c, nn.Linear):
        if isinstance(_inner(producer), CONVS) and not chain.flattened:
            return  # a linear layer on a conv's last axis (width), not on its channels
        if chain.flattened:
            if inner_c.in_features % C:
                return
        elif inner_c.in_features != C:
            return
    blocks = _input_blocks(consumer, C, chain.flattened)
    dead_out = (W.reshape(C, -1) == 0).all(1)
    if isinstance(producer, FoldedConv):  # a folded map makes the channel non-constant at the borders
        dead_out &= (producer.folded_weight.reshape(C, -1) == 0).all(1)
    unread = (blocks == 0).all(2).all(0)
    removable = dead_out | unread
    if not bool(removable.any()):
        records.append(LayerCompaction(name, type(_inner(producer)).__name__, C, C, [], 0, chain.consumer))
        return
    if bool(removable.all()):  # keep one channel: layers of width 0 are not modules torch builds
        removable[0] = False
    keep = (~removable).nonzero()[:, 0]
    gone = removable.nonzero()[:, 0]
    fold = (dead_out & ~unread & removable).nonzero()[:, 0]
    folded = 0
    with torch.no_grad():
        values = _constants(producer, fold, chain, modules) if fold.numel() else None
        if values is not None:
            nz = values != 0
            fold, values = fold[nz], values[nz]
            folded = int(fold.numel())
        # the consumer: drop the inputs, carry the constants
        inner = _inner(consumer)
        Wc = inner.weight.detach()
        if chain.flattened:
            S = Wc.shape[1] // C
            Wb = Wc.reshape(Wc.shape[0], C, S)
            new_w = Wb[:, keep].reshape(Wc.shape[0], -1).clone()
            add = (Wb[:, fold] * values[None, :, None]).sum((1, 2)) if folded else None
        else:
            new_w = Wc[:, keep].clone()
            add = None
            if folded:
                if isinstance(inner, nn.Linear):
                    add = Wc[:, fold] @ values
                elif _zero_padded(inner):
                    fw = Wc[:, fold].clone()
                    if isinstance(consumer, FoldedConv):
                        consumer.folded_weight = torch.cat([consumer.folded_weight, fw], 1)
                        consumer.folded_value = torch.cat([consumer.folded_value, values])
                    else:
                        root.set_submodule(chain.consumer, FoldedConv(consumer, fw, values.clone()))
                else:  # no padding (or one that repeats the constant): the same at every output position
                    shape = (1, -1) + (1,) * (Wc.ndim - 2)
                    add = (Wc[:, fold] * values.reshape(shape)).sum(tuple(range(1, Wc.ndim)))
        inner.weight = nn.Parameter(new_w, requires_grad=inner.weight.requires_grad)
        if isinstance(inner, nn.Linear):
            inner.in_features = new_w.shape[1]
        else:
            inner.in_channels = new_w.shape[1]
        if add is not None:
            bias = inner.bias.detach() if inner.bias is not None else torch.zeros_like(add)
            inner.bias = nn.Parameter(bias + add, requires_grad=True)
        # the producer and its BatchNorm
        _slice_outputs(producer, keep)
        norm = ""
        for step in chain.steps:
            if step[0] == "bn":
                _slice_norm(modules[step[1]], keep)
                norm = step[1]
    records.append(LayerCompaction(name, type(_inner(producer)).__name__, C, int(keep.numel()),
                                   [int(i) for i in gone], folded, chain.consumer, norm))


def compact(model: nn.Module) -> nn.Module:
    """A copy of ``model`` without its dead output channels and neurons (module docstring), in eval mode.

    Parameters
    ----------
    model : nn.Module
        Traceable by ``torch.fx.symbolic_trace`` (plain ``nn.Sequential`` stacks, `ndgm.nets.SmallVGG`,
        MLPs, most CNNs without data-dependent control flow). Not modified.

    Returns
    -------
    nn.Module
        The same class with smaller layers; ``compacted.compaction_`` lists a `LayerCompaction` per
        layer it could reach (those that lost channels and those that had none to lose). Equal to ``model.eval()`` on any input, to float rounding.
    """
    if not isinstance(model, nn.Module):
        raise NdgmError(f"compact takes an nn.Module, got {type(model).__name__}")
    root = copy.deepcopy(model).eval()
    try:
        graph = torch.fx.symbolic_trace(root).graph
    except Exception as e:  # noqa: BLE001 - fx raises many kinds
        raise NdgmError(f"compact needs a model torch.fx can trace; {type(model).__name__} cannot be "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    calls = _calls(graph)
    records: list[LayerCompaction] = []
    for node in graph.nodes:
        if node.op != "call_module" or calls.get(node.target) != 1:
            continue
        modules = dict(root.named_modules())
        m = modules[node.target]
        if not isinstance(m, PRODUCERS + (FoldedConv,)) or (isinstance(_inner(m), CONVS) and _inner(m).groups != 1):
            continue
        chain = _chain(node, modules, calls, m)
        if chain is not None:
            _compact_pair(root, node.target, chain, records)
    root.compaction_ = records
    return root


# ----------------------------------------------------------------------------- measuring


def state_dict_bytes(model: nn.Module) -> int:
    """Size of ``torch.save(model.state_dict())`` in bytes."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


@torch.inference_mode()
def _median_seconds(model: nn.Module, x: Tensor, repeats: int) -> float:
    model(x)  # warm-up: allocator, lazy init
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure_compaction(model: nn.Module, compacted: nn.Module, example_input: Tensor,
                       repeats: int = 20) -> CompactionReport:
    """Parameters, bytes on disk, inference time (median of ``repeats`` forwards, no grad) before and after,
    and the largest output difference on ``example_input`` (``model`` in eval mode).

    The two models are timed alternately, so that a change in the machine's load hits both.
    """
    was = model.training
    model.eval()
    try:
        with torch.inference_mode():
            diff = float((model(example_input) - compacted(example_input)).abs().max())
        t_before, t_after = [], []
        for _ in range(3):
            t_before.append(_median_seconds(model, example_input, max(1, repeats // 3)))
            t_after.append(_median_seconds(compacted, example_input, max(1, repeats // 3)))
    finally:
        model.train(was)
    records = getattr(compacted, "compaction_", [])
    reachable_before = sum(r.before for r in records)
    reachable_after = sum(r.after for r in records)
    return CompactionReport(count_parameters(model), count_parameters(compacted), state_dict_bytes(model),
                            state_dict_bytes(compacted), float(np.median(t_before)), float(np.median(t_after)),
                            reachable_before, reachable_after, diff, list(records))
