"""What every experiment declares: parameters, a run function, claims and figures.

An experiment module holds its defaults (named after the paper), ``run(config) ->
Result``, the claims it checks (each compares an expected value with a measured one)
and a ``plot`` that rebuilds its figures from stored arrays. The CLI, ``reproduce`` and
sweeps all call the same ``run``; none knows an experiment's internals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..device import resolve_device, resolve_dtype
from ..errors import NdgmError, check_int, check_nonnegative, check_positive

__all__ = ["Param", "Claim", "Result", "Experiment", "COMMON_PARAMS"]


@dataclass(frozen=True)
class Param:
    """One experiment parameter.

    ``kind`` is one of ``'int'`` (>= ``minimum``), ``'pos'`` (float > 0), ``'nonneg'``
    (float >= 0), ``'float'``, ``'str'``, ``'dtype'``, ``'device'``, ``'bool'``.
    ``quick`` overrides ``default`` in the quick reproduction.
    """

    name: str
    default: Any
    kind: str
    help: str
    quick: Any = None
    minimum: int = 1
    choices: tuple | None = None

    def parse(self, value: Any) -> Any:
        """Validate and convert ``value``; raise `NdgmError` naming this parameter."""
        label = "--" + self.name.replace("_", "-")
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


COMMON_PARAMS = (
    Param("seed", 0, "int", "random seed (numpy and torch)", minimum=0),
    Param("dtype", "float64", "dtype", "floating-point type: float64 or float32"),
    Param("device", "auto", "device", "auto (CUDA when present), cpu, cuda or cuda:N"),
)


@dataclass
class Claim:
    """One checked statement: what the paper or the spec says, and what this run measured.

    ``passed`` is True (reproduced), False (differs) or None (not run here; ``detail``
    says why).
    """

    claim: str
    source: str
    expected: Any
    measured: Any
    passed: bool | None
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def verdict(self) -> str:
        return {True: "reproduced", False: "differs", None: "not run"}[self.passed]


@dataclass
class Result:
    """What a run returns: its config, arrays (for the run store), summary numbers and claims."""

    experiment: str
    config: dict
    arrays: dict[str, np.ndarray]
    summary: dict[str, Any]
    claims: list[Claim] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.claims)


class Experiment:
    """Base class. Subclasses set ``name``, ``title``, ``source``, ``params`` and implement
    ``run`` and ``plot``."""

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
            elif quick and p.quick is not None:
                cfg[name] = p.quick
            else:
                cfg[name] = p.default
            if name in self.fixed and cfg[name] != self.fixed[name]:
                if not (name == "device" and cfg[name] == "auto"):  # auto: the best there is, here the CPU
                    raise NdgmError(f"{self.name} runs with {name} {self.fixed[name]} only "
                                    f"({self.fixed_reason}); got --{name} {cfg[name]}")
                cfg[name] = self.fixed[name]
        self.validate(cfg)
        return cfg

    def validate(self, config: dict) -> None:
        """Cross-parameter checks; raise `NdgmError`."""

    def run(self, config: dict, progress: bool = False) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError

    def plot(self, arrays: dict[str, np.ndarray], summary: dict, config: dict, outdir: Path) -> list[Path]:
        """Write the figures from stored arrays; return their paths."""
        return []


