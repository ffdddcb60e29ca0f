"""Sweeps: expand a grid of parameters, skip finished runs, run the rest, tabulate.

Runs execute in worker processes (``concurrent.futures.ProcessPoolExecutor``) by default,
or on a Dask cluster when a scheduler address is given; either way the results come back
to this process, which writes each run folder atomically as soon as it arrives. A sweep
that is interrupted and started again finds the finished folders (by config hash) and runs
only the missing configurations; no finished run is recomputed or overwritten.

Bits: every worker, local or Dask, computes with the same number of torch and BLAS threads
(``threads``, 1 by default), so a local sweep and the same sweep on a cluster give the same
table to the last bit, and a sweep resumed on another backend does not mix two kinds of
result. A store whose finished runs were computed with another thread count is refused.

Hygiene: local workers ignore Ctrl-C (the parent stops them) and die with their parent,
even after ``kill -9`` of it. A configuration that fails (an error in a worker, a worker
lost) does not stop the others: it gets a row with ``status = failed`` and its error, is
not stored, and runs again when the sweep is resumed.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .claims import verdict_counts
from .errors import NdgmError
from .experiments import get_experiment
from .store import WORKDIR, RunStore, StoredRun, atomic_write, config_hash, ensure_writable, flatten_summary

__all__ = ["parse_grid", "expand", "SweepPlan", "SweepOutcome", "plan_sweep", "run_sweep", "sweep_table",
           "write_table", "connect", "MAX_CONFIGS"]

#: The most configurations one sweep expands to (grid points times seeds); checked before
#: any value list is built.
MAX_CONFIGS = 100_000


def _parse_values(name: str, spec: str) -> list:
    """``a,b,c`` -> the strings; ``start:stop:num[:log|lin]`` -> ``num`` floats from start to stop (inclusive)."""
    if ":" in spec and "," not in spec:
        parts = spec.split(":")
        if len(parts) not in (3, 4):
            raise NdgmError(f"--grid {name}={spec}: a range is start:stop:num[:log|lin]")
        try:
            start, stop = float(parts[0]), float(parts[1])
            num = int(parts[2])
        except ValueError:
            raise NdgmError(f"--grid {name}={spec}: start and stop must be numbers, num an integer") from None
        if not (math.isfinite(start) and math.isfinite(stop)):
            raise NdgmError(f"--grid {name}={spec}: start and stop must be finite numbers, got {start!r} and {stop!r}")
        if num < 1:
            raise NdgmError(f"--grid {name}={spec}: num must be >= 1")
        if num > MAX_CONFIGS:
            raise NdgmError(f"--grid {name}={spec}: {num} values; a sweep holds at most {MAX_CONFIGS} configurations")
        scale = parts[3] if len(parts) == 4 else "lin"
        if scale == "log":
            if start <= 0 or stop <= 0:
                raise NdgmError(f"--grid {name}={spec}: a log range needs start and stop > 0")
            vals = np.logspace(np.log10(start), np.log10(stop), num)
            vals[0], vals[-1] = start, stop  # exactly the values typed, not 10**log10(x)
        elif scale == "lin":
            # start + (stop - start) * i / (num - 1) overflows for |start|, |stop| near 1e308: mix instead.
            t = np.linspace(0.0, 1.0, num)
            vals = start * (1 - t) + stop * t
        else:
            raise NdgmError(f"--grid {name}={spec}: scale must be log or lin, got {scale!r}")
        if not np.isfinite(vals).all():  # pragma: no cover - finite ends give finite values
            raise NdgmError(f"--grid {name}={spec}: the range has non-finite values")
        return [float(v) for v in vals]
    vals = [v.strip() for v in spec.split(",") if v.strip()]
    if not vals:
        raise NdgmError(f"--grid {name}=: no values")
    if len(vals) > MAX_CONFIGS:
        raise NdgmError(f"--grid {name}: {len(vals)} values; a sweep holds at most {MAX_CONFIGS} configurations")
    return vals


def _name(text: str, flag: str) -> str:
    name = text.strip().replace("-", "_")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise NdgmError(f"{flag} {text!r}: a parameter name is letters, digits, '-' and '_'")
    return name


def parse_grid(items: list[str]) -> dict[str, list]:
    """Parse ``["lr=0.001,0.01", "l1=1e-3:1:7:log"]`` into ``{name: [values]}``.

    A list gives strings (parsed by the parameter), a range floats (rounded to integers
    for an integer parameter by `expand`).
    """
    grid: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise NdgmError(f"--grid {item!r}: expected NAME=VALUES, e.g. lr=0.001,0.01 or l1=1e-3:1:7:log")
        name, spec = item.split("=", 1)
        name = _name(name, "--grid")
        if name in grid:
            raise NdgmError(f"--grid {name} given twice")
        grid[name] = _parse_values(name, spec.strip())
    return grid


def parse_set(items: list[str]) -> dict[str, str]:
    """Parse ``["iterations=40", "n=30"]`` (``--set``) into ``{name: value}``; a name given twice is an error."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise NdgmError(f"--set {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        k = _name(k, "--set")
        if k in out:
            raise NdgmError(f"--set {k} given twice")
        out[k] = v.strip()
    return out


def expand(experiment: str, grid: dict[str, list], seeds: int | None = None, quick: bool = False,
           fixed: dict[str, Any] | None = None) -> list[dict]:
    """Every full, validated config of the grid (cartesian product, seeds innermost).

    ``fixed`` (``--set``) holds values for every configuration; a name in both ``grid`` and
    ``fixed`` is an error. ``seeds`` adds ``seed, seed + 1, ...`` from the seed ``fixed`` or
    the defaults give. A range over an integer parameter is rounded to integers (repeats
    dropped). More than `MAX_CONFIGS` configurations are refused before any is built.
    """
    exp = get_experiment(experiment)
    fixed = dict(fixed or {})
    params = {p.name: p for p in exp.all_params()}
    unknown = sorted((set(grid) | set(fixed)) - set(params))
    if unknown:
        raise NdgmError(f"unknown parameter(s) for {exp.name}: {', '.join(unknown)}; known: {', '.join(sorted(params))}")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise NdgmError(f"{both[0]} is given by both --grid and --set; give it once")
    grid = {name: _as_kind(params[name], values) for name, values in grid.items()}
    if seeds is not None:
        if "seed" in grid:
            raise NdgmError("give seeds either with --seeds or with --grid seed=..., not both")
        if seeds < 1:
            raise NdgmError(f"--seeds must be >= 1, got {seeds}")
    total = math.prod(len(v) for v in grid.values()) * (seeds or 1)
    if total > MAX_CONFIGS:
        raise NdgmError(f"the sweep would hold {total} configurations; at most {MAX_CONFIGS}")
    if seeds is not None:
        base = exp.config(quick=quick, **fixed)["seed"]
        grid = dict(grid, seed=[base + i for i in range(seeds)])
        fixed.pop("seed", None)
    names = list(grid)
    configs, seen = [], set()
    for combo in itertools.product(*(grid[n] for n in names)):
        cfg = exp.config(quick=quick, **{**fixed, **dict(zip(names, combo))})
        key = tuple(sorted((k, repr(v)) for k, v in cfg.items()))
        if key not in seen:
            seen.add(key)
            configs.append(cfg)
    return configs


def _as_kind(param, values: list) -> list:
    """Range values (floats) of an integer parameter rounded to integers, repeats dropped."""
    if param.kind != "int":
        return values
    out = []
    for v in values:
        v = int(round(v)) if isinstance(v, float) else v
        if v not in out:
            out.append(v)
    return out


@dataclass
class SweepPlan:
    experiment: str
    configs: list[dict]
    finished: list[StoredRun]
    todo: list[dict]
    threads: int | None = None


@dataclass
class SweepOutcome:
    """The run folders a sweep wrote and the configurations that failed, with their errors."""

    new: list[Path] = field(default_factory=list)
    failed: list[tuple[dict, str]] = field(default_factory=list)


def plan_sweep(experiment: str, configs: list[dict], store: RunStore, threads: int | None = None) -> SweepPlan:
    """Split ``configs`` into finished (a sound run with the same config hash) and to do.

    ``threads``: the thread count this sweep computes with; finished runs computed with
    another one would put two kinds of bits in one table, and are refused.
    """
    finished, todo = [], []
    index = store.index()
    exp = get_experiment(experiment)
    clash = []
    for cfg in configs:
        run = index.get(config_hash(experiment, cfg))
        if run is None:
            todo.append(cfg)
            continue
        finished.append(run)
        want = exp.compute_threads(cfg, threads)
        had = run.environment.get("threads")
        if want is not None and had is not None and had != want:
            clash.append((run, had, want))
    if clash:
        run, had, want = clash[0]
        raise NdgmError(f"{len(clash)} finished run(s) in {str(store.root)!r} were computed with {had} thread(s), "
                        f"this sweep computes with {want} ({run.run_id}, ...): their bits differ; "
                        f"resume with --threads {had} or use another --out")
    return SweepPlan(experiment, configs, finished, todo, threads)


def _execute(experiment: str, config: dict, threads: int | None = None, workdir: str | None = None):
    """Worker side: run one configuration and return its Result (the client stores it).

    The thread count is set for the whole worker process first (and not restored), so that
    tasks sharing a Dask worker never see another task's setting.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=threads)
        except ImportError:  # pragma: no cover
            pass
    started = time.time()
    result = get_experiment(experiment).run(config, progress=False, threads=threads, workdir=workdir)
    return result, started


def _worker_init(parent: int) -> None:
    """Local worker set-up: ignore Ctrl-C (the parent stops the pool) and die with the parent."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm's default lock holds a multiprocessing semaphore; a worker stopped by terminate()
    # cannot release it and the resource tracker reports it as leaked. A worker draws no bars.
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    try:  # Linux: the kernel kills this process when its parent dies, even by SIGKILL
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:  # everywhere else (and as a second line): poll the parent
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="ndgm-parent-watch", daemon=True).start()


