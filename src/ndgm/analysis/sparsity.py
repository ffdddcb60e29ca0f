"""Sparsity audit of weights and a period-k detector for recorded iterates.

`sparsity_audit` answers "how sparse is this model, really?": exact zeros (what a pruning
step can drop without changing the function) next to the fractions below thresholds the caller
chooses (default 1e-8, 1e-5 and 1e-3: what a threshold would drop), the output channels (rows
along dim 0) that are entirely zero, per tensor and overall, and the size a compacted model
would have. It reads a module, a state dict, a nested checkpoint (``{"model": ..., "optimizer":
...}``), a path to either saved with ``torch.save``, or a ``.safetensors`` file (`load_weights`).
Parameters and buffers (BatchNorm's running statistics) are reported separately, the same way
for a module and for its state dict. `small_fraction` and `exact_zero_fraction` are the two
overall numbers alone, over a module's parameters (paper Table 2's metric is
``small_fraction(model, 1e-5)``). `detect_period` finds the smallest ``p`` with
``w_{k+p} = w_k`` (to a tolerance) over a tail of recorded iterates: period 2 is NDGM's
cycle on the L1 kink.

Thresholds are compared in each tensor's own dtype, as ``p.abs() < 1e-5`` does in PyTorch
(the paper's code): the threshold is rounded to that dtype first, so a float32 weight equal
to ``float32(1e-5)`` is not below ``1e-5``, and a threshold under a dtype's smallest
subnormal (1e-8 in float16) rounds to 0 and counts nothing. Integer and boolean tensors
are compared as float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ..errors import NdgmError

__all__ = ["LayerSparsity", "SparsityReport", "sparsity_audit", "small_fraction", "exact_zero_fraction",
           "load_weights", "PeriodReport", "detect_period", "THRESHOLDS", "BUFFER_NAMES"]

THRESHOLDS = (1e-8, 1e-5, 1e-3)
#: In a state dict (where parameters and buffers look alike), entries whose last name is one of these
#: are buffers: BatchNorm's statistics and `ndgm.sparse.compact`'s folded constants.
BUFFER_NAMES = ("running_mean", "running_var", "num_batches_tracked", "folded_weight", "folded_value")
#: Keys under which checkpoints commonly keep the model's state dict, tried in this order.
MODEL_KEYS = ("model", "state_dict", "model_state_dict", "module", "net", "network", "ema", "weights", "params")


@dataclass
class LayerSparsity:
    """Sparsity of one tensor: ``numel``, ``exact_zeros`` (``w == 0``), ``below`` (threshold -> fraction
    of ``|w| < threshold``), ``l1`` (``sum |w|``), ``kind`` (``'parameter'`` or ``'buffer'``), ``shape``,
    and for tensors of two or more dimensions ``channels`` (the size of dim 0: output channels, rows)
    and ``zero_channels`` (how many of them are entirely 0)."""

    name: str
    numel: int
    exact_zeros: int
    below: dict[float, float]
    l1: float
    kind: str = "parameter"
    shape: tuple[int, ...] = ()
    channels: int | None = None
    zero_channels: int | None = None

    @property
    def exact_zero_fraction(self) -> float:
        return self.exact_zeros / self.numel if self.numel else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["below"] = {f"{t:g}": v for t, v in self.below.items()}
        d["shape"] = list(self.shape)
        d["exact_zero_fraction"] = self.exact_zero_fraction
        return d


@dataclass
class SparsityReport:
    """Per-tensor rows and totals: ``layers`` / ``total`` over the parameters, ``buffers`` /
    ``buffers_total`` over the buffers, the ``thresholds`` used, and ``compacted``: the parameters and
    bytes (parameters and buffers, at their dtypes) a model without its dead output channels would
    have (`compacted_size`)."""

    layers: list[LayerSparsity]
    total: LayerSparsity
    buffers: list[LayerSparsity] = field(default_factory=list)
    buffers_total: LayerSparsity | None = None
    thresholds: tuple[float, ...] = THRESHOLDS
    compacted: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"thresholds": list(self.thresholds), "layers": [r.as_dict() for r in self.layers],
                "total": self.total.as_dict(), "buffers": [r.as_dict() for r in self.buffers],
                "buffers_total": self.buffers_total.as_dict() if self.buffers_total else None,
                "compacted": dict(self.compacted)}

    def table(self) -> str:
        """A Markdown table: one row per parameter tensor, then the total; then the buffers, if any."""
        heads = ["layer", "numel", "exact zeros", *[f"< {t:g}" for t in self.thresholds], "L1 norm",
                 "zero channels"]
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]

        def row(r: LayerSparsity) -> str:
            ch = "" if r.channels is None else f"{r.zero_channels} / {r.channels}"
            cells = [r.name, str(r.numel), f"{r.exact_zeros} ({100 * r.exact_zero_fraction:.2f}%)",
                     *[f"{100 * r.below[t]:.2f}%" for t in self.thresholds], f"{r.l1:.6g}", ch]
            return "| " + " | ".join(cells) + " |"
        lines += [row(r) for r in [*self.layers, self.total]]
        if self.buffers:
            lines += ["", "buffers:", "", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
            lines += [row(r) for r in [*self.buffers, self.buffers_total]]
        return "\n".join(lines)


Weights = torch.nn.Module | Iterable | dict | torch.Tensor | np.ndarray | str | Path


def _is_tensor(v) -> bool:
    return isinstance(v, (torch.Tensor, np.ndarray))


def _tensors_of(obj) -> dict | None:
    """``obj`` as a state dict (a mapping of names to tensors), or None when it is not one."""
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) for k in obj) and all(
            _is_tensor(v) for v in obj.values()):
        return dict(obj)
    return None


def _find_state_dict(obj, where: str) -> dict:
    """The model's state dict in a loaded object: itself, under a usual key (``model``, ``state_dict``,
    ...; nested any depth), or the one mapping of tensors it holds."""
    sd = _tensors_of(obj)
    if sd is not None:
        return sd
    if not isinstance(obj, Mapping):
        raise NdgmError(f"{where}: holds a {type(obj).__name__}, not a state dict (a dict of tensors) or a "
                        "checkpoint dict holding one")
    for key in MODEL_KEYS:
        if key in obj and isinstance(obj[key], Mapping):
            try:
                return _find_state_dict(obj[key], where)
            except NdgmError:
                pass
    candidates = list(_nested_state_dicts(obj, ()))
    if len(candidates) == 1:
        return candidates[0][1]
    keys = ", ".join(map(repr, list(obj)[:8])) + (", ..." if len(obj) > 8 else "")
    if not candidates:
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and _is_tensor(v)}
        if tensors:  # a state dict with a few non-tensor entries (an epoch number, a version)
            return tensors
        raise NdgmError(f"{where}: no state dict (dict of tensors) found in the checkpoint (keys: {keys})")
    names = ", ".join(repr("/".join(map(str, path))) for path, _ in candidates[:6])
    raise NdgmError(f"{where}: several state dicts in the checkpoint ({names}); save the model's alone, or "
                    f"under one of the keys {', '.join(MODEL_KEYS[:3])}")


def _nested_state_dicts(obj, path: tuple, depth: int = 4):
    """``(path, state dict)`` for every mapping of tensors nested in ``obj`` (up to ``depth`` levels)."""
    if depth == 0 or not isinstance(obj, Mapping):
        return
    for k, v in obj.items():
        sd = _tensors_of(v)
        if sd is not None:
            yield path + (k,), sd
        elif isinstance(v, Mapping):
            yield from _nested_state_dicts(v, path + (k,), depth - 1)


_WITHIN_MODULE = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _natural_key(name: str) -> tuple:
    *path, last = name.split(".")
    rank = _WITHIN_MODULE.index(last) if last in _WITHIN_MODULE else len(_WITHIN_MODULE)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in path) + ((rank, last),)


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 100_000_000


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model's tensors in a file: a state dict or a nested checkpoint saved with ``torch.save`` (read
    with ``weights_only=True``: nothing but tensors and plain containers is unpickled), or a
    ``.safetensors`` file (needs the ``safetensors`` package: ``pip install 'ndgm[safetensors]'``).

    Raises `NdgmError` with one line for a missing, unreadable or unsuitable file.
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise NdgmError(f"{where}: no such file")
    if not path.is_file():
        raise NdgmError(f"{where}: not a file")
    if _is_safetensors(path):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise NdgmError(f"{where}: reading .safetensors files needs the safetensors package "
                            "(pip install 'ndgm[safetensors]')") from None
        try:
            tensors = load_file(str(path), device="cpu")
            # the file keeps tensors sorted by dtype and name, not in module order: list them by name,
            # numbers compared as numbers, a module's weight before its bias before its statistics
            return {k: tensors[k] for k in sorted(tensors, key=_natural_key)}
        except Exception as e:  # noqa: BLE001 - the reader raises its own kinds
            raise NdgmError(f"{where}: not a readable safetensors file ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # the legacy (non-zip) format
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
        msg = str(e)
        if "Unsupported global" in msg:
            import re

            found = re.search(r"GLOBAL ([\w.]+)", msg)
            what = f" ({found.group(1)})" if found else ""
            raise NdgmError(f"{where}: holds Python objects other than tensors{what}, a whole model saved with "
                            "torch.save(model)?; only state dicts and checkpoints of tensors are read, nothing "
                            "else is unpickled: save model.state_dict()") from None
        raise NdgmError(f"{where}: not a readable torch checkpoint or safetensors file "
                        f"({type(e).__name__})") from None
    return _find_state_dict(obj, where)


def _named(weights: Weights) -> list[tuple[str, torch.Tensor | np.ndarray]]:
    """``(name, tensor)`` pairs: a module's named parameters, a dict's items, or numbered tensors."""
    if isinstance(weights, torch.nn.Module):
        return list(weights.named_parameters())
    if isinstance(weights, dict):
        return list(weights.items())
    if isinstance(weights, (torch.Tensor, np.ndarray)):
        return [("tensor", weights)]
    return [(f"tensor{i}", t) for i, t in enumerate(weights)]


def _entries(weights: Weights) -> list[tuple[str, torch.Tensor | np.ndarray, str]]:
    """``(name, tensor, kind)`` in state-dict order. A module is read through its state dict too, its
    parameters told apart by identity, so that a module and its state dict give the same rows."""
    if isinstance(weights, (str, Path)):
        weights = load_weights(weights)
    if isinstance(weights, torch.nn.Module):
        params = {id(p) for _, p in weights.named_parameters(remove_duplicate=False)}
        return [(k, v.detach(), "parameter" if id(v) in params else "buffer")
                for k, v in weights.state_dict(keep_vars=True).items()]
    if isinstance(weights, Mapping) and _tensors_of(weights) is None:
        weights = _find_state_dict(weights, "the checkpoint")
    return [(n, t, "buffer" if n.rsplit(".", 1)[-1] in BUFFER_NAMES else "parameter") for n, t in _named(weights)]


def _magnitudes(t: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``|t|`` flattened, in ``t``'s own floating dtype (see the module docstring)."""
    a = torch.as_tensor(t).detach().reshape(-1)
    if not a.is_floating_point():
        a = a.to(torch.float64)
    return a.abs()


