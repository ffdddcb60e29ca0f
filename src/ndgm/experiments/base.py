"""What every experiment declares: parameters, a compute function, claims and figures.

An experiment module holds its defaults (named after the paper) as `Param` declarations,
``compute(config, ctx) -> (arrays, summary)``, ``claims(summary, config) -> list[Claim]``
(each compares an expected value with a measured one, from the summary alone) and the
names of its figures (functions in `ndgm.figures`, rebuilt from the stored arrays). The
base class owns ``run``: it resolves the dtype and device once, sets torch's threads,
calls ``compute`` and ``claims`` and returns the `Result`. The CLI, ``reproduce`` and
sweeps all call the same ``run``; none knows an experiment's internals.
"""

from __future__ import annotations

import math
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..claims import Claim
from ..device import resolve_device, resolve_dtype, torch_threads
from ..errors import NdgmError, check_int, check_nonnegative, check_positive

__all__ = ["Param", "Claim", "Context", "Result", "Experiment", "COMMON_PARAMS"]

LIST_KINDS = ("floats", "strs")


@dataclass(frozen=True)
class Param:
    """One experiment parameter.

    ``kind`` is one of ``'int'`` (>= ``minimum``), ``'pos'`` (float > 0), ``'nonneg'``
    (float >= 0), ``'float'``, ``'str'``, ``'dtype'``, ``'device'``, ``'bool'``, or a list:
    ``'floats'`` (each item of kind ``item``: ``'pos'``, ``'nonneg'`` or ``'float'``) or
    ``'strs'`` (lower case, each one of ``choices`` when given). A list is given as
    ``'a,b,c'`` or as a list, holds at least ``minimum`` items (``'none'`` or ``''`` is the
    empty list) and, with ``distinct``, no item twice; it is parsed once, into a list.
    ``quick`` overrides ``default`` in the quick reproduction.
    """

    name: str
    default: Any
    kind: str
    help: str
    quick: Any = None
    minimum: int = 1
    choices: tuple | None = None
    item: str = "pos"
    distinct: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, value: Any) -> Any:
        """Validate and convert ``value``; raise `NdgmError` naming this parameter."""
        label = self.flag
        if self.kind in LIST_KINDS:
            return self._parse_list(value)
        if self.kind == "int":
            return check_int(label, value, self.minimum)
        if self.kind == "pos":
            return check_positive(label, value)
        if self.kind == "nonneg":
            return check_nonnegative(label, value)
        if self.kind == "float":
            try:
                return float(value)
            except (TypeError, ValueError):
                raise NdgmError(f"{label} must be a number, got {value!r}") from None
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise NdgmError(f"{label} must be true or false, got {value!r}")
        if self.kind == "dtype":
            resolve_dtype(str(value))
            return str(value)
        if self.kind == "device":
            resolve_device(str(value))  # fail early on a device this machine lacks
            return str(value)
        value = str(value)
        if self.choices and value not in self.choices:
            raise NdgmError(f"{label} must be one of {', '.join(self.choices)}, got {value!r}")
        return value

    def _parse_list(self, value: Any) -> list:
        label = self.flag
        if isinstance(value, str):
            text = value
            items = [] if value.strip().lower() in ("", "none") else [t.strip() for t in value.split(",") if t.strip()]
        elif isinstance(value, (list, tuple)):
            text, items = ",".join(map(str, value)), list(value)
        else:
            raise NdgmError(f"{label} must be a comma-separated list, got {value!r}")
        if self.kind == "floats":
            out = []
            for t in items:
                try:
                    v = float(t)
                except (TypeError, ValueError):
                    raise NdgmError(f"{label} must be a comma-separated list of numbers, got {text!r}") from None
                ok = {"pos": v > 0, "nonneg": v >= 0, "float": True}[self.item] and math.isfinite(v)
                if not ok:
                    bound = {"pos": " > 0", "nonneg": " >= 0", "float": ""}[self.item]
                    raise NdgmError(f"{label} must list finite numbers{bound}, got {text!r}")
                out.append(v)
        else:
            out = [str(t).strip().lower() for t in items]
            bad = [t for t in out if self.choices and t not in self.choices]
            if bad:
                allowed = ", ".join(self.choices) + (" or none" if self.minimum == 0 else "")
                raise NdgmError(f"{label}: unknown {bad[0]!r}; choose from {allowed}")
        if len(out) < self.minimum:
            raise NdgmError(f"{label} must list at least {self.minimum} "
                            f"entr{'y' if self.minimum == 1 else 'ies'}, got {text!r}")
        if self.distinct and len(set(out)) != len(out):
            raise NdgmError(f"{label} must not repeat an entry, got {text!r}")
        return out

    def value(self, quick: bool = False) -> Any:
        """The declared default (the quick one if ``quick`` and there is one), as ``parse`` gives it."""
        v = self.quick if quick and self.quick is not None else self.default
        return self._parse_list(v) if self.kind in LIST_KINDS else v

    def show(self, value: Any) -> str:
        """``value`` as it is typed on the command line (``parse`` gives it back exactly)."""
        if isinstance(value, (list, tuple)):
            return ",".join(self.show(v) for v in value) or "none"
        return repr(value) if isinstance(value, float) else str(value)


