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
import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..claims import Claim
from ..device import resolve_device, resolve_dtype, torch_threads
from ..errors import NdgmError, check_int, check_nonnegative, check_positive

__all__ = ["Param", "Claim", "Context", "Result", "Experiment", "COMMON_PARAMS", "INT_MAXIMUM", "SEED_MAXIMUM",
           "memory_limit", "format_bytes"]

LIST_KINDS = ("floats", "strs")
#: The largest value of an ``'int'`` parameter that declares no ``maximum`` of its own: counts
#: and sizes beyond it overflow the 32-bit indices of some kernels and, times 8 bytes, exceed
#: any machine's memory long before; ``10**20`` would overflow torch's int64 sizes outright.
INT_MAXIMUM = 2**31 - 1
#: A parameter named ``seed`` seeds numpy's legacy generator (``np.random.seed``,
#: ``RandomState``), which takes ``0 .. 2**32 - 1``.
SEED_MAXIMUM = 2**32 - 1
#: A list parameter holds at most this many entries (each one is a batched configuration).
LIST_MAXIMUM = 100_000


@dataclass(frozen=True)
class Param:
    """One experiment parameter.

    ``kind`` is one of ``'int'`` (>= ``minimum``), ``'pos'`` (float > 0), ``'nonneg'``
    (float >= 0), ``'float'``, ``'str'``, ``'dtype'``, ``'device'``, ``'bool'``, or a list:
    ``'floats'`` (each item of kind ``item``: ``'pos'``, ``'nonneg'`` or ``'float'``) or
    ``'strs'`` (lower case, each one of ``choices`` when given). A list is given as
    ``'a,b,c'`` or as a list, holds at least ``minimum`` items (``'none'`` or ``''`` is the
    empty list) and, with ``distinct``, no item twice; it is parsed once, into a list.
    ``quick`` overrides ``default`` in the quick reproduction. ``maximum`` bounds a number
    (an ``'int'`` without one is bounded by `INT_MAXIMUM`, one named ``seed`` by
    `SEED_MAXIMUM`); a value beyond it is refused with the limit named, before anything
    is allocated.
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
    maximum: float | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def limit(self) -> tuple[float | None, str]:
        """The largest accepted value and why (``(None, '')``: unbounded)."""
        if self.maximum is not None:
            return self.maximum, "declared maximum"
        if self.kind == "int":
            if self.name == "seed":
                return SEED_MAXIMUM, "numpy's seed range, 0 .. 2**32 - 1"
            return INT_MAXIMUM, "2**31 - 1, the largest count or size ndgm accepts"
        return None, ""

    def _check_limit(self, v):
        top, why = self.limit
        if top is not None and v > top:
            shown = int(top) if self.kind == "int" else top
            raise NdgmError(f"{self.flag} must be <= {shown} ({why}), got {v}")
        return v

    def parse(self, value: Any) -> Any:
        """Validate and convert ``value``; raise `NdgmError` naming this parameter."""
        label = self.flag
        if self.kind in LIST_KINDS:
            return self._parse_list(value)
        if self.kind == "int":
            return self._check_limit(check_int(label, value, self.minimum))
        if self.kind == "pos":
            return self._check_limit(check_positive(label, value))
        if self.kind == "nonneg":
            return self._check_limit(check_nonnegative(label, value))
        if self.kind == "float":
            # Any float, inf and NaN included: such a start is run, and its divergence recorded.
            try:
                v = float(value)
            except (TypeError, ValueError, OverflowError):
                raise NdgmError(f"{label} must be a number, got {value!r}") from None
            return self._check_limit(v) if math.isfinite(v) else v
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
        if len(items) > LIST_MAXIMUM:
            raise NdgmError(f"{label} must list at most {LIST_MAXIMUM} entries, got {len(items)}")
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
                out.append(self._check_limit(v))
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


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``'1.5 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def memory_limit() -> tuple[float, str]:
    """The most memory one run may plan to allocate, and where that number comes from.

    ``NDGM_MEMORY_LIMIT`` (bytes, or with a K/M/G/T suffix: ``64G``) when set, else this
    machine's physical memory.
    """
    text = os.environ.get("NDGM_MEMORY_LIMIT", "").strip()
    if text:
        scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:].upper(), 1)
        try:
            value = float(text[:-1] if scale > 1 else text) * scale
        except ValueError:
            raise NdgmError(f"NDGM_MEMORY_LIMIT must be a number of bytes (or 64G, 512M), got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise NdgmError(f"NDGM_MEMORY_LIMIT must be > 0, got {text!r}")
        return value, "NDGM_MEMORY_LIMIT"
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), \
            "this machine's memory; NDGM_MEMORY_LIMIT overrides it"
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return float(2**40), "1 TiB; NDGM_MEMORY_LIMIT overrides it"


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
    # Every setting besides the config that changes the bits (threads, flags, versions): `environment`.
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.claims)


def _blas_threads(n: int):
    """Limit the BLAS and OpenMP pools numpy and scipy use (threadpoolctl) to ``n`` threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(limits=n)


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` and its parent if empty (a scratch folder a finished run no longer needs)."""
    for p in (folder, folder.parent):
        try:
            p.rmdir()
        except OSError:
            break


def environment(ctx: Context | None = None) -> dict[str, Any]:
    """Every setting besides the config that changes the bits of a run, as it is now.

    torch's intra-op and inter-op threads; the thread pools numpy / scipy call (BLAS, OpenMP:
    library, version, threads); the device and dtype; the CPU's vector instruction set that
    torch dispatches to; deterministic-algorithm, cuDNN and TF32 flags; the float32 matmul
    precision; torch, CUDA, cuDNN and numpy versions. Stored in ``config.json``.
    """
    import platform

    env: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
    }
    try:
        from threadpoolctl import threadpool_info

        env["thread_pools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "version", "num_threads")}
                               for p in threadpool_info()]
    except Exception:  # noqa: BLE001 - informative only
        env["thread_pools"] = []
    if ctx is not None:
        env["device"] = str(ctx.device)
        env["dtype"] = str(ctx.dtype).replace("torch.", "")
        if ctx.device.type == "cuda":
            env["device_name"] = torch.cuda.get_device_name(ctx.device)
    env["cpu"] = platform.machine()
    try:
        env["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001
        env["cpu_capability"] = ""
    env.update({
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": np.__version__,
    })
    return env


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
    # The parameters `memory_bytes` reads (the error that refuses a too large run names them).
    size_params: tuple[str, ...] = ()

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
        self._check_memory(cfg)
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

    def memory_bytes(self, config: dict) -> float:
        """An estimate of the memory a run with ``config`` allocates, in bytes (0: not estimated).

        `config` refuses a configuration whose estimate exceeds `memory_limit`, naming the
        `size_params`, before anything is allocated. The estimate is of the arrays the sizes
        scale (series over iterations, data matrices), not of the interpreter.
        """
        return 0.0

    def _check_memory(self, config: dict) -> None:
        need = float(self.memory_bytes(config))
        limit, why = memory_limit()
        if need > limit:
            params = {p.name: p for p in self.all_params()}
            sizes = ", ".join(f"{params[n].flag} {params[n].show(config[n])}" for n in self.size_params if n in config)
            raise NdgmError(f"{self.name} would allocate about {format_bytes(need)}"
                            + (f" ({sizes})" if sizes else "")
                            + f"; the limit is {format_bytes(limit)} ({why})")

    def compute_threads(self, config: dict, requested: int | None = None) -> int | None:
        """torch's (and BLAS's) threads during ``compute``: the experiment's own setting (a
        number, or its parameter; 0 means none), else ``requested`` (a sweep fixes every
        worker's), else None: left as they are (torch's default, the machine's core count)."""
        n = config[self.threads] if isinstance(self.threads, str) else self.threads
        return n or requested or None

    def run(self, config: dict, progress: bool = False, threads: int | None = None,
            workdir: str | Path | None = None) -> Result:
        """Compute with ``config`` (a validated `config`), check the claims, return the `Result`.

        ``threads``: the thread count to use where the experiment sets none (`compute_threads`);
        the count in effect is recorded in ``Result.environment`` with the other settings that
        change bits. ``workdir``: where scratch files go (the CLI passes a hidden folder under
        ``--out``); an experiment with a ``checkpoint_dir`` parameter left empty keeps its
        checkpoints in ``<workdir>/checkpoints`` rather than under the current directory.
        """
        ctx = Context(resolve_dtype(config["dtype"]), resolve_device(config["device"]), progress)
        n = self.compute_threads(config, threads)
        given = config
        if workdir is not None and "checkpoint_dir" in config and not config["checkpoint_dir"]:
            # The folder is not part of the run's identity (`checkpoint_folder` leaves it out of
            # the hash); only compute sees it, the stored config keeps the empty default.
            config = dict(config, checkpoint_dir=str(Path(workdir) / "checkpoints"))
        with ExitStack() as stack:
            if n is not None:
                stack.enter_context(torch_threads(n))
                stack.enter_context(_blas_threads(n))
            # Overflow to inf and NaN is an outcome the experiments record (with its iteration).
            stack.enter_context(np.errstate(over="ignore", invalid="ignore", divide="ignore"))
            arrays, summary = self.compute(config, ctx)
            env = environment(ctx)
        if config is not given:
            _remove_empty(Path(config["checkpoint_dir"]))
        return Result(self.name, dict(given), arrays, summary, self.claims(summary, given), title=self.title,
                      source=self.source, description=self.description, figures=tuple(self.figures),
                      environment=env)

    def compute(self, config: dict, ctx: Context) -> tuple[dict[str, np.ndarray], dict[str, Any]]:  # pragma: no cover
        """The experiment: the arrays to store and the summary numbers the claims read."""
        raise NotImplementedError

    def claims(self, summary: dict, config: dict) -> list[Claim]:  # pragma: no cover - abstract
        """The claims, from the summary (as stored in ``result.json``) and the config alone."""
        raise NotImplementedError