def _count_below(a: torch.Tensor, threshold: float) -> int:
    """How many magnitudes are ``< threshold``, compared in ``a``'s dtype."""
    return int((a < threshold).sum())


def _count_zeros(a: torch.Tensor) -> int:
    return int((a == 0).sum())


def _zero_rows(t: torch.Tensor | np.ndarray) -> torch.Tensor | None:
    """Rows along dim 0 that are entirely 0 (``(shape[0],)`` booleans), for tensors of 2+ dimensions."""
    a = torch.as_tensor(t).detach()
    if a.ndim < 2:
        return None
    return (a.reshape(a.shape[0], -1) == 0).all(1)


def _row(name: str, t: torch.Tensor | np.ndarray, thresholds=THRESHOLDS, kind: str = "parameter") -> LayerSparsity:
    a = _magnitudes(t)
    n = a.numel()
    below = {th: (_count_below(a, th) / n if n else 0.0) for th in thresholds}
    rows = _zero_rows(t)
    return LayerSparsity(name, n, _count_zeros(a), below, float(a.to(torch.float64).sum()), kind,
                         tuple(torch.as_tensor(t).shape), None if rows is None else int(rows.numel()),
                         None if rows is None else int(rows.sum()))


def _total(name: str, rows: list[LayerSparsity], thresholds, kind: str) -> LayerSparsity:
    numel = sum(r.numel for r in rows)
    return LayerSparsity(
        name, numel, sum(r.exact_zeros for r in rows),
        {th: (sum(r.below[th] * r.numel for r in rows) / numel if numel else 0.0) for th in thresholds},
        sum(r.l1 for r in rows), kind, (), sum(r.channels or 0 for r in rows),
        sum(r.zero_channels or 0 for r in rows))


