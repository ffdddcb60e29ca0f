"""Sweeps: expand a grid of parameters, skip finished runs, run the rest, tabulate.

Runs execute in worker processes (``concurrent.futures.ProcessPoolExecutor``) by default,
or on a Dask cluster when a scheduler address is given; either way the results come back
to this process, which writes each run folder atomically as soon as it arrives. A sweep
that is interrupted and started again finds the finished folders (by config hash) and runs
only the missing configurations; no finished run is recomputed or overwritten.
"""

from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NdgmError
from .experiments import get_experiment
from .claims import verdict_counts
from .store import RunStore, StoredRun, atomic_write, config_hash, ensure_writable, flatten_summary

__all__ = ["parse_grid", "expand", "SweepPlan", "plan_sweep", "run_sweep", "sweep_table"]


def _parse_values(name: str, spec: str) -> list[str]:
    """``a,b,c`` -> values; ``start:stop:num[:log|lin]`` -> a numeric range (inclusive)."""
    if ":" in spec and "," not in spec:
        parts = spec.split(":")
        if len(parts) not in (3, 4):
            raise NdgmError(f"--grid {name}={spec}: a range is start:stop:num[:log|lin]")
        try:
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise NdgmError(f"--grid {name}={spec}: start and stop must be numbers, num an integer") from None
        scale = parts[3] if len(parts) == 4 else "lin"
        if num < 1:
            raise NdgmError(f"--grid {name}={spec}: num must be >= 1")
        if scale == "log":
            if start <= 0 or stop <= 0:
                raise NdgmError(f"--grid {name}={spec}: a log range needs start and stop > 0")
            vals = np.logspace(np.log10(start), np.log10(stop), num)
        elif scale == "lin":
            vals = np.linspace(start, stop, num)
        else:
            raise NdgmError(f"--grid {name}={spec}: scale must be log or lin, got {scale!r}")
        return [repr(float(v)) for v in vals]
    vals = [v.strip() for v in spec.split(",") if v.strip()]
    if not vals:
        raise NdgmError(f"--grid {name}=: no values")
    return vals


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """Parse ``["lr=0.001,0.01", "l1=1e-3:1:7:log"]`` into ``{name: [values]}``."""
    grid: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise NdgmError(f"--grid {item!r}: expected NAME=VALUES, e.g. lr=0.001,0.01 or l1=1e-3:1:7:log")
        name, spec = item.split("=", 1)
        name = name.strip().replace("-", "_")
        if name in grid:
            raise NdgmError(f"--grid {name} given twice")
        grid[name] = _parse_values(name, spec.strip())
    return grid


def expand(experiment: str, grid: dict[str, list[str]], seeds: int | None = None, quick: bool = False,
           fixed: dict[str, Any] | None = None) -> list[dict]:
    """Every full, validated config of the grid (cartesian product, seeds innermost)."""
    exp = get_experiment(experiment)
    names = list(grid)
    if seeds is not None:
        if "seed" in grid:
            raise NdgmError("give seeds either with --seeds or with --grid seed=..., not both")
        if seeds < 1:
            raise NdgmError(f"--seeds must be >= 1, got {seeds}")
        base = exp.config(quick=quick, **(fixed or {}))["seed"]
        grid = dict(grid, seed=[str(base + i) for i in range(seeds)])
        names = list(grid)
    configs, seen = [], set()
    for combo in itertools.product(*(grid[n] for n in names)):
        cfg = exp.config(quick=quick, **(fixed or {}), **dict(zip(names, combo)))
        key = tuple(sorted((k, repr(v)) for k, v in cfg.items()))
        if key not in seen:
            seen.add(key)
            configs.append(cfg)
    return configs


@dataclass
class SweepPlan:
    experiment: str
    configs: list[dict]
    finished: list[StoredRun]
    todo: list[dict]


def plan_sweep(experiment: str, configs: list[dict], store: RunStore) -> SweepPlan:
    finished, todo = [], []
    index = store.index()
    for cfg in configs:
        run = index.get(config_hash(experiment, cfg))
        (finished if run is not None else todo).append(run if run is not None else cfg)
    return SweepPlan(experiment, configs, finished, todo)


def _execute(experiment: str, config: dict):
    """Worker side: run one configuration and return its Result (the client stores it)."""
    started = time.time()
    result = get_experiment(experiment).run(config, progress=False)
    return result, started


def run_sweep(plan: SweepPlan, store: RunStore, scheduler: str | None = None, workers: int | None = None,
              progress: bool = True) -> list[Path]:
    """Run ``plan.todo``; store each result as it arrives. Returns the new run folders."""
    from tqdm.auto import tqdm

    from .figures import write_figures

    ensure_writable(store.root)
    new: list[Path] = []
    if not plan.todo:
        return new
    bar = tqdm(total=len(plan.todo), desc=f"sweep {plan.experiment}", disable=not progress)
    if scheduler:
        try:
            from distributed import Client, as_completed as dask_completed
        except ImportError:  # pragma: no cover - dependency is declared
            raise NdgmError("--scheduler needs dask.distributed (pip install 'dask[distributed]')") from None
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise NdgmError(f"cannot reach the Dask scheduler at {scheduler!r} ({e})") from None
        try:
            futures = [client.submit(_execute, plan.experiment, cfg, pure=False) for cfg in plan.todo]
            for fut in dask_completed(futures):
                result, started = fut.result()
                new.append(store.save(result, started=started, write_files=write_figures))
                bar.update(1)
        finally:
            client.close()
    else:
        workers = workers or min(len(plan.todo), os.cpu_count() or 1)
        import multiprocessing as mp

        # spawn: a forked child of a process that already ran torch's thread pools can hang.
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_execute, plan.experiment, cfg) for cfg in plan.todo]
            for fut in as_completed(futures):
                result, started = fut.result()
                new.append(store.save(result, started=started, write_files=write_figures))
                bar.update(1)
    bar.close()
    return new


def sweep_table(experiment: str, configs: list[dict], store: RunStore):
    """One row per configuration (grid order): config, summary scalars, claim counts, run id."""
    import pandas as pd

    rows = []
    index = store.index()  # read now, after the sweep, so that its new runs are in it
    for cfg in configs:
        run = index.get(config_hash(experiment, cfg))
        if run is None:
            continue
        row: dict[str, Any] = {"run_id": run.run_id}
        row.update({f"config.{k}": v for k, v in cfg.items()})
        row.update(flatten_summary(run.result.get("summary", {})))
        claims = run.result.get("claims", [])
        row.update({f"claims_{k.replace(' ', '_')}": v for k, v in verdict_counts(claims).items()})
        row["claims_total"] = len(claims)
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(df, out_dir: Path, stem: str = "sweep") -> tuple[Path, Path]:
    """Write ``stem.csv`` and ``stem.parquet``, each atomically (see `ndgm.store.atomic_write`)."""
    out_dir = Path(out_dir)
    csv, pq = out_dir / f"{stem}.csv", out_dir / f"{stem}.parquet"
    # Parquet first: it is the writer that can refuse a column type, and then neither file changes.
    atomic_write(pq, lambda tmp: df.to_parquet(tmp, index=False))
    atomic_write(csv, lambda tmp: df.to_csv(tmp, index=False))
    return csv, pq