def _stop_pool(pool: ProcessPoolExecutor, futures) -> None:
    """Cancel what has not started and terminate the worker processes (Ctrl-C, an error)."""
    for f in futures:
        f.cancel()
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():  # pragma: no cover
            p.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _failure(e: BaseException) -> str:
    if isinstance(e, NdgmError):
        return str(e)
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


def connect(address: str, timeout: float = 5.0):
    """A Dask client of the scheduler at ``address`` (``tcp://HOST:PORT``, ``HOST:PORT``,
    ``tls://...``, ``inproc://...``), or a one-line `NdgmError` within about ``timeout``
    seconds: a malformed address at once, a refused connection at once, a silent host after
    ``timeout``."""
    import logging
    import socket

    try:
        from distributed import Client
        from distributed.comm.addressing import parse_address, parse_host_port
    except ImportError:  # pragma: no cover - dependency is declared
        raise NdgmError("--scheduler needs dask.distributed (pip install 'dask[distributed]')") from None
    where = f"the Dask scheduler at {address!r}"
    try:
        protocol, location = parse_address(address, strict=False)
        if protocol in ("tcp", "tls", "ws", "wss"):
            host, port = parse_host_port(location)
            if not host or not 0 < int(port) < 65536:
                raise ValueError("bad host or port")
    except (ValueError, TypeError):
        raise NdgmError(f"--scheduler {address!r}: expected tcp://HOST:PORT (or HOST:PORT, tls://HOST:PORT)") from None
    if protocol in ("tcp", "tls", "ws", "wss"):
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
        except socket.gaierror as e:
            raise NdgmError(f"cannot reach {where}: unknown host {host!r} ({e.strerror or e})") from None
        except OSError as e:
            raise NdgmError(f"cannot reach {where} ({e.strerror or type(e).__name__ if not str(e) else e})") from None
    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.CRITICAL)  # a failed handshake is reported once, below, not as log fragments
    try:
        return Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError, ValueError) as e:
        raise NdgmError(f"cannot reach {where} ({_failure(e)})") from None
    finally:
        log.setLevel(level)