def compacted_size(entries: list[tuple[str, torch.Tensor | np.ndarray, str]], ordered: bool = True) -> dict:
    """Parameters and bytes of the model without its dead output channels, estimated from tensors in
    state-dict order with `ndgm.sparse.compact`'s rules.

    A weight of 2+ dimensions is a layer; the next one in order is the layer it feeds, when that
    one's dim 1 equals its output channels (a conv or linear layer) or a multiple of them (a linear
    layer after a flatten). A channel is dead when its row is zero or the next layer's block on it is
    zero; it takes with it its row, the 1-D entries of the same length between the two layers (bias,
    BatchNorm's weight, bias and statistics) and the next layer's block; if every channel is dead one is
    kept. The last layer (the model's outputs) and layers the order does not connect keep everything.
    Exact for a chain of layers (`ndgm.nets.SmallVGG`, an MLP) -- ``compact`` on the module gives the
    exact figure for any model. With ``ordered=False`` (a safetensors file, whose order is by name, not
    by module) a layer feeds the next one in name order whose input size fits, wrapping around once
    (``classifier`` sorts before ``features``).
    """
    tensors = [(n, torch.as_tensor(t), k) for n, t, k in entries]
    removed_params, removed_bytes = 0, 0
    layers = [i for i, (_, t, k) in enumerate(tensors) if k == "parameter" and t.ndim >= 2]
    cols_removed = dict.fromkeys(layers, 0)  # entries per row already removed with a previous layer's channels
    if ordered:
        pairs = list(zip(layers, layers[1:]))
    else:
        pairs = []
        for k, a in enumerate(layers):
            C = tensors[a][1].shape[0]
            fits = [b for b in layers[k + 1:] + layers[:k] if tensors[b][1].shape[1] == C or (
                tensors[b][1].ndim == 2 and tensors[b][1].shape[1] % C == 0)]
            if fits and fits[0] not in [q for _, q in pairs]:
                pairs.append((a, fits[0]))
    for a, b in pairs:
        W, W2 = tensors[a][1], tensors[b][1]
        C = W.shape[0]
        if W2.shape[1] == C:
            blocks = W2.reshape(W2.shape[0], C, -1)
        elif W2.ndim == 2 and W2.shape[1] % C == 0:
            blocks = W2.reshape(W2.shape[0], C, -1)
        else:
            continue
        dead = (W.reshape(C, -1) == 0).all(1) | (blocks == 0).all(2).all(0)
        if bool(dead.all()):
            dead[0] = False
        z = int(dead.sum())
        if not z:
            continue
        cut = [(W, z * (W.numel() // C - cols_removed[a])), (W2, z * W2.shape[0] * blocks.shape[2])]
        cols_removed[b] += z * blocks.shape[2]
        if ordered:  # the 1-D entries between the two layers: bias, BatchNorm
            companions = tensors[a + 1:b]
        else:  # the same module's and the next module's (a BatchNorm registered after the layer)
            prefix = tensors[a][0].rsplit(".", 1)[0]
            companions = [e for e in tensors if e[0].rsplit(".", 1)[0] in (prefix, _next_module(prefix, tensors))
                          and e[1] is not W]
        cut += [(t, z) for _, t, _ in companions if t.ndim == 1 and t.numel() == C]
        for t, n in cut:
            kind = next(k for _, u, k in tensors if u is t)
            removed_bytes += n * t.element_size()
            if kind == "parameter":
                removed_params += n
    params = sum(t.numel() for _, t, k in tensors if k == "parameter")
    nbytes = sum(t.numel() * t.element_size() for _, t, _ in tensors)
    return {"parameters_before": int(params), "parameters": int(params - removed_params),
            "bytes_before": int(nbytes), "bytes": int(nbytes - removed_bytes)}


def _next_module(prefix: str, tensors) -> str:
    """The module listed right after ``prefix`` in name order (``features.0`` -> ``features.1``) when it has
    no weight of 2+ dimensions (a normalisation layer), else ``""``."""
    modules = list(dict.fromkeys(n.rsplit(".", 1)[0] for n, _, _ in tensors))
    i = modules.index(prefix) if prefix in modules else -1
    if not 0 <= i < len(modules) - 1:
        return ""
    nxt = modules[i + 1]
    layer = any(n.rsplit(".", 1)[0] == nxt and torch.as_tensor(t).ndim >= 2 for n, t, _ in tensors)
    return "" if layer else nxt


def _check_thresholds(thresholds) -> tuple[float, ...]:
    out = []
    for t in thresholds:
        try:
            v = float(t)
        except (TypeError, ValueError):
            raise NdgmError(f"threshold must be a number, got {t!r}") from None
        if not (v > 0 and math.isfinite(v)):
            raise NdgmError(f"threshold must be a finite number > 0, got {t!r}")
        out.append(v)
    if not out:
        raise NdgmError("give at least one threshold")
    return tuple(dict.fromkeys(out))


def small_fraction(weights: Weights, threshold: float = 1e-5) -> float:
    """Fraction of all entries with ``|w| < threshold`` (paper Table 2, in [0, 1]; 0.0 when empty).

    ``weights``: an ``nn.Module`` (its parameters), a dict name -> tensor, a tensor or array,
    or a list of them. The comparison is in each tensor's dtype (module docstring).
    """
    mags = [_magnitudes(t) for _, t in _named(weights)]
    n = sum(a.numel() for a in mags)
    return sum(_count_below(a, threshold) for a in mags) / n if n else 0.0


def exact_zero_fraction(weights: Weights) -> float:
    """Fraction of all entries exactly equal to 0.0 (``-0.0`` included; 0.0 when empty).

    ``weights`` as in `small_fraction`.
    """
    mags = [_magnitudes(t) for _, t in _named(weights)]
    n = sum(a.numel() for a in mags)
    return sum(_count_zeros(a) for a in mags) / n if n else 0.0


def sparsity_audit(weights: Weights, thresholds: Iterable[float] = THRESHOLDS) -> SparsityReport:
    """Audit an ``nn.Module``, a state dict, a nested checkpoint, a path to a saved one (``torch.save`` or
    ``.safetensors``, see `load_weights`), or a list of tensors/arrays.

    Counts are exact (``== 0``), never thresholded; the fractions below each of ``thresholds`` are
    reported beside them, compared in each tensor's own dtype (module docstring). The L1 norm is
    summed in float64. Parameters and buffers are separate rows and totals; a module is read through
    its state dict (the same rows, in the same order, as ``sparsity_audit(module.state_dict())``).
    ``compacted`` estimates the size without dead output channels (`compacted_size`).
    """
    thresholds = _check_thresholds(thresholds)
    ordered = not (isinstance(weights, (str, Path)) and Path(weights).is_file() and _is_safetensors(Path(weights)))
    entries = _entries(weights)
    rows = [_row(n, t, thresholds, k) for n, t, k in entries]
    params = [r for r in rows if r.kind == "parameter"]
    bufs = [r for r in rows if r.kind == "buffer"]
    return SparsityReport(params, _total("total", params, thresholds, "parameter"), bufs,
                          _total("buffers total", bufs, thresholds, "buffer") if bufs else None, thresholds,
                          compacted_size(entries, ordered))


@dataclass
class PeriodReport:
    """Result of `detect_period`.

    Attributes
    ----------
    period : int or None
        Smallest ``p`` in ``1..max_period`` with ``max_k ||w_{k+p} - w_k||_inf <= tol`` over the
        tail; None when there is none (not periodic, or still moving).
    exact : bool
        The repetition is bitwise (``tol`` not needed).
    residuals : dict
        ``p -> max_k ||w_{k+p} - w_k||_inf`` for each tried ``p``.
    """

    period: int | None
    exact: bool
    residuals: dict[int, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"period": self.period, "exact": self.exact, "residuals": {str(k): v for k, v in self.residuals.items()}}


def detect_period(iterates: np.ndarray, max_period: int = 16, tol: float = 0.0) -> PeriodReport:
    """Find period-``p`` behaviour in recorded iterates (shape ``(T,)`` or ``(T, d)``).

    ``p = 1`` means the iterates stopped moving (converged or stuck); ``p = 2`` is the
    two-point cycle of NDGM on a kink; larger ``p`` are the rotations that asymmetric
    subgradients produce. Needs ``T > 2 p`` recorded iterates to test ``p``.
    """
    W = np.asarray(iterates, dtype=np.float64)
    if W.ndim == 1:
        W = W[:, None]
    W = W.reshape(W.shape[0], -1)
    residuals: dict[int, float] = {}
    if not np.all(np.isfinite(W)):
        return PeriodReport(None, False, residuals)
    for p in range(1, max_period + 1):
        if W.shape[0] <= 2 * p:
            break
        r = float(np.abs(W[p:] - W[:-p]).max())
        residuals[p] = r
        if r <= tol:
            return PeriodReport(p, r == 0.0, residuals)
    return PeriodReport(None, False, residuals)