COMMON_PARAMS = (
    Param("seed", 0, "int", "random seed (numpy and torch)", minimum=0),
    Param("dtype", "float64", "dtype", "floating-point type: float64 or float32"),
    Param("device", "auto", "device", "auto (CUDA when present), cpu, cuda or cuda:N"),
)


@dataclass(frozen=True)
class Context:
    """What ``run`` resolved once for ``compute``: the torch dtype and device, and whether
    to show progress bars."""

    dtype: torch.dtype
    device: torch.device
    progress: bool = False


@dataclass
class Result:
    """What a run returns: its config, arrays (for the run store), summary numbers and claims,
    and what the run folder records about the experiment (title, source, the module's
    docstring, the names of its figures in `ndgm.figures`)."""

    experiment: str
    config: dict
    arrays: dict[str, np.ndarray]
    summary: dict[str, Any]
    claims: list[Claim] = field(default_factory=list)
    title: str = ""
    source: str = ""
    description: str = ""
    figures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.claims)


class Experiment:
    """Base class. Subclasses declare ``name``, ``title``, ``source``, ``params`` and
    ``figures`` and write ``compute`` and ``claims``."""

    name: str = ""
    title: str = ""
    source: str = ""
    params: tuple[Param, ...] = ()
    overrides: dict[str, Any] = {}  # per-experiment defaults for the common params
    # Common params this experiment does not vary (it computes in float64 on the CPU,
    # say): recorded in the config, and any other value is refused rather than ignored.
    fixed: dict[str, Any] = {}
    fixed_reason: str = ""
    # What the paper-size run (reproduce --full) needs beyond this package: any of
    # "data_dir" (CIFAR-10 batches), "weights" (a VGG16 state dict), "gpu".
    full_requires: tuple[str, ...] = ()
    # torch's intra-op threads during compute: a number, the name of an int parameter
    # (0 = torch's default), or None to leave them alone.
    threads: int | str | None = None
    # File names of the figures (and other artifacts) registered in `ndgm.figures`.
    figures: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """The experiment module's docstring: what the paper claims and how it is checked."""
        return (sys.modules[type(self).__module__].__doc__ or "").strip()

    def all_params(self) -> tuple[Param, ...]:
        own = {p.name for p in self.params}
        common = tuple(
            Param(p.name, self.fixed[p.name], p.kind, f"fixed at {self.fixed[p.name]} here: {self.fixed_reason}")
            if p.name in self.fixed else
            Param(p.name, self.overrides.get(p.name, p.default), p.kind, p.help, minimum=p.minimum)
            for p in COMMON_PARAMS
            if p.name not in own
        )
        return tuple(self.params) + common

    def config(self, quick: bool = False, **given: Any) -> dict:
        """Full validated config: defaults (quick ones if ``quick``) updated by ``given``."""
        params = {p.name: p for p in self.all_params()}
        unknown = sorted(set(given) - set(params))
        if unknown:
            raise NdgmError(f"unknown parameter(s) for {self.name}: {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(params))}")
        cfg = {}
        for name, p in params.items():
            if name in given and given[name] is not None:
                cfg[name] = p.parse(given[name])
            else:
                cfg[name] = p.value(quick)
            if name in self.fixed and cfg[name] != self.fixed[name]:
                if not (name == "device" and cfg[name] == "auto"):  # auto: the best there is, here the CPU
                    raise NdgmError(f"{self.name} runs with {name} {self.fixed[name]} only "
                                    f"({self.fixed_reason}); got --{name} {cfg[name]}")
                cfg[name] = self.fixed[name]
        self.validate(cfg)
        return cfg

    def at_defaults(self, config: dict, *names: str) -> bool:
        """True when every parameter in ``names`` has its declared default: the paper's
        configuration, where the paper's printed numbers apply. A float counts as its default
        within 1e-12 relative, so that a default computed as ``3.53 / 2`` is met by typing
        ``--scale 1.765``."""
        params = {p.name: p for p in self.all_params()}

        def equal(a, b) -> bool:
            if isinstance(a, float) and isinstance(b, float):
                return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
            return a == b

        return all(equal(config[n], params[n].value()) for n in names)

    def validate(self, config: dict) -> None:
        """Cross-parameter checks; raise `NdgmError`."""

    def run(self, config: dict, progress: bool = False) -> Result:
        """Compute with ``config`` (a validated `config`), check the claims, return the `Result`."""
        ctx = Context(resolve_dtype(config["dtype"]), resolve_device(config["device"]), progress)
        n = config[self.threads] if isinstance(self.threads, str) else self.threads
        with torch_threads(n) if n is not None else nullcontext():
            arrays, summary = self.compute(config, ctx)
        return Result(self.name, dict(config), arrays, summary, self.claims(summary, config), title=self.title,
                      source=self.source, description=self.description, figures=tuple(self.figures))

    def compute(self, config: dict, ctx: Context) -> tuple[dict[str, np.ndarray], dict[str, Any]]:  # pragma: no cover
        """The experiment: the arrays to store and the summary numbers the claims read."""
        raise NotImplementedError

    def claims(self, summary: dict, config: dict) -> list[Claim]:  # pragma: no cover - abstract
        """The claims, from the summary (as stored in ``result.json``) and the config alone."""
        raise NotImplementedError
