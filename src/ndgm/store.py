"""The run store: every run is a folder, written atomically.

Layout of ``<root>/<run-id>/``:

* ``config.json`` -- every parameter, the experiment name, its title, source and
  description (as they were when it ran), the run id, the config hash, package / torch /
  numpy / python versions, start and end times;
* ``metrics.npz`` -- the arrays the run recorded;
* ``result.json`` -- the summary numbers and the claims (claim, expected, measured, rule, verdict);
* ``figures.json`` and the files it lists -- figures (``*.png``) and other artifacts, each
  rebuilt at any time from ``metrics.npz`` by `ndgm.figures` under its file name.

The folder is assembled under a hidden temporary name in the same directory
(``.tmp-<pid>-<run-id>-*``) and renamed into place once complete, so a crash leaves no
half-written run and a finished run is never overwritten.

``config.json`` also records, under ``environment``, every setting that changes the bits
of a run without being a parameter: torch's intra-op and inter-op threads, the BLAS
libraries and their threads, the device and dtype as resolved, the deterministic-algorithm,
cuDNN and TF32 flags, the CPU's vector capability and the torch / numpy versions.

A folder can still be damaged afterwards (a disk filled, a copy cut short, a hand edit).
Readers never fail on one with a traceback: `RunStore.runs` returns the sound runs,
`RunStore.scan` also the damaged folders with the reason, `RunStore.load` refuses a damaged
run with a one-line `DamagedRun` error, and `RunStore.check` (``ndgm store check``) lists
damaged and half-written folders and, with ``repair``, moves them into ``<root>/.damaged/``.
Nothing is ever deleted, and a sound run is never moved.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .claims import Claim
from .errors import NdgmError

__all__ = ["RunStore", "StoredRun", "DamagedRun", "Damaged", "CheckReport", "atomic_write", "config_hash",
           "ensure_writable", "discard_created_dirs", "WORKDIR", "flatten_summary", "jsonable", "versions", "DEFAULT_ROOT"]

DEFAULT_ROOT = Path(os.environ.get("NDGM_RUNS", "runs"))


def jsonable(x: Any) -> Any:
    """``x`` as the store writes it: plain JSON types, tuples as lists, NaN and inf as strings."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        if v != v or v in (float("inf"), float("-inf")):
            return repr(v)  # JSON has no NaN/inf; keep them readable
        return v
    return x


_NONFINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def _decode_nonfinite(x: Any) -> Any:
    """The inverse of `jsonable` for NaN and inf: the strings ``'nan'``, ``'inf'``, ``'-inf'`` as floats."""
    if isinstance(x, dict):
        return {k: _decode_nonfinite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_decode_nonfinite(v) for v in x]
    if isinstance(x, str) and x in _NONFINITE:
        return _NONFINITE[x]
    return x


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=False) + "\n")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write one file so that readers see either the old file or the complete new one.

    Parameters
    ----------
    path : Path
        The file to create or replace.
    write : callable
        ``write(tmp)`` writes the whole content to the path ``tmp`` (a hidden name in the
        same directory, so the final rename stays on one file system).

    Notes
    -----
    The temporary file is flushed to disk before it is renamed over ``path``, and removed
    if ``write`` (or anything after it) fails.
    """
    path = Path(path)
    # A fresh name rather than mkstemp: the writer creates the file itself, so it gets the
    # usual umask permissions instead of mkstemp's 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_SCALAR = (bool, int, float, str)


def flatten_summary(summary: dict, max_list: int | None = None) -> list[tuple[str, Any]]:
    """The scalar entries of a nested summary, as ``(dotted.key, value)`` pairs in order.

    Parameters
    ----------
    summary : dict
        A run's summary; nested dicts give dotted keys (``bands.gap``).
    max_list : int or None
        Also keep lists of at most this many scalars; ``None`` (default) keeps no lists.

    Returns
    -------
    list of (str, object)
        Numbers, strings, booleans and ``None`` (and the short lists), depth first.
    """
    out: list[tuple[str, Any]] = []

    def walk(obj: dict, prefix: str) -> None:
        for k, v in obj.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(v, key + ".")
            elif isinstance(v, _SCALAR) or v is None:
                out.append((key, v))
            elif (max_list is not None and isinstance(v, list) and len(v) <= max_list
                  and all(isinstance(x, _SCALAR) for x in v)):
                out.append((key, v))

    walk(summary, "")
    return out


def config_hash(experiment: str, config: dict) -> str:
    """Stable hash of an experiment name and its config (device excluded: same numbers)."""
    key = {k: v for k, v in config.items() if k != "device"}
    blob = json.dumps({"experiment": experiment, "config": jsonable(key)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def versions() -> dict:
    import torch

    from . import __version__

    return {
        "ndgm": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# Folders `ensure_writable` created in this process, outermost first: a command that fails
# removes those left empty (`discard_created_dirs`), so a failed command leaves no empty --out.
_CREATED_DIRS: list[Path] = []


def ensure_writable(root: Path) -> Path:
    """Create ``root`` if needed and check that files can be written there."""
    root = Path(root)
    if not str(root).strip():
        raise NdgmError("output directory must not be empty (give a folder, e.g. --out runs)")
    try:
        missing, p = [], root.absolute()
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        root.mkdir(parents=True, exist_ok=True)
        _CREATED_DIRS.extend(reversed(missing))
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except (OSError, ValueError) as e:
        raise NdgmError(f"output directory {str(root)!r} is not writable ({getattr(e, 'strerror', None) or e})") from None
    return root


def discard_created_dirs() -> None:
    """Remove the folders `ensure_writable` created that are still empty, innermost first.

    Only empty folders go (``os.rmdir`` refuses any other), so nothing written is lost.
    """
    while _CREATED_DIRS:
        p = _CREATED_DIRS.pop()
        try:
            p.rmdir()
        except OSError:
            pass


class DamagedRun(NdgmError):
    """A run folder that cannot be read: a file missing, truncated or not what it should be."""


#: The files that make a folder a run folder (any one of them: a damaged run may lack the others).
RUN_FILES = ("config.json", "result.json", "metrics.npz", "figures.json")
#: Where `RunStore.check` moves damaged and half-written folders (hidden: never read as runs).
ASIDE = ".damaged"
#: The scratch folder of a store root (checkpoints of runs in progress; hidden: never read as runs).
WORKDIR = ".work"


@dataclass
class Damaged:
    """A run folder that cannot be read as a run, and why."""

    path: Path
    reasons: list[str]

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)


@dataclass
class StoredRun:
    """A run read back from disk."""

    path: Path
    config: dict
    result: dict

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def experiment(self) -> str:
        return self.config.get("experiment", "?")

    @property
    def title(self) -> str:
        return self.config.get("title") or self.experiment

    @property
    def source(self) -> str:
        return self.config.get("source", "")

    @property
    def description(self) -> str:
        """The experiment's description (its module docstring) when the run was saved."""
        return self.config.get("description", "")

    @property
    def environment(self) -> dict:
        """What changes the bits besides the parameters (threads, flags, versions; empty for old runs)."""
        env = self.config.get("environment")
        return env if isinstance(env, dict) else {}

    @property
    def figures(self) -> list[str]:
        """File names of the figures and artifacts the run wrote (``figures.json``; [] when unreadable)."""
        f = self.path / "figures.json"
        try:
            names = json.loads(f.read_text()) if f.is_file() else []
        except (OSError, ValueError):
            return []
        return [n for n in names if isinstance(n, str) and n and Path(n).name == n] if isinstance(names, list) else []

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of ``metrics.npz``; a missing or damaged file is a `DamagedRun` error."""
        return _read_arrays(self.path)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    arrays, problem = _try_arrays(path)
    if problem:
        raise DamagedRun(f"run {path.name!r} is damaged: {problem}, so its arrays (and figures) cannot be "
                         f"read; 'ndgm store check --repair' moves it aside ({path})")
    return arrays


def _try_arrays(path: Path) -> tuple[dict[str, np.ndarray], str]:
    """Every array of ``path/metrics.npz`` (CRCs checked), or ``({}, what is wrong)``."""
    f = path / "metrics.npz"
    if not f.is_file():
        return {}, "metrics.npz is missing"
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}, ""
    except Exception as e:  # noqa: BLE001 - zipfile, zlib, numpy format and OS errors all mean one thing here
        return {}, f"metrics.npz cannot be read ({_short(e)})"


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:120]}" if text else type(e).__name__


def _read_json_dict(path: Path, name: str, problems: list[str]) -> dict | None:
    f = path / name
    if not f.is_file():
        problems.append(f"{name} is missing")
        return None
    try:
        text = f.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{name} cannot be read ({_short(e)})")
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        problems.append(f"{name} is not valid JSON ({'empty' if not text.strip() else 'truncated or edited'})")
        return None
    if not isinstance(obj, dict):
        problems.append(f"{name} holds a JSON {type(obj).__name__}, not an object")
        return None
    return obj


def _inspect(path: Path, arrays: bool = True) -> tuple[StoredRun | None, list[str]]:
    """Read the run folder ``path``: the run, or None and what is wrong with it.

    ``arrays`` also opens ``metrics.npz`` (its zip directory, not the arrays: a truncated
    file has lost the directory at its end).
    """
    problems: list[str] = []
    config = _read_json_dict(path, "config.json", problems)
    result = _read_json_dict(path, "result.json", problems)
    if config is not None:
        if not isinstance(config.get("experiment"), str):
            problems.append("config.json names no experiment")
        if not isinstance(config.get("config", {}), dict):
            problems.append("config.json's 'config' is not an object")
    if result is not None:
        if not isinstance(result.get("summary", {}), dict):
            problems.append("result.json's 'summary' is not an object")
        claims = result.get("claims", [])
        if not (isinstance(claims, list) and all(isinstance(c, dict) and "claim" in c for c in claims)):
            problems.append("result.json's 'claims' is not a list of claims")
        else:
            for i, c in enumerate(claims, 1):
                try:
                    Claim.from_dict(c)
                except (TypeError, ValueError, KeyError) as e:
                    problems.append(f"result.json's claim {i} is not a valid claim ({_short(e)})")
                    break
    if arrays:
        f = path / "metrics.npz"
        if not f.is_file():
            problems.append("metrics.npz is missing")
        else:
            try:
                with np.load(f, allow_pickle=False) as z:
                    z.files  # noqa: B018 - opening reads the zip directory
            except Exception as e:  # noqa: BLE001
                problems.append(f"metrics.npz cannot be read ({_short(e)})")
    if problems:
        return None, problems
    assert config is not None and result is not None
    result = dict(result, summary=_decode_nonfinite(result.get("summary", {})),
                  claims=_decode_nonfinite(result.get("claims", [])))
    return StoredRun(path, config, result), []


@dataclass
class CheckReport:
    """What `RunStore.check` found and did."""

    sound: int
    damaged: list[Damaged]
    half_written: list[Path]
    stray_files: list[Path]
    checkpoints: list[Path]
    in_progress: list[Path]
    moved: list[tuple[Path, Path]]

    @property
    def problems(self) -> int:
        """Damaged, half-written and stray items that are still in place."""
        moved = {a for a, _ in self.moved}
        items = [d.path for d in self.damaged] + self.half_written + self.stray_files
        return sum(1 for p in items if p not in moved)


class RunStore:
    """Runs under one root directory."""

    def __init__(self, root: Path | str = DEFAULT_ROOT):
        self.root = Path(root)

    def save(self, result, started: float | None = None,
             write_files: Callable[[Any, Path], list[str]] | None = None) -> Path:
        """Write ``result`` (an `ndgm.experiments.Result`) as a new run folder; return its path.

        ``write_files(result, folder)`` may add files to the folder before it is renamed into
        place (`ndgm.figures.write_figures` draws the figures) and returns their names, which
        go to ``figures.json``. If it fails, nothing is left behind.
        """
        ensure_writable(self.root)
        h = config_hash(result.experiment, result.config)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_id = f"{result.experiment}-{stamp}-{h[:8]}"
        final = self.root / run_id
        n = 1
        while final.exists():
            n += 1
            final = self.root / f"{run_id}-{n}"
        # The pid in the name tells `check` whether the writer is still alive.
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{os.getpid()}-{run_id}-"))
        try:
            config = {
                "experiment": result.experiment,
                "title": result.title,
                "source": result.source,
                "description": result.description,
                "run_id": final.name,
                "config_hash": h,
                "config": result.config,
                "versions": versions(),
                "environment": getattr(result, "environment", None) or {},
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started or time.time())),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            write_json(tmp / "config.json", config)
            np.savez_compressed(tmp / "metrics.npz", **result.arrays)
            write_json(tmp / "result.json", {
                "experiment": result.experiment,
                "summary": result.summary,
                "claims": [c.as_dict() for c in result.claims],
                "passed": result.passed,
            })
            figures = write_files(result, tmp) if write_files is not None else []
            (tmp / "figures.json").write_text(json.dumps(figures) + "\n")
            os.chmod(tmp, 0o755)
            os.rename(tmp, final)
        except OSError as e:  # a full disk, a vanished folder: the user's to fix, one line
            shutil.rmtree(tmp, ignore_errors=True)
            raise NdgmError(f"cannot write the run folder {str(final)!r} ({e.strerror or e}); nothing was stored") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def runs(self, recursive: bool = False) -> list[StoredRun]:
        """Sound runs, oldest first (damaged folders are left out: see `scan`); ``recursive``
        also looks up to three folders down (``runs/reproduce/runs/...``, ``runs/sweeps/runs/...``)."""
        return self.scan(recursive)[0]

    def scan(self, recursive: bool = False, arrays: bool = True) -> tuple[list[StoredRun], list[Damaged]]:
        """Sound runs (oldest first) and damaged run folders (by name) under the root."""
        runs, damaged = [], []
        for p in self._folders(recursive):
            run, problems = _inspect(p, arrays=arrays)
            if run is not None:
                runs.append(run)
            else:
                damaged.append(Damaged(p, problems))
        runs.sort(key=lambda r: (str(r.config.get("finished", "")), r.run_id))
        return runs, damaged

    def index(self) -> dict[str, StoredRun]:
        """Sound runs (top level) by config hash, read in one pass over the store.

        Where several runs share a hash, the oldest is kept; a damaged folder is not a
        finished run (a sweep runs its configuration again).
        """
        out: dict[str, StoredRun] = {}
        for r in self.runs():
            h = r.config.get("config_hash")
            if isinstance(h, str):
                out.setdefault(h, r)
        return out

    def load(self, run: str | Path) -> StoredRun:
        """Load a run by path, by id under the root, or by a unique id prefix.

        A damaged folder is a `DamagedRun` error saying what is wrong; an unknown one an
        `NdgmError` pointing to ``ndgm list``.
        """
        text = str(run)
        if not text.strip():
            raise NdgmError("which run? give a run id, a unique id prefix or a run folder (see 'ndgm list')")
        for p in (Path(run), self.root / text):
            if _is_run_folder(p):
                return self._read(p)
        # Match on folder names first, so only the candidates' files are read.
        candidates = [f for f in self._folders(recursive=True) if f.name.startswith(text)]
        exact = [f for f in candidates if f.name == text]
        if len(exact) == 1:
            candidates = exact
        if len(candidates) == 1:
            return self._read(candidates[0])
        if len(candidates) > 1:
            raise NdgmError(f"run {text!r} is ambiguous: {', '.join(f.name for f in candidates[:5])}"
                            + (f" and {len(candidates) - 5} more" if len(candidates) > 5 else ""))
        raise NdgmError(f"no run {text!r} under {str(self.root)!r} (see 'ndgm list')")

    def check(self, repair: bool = False, recursive: bool = True) -> CheckReport:
        """Find damaged run folders, half-written ones (``.tmp-*`` of a writer no longer
        running), stray temporary files and checkpoints of interrupted runs; with ``repair``
        move the damaged, half-written and stray ones into ``<their folder>/.damaged/``.

        Every ``metrics.npz`` is read in full (each array's CRC checked). Nothing is deleted,
        a sound run is never moved, and a folder whose writer is still running is left alone.
        """
        runs, damaged = self.scan(recursive)
        sound = 0
        for r in runs:
            _, problem = _try_arrays(r.path)
            if problem:
                damaged.append(Damaged(r.path, [problem]))
            else:
                sound += 1
        half, stray, ckpts, busy = [], [], [], []
        now = time.time()
        for root in self._roots(recursive):
            for p in sorted(root.iterdir()):
                name = p.name
                if p.is_dir() and name.startswith(".tmp-"):
                    (busy if _writer_alive(name) else half).append(p)
                elif p.is_file() and name.startswith(".") and name.endswith(".tmp"):
                    (busy if _writer_alive(name) else stray).append(p)
                elif p.is_file() and name.startswith(".probe-"):
                    # No pid in the name: a probe lives for microseconds, so an old one is left over.
                    (busy if now - p.stat().st_mtime < 60 else stray).append(p)
                elif p.is_dir() and name == WORKDIR:
                    ckpts += sorted(f for f in p.rglob("*.pt") if f.is_file())
        moved = []
        if repair:
            for p in [d.path for d in damaged] + half + stray:
                moved.append((p, _move_aside(p)))
        return CheckReport(sound, damaged, half, stray, ckpts, busy, moved)

    def _roots(self, recursive: bool) -> list[Path]:
        """The store root and, with ``recursive``, the folders below it (three levels) that hold runs or temporaries."""
        if not self.root.is_dir():
            return []
        roots = [self.root]
        if recursive:
            for depth in ("*", "*/*", "*/*/*"):
                for p in self.root.glob(depth):
                    if p.is_dir() and not _hidden(p.relative_to(self.root)) and not _is_run_folder(p):
                        roots.append(p)
        return roots

    def _folders(self, recursive: bool) -> list[Path]:
        """Run folders (holding any of `RUN_FILES`), sorted, none under a hidden name."""
        if not self.root.is_dir():
            return []
        depths = ["*"] + (["*/*", "*/*/*", "*/*/*/*"] if recursive else [])
        folders = {f.parent for d in depths for name in RUN_FILES for f in self.root.glob(f"{d}/{name}")}
        return sorted(p for p in folders if p.is_dir() and not _hidden(p.relative_to(self.root)))

    @staticmethod
    def _read(path: Path) -> StoredRun:
        run, problems = _inspect(path)
        if run is None:
            raise DamagedRun(f"run {path.name!r} is damaged: {'; '.join(problems)}; "
                             f"'ndgm store check --repair' moves it aside ({path})")
        return run


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _is_run_folder(p: Path) -> bool:
    try:
        return p.is_dir() and any((p / name).is_file() for name in RUN_FILES)
    except (OSError, ValueError):  # a name too long for the file system, say
        return False


def _writer_alive(name: str) -> bool:
    """Whether the process that writes the temporary ``name`` (``.tmp-<pid>-...``,
    ``.file.<pid>-xxxx.tmp``) still runs on this machine."""
    import re

    m = re.match(r"\.tmp-(\d+)-", name) or re.search(r"\.(\d+)-[0-9a-f]+\.tmp$", name)
    if not m:
        return False
    pid = int(m.group(1))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _move_aside(p: Path) -> Path:
    """Move ``p`` into ``<its folder>/.damaged/`` under a name not yet taken; return the new path."""
    aside = p.parent / ASIDE
    aside.mkdir(exist_ok=True)
    target, n = aside / p.name.lstrip("."), 1
    while target.exists():
        n += 1
        target = aside / f"{p.name.lstrip('.')}-{n}"
    os.rename(p, target)
    return target