def run_sweep(plan: SweepPlan, store: RunStore, scheduler: str | None = None, workers: int | None = None,
              progress: bool = True, threads: int | None = None, client=None) -> SweepOutcome:
    """Run ``plan.todo``; store each result as it arrives.

    On a Dask ``client`` (or one `connect` makes to ``scheduler``), else in ``workers`` local
    processes. ``threads`` (default: the plan's) fixes every worker's torch and BLAS threads.
    A configuration that fails is recorded in the outcome and not stored; the others go on.
    """
    from tqdm.auto import tqdm

    from .figures import write_figures

    threads = plan.threads if threads is None else threads
    outcome = SweepOutcome()
    if not plan.todo:
        return outcome
    own_client = client is None and scheduler is not None
    if own_client:
        client = connect(scheduler)
    ensure_writable(store.root)
    workdir = str((store.root / WORKDIR).absolute())

    def arrived(cfg: dict, get) -> None:
        try:
            result, started = get()
        except Exception as e:  # noqa: BLE001 - a failed configuration is a row, not the end of the sweep
            outcome.failed.append((cfg, _failure(e)))
            return
        outcome.new.append(store.save(result, started=started, write_files=write_figures))

    try:
        if client is not None:
            from distributed import as_completed as dask_completed

            bar = tqdm(total=len(plan.todo), desc=f"sweep {plan.experiment}", disable=not progress)
            futures = {client.submit(_execute, plan.experiment, cfg, threads, workdir, pure=False): i
                       for i, cfg in enumerate(plan.todo)}
            try:
                for fut in dask_completed(list(futures)):
                    arrived(plan.todo[futures[fut]], fut.result)
                    bar.update(1)
            except BaseException:
                client.cancel(list(futures))
                raise
            finally:
                bar.close()
        else:
            import multiprocessing as mp

            workers = workers or min(len(plan.todo), os.cpu_count() or 1)
            # spawn: a forked child of a process that already ran torch's thread pools can hang.
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                       initializer=_worker_init, initargs=(os.getpid(),))
            bar = tqdm(total=len(plan.todo), desc=f"sweep {plan.experiment}", disable=not progress)
            futures = {pool.submit(_execute, plan.experiment, cfg, threads, workdir): i
                       for i, cfg in enumerate(plan.todo)}
            try:
                for fut in as_completed(futures):
                    arrived(plan.todo[futures[fut]], fut.result)
                    bar.update(1)
            except BaseException:
                _stop_pool(pool, futures)
                raise
            finally:
                bar.close()
            pool.shutdown(wait=True)
    finally:
        if own_client:
            client.close()
    return outcome


