"""The run store: every run is a folder, written atomically.

Layout of ``<root>/<run-id>/``:

* ``config.json`` -- every parameter, the experiment name, its title, source and
  description (as they were when it ran), the run id, the config hash, package / torch /
  numpy / python versions, start and end times;
* ``metrics.npz`` -- the arrays the run recorded;
* ``result.json`` -- the summary numbers and the claims (claim, expected, measured, rule, verdict);
* ``figures.json`` and the files it lists -- figures (``*.png``) and other artifacts, each
  rebuilt at any time from ``metrics.npz`` by `ndgm.figures` under its file name.

The folder is assembled under a hidden temporary name in the same directory and renamed
into place once complete, so a crash leaves no half-written run and a finished run is
never overwritten.
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

from .errors import NdgmError

__all__ = ["RunStore", "StoredRun", "atomic_write", "config_hash", "ensure_writable", "flatten_summary", "jsonable",
           "versions", "DEFAULT_ROOT"]

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


def ensure_writable(root: Path) -> Path:
    """Create ``root`` if needed and check that files can be written there."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as e:
        raise NdgmError(f"output directory {str(root)!r} is not writable ({e.strerror or e})") from None
    return root


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
    def figures(self) -> list[str]:
        """File names of the figures and artifacts the run wrote (``figures.json``)."""
        f = self.path / "figures.json"
        return json.loads(f.read_text()) if f.is_file() else []

    def arrays(self) -> dict[str, np.ndarray]:
        with np.load(self.path / "metrics.npz", allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


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
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{run_id}-"))
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
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def runs(self, recursive: bool = False) -> list[StoredRun]:
        """Finished runs, oldest first; ``recursive`` also looks up to three folders down
        (``runs/reproduce/runs/...``, ``runs/sweeps/runs/...``)."""
        return self._read_all(self._folders(recursive))

    def index(self) -> dict[str, StoredRun]:
        """Finished runs (top level) by config hash, read in one pass over the store.

        Where several runs share a hash, the oldest is kept.
        """
        out: dict[str, StoredRun] = {}
        for r in self.runs():
            h = r.config.get("config_hash")
            if h is not None:
                out.setdefault(h, r)
        return out

    def load(self, run: str | Path) -> StoredRun:
        """Load a run by path, by id under the root, or by a unique id prefix."""
        p = Path(run)
        if (p / "result.json").is_file():
            return self._read(p)
        q = self.root / str(run)
        if (q / "result.json").is_file():
            return self._read(q)
        # Match on folder names first, so only the candidates' JSON is read.
        matches = self._read_all([f for f in self._folders(recursive=True) if f.name.startswith(str(run))])
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NdgmError(f"run {run!r} is ambiguous: {', '.join(r.run_id for r in matches[:5])}")
        raise NdgmError(f"no run {run!r} under {str(self.root)!r} (see 'ndgm list')")

    def _folders(self, recursive: bool) -> list[Path]:
        """Run folders (those holding a ``result.json``), sorted, none under a hidden name."""
        if not self.root.is_dir():
            return []
        patterns = ["*/result.json"] + (["*/*/result.json", "*/*/*/result.json", "*/*/*/*/result.json"] if recursive else [])
        folders = sorted({f.parent for pat in patterns for f in self.root.glob(pat)})
        return [p for p in folders if not any(part.startswith(".") for part in p.relative_to(self.root).parts)]

    def _read_all(self, folders: list[Path]) -> list[StoredRun]:
        """Read ``folders`` as runs, oldest first; an unreadable folder is skipped."""
        out = []
        for p in folders:
            try:
                out.append(self._read(p))
            except (OSError, ValueError):
                continue
        out.sort(key=lambda r: (r.config.get("finished", ""), r.run_id))
        return out

    @staticmethod
    def _read(path: Path) -> StoredRun:
        return StoredRun(path, json.loads((path / "config.json").read_text()), json.loads((path / "result.json").read_text()))