def sweep_table(experiment: str, configs: list[dict], store: RunStore, failed: list[tuple[dict, str]] = ()):
    """One row per configuration (grid order): status, config, summary scalars, claim counts, run id.

    ``status`` is ``finished`` or ``failed`` (with ``error``; ``failed`` rows come from this
    sweep's outcome); a configuration neither finished nor failed has no row.
    """
    import pandas as pd

    rows = []
    index = store.index()  # read now, after the sweep, so that its new runs are in it
    errors = {config_hash(experiment, cfg): err for cfg, err in failed}
    for cfg in configs:
        h = config_hash(experiment, cfg)
        run = index.get(h)
        if run is None and h not in errors:
            continue
        row: dict[str, Any] = {"run_id": run.run_id if run is not None else "",
                               "status": "finished" if run is not None else "failed"}
        row.update({f"config.{k}": v for k, v in cfg.items()})
        if run is None:
            row["error"] = errors[h]
            rows.append(row)
            continue
        row.update(flatten_summary(run.result.get("summary", {})))
        claims = run.result.get("claims", [])
        row.update({f"claims_{k.replace(' ', '_')}": v for k, v in verdict_counts(claims).items()})
        row["claims_total"] = len(claims)
        rows.append(row)
    return pd.DataFrame(rows)


def _uniform_columns(df):
    """``df`` with every object column holding one kind of value (parquet needs that): a
    column mixing kinds (numbers and text, say, or lists) is written as text."""
    df = df.copy()
    for col in df.columns:
        if df[col].dtype != object:
            continue
        kinds = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and v != v)}
        if len(kinds) > 1 or kinds & {list, dict, tuple}:
            df[col] = [None if v is None else str(v) for v in df[col]]
    return df


def write_table(df, out_dir: Path, stem: str = "sweep") -> tuple[Path, Path]:
    """Write ``stem.csv`` and ``stem.parquet``, each atomically (see `ndgm.store.atomic_write`)."""
    out_dir = Path(out_dir)
    csv, pq = out_dir / f"{stem}.csv", out_dir / f"{stem}.parquet"
    df = _uniform_columns(df)
    # Parquet first: it is the writer that can refuse a column type, and then neither file changes.
    atomic_write(pq, lambda tmp: df.to_parquet(tmp, index=False))
    atomic_write(csv, lambda tmp: df.to_csv(tmp, index=False))
    return csv, pq
